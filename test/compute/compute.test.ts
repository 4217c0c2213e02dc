// Computing units end to end: saved through the admin API, run by the edge on real requests.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, originHits, sleep, startStack, type Stack } from '../helpers.ts';

let s: Stack;
beforeAll(async () => {
  s = await startStack({ compute: { breaker: { failures: 3, coolDown: '1s' } } });
});
afterAll(() => s.close());

const example = (name: string) => readFileSync(join(import.meta.dirname, '../../examples/cus', name), 'utf8');

async function admin(method: string, path: string, body?: unknown) {
  return get(`${s.admin}${path}`, { method, headers: { 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
}

/** Saves a CU and waits until the edge runs that version. */
async function putCu(cu: Record<string, unknown>): Promise<number> {
  const r = await admin('PUT', `/cus/${String(cu.id)}`, cu);
  expect(r.status, r.text).toBe(200);
  const version = JSON.parse(r.text).version as number;
  for (let i = 0; i < 200; i++) {
    const st = s.node.compute!.status().find((c) => c.id === cu.id);
    if (st?.running === version || (st?.error && st.version === version)) return version;
    await sleep(10);
  }
  throw new Error(`CU ${String(cu.id)} version ${version} never reached the edge`);
}

async function removeCu(id: string) {
  await admin('DELETE', `/cus/${id}`);
  for (let i = 0; i < 200 && s.node.compute!.status().some((c) => c.id === id); i++) await sleep(10);
}

describe('computing units', () => {
  it("runs the seed's token auth: 403 without a token, Set-Cookie with one, then the cookie alone passes", async () => {
    await putCu({ id: 'auth', phase: 'access_by_lua_block', code: example('token-auth.js'), hosts: ['auth.test'] });
    const host = { host: 'auth.test' };
    expect((await get(`${s.base}/hls/colorbar.m3u8`, { headers: host })).status).toBe(403);
    const ok = await get(`${s.base}/hls/colorbar.m3u8?token=token`, { headers: host });
    expect(ok.status).toBe(200);
    expect(ok.header('set-cookie')).toBe('superstition=token');
    expect((await get(`${s.base}/hls/colorbar.m3u8`, { headers: { ...host, cookie: 'superstition=token' } })).status).toBe(200);
    await removeCu('auth');
  });

  it('denies client addresses listed in Redis-style data, changed at run time', async () => {
    await putCu({ id: 'deny', phase: 'access', code: example('ip-deny.js'), hosts: ['deny.test'] });
    expect((await get(`${s.base}/x`, { headers: { host: 'deny.test' } })).status).toBe(200);
    await s.node.compute!.plane.store.command('sadd', ['denied-ips', '127.0.0.1']);
    expect((await get(`${s.base}/x`, { headers: { host: 'deny.test' } })).status).toBe(403);
    await s.node.compute!.plane.store.command('srem', ['denied-ips', '127.0.0.1']);
    await removeCu('deny');
  });

  it('checks the Referer, letting requests without one through', async () => {
    await putCu({ id: 'referer', phase: 'access', code: example('referer-check.js'), hosts: ['ref.test'] });
    const h = (referer?: string) => ({ host: 'ref.test', ...(referer ? { referer } : {}) });
    expect((await get(`${s.base}/v`, { headers: h() })).status).toBe(200);
    expect((await get(`${s.base}/v`, { headers: h('http://localhost/player') })).status).toBe(200);
    expect((await get(`${s.base}/v`, { headers: h('https://thief.example.net/') })).status).toBe(403);
    await removeCu('referer');
  });

  it('appends a tag to HLS playlists in the body filter, fixing Content-Length', async () => {
    await putCu({ id: 'hls-tag', phase: 'body_filter', code: example('hls-tag.js'), hosts: ['hls.test'] });
    const r = await get(`${s.base}/hls/colorbar.m3u8`, { headers: { host: 'hls.test' } });
    expect(r.text.startsWith('#EXTM3U')).toBe(true);
    expect(r.text.trimEnd().endsWith('#COPYRIGHT:Outpost')).toBe(true);
    expect(Number(r.header('content-length'))).toBe(r.body.length);
    const seg = await get(`${s.base}/hls/colorbar_1.ts`, { headers: { host: 'hls.test' } });
    expect(seg.body.includes(Buffer.from('#COPYRIGHT'))).toBe(false);
    await removeCu('hls-tag');
  });

  it('leaves uncompressed the responses a body_filter CU may rewrite, for clients that accept compression', async () => {
    const url = `${s.base}/static/4k.txt?v=${Date.now()}`;
    const ae = { host: 'zip.test', 'accept-encoding': 'br, gzip' };
    expect((await get(`${url}&without-cu`, { headers: ae })).header('content-encoding')).toMatch(/^(br|gzip)$/);
    await putCu({ id: 'stamp', phase: 'body_filter', code: "res.body = res.body + '<!-- stamped -->';", hosts: ['zip.test'] });
    const r = await get(url, { headers: ae });
    expect(r.header('content-encoding')).toBeUndefined();
    expect(r.text.endsWith('<!-- stamped -->')).toBe(true);
    await removeCu('stamp');
  });

  it('exposes timings in X-Metrics-* response headers', async () => {
    await putCu({ id: 'metrics', phase: 'header_filter', code: example('metrics-headers.js'), hosts: ['m.test'] });
    const r = await get(`${s.base}/timed?delay=20`, { headers: { host: 'm.test' } });
    expect(Number(r.header('x-metrics-request-time'))).toBeGreaterThan(0.015);
    expect(Number(r.header('x-metrics-upstream-response-time'))).toBeGreaterThan(0.015);
    expect(r.header('x-metrics-cache-status')).toBe('MISS');
    await removeCu('metrics');
  });

  it('counts requests per client address in Redis-style data and shows X-Request-Counter', async () => {
    await putCu({ id: 'counter', phase: 'access', code: example('request-counter.js'), hosts: ['count.test'] });
    const a = await get(`${s.base}/c`, { headers: { host: 'count.test' } });
    const b = await get(`${s.base}/c`, { headers: { host: 'count.test' } });
    expect(Number(b.header('x-request-counter'))).toBe(Number(a.header('x-request-counter')) + 1);
    await removeCu('counter');
  });

  it('generates content at the edge without asking the origin', async () => {
    await putCu({ id: 'hello', phase: 'access', code: example('edge-content.js') });
    const r = await get(`${s.base}/edge/hello`);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text).hello).toBe('from the edge');
    expect(originHits(s.origin, '/edge/hello')).toBe(0);
    await removeCu('hello');
  });

  it('redirects an old section', async () => {
    await putCu({ id: 'redirect', phase: 'rewrite', code: example('redirect.js') });
    const r = await get(`${s.base}/old/page?x=1`);
    expect(r.status).toBe(301);
    expect(r.header('location')).toBe('/new/page?x=1');
    await removeCu('redirect');
  });

  it('decorates responses with CORS and HSTS headers (a TypeScript CU)', async () => {
    await putCu({ id: 'cors', phase: 'header_filter', lang: 'ts', code: example('cors-hsts.ts'), hosts: ['cors.test'] });
    const r = await get(`${s.base}/api`, { headers: { host: 'cors.test', origin: 'https://app.example' } });
    expect(r.header('access-control-allow-origin')).toBe('https://app.example');
    expect(r.header('strict-transport-security')).toContain('max-age=31536000');
    await removeCu('cors');
  });

  it('refuses code that does not compile, naming line and column', async () => {
    const r = await admin('PUT', '/cus/broken', { id: 'broken', phase: 'access', code: 'const a = 1;\nconst = 2;\n' });
    expect(r.status).toBe(400);
    const body = JSON.parse(r.text) as { error: string; message: string; line?: number };
    expect(body.error).toBe('CU_INVALID');
    expect(body.line).toBe(2);
    expect(body.message).toMatch(/line 2/);
    expect((await admin('GET', '/cus/broken')).status).toBe(404);
  });

  it('refuses bad fields with the field named', async () => {
    const r = await admin('PUT', '/cus/badphase', { phase: 'content', code: 'x' });
    expect(r.status).toBe(400);
    expect(r.text).toContain('phase');
  });

  it('contains a runtime error: fail-open lets the request through', async () => {
    await putCu({ id: 'throws', phase: 'access', code: 'throw new Error("bug")', hosts: ['throw.test'] });
    expect((await get(`${s.base}/t`, { headers: { host: 'throw.test' } })).status).toBe(200);
    await removeCu('throws');
  });

  it('fail-closed answers 503 when the CU fails', async () => {
    await putCu({ id: 'closed', phase: 'access', code: 'throw new Error("bug")', failure: 'closed', hosts: ['closed.test'] });
    const r = await get(`${s.base}/t`, { headers: { host: 'closed.test' } });
    expect(r.status).toBe(503);
    expect(r.header('x-outpost-error')).toBe('CU_FAILED');
    await removeCu('closed');
  });

  it('stops an endless loop at its time limit; the edge and the next request are fine', async () => {
    await putCu({ id: 'loop', phase: 'access', code: 'if (req.args.spin) { while (true) {} }', timeoutMs: 50, hosts: ['loop.test'] });
    const t0 = performance.now();
    expect((await get(`${s.base}/l?spin=1`, { headers: { host: 'loop.test' } })).status).toBe(200);
    expect(performance.now() - t0).toBeLessThan(2000);
    expect((await get(`${s.base}/l`, { headers: { host: 'loop.test' } })).status).toBe(200);
    await removeCu('loop');
  });

  it('stops a memory bomb at its memory limit; the edge and the next request are fine', async () => {
    await putCu({ id: 'bomb', phase: 'access', code: 'if (req.args.bomb) { const a = []; while (true) a.push(new Array(1e5).fill(1)); }', memoryMb: 16, timeoutMs: 5000, hosts: ['bomb.test'] });
    expect((await get(`${s.base}/b?bomb=1`, { headers: { host: 'bomb.test' } })).status).toBe(200);
    expect((await get(`${s.base}/b`, { headers: { host: 'bomb.test' } })).status).toBe(200);
    expect((await get(`${s.base}/health`)).status).toBe(200);
    await removeCu('bomb');
  });

  it('trips the breaker after repeated failures and recovers after the cool-down', async () => {
    await putCu({ id: 'flaky', phase: 'access', code: 'if (await shared.get("broken")) throw new Error("down"); res.headers["x-flaky"] = "ok";', hosts: ['flaky.test'] });
    const h = { host: 'flaky.test' };
    await s.node.compute!.plane.shared.set('broken', 1);
    for (let i = 0; i < 3; i++) await get(`${s.base}/f`, { headers: h });
    expect(s.node.compute!.status().find((c) => c.id === 'flaky')?.breaker).toBe('open');
    await s.node.compute!.plane.shared.delete('broken');
    expect((await get(`${s.base}/f`, { headers: h })).header('x-flaky')).toBeUndefined();
    await sleep(1100);
    expect((await get(`${s.base}/f`, { headers: h })).header('x-flaky')).toBe('ok');
    expect(s.node.compute!.status().find((c) => c.id === 'flaky')?.breaker).toBe('closed');
    await removeCu('flaky');
  });

  it('runs a CU with sampling 30 for about 30 % of 10,000 requests', async () => {
    await putCu({ id: 'sample', phase: 'access', code: 'res.headers["x-sampled"] = "1";', sampling: 30, hosts: ['sample.test'] });
    await get(`${s.base}/s?max_age=600`, { headers: { host: 'sample.test' } });
    const agent = new Agent({ connections: 20 });
    let hits = 0;
    let done = 0;
    const total = 10_000;
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        while (done < total) {
          done++;
          const r = await request(`${s.base}/s?max_age=600`, { dispatcher: agent, headers: { host: 'sample.test' } });
          await r.body.dump();
          if (r.headers['x-sampled'] === '1') hits++;
        }
      }),
    );
    await agent.close();
    const pct = (hits / done) * 100;
    console.log(`sampling 30: ran for ${pct.toFixed(2)} % of ${done} requests`);
    expect(pct).toBeGreaterThan(27);
    expect(pct).toBeLessThan(33);
    await removeCu('sample');
  });

  it('runs CUs only for their hosts, never for skip-listed hosts, and not at all when switched off', async () => {
    await putCu({ id: 'hostonly', phase: 'access', code: 'res.headers["x-host-cu"] = "1";', hosts: ['*.shop.test', '/^api\\d\\.test$/'] });
    const ran = async (host: string) => (await get(`${s.base}/h`, { headers: { host } })).header('x-host-cu') === '1';
    expect(await ran('www.shop.test')).toBe(true);
    expect(await ran('api2.test')).toBe(true);
    expect(await ran('shop.test')).toBe(false);
    expect(await ran('other.test')).toBe(false);
    await admin('PUT', '/cus/settings', { enabled: true, skipHosts: ['www.shop.test'] });
    await sleep(50);
    expect(await ran('www.shop.test')).toBe(false);
    expect(await ran('api2.test')).toBe(true);
    await admin('PUT', '/cus/settings', { enabled: false, skipHosts: [] });
    await sleep(50);
    expect(await ran('api2.test')).toBe(false);
    await admin('PUT', '/cus/settings', { enabled: true, skipHosts: [] });
    await removeCu('hostonly');
  });

  it('runs CUs of one phase by priority, then id', async () => {
    const code = (tag: string) => `vars.order = (vars.order ?? '') + '${tag}'; res.headers['x-order'] = vars.order;`;
    await putCu({ id: 'b-second', phase: 'access', code: code('B'), priority: 10, hosts: ['order.test'] });
    await putCu({ id: 'a-third', phase: 'access', code: code('C'), priority: 20, hosts: ['order.test'] });
    await putCu({ id: 'z-first', phase: 'access', code: code('A'), priority: 5, hosts: ['order.test'] });
    await putCu({ id: 'c-tie', phase: 'access', code: code('D'), priority: 20, hosts: ['order.test'] });
    expect((await get(`${s.base}/o`, { headers: { host: 'order.test' } })).header('x-order')).toBe('ABCD');
    for (const id of ['b-second', 'a-third', 'z-first', 'c-tie']) await removeCu(id);
  });

  it('keeps the order when synchronous and awaiting CUs share a phase, in access and header_filter', async () => {
    const sync = (tag: string) => `vars.order = (vars.order ?? '') + '${tag}';`;
    const awaiting = (tag: string) => `await shared.incr('mixed-${tag}'); vars.order = (vars.order ?? '') + '${tag}';`;
    const cus = [
      { id: 'mixed-1', phase: 'access', code: sync('1'), priority: 1 },
      { id: 'mixed-2', phase: 'access', code: awaiting('2'), priority: 2 },
      { id: 'mixed-3', phase: 'access', code: sync('3'), priority: 3 },
      { id: 'mixed-4', phase: 'header_filter', code: awaiting('4'), priority: 1 },
      { id: 'mixed-5', phase: 'header_filter', code: `${sync('5')} res.headers['x-order'] = vars.order;`, priority: 2 },
      { id: 'mixed-6', phase: 'header_filter', code: `await shared.get('x'); res.headers['x-last'] = vars.order + '6';`, priority: 3 },
    ];
    for (const cu of cus) await putCu({ ...cu, hosts: ['mixed.test'] });
    const r = await get(`${s.base}/m`, { headers: { host: 'mixed.test' } });
    expect(r.status).toBe(200);
    expect(r.header('x-order')).toBe('12345');
    expect(r.header('x-last')).toBe('123456');
    for (const cu of cus) await removeCu(cu.id);
  });

  it('can disable and enable a CU', async () => {
    await putCu({ id: 'toggle', phase: 'access', code: 'return exit(418)', hosts: ['toggle.test'] });
    expect((await get(`${s.base}/t`, { headers: { host: 'toggle.test' } })).status).toBe(418);
    await admin('POST', '/cus/toggle/disable');
    for (let i = 0; i < 100 && (await get(`${s.base}/t`, { headers: { host: 'toggle.test' } })).status === 418; i++) await sleep(10);
    expect((await get(`${s.base}/t`, { headers: { host: 'toggle.test' } })).status).toBe(200);
    await removeCu('toggle');
  });

  it('dry-runs a CU against a described request and says what it would do', async () => {
    const r = await admin('POST', '/cus/test', { cu: { id: 'dry', phase: 'access', code: example('token-auth.js') }, request: { url: 'http://localhost/x?token=token' } });
    expect(r.status).toBe(200);
    const result = JSON.parse(r.text) as { output: { response?: { headers?: Record<string, string> }; exit?: unknown }; ms: number };
    expect(result.output.exit).toBeUndefined();
    expect(result.output.response?.headers?.['set-cookie']).toBe('superstition=token');
    const denied = JSON.parse((await admin('POST', '/cus/test', { cu: { id: 'dry', phase: 'access', code: example('token-auth.js') }, request: { url: 'http://localhost/x' } })).text);
    expect(denied.output.exit.status).toBe(403);
  });

  it('shows per-worker status: loaded version, errors and breaker', async () => {
    await putCu({ id: 'visible', phase: 'log', code: 'log.info("seen")' });
    const r = JSON.parse((await admin('GET', '/cus/status')).text) as { workers: Array<{ cus: Array<{ id: string; running?: number; breaker: string }> }> };
    const cu = r.workers[0]!.cus.find((c) => c.id === 'visible');
    expect(cu?.running).toBeGreaterThan(0);
    expect(cu?.breaker).toBe('closed');
    await removeCu('visible');
  });

  it('reports per-CU metrics', async () => {
    await putCu({ id: 'measured', phase: 'access', code: 'if (req.args.no) return exit(451);', hosts: ['metric.test'] });
    await get(`${s.base}/m`, { headers: { host: 'metric.test' } });
    await get(`${s.base}/m?no=1`, { headers: { host: 'metric.test' } });
    const m = (await get(`${s.admin}/metrics`)).text;
    expect(m).toMatch(/outpost_cu_runs_total\{cu="measured",phase="access"\} 2/);
    expect(m).toMatch(/outpost_cu_exits_total\{cu="measured",status="451"\} 1/);
    expect(m).toContain('outpost_cu_run_seconds_bucket{le="0.0001",cu="measured"}');
    await removeCu('measured');
  });
});
