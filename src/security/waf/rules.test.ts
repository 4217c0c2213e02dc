import { describe, expect, it } from 'vitest';
import { OutpostError } from '../../errors.ts';
import { normalizeInput } from './normalize.ts';
import { BUILTIN_RULES, compileRule, type RuleSpec } from './rules.ts';

const spec = (over: Partial<Record<keyof RuleSpec, unknown>> = {}): RuleSpec =>
  ({ id: 'custom-x', category: 'custom', description: 'test rule', targets: ['query'], pattern: 'evil', ...over }) as RuleSpec;

function refusal(over: Partial<Record<keyof RuleSpec, unknown>>): string {
  try {
    compileRule(spec(over));
  } catch (err) {
    expect(err).toBeInstanceOf(OutpostError);
    expect((err as OutpostError).code).toBe('CONFIG_INVALID');
    return (err as Error).message;
  }
  throw new Error('expected the rule to be refused');
}

describe('built-in rules', () => {
  it('have unique, stable ids covering every category of seed 003', () => {
    const ids = BUILTIN_RULES.map((r) => r.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of [
      'sqli-union-select', 'sqli-tautology', 'sqli-comment', 'sqli-stacked', 'sqli-time-based', 'xss-script-tag', 'xss-event-handler',
      'xss-js-uri', 'xss-iframe', 'pt-dot-dot', 'pt-sensitive-files', 'shell-injection', 'scanner-ua', 'null-byte',
    ]) {
      expect(ids).toContain(id);
    }
  });

  it("keep seed 003's seven patterns as a floor", () => {
    const hit = (id: string, raw: string): boolean => BUILTIN_RULES.find((r) => r.id === id)!.match(normalizeInput(raw, true)) >= 0;
    expect(hit('sqli-union-select', 'id=1 union select 1,2')).toBe(true);
    expect(hit('sqli-tautology', "x=' or 1=1")).toBe(true);
    expect(hit('xss-script-tag', 'q=<script>')).toBe(true);
    expect(hit('xss-js-uri', 'u=javascript:alert(1)')).toBe(true);
    expect(hit('pt-dot-dot', 'f=../x')).toBe(true);
    expect(hit('pt-dot-dot', 'f=..%2fx')).toBe(true);
    expect(hit('scanner-ua', 'masscan/1.3')).toBe(true);
    expect(hit('shell-injection', 'q=x; wget http://x')).toBe(true);
  });

  it('answer in bounded time on 16 KiB crafted values (no catastrophic backtracking)', () => {
    const pieces = ['<', "'", '"', ' ', '/*', '--', ';', '|', '$(', '${', '..', '/', '&#', 'on', 'union ', 'or ', '1', '(', '%25', '%c0', 'java', '<meta ', '${${', '() {', "' or ", '`'];
    let worst = 0;
    for (const a of pieces) {
      for (const b of ['', ...pieces.slice(0, 10)]) {
        const s = (a + b).repeat(Math.ceil(16384 / (a + b).length));
        const t0 = performance.now();
        const n = normalizeInput(s, true);
        for (const r of BUILTIN_RULES) r.match(n);
        worst = Math.max(worst, performance.now() - t0);
      }
    }
    expect(worst).toBeLessThan(100);
  });
});

describe('rules added at run time', () => {
  it('compile case-insensitively against the named view', () => {
    const r = compileRule(spec({ pattern: 'EVIL\\.example', view: 'decoded' }));
    expect(r.match(normalizeInput('u=%45vil.EXAMPLE', true))).toBe(2);
    expect(r.match(normalizeInput('u=good', true))).toBe(-1);
    expect(r.builtin).toBe(false);
    expect(r.pattern).toBe('EVIL\\.example');
  });

  it('accept a RegExp and drop its stateful flags', () => {
    const r = compileRule(spec({ pattern: /evil/g }));
    const n = normalizeInput('x=evil', true);
    expect(r.match(n)).toBe(2);
    expect(r.match(n)).toBe(2);
  });

  it('are refused with a message naming the rule and the field', () => {
    expect(refusal({ pattern: 'a(b' })).toMatch(/waf rule "custom-x": pattern: not a valid regular expression/);
    expect(refusal({ pattern: '(a+)+$' })).toMatch(/nested quantifiers/);
    expect(refusal({ pattern: '' })).toMatch(/pattern: expected a regular expression/);
    expect(refusal({ id: 'Bad Id' })).toMatch(/waf rule id: expected/);
    expect(refusal({ category: 'evil' })).toMatch(/category: expected one of sqli, xss/);
    expect(refusal({ targets: [] })).toMatch(/targets: expected a non-empty array/);
    expect(refusal({ targets: ['url'] })).toMatch(/targets: expected path, query, body, headers or header:<name>, got "url"/);
    expect(refusal({ view: 'upper' })).toMatch(/view: expected one of raw, decoded/);
    expect(refusal({ description: '' })).toMatch(/description: expected a non-empty string/);
  });

  it('accept header targets by name, lower-cased', () => {
    expect(compileRule(spec({ targets: ['header:X-Api-Client', 'path'] })).targets).toEqual(['header:x-api-client', 'path']);
  });
});
