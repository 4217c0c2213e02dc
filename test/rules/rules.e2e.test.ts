// The rules engine in a real edge over real HTTP: every action, precedence, geo-routing and the
// A/B split, against echo origins that report what they received.
import { request as httpRequest, createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EdgeHooks } from '../../src/edge/phases.ts';
import { abPosition } from '../../src/rules/ab.ts';
import { loadRules, rulesHooks, type CompiledRules } from '../../src/rules/index.ts';
import { get, startStack, type Stack } from '../helpers.ts';

interface Echo {
  readonly url: string;
  readonly hits: Map<string, number>;
  close(): Promise<void>;
}

/**
 * An origin that answers JSON naming itself, with the path and headers it received. Switches:
 * cc=… (Cache-Control; default public, max-age=60), nocc (no Cache-Control at all), setcookie,
 * chunked=N (N bytes in several writes, no Content-Length).
 */
async function startEcho(name: string): Promise<Echo> {
  const hits = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const url = req.url ?? '/';
    const n = (hits.get(url) ?? 0) + 1;
    hits.set(url, n);
    const q = new URL(url, 'http://x').searchParams;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (!q.has('nocc')) headers['cache-control'] = q.get('cc') ?? 'public, max-age=60';
    if (q.has('setcookie')) headers['set-cookie'] = 'sid=1; Path=/';
    headers['x-origin'] = name;
    const chunked = q.get('chunked');
    if (chunked !== null) {
      res.writeHead(200, headers);
      const total = Number(chunked);
      let sent = 0;
      const step = () => {
        if (sent >= total) return void res.end();
        const size = Math.min(4096, total - sent);
        sent += size;
        res.write(Buffer.alloc(size, 97));
        setImmediate(step);
      };
      step();
      return;
    }
    res.writeHead(200, headers);
    res.end(JSON.stringify({ origin: name, url, n, headers: req.headers }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

interface Body {
  origin: string;
  url: string;
  n: number;
  headers: IncomingHttpHeaders;
}

/** A raw HTTP/1.1 GET, so that Transfer-Encoding is visible. */
function rawGet(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: IncomingHttpHeaders; length: number }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers }, (res) => {
      let length = 0;
      res.on('data', (c: Buffer) => (length += c.length));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, length }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.end();
  });
}

let s: Stack;
let eu: Echo;
let main: Echo;
let canary: Echo;
let compiled: CompiledRules = loadRules({ rules: [] });
const use = (rules: unknown[]) => {
  compiled = loadRules({ rules }, { pools: ['default', 'eu', 'canary'] });
};

// Shows what later phases see of the flags a rule sets (the compression helper reads ctx.compress).
const probe: EdgeHooks = {
  name: 'probe',
  header_filter(ctx, head) {
    if (ctx.compress !== undefined) head.headers['x-probe-compress'] = String(ctx.compress);
    if (ctx.cacheKeyExtra !== undefined) head.headers['x-probe-key-extra'] = ctx.cacheKeyExtra;
  },
};

beforeAll(async () => {
  [main, eu, canary] = await Promise.all([startEcho('main'), startEcho('eu'), startEcho('canary')]);
  s = await startStack(
    {
      upstream: { pools: { default: { peers: [main.url] }, eu: { peers: [eu.url], readTimeout: '5s' }, canary: { peers: [canary.url], readTimeout: '5s' } } },
      limits: { maxBodyBytes: '64k' },
    },
    { hooks: [rulesHooks({ current: () => compiled }, { log: pino({ level: 'silent' }), pools: ['default', 'eu', 'canary', 'gone'] }), probe] },
  );
});
afterAll(async () => {
  await s?.close();
  await Promise.all([main?.close(), eu?.close(), canary?.close()]);
});

const json = async (path: string, headers: Record<string, string> = {}) => {
  const r = await get(`${s.base}${path}`, { headers });
  return { r, body: JSON.parse(r.text) as Body };
};

describe('rules at the edge', () => {
  it('first match wins; continue lets the next rules add their actions', async () => {
    use([
      { name: 'tag', when: { path: '/prec/' }, then: { responseHeaders: { set: { 'x-a': '1' } } }, continue: true },
      { name: 'first', when: { path: '/prec/' }, then: { responseHeaders: { set: { 'x-b': '1' } } } },
      { name: 'second', when: { path: '/prec/' }, then: { responseHeaders: { set: { 'x-c': '1' } } } },
    ]);
    const r = await get(`${s.base}/prec/x`);
    expect([r.header('x-a'), r.header('x-b'), r.header('x-c')]).toEqual(['1', '1', undefined]);
    expect((await get(`${s.base}/other`)).header('x-a')).toBeUndefined();
  });

  it('sets and removes request headers the origin receives, and response headers the client receives', async () => {
    use([
      {
        when: { path: '/hdr/' },
        then: {
          requestHeaders: { set: { 'X-Device': 'tv', 'X-Country': '{country}' }, remove: ['cookie'] },
          responseHeaders: { set: { 'X-Served-By': 'rules' }, remove: ['set-cookie', 'x-origin'] },
        },
      },
    ]);
    const { r, body } = await json('/hdr/a?setcookie&cc=no-store', { cookie: 'secret=1', 'x-geoip-country-code': 'se' });
    expect(body.headers['x-device']).toBe('tv');
    expect(body.headers['x-country']).toBe('SE');
    expect(body.headers.cookie).toBeUndefined();
    expect(r.header('x-served-by')).toBe('rules');
    expect(r.header('set-cookie')).toBeUndefined();
    expect(r.header('x-origin')).toBeUndefined();
  });

  it('redirects and denies at the edge without asking the origin', async () => {
    use([
      { when: { path: '/old/' }, then: { redirect: { location: 'https://new.example.com{uri}', status: 301 } } },
      { when: { path: '/blocked/' }, then: { deny: { status: 451, message: 'not in this region' }, responseHeaders: { set: { 'x-why': 'rule' } } } },
    ]);
    const red = await get(`${s.base}/old/page?x=1`);
    expect(red.status).toBe(301);
    expect(red.header('location')).toBe('https://new.example.com/old/page?x=1');
    const deny = await get(`${s.base}/blocked/file`);
    expect(deny.status).toBe(451);
    expect(deny.text).toBe('451 Unavailable For Legal Reasons: not in this region\n');
    expect(deny.header('x-why')).toBe('rule');
    expect(deny.header('cache-control')).toBe('no-store');
    expect(main.hits.has('/old/page?x=1') || main.hits.has('/blocked/file')).toBe(false);
  });

  it('rewrites the path the origin sees and the cache keys', async () => {
    use([{ when: { path: '/v1/' }, then: { rewritePath: { match: '^/v1/(.*)$', to: '/api/$1' } } }]);
    const { body } = await json('/v1/users?id=7');
    expect(body.url).toBe('/api/users?id=7');
    use([]);
    const direct = await get(`${s.base}/api/users?id=7`);
    expect(direct.header('x-cache-status')).toBe('HIT');
  });

  it('routes to a named pool, and by country with a default (seed 003 geo-routing)', async () => {
    use([
      { when: { path: '/static-eu/' }, then: { pool: 'eu' } },
      { when: { path: '/geo/' }, then: { routeByCountry: { DE: 'eu', FR: 'eu', CN: 'canary', default: 'default' }, requestHeaders: { set: { 'x-country': '{country}' } } } },
    ]);
    expect((await json('/static-eu/x')).body.origin).toBe('eu');
    const de = await json('/geo/a?cc=no-store', { 'x-geoip-country-code': 'DE' });
    expect([de.body.origin, de.body.headers['x-country']]).toEqual(['eu', 'DE']);
    expect((await json('/geo/a?cc=no-store', { 'x-geoip-country-code': 'CN' })).body.origin).toBe('canary');
    expect((await json('/geo/a?cc=no-store', { 'x-geoip-country-code': 'US' })).body.origin).toBe('main');
    expect((await json('/geo/a?cc=no-store')).body.origin).toBe('main');
  });

  it('answers 502 NO_UPSTREAM naming the rule when it routes to a pool this node does not configure', async () => {
    compiled = loadRules({ rules: [{ name: 'to-gone', then: { pool: 'gone' } }] });
    const r = await get(`${s.base}/gone`);
    expect(r.status).toBe(502);
    expect(r.header('x-outpost-error')).toBe('NO_UPSTREAM');
    compiled = loadRules({ rules: [{ name: 'to-nowhere', then: { pool: 'nowhere' } }] });
    const r2 = await get(`${s.base}/nowhere`);
    expect(r2.status).toBe(502);
    expect(r2.text).toContain('rule to-nowhere routes to pool "nowhere"');
  });

  it('A/B split: a stable bucket per user, sent to the origin, each bucket cached apart, all purged with the URL', async () => {
    use([{ when: { path: '/ab/' }, then: { ab: { name: 'exp1', key: 'cookie:uid', buckets: [{ name: 'control', percent: 90 }, { name: 'variant', percent: 10 }], header: 'X-AB-Bucket' } } }]);
    // Two users known to land in different buckets.
    const users = Array.from({ length: 200 }, (_, i) => `user${i}`);
    const inVariant = users.find((u) => abPosition('exp1', u) >= 9000)!;
    const inControl = users.find((u) => abPosition('exp1', u) < 9000)!;
    const v1 = await json('/ab/page', { cookie: `uid=${inVariant}` });
    expect([v1.body.headers['x-ab-bucket'], v1.r.header('x-cache-status')]).toEqual(['variant', 'MISS']);
    expect(v1.r.header('x-probe-key-extra')).toBe('ab.exp1=variant');
    const c1 = await json('/ab/page', { cookie: `uid=${inControl}` });
    expect([c1.body.headers['x-ab-bucket'], c1.r.header('x-cache-status')]).toEqual(['control', 'MISS']);
    const v2 = await json('/ab/page', { cookie: `uid=${inVariant}; other=1` });
    expect([v2.body.headers['x-ab-bucket'], v2.r.header('x-cache-status'), v2.body.n]).toEqual(['variant', 'HIT', v1.body.n]);
    const c2 = await json('/ab/page', { cookie: `uid=${inControl}`, 'x-ab-bucket': 'variant' });
    expect([c2.body.headers['x-ab-bucket'], c2.r.header('x-cache-status')]).toEqual(['control', 'HIT']);
    const purge = await get(`${s.base}/ab/page`, { method: 'PURGE' });
    expect(purge.status).toBe(200);
    expect((await json('/ab/page', { cookie: `uid=${inVariant}` })).r.header('x-cache-status')).toBe('MISS');
    expect((await json('/ab/page', { cookie: `uid=${inControl}` })).r.header('x-cache-status')).toBe('MISS');
  });

  it('A/B split can send a bucket to its own pool', async () => {
    use([{ when: { path: '/canary/' }, then: { ab: { name: 'exp2', key: 'header:x-user', buckets: [{ name: 'stable', percent: 50 }, { name: 'next', percent: 50, pool: 'canary' }] } } }]);
    const users = Array.from({ length: 100 }, (_, i) => `u${i}`);
    const next = users.find((u) => abPosition('exp2', u) >= 5000)!;
    const stable = users.find((u) => abPosition('exp2', u) < 5000)!;
    expect((await json('/canary/x', { 'x-user': next })).body.origin).toBe('canary');
    expect((await json('/canary/x', { 'x-user': stable })).body.origin).toBe('main');
  });

  it('cacheTtl stores what the origin left without a lifetime and replaces the lifetime it gave', async () => {
    use([]);
    await get(`${s.base}/ttl/plain?nocc`);
    expect((await get(`${s.base}/ttl/plain?nocc`)).header('x-cache-status')).not.toBe('HIT');
    use([{ when: { path: '/ttl/' }, then: { cacheTtl: '1h' } }]);
    const first = await get(`${s.base}/ttl/ruled?nocc`);
    expect(first.header('x-cache-status')).toBe('MISS');
    const again = await get(`${s.base}/ttl/ruled?nocc`);
    expect(again.header('x-cache-status')).toBe('HIT');
    expect(again.header('cache-status')).toMatch(/ttl=35\d\d/);
    await get(`${s.base}/ttl/short?cc=${encodeURIComponent('public, max-age=1')}`);
    expect((await get(`${s.base}/ttl/short?cc=${encodeURIComponent('public, max-age=1')}`)).header('cache-status')).toMatch(/hit; ttl=35\d\d/);
    // Never over no-store.
    await get(`${s.base}/ttl/nostore?cc=no-store`);
    expect((await get(`${s.base}/ttl/nostore?cc=no-store`)).header('x-cache-status')).toBe('BYPASS');
  });

  it('cacheBypass never answers from the cache but refreshes it; noStore answers from the cache but never stores', async () => {
    use([
      { when: { header: { name: 'x-bypass' } }, then: { cacheBypass: true } },
      { when: { header: { name: 'x-nostore' } }, then: { noStore: true } },
    ]);
    const path = '/mode/page';
    const a = await json(path);
    expect(a.r.header('x-cache-status')).toBe('MISS');
    const b = await json(path, { 'x-bypass': '1' });
    expect(b.body.n).toBe(a.body.n + 1);
    expect(b.r.header('x-cache-status')).toBe('MISS');
    const c = await json(path);
    expect([c.r.header('x-cache-status'), c.body.n]).toEqual(['HIT', b.body.n]);
    const d = await json(path, { 'x-nostore': '1' });
    expect([d.r.header('x-cache-status'), d.body.n]).toEqual(['HIT', b.body.n]);

    const other = '/mode/fresh';
    const e = await json(other, { 'x-nostore': '1' });
    expect(e.r.header('x-cache-status')).toBe('BYPASS');
    expect(e.r.header('cache-status')).toContain('detail=rule-no-store');
    const f = await json(other);
    expect([f.r.header('x-cache-status'), f.body.n]).toEqual(['MISS', e.body.n + 1]);
  });

  it('switches compression for later phases', async () => {
    use([{ when: { extension: ['mp4', 'ts'] }, then: { compress: false } }, { then: { compress: true } }]);
    expect((await get(`${s.base}/v/seg1.ts`)).header('x-probe-compress')).toBe('false');
    expect((await get(`${s.base}/page.html`)).header('x-probe-compress')).toBe('true');
  });

  it('sends the whole body with Content-Length instead of chunked for devices that need it', async () => {
    use([{ when: { header: { name: 'user-agent', matches: 'OldTV' } }, then: { wholeBody: true } }]);
    const chunked = await rawGet(`${s.base}/whole/a?chunked=20000&cc=no-store`, { 'user-agent': 'Browser' });
    expect(chunked.headers['transfer-encoding']).toBe('chunked');
    expect(chunked.headers['content-length']).toBeUndefined();
    const whole = await rawGet(`${s.base}/whole/a?chunked=20000&cc=no-store`, { 'user-agent': 'OldTV/1.0' });
    expect(whole.headers['transfer-encoding']).toBeUndefined();
    expect([whole.headers['content-length'], whole.length]).toEqual(['20000', 20000]);
    // A cache MISS streams the body while storing it: it is sent whole too.
    const miss = await rawGet(`${s.base}/whole/b?chunked=30000`, { 'user-agent': 'OldTV/1.0' });
    expect([miss.headers['content-length'], miss.headers['transfer-encoding'], miss.length]).toEqual(['30000', undefined, 30000]);
    // Beyond limits.maxBodyBytes (64k here) the body still arrives complete, chunked.
    const big = await rawGet(`${s.base}/whole/c?chunked=100000&cc=no-store`, { 'user-agent': 'OldTV/1.0' });
    expect([big.status, big.headers['transfer-encoding'], big.length]).toEqual([200, 'chunked', 100000]);
  });
});
