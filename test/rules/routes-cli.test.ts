// The rules admin routes mounted on a plain HTTP server (the storage behind RulesDoc is tested
// with the stores), and `outpost rules …` (rulesCli) talking to them through the admin client.
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AdminClient } from '../../src/control/client.ts';
import { loadRules, rulesCli, rulesRoutes, type CompiledRules, type Explanation, type RulesDoc } from '../../src/rules/index.ts';
import { get, tempDir } from '../helpers.ts';

class MemoryDoc implements RulesDoc {
  stored: { version: number; updatedAt: string; value: unknown } | undefined;
  async get() {
    return this.stored;
  }
  async put(value: unknown) {
    this.stored = { version: (this.stored?.version ?? 0) + 1, updatedAt: new Date().toISOString(), value };
    return { version: this.stored.version, updatedAt: this.stored.updatedAt };
  }
}

let server: Server;
let base: string;
let doc: MemoryDoc;
let running: CompiledRules | undefined;
let dir: string;

beforeAll(async () => {
  dir = tempDir('outpost-rules-');
  const routes = rulesRoutes({ get: () => doc.get(), put: (v) => doc.put(v) }, () => running, { pools: ['default', 'eu'] });
  server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    void routes(req, res, path).then((handled) => {
      if (!handled) {
        res.writeHead(404);
        res.end('not mine\n');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));
beforeEach(() => {
  doc = new MemoryDoc();
  running = undefined;
});

const send = (method: string, path: string, body?: unknown) =>
  get(`${base}${path}`, { method, headers: { 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }) });

const good = {
  rules: [
    { name: 'assets', when: { path: '/assets/**' }, then: { cacheTtl: '1d' } },
    { name: 'eu', when: { country: ['DE', 'FR'] }, then: { pool: 'eu' } },
  ],
};

describe('rules admin routes', () => {
  it('stores a valid set and hands it back with its version', async () => {
    const empty = JSON.parse((await send('GET', '/rules')).text);
    expect(empty).toEqual({ version: 0, updatedAt: null, value: { rules: [] }, running: null });
    const put = await send('PUT', '/rules', good);
    expect(put.status).toBe(200);
    expect(JSON.parse(put.text)).toMatchObject({ version: 1, rules: 2 });
    running = loadRules(good, { version: 1 });
    const back = JSON.parse((await send('GET', '/rules')).text);
    expect(back).toMatchObject({ version: 1, value: good, running: { version: 1, rules: 2 } });
  });

  it('refuses an invalid set with 400 and the exact place of each mistake, storing nothing', async () => {
    const r = await send('PUT', '/rules', { rules: [{ when: { header: { name: 'a b' } }, then: { cacheTtl: 'x' } }] });
    expect(r.status).toBe(400);
    expect(JSON.parse(r.text)).toEqual({
      error: 'RULES_INVALID',
      message:
        'rules[0].when.header.name: expected an HTTP header name such as "x-device", got "a b"\nrules[0].then.cacheTtl: expected a duration such as "30s", "10m", "1d" or a number of seconds, got "x"',
    });
    const pools = await send('PUT', '/rules', { rules: [{ then: { pool: 'asia' } }] });
    expect(JSON.parse(pools.text).message).toBe('rules[0].then: pool "asia" is not configured (upstream.pools has "default", "eu")');
    expect((await send('PUT', '/rules', '{not json')).status).toBe(400);
    expect(doc.stored).toBeUndefined();
  });

  it('validates without storing', async () => {
    const ok = await send('POST', '/rules/validate', good);
    expect(JSON.parse(ok.text)).toEqual({ ok: true, rules: 2, enabled: 2 });
    const bad = await send('POST', '/rules/validate', { rules: [{ then: { redirct: {} } }] });
    expect([bad.status, JSON.parse(bad.text).message]).toEqual([400, 'rules[0].then: unknown action "redirct" (did you mean "redirect"?)']);
    expect(doc.stored).toBeUndefined();
  });

  it('explains a described request against the running set, the stored set, or a set to try', async () => {
    const ask = async (body: unknown) => {
      const r = await send('POST', '/rules/explain', body);
      expect(r.status, r.text).toBe(200);
      return JSON.parse(r.text) as Explanation;
    };
    expect((await ask({ request: { url: '/assets/a.css' } })).matched).toEqual([]);
    await doc.put(good);
    expect((await ask({ request: { url: '/assets/a.css' } })).matched.map((m) => m.label)).toEqual(['assets']);
    running = loadRules({ rules: [{ name: 'running', then: { compress: false } }] });
    expect((await ask({ request: { url: '/assets/a.css' } })).matched.map((m) => m.label)).toEqual(['running']);
    const tried = await ask({ request: { url: 'https://x.example/page', headers: { 'X-Geoip-Country-Code': 'fr' } }, rules: good });
    expect(tried.matched.map((m) => m.label)).toEqual(['eu']);
    expect(tried.outcome.pool).toBe('eu');
    expect(tried.rules[0]).toEqual({ index: 0, label: 'assets', continue: false, status: 'no-match', reason: 'path matches "/assets/**": got "/page"' });
    const bad = await send('POST', '/rules/explain', { request: { url: '/' }, rules: { rules: [{}] } });
    expect([bad.status, JSON.parse(bad.text).message]).toEqual([400, 'rules[0].then: expected object, got nothing']);
    const noUrl = await send('POST', '/rules/explain', { request: {} });
    expect([noUrl.status, JSON.parse(noUrl.text).error]).toEqual([400, 'BAD_REQUEST']);
  });

  it('leaves other paths and methods to the server it is mounted on', async () => {
    expect((await send('GET', '/cus')).status).toBe(404);
    expect((await send('DELETE', '/rules')).status).toBe(404);
    expect((await send('GET', '/rules/explain')).status).toBe(404);
  });
});

describe('outpost rules', () => {
  const cli = async (...args: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await rulesCli(args, (values) => new AdminClient(values.admin ?? base), { out: (l) => out.push(l), err: (l) => err.push(l) });
    return { code, out: out.join('\n'), err: err.join('\n') };
  };

  it('sets a rule set from YAML, gets it back as JSON, and validates files', async () => {
    const yaml = join(dir, 'rules.yaml');
    writeFileSync(
      yaml,
      `rules:
  - name: tv
    when: { header: { name: user-agent, matches: "SMART-TV" } }
    then: { wholeBody: true, compress: false }
  - name: geo
    when: { path: /video/ }
    then:
      routeByCountry: { DE: eu, default: default }
`,
    );
    const set = await cli('set', yaml);
    expect(set).toEqual({ code: 0, out: 'saved version 1 (2 rules)', err: '' });
    const got = await cli('get');
    expect(got.code).toBe(0);
    expect(got.err).toMatch(/^version 1, saved /);
    expect(JSON.parse(got.out)).toEqual({ rules: [{ name: 'tv', when: { header: { name: 'user-agent', matches: 'SMART-TV' } }, then: { wholeBody: true, compress: false } }, { name: 'geo', when: { path: '/video/' }, then: { routeByCountry: { DE: 'eu', default: 'default' } } }] });
    expect((await cli('get', '--yaml')).out).toContain('routeByCountry:');
    expect(await cli('validate', yaml)).toEqual({ code: 0, out: `${yaml}: ok (2 rules)`, err: '' });

    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ rules: [{ then: { pool: 'asia' } }, { when: { methd: 'GET' }, then: { noStore: true } }] }));
    const refused = await cli('validate', bad);
    expect(refused.code).toBe(1);
    expect(refused.err).toBe(`RULES_INVALID: ${bad}:\nrules[1].when: unknown condition "methd" (did you mean "method"?)`);
    const local = join(dir, 'local.json');
    writeFileSync(local, JSON.stringify({ rules: [{ then: { pool: 'asia' } }] }));
    expect((await cli('validate', local, '--local')).code).toBe(0);
    expect((await cli('validate', local)).err).toContain('pool "asia" is not configured');
    expect((await cli('set', bad)).code).toBe(1);
    expect(doc.stored?.version).toBe(1);
  });

  it('explains a request: each rule with its verdict, then the outcome', async () => {
    await doc.put({
      rules: [
        { name: 'bypass-logged-in', when: { cookie: { name: 'session' } }, then: { cacheBypass: true, noStore: true }, continue: true },
        { name: 'eu', when: { country: ['DE'] }, then: { pool: 'eu', requestHeaders: { set: { 'x-country': '{country}' } } } },
        { name: 'rest', then: { cacheTtl: 60 } },
      ],
    });
    const r = await cli('explain', 'https://shop.example/cart', '-H', 'Cookie: session=1', '--country', 'de', '--ip', '198.51.100.7');
    expect(r.code).toBe(0);
    expect(r.out.split('\n')).toEqual([
      'GET https://shop.example/cart   ip 198.51.100.7   country DE',
      '  MATCH [0]   bypass-logged-in  matched, continues',
      '  MATCH [1]   eu                matched',
      '  skip  [2]   rest              eu matched',
      'outcome:',
      '  origin request: /cart via pool eu',
      '  request headers: x-country: DE',
      '  cache: bypass (not served from cache), no-store (not stored)',
    ]);
    const j = await cli('explain', '/x', '--method', 'POST', '--json');
    expect((JSON.parse(j.out) as Explanation).rules.map((v) => v.status)).toEqual(['no-match', 'no-match', 'matched']);
    const tryFile = join(dir, 'try.json');
    writeFileSync(tryFile, JSON.stringify({ rules: [{ name: 'only', then: { deny: 403 } }] }));
    expect((await cli('explain', '/x', '--rules', tryFile)).out).toContain('answered at the edge: 403');
  });

  it('prints its help for no or unknown subcommands', async () => {
    expect((await cli()).code).toBe(0);
    const unknown = await cli('frobnicate');
    expect(unknown.code).toBe(2);
    expect(unknown.out).toContain('outpost rules explain URL');
  });
});
