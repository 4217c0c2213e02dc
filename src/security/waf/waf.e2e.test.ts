// The WAF registered as an access hook on a real edge in front of a real demo origin.
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, originHits, startStack, type Stack } from '../../../test/helpers.ts';
import { ATTACKS, BENIGN, type WafCase } from './waf-cases.ts';
import { waf, type Waf } from './waf.ts';
import { capturedLog } from '../../../test/support/captured-log.ts';

const capture = capturedLog;

interface Raw {
  readonly status: number;
  readonly waf: string | undefined;
}

/**
 * Sends the request target byte for byte: URL parsers (fetch, undici) resolve "../" and "%2e%2e/"
 * before sending, attackers' tools do not.
 */
function rawGet(base: string, target: string, headers: Record<string, string> = {}): Promise<Raw> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, path: target, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, waf: res.headers['x-outpost-waf'] as string | undefined }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The request a table case describes; body cases are not sent (see docs/waf.md, request bodies). */
function send(base: string, c: WafCase): Promise<Raw> {
  if (c.where === 'path') return rawGet(base, c.value);
  if (c.where === 'query') return rawGet(base, `/static/100?${c.value}`);
  return rawGet(base, '/static/100', { [c.where.slice(7)]: c.value });
}

describe('WAF in block mode at the edge', () => {
  let s: Stack;
  let w: Waf;
  const logged = capture();

  beforeAll(async () => {
    w = waf({ mode: 'block', log: logged.log });
    s = await startStack({}, { hooks: [w] });
  });
  afterAll(async () => {
    await s.close();
  });

  it('answers 403 with the rule id and never asks the origin', async () => {
    const before = s.origin.stats().requests;
    const res = await get(`${s.base}/static/100?id=1%20UnIoN%20aLl%20SeLeCt%20null,null--`);
    expect(res.status).toBe(403);
    expect(res.header('x-outpost-waf')).toBe('sqli-union-select');
    expect(res.text).toContain('sqli-union-select');
    expect(originHits(s.origin, '/static/100?id=1%20UnIoN%20aLl%20SeLeCt%20null,null--')).toBe(0);
    expect(s.origin.stats().requests).toBe(before);
    const line = logged.lines.find((l) => l.rule === 'sqli-union-select');
    expect(line).toMatchObject({ level: 40, category: 'sqli', where: 'query', ip: '127.0.0.1', blocked: true });
  });

  it('lets a benign request through to the origin', async () => {
    const res = await get(`${s.base}/static/100?q=union+station&name=O%27Brien`);
    expect(res.status).toBe(200);
    expect(res.header('x-outpost-waf')).toBeUndefined();
    expect(originHits(s.origin, '/static/100?q=union+station&name=O%27Brien')).toBe(1);
  });

  it('blocks a scanner by its User-Agent', async () => {
    const res = await get(`${s.base}/static/100`, { headers: { 'user-agent': 'sqlmap/1.7.2#stable (https://sqlmap.org)' } });
    expect(res.status).toBe(403);
    expect(res.header('x-outpost-waf')).toBe('scanner-ua');
  });

  it('blocks traversal sent as raw dots in the path', async () => {
    const res = await rawGet(s.base, '/static/../../etc/passwd');
    expect(res.status).toBe(403);
    expect(res.waf).toBe('pt-dot-dot');
  });

  it('applies a rule added at run time to the next request, and stops after it is removed', async () => {
    const url = `${s.base}/static/100?promo=internal-only`;
    expect((await get(url)).status).toBe(200);
    w.addRule({ id: 'custom-internal-promo', category: 'custom', description: 'internal promo codes', targets: ['query'], pattern: 'promo=internal-' });
    const blocked = await get(url);
    expect(blocked.status).toBe(403);
    expect(blocked.header('x-outpost-waf')).toBe('custom-internal-promo');
    w.removeRule('custom-internal-promo');
    expect((await get(url)).status).toBe(200);
  });

  it('blocks every attack of the table (path, query, headers) and passes every benign input, origin untouched by attacks', async () => {
    const before = s.origin.stats().requests;
    const missed: string[] = [];
    let blocked = 0;
    const sent = ATTACKS.filter((c) => c.where !== 'body');
    for (const c of sent) {
      const res = await send(s.base, c);
      if (res.status === 403 && (!c.rule || res.waf === c.rule)) blocked++;
      else missed.push(`${c.what}: ${res.status} ${res.waf ?? ''}`);
    }
    expect(s.origin.stats().requests).toBe(before);
    const refused: string[] = [];
    const benign = BENIGN.filter((c) => c.where !== 'body');
    for (const c of benign) {
      const res = await send(s.base, c);
      // 404 is the origin's answer for paths it does not serve: the request got past the edge.
      if ((res.status >= 400 && res.status !== 404) || res.waf) refused.push(`${c.what}: ${res.status} ${res.waf}`);
    }
    const passed = benign.length - refused.length;
    console.log(
      `WAF through the edge: attacks blocked ${blocked}/${sent.length} (${((100 * blocked) / sent.length).toFixed(1)} %), ` +
        `benign passed ${passed}/${benign.length} (${((100 * passed) / benign.length).toFixed(1)} %)`,
    );
    expect(missed).toEqual([]);
    expect(refused).toEqual([]);
  });
});

describe('WAF in detect mode at the edge', () => {
  let s: Stack;
  const logged = capture();

  beforeAll(async () => {
    s = await startStack({}, { hooks: [waf({ mode: 'detect', log: logged.log })] });
  });
  afterAll(async () => {
    await s.close();
  });

  it('passes the attack on to the origin and logs the match', async () => {
    const res = await get(`${s.base}/static/100?q=%3Cscript%3Ealert(1)%3C/script%3E`);
    expect(res.status).toBe(200);
    expect(res.header('x-outpost-waf')).toBeUndefined();
    expect(originHits(s.origin, '/static/100?q=%3Cscript%3Ealert(1)%3C/script%3E')).toBe(1);
    const line = logged.lines.find((l) => l.rule === 'xss-script-tag');
    expect(line).toMatchObject({ level: 40, msg: 'waf match (detect mode)', where: 'query', mode: 'detect', blocked: false });
    expect(String(line?.sample)).toContain('<script>alert(1)');
  });
});
