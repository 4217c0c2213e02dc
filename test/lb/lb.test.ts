// The load balancer node in front of three real Outpost edges: which edge served, cache affinity,
// forwarding headers, bodies both ways, admin API, run-time membership, failures and graceful stop.
import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { LoadBalancer } from '../../src/lb/lb.ts';
import { startDemoOrigin, type DemoOrigin } from '../../src/origin/demo-origin.ts';
import { freePort } from '../cluster/node-process.ts';
import { get } from '../helpers.ts';
import { startEdges, startLb, until, type TestEdge } from './support.ts';

let origin: DemoOrigin;
let edges: TestEdge[];
let lb: LoadBalancer | undefined;
let base = '';
let admin = '';

beforeAll(async () => {
  origin = await startDemoOrigin();
  edges = await startEdges(3, origin.url);
});
afterAll(async () => {
  await Promise.all(edges.map((e) => e.close()));
  await origin.close();
});
afterEach(async () => {
  await lb?.close();
  lb = undefined;
});

async function start(extra: Record<string, unknown> = {}, list = edges.map((e) => ({ name: e.name, url: e.url }))): Promise<LoadBalancer> {
  lb = await startLb(list, { healthCheck: { interval: '200ms', timeout: '200ms' }, ...extra });
  base = `http://127.0.0.1:${lb.port}`;
  admin = `http://127.0.0.1:${lb.adminPort}`;
  return lb;
}

describe('load balancer in front of Outpost edges', () => {
  it('names the serving edge in X-Served-By and keeps each URL on one edge, so its cache hits', async () => {
    await start({ policy: 'chash' });
    const servedBy = new Map<string, string>();
    for (let i = 0; i < 60; i++) {
      const path = `/lb-affinity/${i}?max_age=60`;
      const a = await get(`${base}${path}`);
      const b = await get(`${base}${path}`);
      expect(a.status).toBe(200);
      expect(a.header('x-served-by')).toMatch(/^edge-[123]$/);
      expect(b.header('x-served-by')).toBe(a.header('x-served-by'));
      expect(b.header('x-cache-status')).toBe('HIT');
      servedBy.set(path, a.header('x-served-by')!);
    }
    // Sixty URLs hash over all three edges, and the origin saw each URL once.
    expect(new Set(servedBy.values()).size).toBe(3);
    expect(origin.stats().byPath['/lb-affinity/7?max_age=60']).toBe(1);
  });

  it('spreads one hot URL over the edges under bounded loads, where plain consistent hashing piles it on one', async () => {
    const burst = async () => {
      const rs = await Promise.all(Array.from({ length: 30 }, () => get(`${base}/hot-burst?delay=300&cc=no-store`)));
      const per = new Map<string, number>();
      for (const r of rs) per.set(r.header('x-served-by')!, (per.get(r.header('x-served-by')!) ?? 0) + 1);
      return [...per.values()];
    };
    await start({ policy: 'chash' });
    expect(await burst()).toEqual([30]);
    await lb!.close();
    await start({ policy: 'bounded', loadFactor: 1.25 });
    const loads = await burst();
    expect(loads.length).toBe(3);
    // No edge above c × the average of 10 in flight, plus one.
    expect(Math.max(...loads)).toBeLessThanOrEqual(Math.ceil(1.25 * 10) + 1);
  });

  it('spreads requests by weight under round robin', async () => {
    await start({ policy: 'rr' }, edges.map((e, i) => ({ name: e.name, url: e.url, weight: i + 1 })));
    const counts = new Map<string, number>();
    for (let i = 0; i < 60; i++) {
      const r = await get(`${base}/rr/${i}?max_age=60`);
      counts.set(r.header('x-served-by')!, (counts.get(r.header('x-served-by')!) ?? 0) + 1);
    }
    expect(Object.fromEntries(counts)).toEqual({ 'edge-1': 10, 'edge-2': 20, 'edge-3': 30 });
  });

  it('answers its own /health, and reports members and metrics on the admin port', async () => {
    await start();
    const h = await get(`${base}/health`);
    expect(h.status).toBe(200);
    expect(h.text).toBe('ok: 3/3 edges up\n');
    for (let i = 0; i < 9; i++) await get(`${base}/m/${i}`);
    const m = JSON.parse((await get(`${admin}/members`)).text) as { policy: string; up: number; members: Array<{ name: string; state: string; requests: number; inFlight: number; failures: number }> };
    expect(m.policy).toBe('bounded');
    expect(m.up).toBe(3);
    expect(m.members.map((x) => [x.name, x.state, x.inFlight, x.failures])).toEqual([
      ['edge-1', 'up', 0, 0],
      ['edge-2', 'up', 0, 0],
      ['edge-3', 'up', 0, 0],
    ]);
    expect(m.members.reduce((n, x) => n + x.requests, 0)).toBe(9);
    await until(async () => (await get(`${admin}/metrics`)).text.includes('outpost_lb_health_checks_total{member="edge-3",result="ok"}'));
    const metrics = (await get(`${admin}/metrics`)).text;
    expect(metrics).toMatch(/outpost_lb_requests_total\{member="edge-\d",status="200"\} \d+/);
    expect(metrics).toContain('outpost_lb_member_up{member="edge-1"} 1');
    expect(metrics).toContain('outpost_lb_request_duration_seconds_bucket');
  });

  it('adds and removes edges at run time through the admin API', async () => {
    await start({ policy: 'rr' }, edges.slice(0, 2).map((e) => ({ name: e.name, url: e.url })));
    const seen = async () => {
      const s = new Set<string>();
      for (let i = 0; i < 12; i++) s.add((await get(`${base}/rt/${i}`)).header('x-served-by')!);
      return [...s].sort();
    };
    expect(await seen()).toEqual(['edge-1', 'edge-2']);
    const add = await get(`${admin}/members`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'edge-3', url: edges[2]!.url }) });
    expect(add.status).toBe(201);
    expect(await seen()).toEqual(['edge-1', 'edge-2', 'edge-3']);
    expect((await get(`${admin}/members`, { method: 'POST', body: JSON.stringify({ name: 'edge-3', url: edges[2]!.url }) })).status).toBe(400);
    expect((await get(`${admin}/members/edge-1`, { method: 'DELETE' })).status).toBe(200);
    expect(await seen()).toEqual(['edge-2', 'edge-3']);
    expect((await get(`${admin}/members/edge-1`, { method: 'DELETE' })).status).toBe(404);
  });

  it('refuses the admin API without the key when one is set', async () => {
    await start({ admin: { port: 0, apiKey: 'k'.repeat(16) } });
    expect((await get(`${admin}/members`)).status).toBe(401);
    expect((await get(`${admin}/members`, { headers: { authorization: `Bearer ${'k'.repeat(16)}` } })).status).toBe(200);
    expect((await get(`${admin}/health`)).status).toBe(200);
  });

  it('answers 502 UPSTREAM_CONNECT when no edge accepts a connection, and 503 NO_MEMBER with no edge at all', async () => {
    const dead = await freePort();
    await start({ healthCheck: { enabled: false } }, [{ name: 'gone', url: `http://127.0.0.1:${dead}` }]);
    const r = await get(`${base}/x`);
    expect(r.status).toBe(502);
    expect(r.header('x-outpost-error')).toBe('UPSTREAM_CONNECT');
    expect((await get(`${admin}/members/gone`, { method: 'DELETE' })).status).toBe(200);
    const none = await get(`${base}/x`);
    expect(none.status).toBe(503);
    expect(none.header('x-outpost-error')).toBe('NO_MEMBER');
    expect((await get(`${base}/health`)).status).toBe(503);
  });

  it('lets in-flight requests finish when it stops, and takes no new ones', async () => {
    const l = await start();
    const slow = get(`${base}/graceful?delay=400&cc=no-store`);
    await new Promise((r) => setTimeout(r, 100));
    const closing = l.close();
    lb = undefined;
    const r = await slow;
    expect(r.status).toBe(200);
    expect(r.header('x-served-by')).toMatch(/^edge-/);
    await closing;
    await expect(get(`${base}/after`)).rejects.toThrow();
  });
});

describe('what the edges and the origin receive', () => {
  let echo: Server;
  let echoEdges: TestEdge[];
  const seen: Array<{ headers: IncomingHttpHeaders; bytes: number; sha: string }> = [];

  beforeAll(async () => {
    echo = createServer((req, res) => {
      const h = createHash('sha256');
      let bytes = 0;
      req.on('data', (c: Buffer) => {
        bytes += c.length;
        h.update(c);
      });
      req.on('end', () => {
        const rec = { headers: req.headers, bytes, sha: h.digest('hex') };
        seen.push(rec);
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        res.end(JSON.stringify(rec));
      });
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
    echoEdges = await startEdges(2, `http://127.0.0.1:${(echo.address() as AddressInfo).port}`);
  });
  afterAll(async () => {
    await Promise.all(echoEdges.map((e) => e.close()));
    echo.closeAllConnections();
    echo.close();
  });

  it("adds the client to X-Forwarded-For, keeps the client's Host and adds a Via hop", async () => {
    await start({}, echoEdges.map((e) => ({ name: e.name, url: e.url })));
    const r = await get(`${base}/who`, { headers: { 'x-forwarded-for': '203.0.113.9', host: 'www.example.com' } });
    expect(r.status).toBe(200);
    const h = seen.at(-1)!.headers;
    // client → LB (adds 127.0.0.1) → edge (adds the LB's address, 127.0.0.1) → origin
    expect(h['x-forwarded-for']).toBe('203.0.113.9, 127.0.0.1, 127.0.0.1');
    expect(h.host).toBe('www.example.com');
    expect(h.via).toMatch(/^1\.1 outpost-lb, 1\.1 edge-[12]$/);
  });

  it('streams a large request body to the edge and a large response back', async () => {
    await start({}, echoEdges.map((e) => ({ name: e.name, url: e.url })));
    const chunk = Buffer.alloc(64 * 1024, 7);
    async function* body() {
      for (let i = 0; i < 48; i++) yield chunk; // 3 MiB, sent chunked
    }
    const res = await request(`${base}/upload`, { method: 'PUT', body: Readable.from(body()) });
    const rec = (await res.body.json()) as { bytes: number; sha: string };
    expect(res.statusCode).toBe(200);
    expect(rec.bytes).toBe(48 * chunk.length);
    const whole = createHash('sha256');
    for (let i = 0; i < 48; i++) whole.update(chunk);
    expect(rec.sha).toBe(whole.digest('hex'));
    await lb!.close();
    // Back through the demo-origin edges: 2 MiB whose second half comes 600 ms after the first.
    await start();
    const t0 = performance.now();
    const big = await request(`${base}/static/2m?slow_body=600&cc=no-store`);
    let first = 0;
    let size = 0;
    for await (const c of big.body) {
      first ||= performance.now() - t0;
      size += (c as Buffer).length;
    }
    expect(size).toBe(2 * 1024 * 1024);
    expect(first).toBeLessThan(500);
  });
});
