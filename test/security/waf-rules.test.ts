// WAF rules saved at run time: through the admin API or `outpost waf`, stored as the `waf-rules`
// document, applied by every worker next to the built-in and configured rules.
import { execFile } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Agent, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { startDemoOrigin } from '../../src/origin/demo-origin.ts';
import { startNodeProcess, type NodeProcess } from '../cluster/node-process.ts';
import { get, tempDir, originHits, sleep, type Stack, startStack, until } from '../helpers.ts';

let s: Stack | undefined;
afterEach(async () => {
  await s?.close();
  s = undefined;
});

const json = (body: unknown) => ({ headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

const PROMO = { id: 'custom-internal-promo', category: 'custom', description: 'internal promo codes', targets: ['query'], pattern: 'promo=internal-' };

describe('WAF rules saved at run time', () => {
  it('blocks requests matching a rule saved through the admin API within a second, the built-in rules still blocking', async () => {
    s = await startStack({ security: { waf: { mode: 'block' } } });
    const stack = s;
    expect((await get(`${s.base}/static/100?promo=internal-1`)).status).toBe(200);
    const put = await get(`${s.admin}/waf/rules`, { method: 'PUT', ...json({ rules: [PROMO] }) });
    expect(put.status).toBe(200);
    expect(JSON.parse(put.text)).toMatchObject({ version: expect.any(Number), rules: 1, wafEnabled: true });
    const ms = await until('the rule to apply', async () => (await get(`${stack.base}/static/100?promo=internal-2&t=${performance.now()}`)).status === 403);
    expect(ms).toBeLessThan(1000);
    const blocked = await get(`${s.base}/static/100?promo=internal-3`);
    expect(blocked.status).toBe(403);
    expect(blocked.header('x-outpost-waf')).toBe('custom-internal-promo');
    expect(originHits(s.origin, '/static/100?promo=internal-3')).toBe(0);
    const builtin = await get(`${s.base}/static/100?id=1%20union%20select%20null,null--`);
    expect(builtin.status).toBe(403);
    expect(builtin.header('x-outpost-waf')).toBe('sqli-union-select');
    expect((await get(`${s.base}/static/100?promo=public-1`)).status).toBe(200);

    const stored = JSON.parse((await get(`${s.admin}/waf/rules`)).text);
    expect(stored).toMatchObject({ version: JSON.parse(put.text).version, value: { rules: [PROMO] }, wafEnabled: true });
    const metrics = await get(`${s.admin}/metrics`);
    expect(metrics.text).toMatch(/outpost_security_refusals_total\{gate="waf",status="403"\} [2-9]/);

    // An empty set takes the rule away again.
    expect((await get(`${s.admin}/waf/rules`, { method: 'PUT', ...json({ rules: [] }) })).status).toBe(200);
    await until('the rule to go', async () => (await get(`${stack.base}/static/100?promo=internal-4&t=${performance.now()}`)).status === 200);
    console.log(`stored WAF rule applied in ${ms.toFixed(0)} ms`);
  });

  it('refuses a bad set with 400 naming the rule index and field, and keeps the stored one', async () => {
    s = await startStack({ security: { waf: { mode: 'block', rules: [{ ...PROMO, id: 'cfg-rule' }] } } });
    const first = await get(`${s.admin}/waf/rules`, { method: 'PUT', ...json({ rules: [PROMO] }) });
    expect(first.status).toBe(200);
    const bad = await get(`${s.admin}/waf/rules`, {
      method: 'PUT',
      ...json({ rules: [PROMO, { ...PROMO, id: 'custom-b', pattern: '(a+)+$' }, { ...PROMO, id: 'custom-c', targets: ['url'] }, { ...PROMO, id: 'cfg-rule' }] }),
    });
    expect(bad.status).toBe(400);
    const { error, message } = JSON.parse(bad.text) as { error: string; message: string };
    expect(error).toBe('BAD_REQUEST');
    expect(message.split('\n')).toEqual([
      'waf rules refused:',
      expect.stringMatching(/^rules\[1\]\.pattern: nested quantifiers/),
      'rules[2].targets: expected path, query, body, headers or header:<name>, got "url"',
      'rules[3].id: "cfg-rule" is a rule of the configuration (security.waf.rules); give yours another id',
    ]);
    expect((await get(`${s.admin}/waf/rules`, { method: 'PUT', ...json({ rules: [{ ...PROMO, id: 'sqli-tautology' }] }) })).text).toMatch(/rules\[0\]\.id: \\"sqli-tautology\\" is a built-in rule/);
    expect((await get(`${s.admin}/waf/rules`, { method: 'PUT', ...json({ rules: 'x' }) })).status).toBe(400);
    expect(JSON.parse((await get(`${s.admin}/waf/rules`)).text)).toMatchObject({ version: JSON.parse(first.text).version, value: { rules: [PROMO] } });

    const valid = await get(`${s.admin}/waf/rules/validate`, { method: 'POST', ...json({ rules: [{ ...PROMO, id: 'custom-other' }] }) });
    expect(JSON.parse(valid.text)).toEqual({ ok: true, rules: 1 });
    const invalid = await get(`${s.admin}/waf/rules/validate`, { method: 'POST', ...json({ rules: [{ ...PROMO, view: 'upper' }] }) });
    expect(invalid.status).toBe(400);
    expect(JSON.parse(invalid.text).message).toMatch(/rules\[0\]\.view: expected one of raw, decoded/);
    expect((await get(`${s.admin}/waf/rules`, { method: 'DELETE' })).status).toBe(405);
  });

  it('says which rules would match a request with POST /waf/test', async () => {
    s = await startStack({ security: { waf: { mode: 'block', exclusions: [{ rules: ['xss-script-tag'], pathPrefix: '/cms/' }] } } });
    await get(`${s.admin}/waf/rules`, { method: 'PUT', ...json({ rules: [PROMO] }) });
    const test = async (body: unknown) => {
      const r = await get(`${s!.admin}/waf/test`, { method: 'POST', ...json(body) });
      expect(r.status).toBe(200);
      return JSON.parse(r.text) as { matches: Array<{ rule: string; where: string; sample: string }>; blockedBy: string | null; mode: string; bodyInspection: boolean };
    };
    const query = await test({ url: 'https://shop.test/search?promo=internal-9&q=1%20union%20select%20null,2' });
    expect(query.matches.map((m) => m.rule)).toEqual(['sqli-union-select', 'custom-internal-promo']);
    expect(query).toMatchObject({ blockedBy: 'sqli-union-select', mode: 'block', bodyInspection: false });
    expect(query.matches[0]).toMatchObject({ where: 'query', sample: expect.stringContaining('union select null,2') });
    const raw = await test({ url: '/static/../../etc/passwd', headers: { 'User-Agent': 'sqlmap/1.7' } });
    expect(raw.matches.map((m) => m.rule)).toEqual(expect.arrayContaining(['pt-dot-dot', 'scanner-ua']));
    const body = await test({ url: '/login', body: "user=admin'+or+'1'%3D'1", headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(body.matches).toEqual([expect.objectContaining({ rule: 'sqli-tautology', where: 'body' })]);
    expect((await test({ url: '/cms/edit?html=%3Cscript%3E' })).matches.map((m) => m.rule)).not.toContain('xss-script-tag');
    expect(await test({ url: '/products?q=union+station' })).toMatchObject({ matches: [], blockedBy: null });
    const inline = await test({ url: '/beta/x', rules: { rules: [{ ...PROMO, id: 'custom-beta', targets: ['path'], pattern: '^/beta/' }] } });
    expect(inline.blockedBy).toBe('custom-beta');
    const refused = await get(`${s.admin}/waf/test`, { method: 'POST', ...json({ url: '/x', rules: { rules: [{ ...PROMO, pattern: '' }] } }) });
    expect(refused.status).toBe(400);
    expect(JSON.parse(refused.text).message).toMatch(/rules\[0\]\.pattern: expected a regular expression/);
  });
});

describe('`outpost waf` against a node with two worker processes', () => {
  let node: NodeProcess | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await node?.stop();
    node = undefined;
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Many separate connections, so the kernel spreads the requests over both workers. */
  async function statuses(url: string, count: number): Promise<number[]> {
    const agent = new Agent({ connections: count, pipelining: 0, keepAliveTimeout: 1 });
    try {
      return await Promise.all(
        Array.from({ length: count }, async () => {
          const res = await request(url, { dispatcher: agent, reset: true, headersTimeout: 10_000 });
          await res.body.dump();
          return res.statusCode;
        }),
      );
    } finally {
      await agent.close();
    }
  }

  it('sets, gets and validates rules from JSON and YAML files, and every worker applies them', async () => {
    const origin = await startDemoOrigin();
    try {
      dir = tempDir();
      node = await startNodeProcess(dir, {
        upstream: { pools: { default: { peers: [origin.url] } } },
        demoOrigin: { enabled: false },
        cache: { disk: { path: join(dir, 'cache') } },
        compute: { store: { path: join(dir, 'store') } },
        security: { waf: { mode: 'block', body: { enabled: true, maxBytes: '16k' } } },
      });
      const admin = node.admin;
      const run = async (args: string[]) => {
        try {
          const r = await promisify(execFile)('bin/outpost', ['waf', ...args, '--admin', admin], { timeout: 20_000 });
          return { code: 0, out: r.stdout, err: r.stderr };
        } catch (err) {
          const e = err as { code: number; stdout: string; stderr: string };
          return { code: e.code, out: e.stdout, err: e.stderr };
        }
      };
      const yamlFile = join(dir, 'waf-rules.yaml');
      writeFileSync(
        yamlFile,
        [
          'rules:',
          '  - id: custom-old-admin',
          '    category: custom',
          '    description: the retired admin UI',
          '    targets: [path]',
          '    view: path',
          "    pattern: '^/admin-old(?:/|$)'",
          '',
        ].join('\n'),
      );
      expect((await run(['rules', 'validate', yamlFile])).out).toMatch(/waf-rules\.yaml: ok \(1 rule\)/);
      const set = await run(['rules', 'set', yamlFile]);
      expect(set).toMatchObject({ code: 0, out: expect.stringMatching(/saved version \d+ \(1 rule\)/) });
      await until('every worker to apply the rule', async () => (await statuses(`${node!.base}/admin-old/login`, 20)).every((st) => st === 403), 5000);
      expect((await statuses(`${node.base}/static/100?id=1%27%20or%20%271%27=%271`, 10)).every((st) => st === 403)).toBe(true);

      const got = await run(['rules', 'get']);
      expect(got.err).toMatch(/version \d+, saved /);
      expect(JSON.parse(got.out)).toEqual({ rules: [{ id: 'custom-old-admin', category: 'custom', description: 'the retired admin UI', targets: ['path'], view: 'path', pattern: '^/admin-old(?:/|$)' }] });
      const jsonFile = join(dir, 'round-trip.json');
      writeFileSync(jsonFile, got.out);
      expect((await run(['rules', 'set', jsonFile])).out).toMatch(/saved version \d+ \(1 rule\)/);
      expect((await run(['rules', 'get', '--yaml'])).out).toContain('id: custom-old-admin');

      const badFile = join(dir, 'bad.json');
      writeFileSync(badFile, JSON.stringify([{ id: 'custom-x', category: 'custom', description: 'x', targets: ['query'], pattern: 'a(b' }]));
      for (const args of [['rules', 'validate', badFile], ['rules', 'validate', badFile, '--local'], ['rules', 'set', badFile]]) {
        const r = await run(args);
        expect(r.code, args.join(' ')).toBe(1);
        expect(r.err).toMatch(/bad\.json: refused:\nrules\[0\]\.pattern: not a valid regular expression/);
      }

      const tested = await run(['test', 'http://shop.test/admin-old/', '-H', 'User-Agent: Mozilla/5.0']);
      expect(tested.code).toBe(1);
      expect(tested.out).toMatch(/MATCH custom-old-admin\s+path/);
      expect(tested.out).toMatch(/block mode: would answer 403 \(rule custom-old-admin\)/);
      const form = await run(['test', 'http://shop.test/login', '-H', 'Content-Type: application/x-www-form-urlencoded', '-d', "user=x'+or+'1'%3D'1"]);
      expect(form.out).toMatch(/MATCH sqli-tautology\s+body/);
      expect((await run(['test', 'http://shop.test/products?q=shoes'])).out).toMatch(/no rule matches\nblock mode: would pass/);
    } finally {
      await origin.close();
    }
  }, 60_000);
});
