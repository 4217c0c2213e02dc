// The stored `waf-rules` set: checked with every mistake named by its place, and followed by a
// WAF through its process's DocBoard, keeping the last good set when a version does not compile.
import { describe, expect, it } from 'vitest';
import type { StoredDoc } from '../../compute/store/store.ts';
import { DocBoard } from '../../control/doc-board.ts';
import type { EarlyResponse, HookResult } from '../../edge/phases.ts';
import { newContext } from '../../edge/request.ts';
import { OutpostError } from '../../errors.ts';
import type { RuleSpec } from './rules.ts';
import { compileStoredRules, MAX_STORED_RULES, WAF_RULES_DOC } from './stored.ts';
import { waf } from './waf.ts';
import { capturedLog } from '../../../test/support/captured-log.ts';


/** A rule spec; `over` may make it invalid on purpose. */
const rule = (over: Record<string, unknown> = {}): RuleSpec => ({ id: 'custom-promo', category: 'custom', description: 'internal promo codes', targets: ['query'], pattern: 'promo=internal-', ...over }) as RuleSpec;

function refusal(value: unknown, taken?: ReadonlySet<string>): string {
  try {
    compileStoredRules(value, taken);
  } catch (err) {
    expect(err).toBeInstanceOf(OutpostError);
    expect((err as OutpostError).status).toBe(400);
    return (err as Error).message;
  }
  throw new Error('expected the set to be refused');
}

const doc = (version: number, value: unknown): StoredDoc => ({ name: WAF_RULES_DOC, version, updatedAt: new Date().toISOString(), value });

function blockedBy(r: HookResult): string | undefined {
  return typeof r === 'object' && r !== null ? String((r as EarlyResponse).headers?.['x-outpost-waf']) : undefined;
}

const request = (query: string) => newContext({ method: 'GET', scheme: 'http', httpVersion: '1.1', clientIp: '192.0.2.7', host: 'shop.test', path: '/search', query, headers: {} });

describe('a stored WAF rule set', () => {
  it('compiles every rule of a valid set', () => {
    const rules = compileStoredRules({ rules: [rule(), rule({ id: 'custom-two', targets: ['path', 'header:X-Client'], view: 'raw', pattern: '^/old-admin' })] });
    expect(rules.map((r) => r.id)).toEqual(['custom-promo', 'custom-two']);
    expect(rules[1]!.targets).toEqual(['path', 'header:x-client']);
    expect(compileStoredRules({ rules: [] })).toEqual([]);
  });

  it('is refused with every mistake named by rule index and field', () => {
    const msg = refusal({
      rules: [
        rule({ targets: ['url'] }),
        rule({ id: 'custom-b', pattern: '(a+)+$' }),
        rule({ id: 'custom-c', pattern: 'a(b' }),
        rule({ id: 'Bad Id' }),
        rule({ id: 'custom-e', category: 'evil' }),
        rule({ id: 'custom-f', patern: 'x' }),
        'not a rule',
      ],
    });
    const lines = msg.split('\n');
    expect(lines[0]).toBe('waf rules refused:');
    expect(lines.slice(1)).toEqual([
      expect.stringMatching(/^rules\[0\]\.targets: expected path, query, body, headers or header:<name>, got "url"$/),
      expect.stringMatching(/^rules\[1\]\.pattern: nested quantifiers/),
      expect.stringMatching(/^rules\[2\]\.pattern: not a valid regular expression/),
      expect.stringMatching(/^rules\[3\]\.id: expected 2–64 characters/),
      expect.stringMatching(/^rules\[4\]\.category: expected one of sqli, xss/),
      expect.stringMatching(/^rules\[5\]\.patern: unknown field/),
      'rules[6]: expected an object, got "not a rule"',
    ]);
  });

  it('may not reuse the id of a built-in rule, a configured rule or another rule of the set', () => {
    expect(refusal({ rules: [rule({ id: 'sqli-tautology' })] })).toMatch(/rules\[0\]\.id: "sqli-tautology" is a built-in rule/);
    expect(refusal({ rules: [rule({ id: 'cfg-rule' })] }, new Set(['cfg-rule']))).toMatch(/rules\[0\]\.id: "cfg-rule" is a rule of the configuration/);
    expect(refusal({ rules: [rule(), rule()] })).toMatch(/rules\[1\]\.id: "custom-promo" is also the id of rules\[0\]/);
  });

  it('is refused when it is not {"rules": [...]} or is too long', () => {
    expect(refusal([rule()])).toMatch(/expected an object \{"rules": \[\.\.\.\]\}, got an array/);
    expect(refusal({ rules: rule() })).toMatch(/rules: expected an array of rules, got object/);
    expect(refusal({ rules: [], extra: 1 })).toMatch(/extra: unknown field/);
    expect(refusal({ rules: Array.from({ length: MAX_STORED_RULES + 1 }, (_, i) => rule({ id: `r-${i}` })) })).toMatch(/at most 500 rules/);
  });
});

describe('a WAF following the board', () => {
  it('applies each new version after its own rules, keeps the last good one when a version does not compile, and drops the set when the document goes', () => {
    const board = new DocBoard();
    const { log, lines } = capturedLog();
    board.apply([doc(1, { rules: [rule()] })]);
    const w = waf({ mode: 'block', log, board });
    expect(blockedBy(w.access(request('promo=internal-7')))).toBe('custom-promo');
    expect(blockedBy(w.access(request('id=1%27%20or%20%271%27=%271')))).toBe('sqli-tautology');
    expect(w.storedVersion).toBe(1);
    expect(w.rules().at(-1)).toMatchObject({ id: 'custom-promo', stored: true, builtin: false });

    board.apply([doc(2, { rules: [rule({ id: 'custom-promo', pattern: '(x+)+' })] })]);
    expect(blockedBy(w.access(request('promo=internal-7')))).toBe('custom-promo');
    expect(w.storedVersion).toBe(1);
    expect(lines.find((l) => l.level === 50)).toMatchObject({ version: 2, err: expect.stringMatching(/rules\[0\]\.pattern: nested quantifiers/) });

    board.apply([doc(3, { rules: [rule({ id: 'custom-beta', pattern: 'beta=1' })] })]);
    expect(w.access(request('promo=internal-7'))).toBeUndefined();
    expect(blockedBy(w.access(request('beta=1')))).toBe('custom-beta');
    expect(w.storedVersion).toBe(3);

    board.apply([]);
    expect(w.access(request('beta=1'))).toBeUndefined();
    expect(w.storedVersion).toBeUndefined();
  });

  it('refuses a stored version whose id clashes with a rule added in code, and addRule refuses stored ids', () => {
    const board = new DocBoard();
    const { log, lines } = capturedLog();
    const w = waf({ mode: 'block', log, board, rules: [rule({ id: 'custom-cfg', pattern: 'cfg=1' })] });
    board.apply([doc(1, { rules: [rule({ id: 'custom-cfg' })] })]);
    expect(w.storedVersion).toBeUndefined();
    expect(String(lines.find((l) => l.level === 50)?.err)).toMatch(/rules\[0\]\.id: "custom-cfg" is a rule of the configuration/);
    board.apply([doc(2, { rules: [rule()] })]);
    expect(() => w.addRule(rule())).toThrow(/already exists/);
    expect(() => w.removeRule('custom-promo')).toThrow(/comes from the stored waf-rules set/);
  });
});
