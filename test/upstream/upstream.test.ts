// Origin pools through the edge: keep-alive, retries on the next peer, Host policy, headers to the
// origin, timeouts, and what the client sees when the origin fails.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../cluster/node-process.ts';
import { get, startStack, type Stack } from '../helpers.ts';

let s: Stack | undefined;
let echo: Server | undefined;
afterEach(async () => {
  await s?.close();
  s = undefined;
  echo?.closeAllConnections();
  echo?.close();
  echo = undefined;
});

/** An origin that answers with the request headers it received, and counts connections. */
async function startEcho(): Promise<{ url: string; seen: IncomingHttpHeaders[]; connections: () => number }> {
  const seen: IncomingHttpHeaders[] = [];
  let connections = 0;
  echo = createServer((req, res) => {
    seen.push(req.headers);
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(req.headers));
  });
  echo.on('connection', () => connections++);
  await new Promise<void>((r) => echo!.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(echo.address() as AddressInfo).port}`, seen, connections: () => connections };
}

describe('upstream pools', () => {
  it('retries an idempotent request on the next peer when a connection is refused', async () => {
    const dead = await freePort();
    s = await startStack((origin) => ({ upstream: { pools: { default: { peers: [`http://127.0.0.1:${dead}`, origin], retries: 1 } } } }));
    for (let i = 0; i < 4; i++) {
      const r = await get(`${s.base}/retry-${i}`);
      expect(r.status).toBe(200);
    }
  });

  it('does not retry a request with a body on another peer', async () => {
    const dead = await freePort();
    s = await startStack((origin) => ({ upstream: { pools: { default: { peers: [`http://127.0.0.1:${dead}`, origin], retries: 1 } } } }));
    const statuses = [];
    for (let i = 0; i < 2; i++) statuses.push((await get(`${s.base}/post-${i}`, { method: 'POST', body: 'x' })).status);
    expect(statuses.sort()).toEqual([200, 502]);
  });

  it('sends X-Forwarded-For, X-Forwarded-Proto, Via, the client Host and configured headers to the origin', async () => {
    const e = await startEcho();
    s = await startStack({ upstream: { pools: { default: { peers: [e.url], headers: { 'X-Origin-Secret': 's3cret' } } } } });
    await get(`${s.base}/h`, { headers: { 'x-forwarded-for': '203.0.113.9' } });
    const h = e.seen.at(-1)!;
    expect(h['x-forwarded-for']).toBe('203.0.113.9, 127.0.0.1');
    expect(h['x-forwarded-proto']).toBe('http');
    expect(h.via).toBe('1.1 outpost');
    expect(h.host).toBe(`127.0.0.1:${s.node.edge.port}`);
    expect(h['x-origin-secret']).toBe('s3cret');
  });

  it("sends the peer's own host when the pool says host: peer, or a fixed name", async () => {
    const e = await startEcho();
    s = await startStack({ upstream: { pools: { default: { peers: [e.url], host: 'peer' } } } });
    await get(`${s.base}/h1`);
    expect(e.seen.at(-1)!.host).toBe(new URL(e.url).host);
    await s.close();
    s = await startStack({ upstream: { pools: { default: { peers: [e.url], host: 'origin.example' } } } });
    await get(`${s.base}/h2`);
    expect(e.seen.at(-1)!.host).toBe('origin.example');
  });

  it('does not forward hop-by-hop headers or headers named in Connection', async () => {
    const e = await startEcho();
    s = await startStack({ upstream: { pools: { default: { peers: [e.url] } } } });
    // A raw request: HTTP clients manage Connection themselves.
    await new Promise<void>((resolve, reject) => {
      const sock = connect(s!.node.edge.port, '127.0.0.1', () => {
        sock.write('GET /hop HTTP/1.1\r\nHost: localhost\r\nConnection: close, x-secret-hop\r\nX-Secret-Hop: 1\r\nTE: trailers\r\nX-Kept: yes\r\n\r\n');
      });
      sock.on('data', () => undefined);
      sock.on('close', () => resolve());
      sock.on('error', reject);
    });
    const h = e.seen.at(-1)!;
    expect(h['x-secret-hop']).toBeUndefined();
    expect(h.te).toBeUndefined();
    expect(h['x-kept']).toBe('yes');
  });

  it('reuses keep-alive connections to the origin', async () => {
    const e = await startEcho();
    s = await startStack({ upstream: { pools: { default: { peers: [e.url] } } } });
    for (let i = 0; i < 20; i++) await get(`${s.base}/ka-${i}`);
    expect(e.connections()).toBeLessThanOrEqual(2);
  });

  it('answers 504 when the origin does not answer within readTimeout', async () => {
    s = await startStack({ upstream: { pools: { default: { readTimeout: '200ms' } } } });
    const r = await get(`${s.base}/slow?delay=2000`);
    expect(r.status).toBe(504);
    expect(r.header('x-outpost-error')).toBe('UPSTREAM_TIMEOUT');
  });

  it('answers 502 when no peer accepts a connection', async () => {
    const dead = await freePort();
    s = await startStack({ upstream: { pools: { default: { peers: [`http://127.0.0.1:${dead}`] } } } });
    const r = await get(`${s.base}/down`);
    expect(r.status).toBe(502);
    expect(r.header('x-outpost-error')).toBe('UPSTREAM_CONNECT');
    expect((await get(`${s.base}/health`)).status).toBe(200);
  });

  it('passes request bodies of unsafe methods through to the origin', async () => {
    s = await startStack();
    const r = await get(`${s.base}/form`, { method: 'PUT', body: 'a=1' });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text).method).toBe('PUT');
  });
});

describe('large objects', () => {
  it('streams a large object to the client while it is being stored', async () => {
    s = await startStack();
    const { request } = await import('undici');
    const t0 = performance.now();
    const res = await request(`${s.base}/static/2m?slow_body=800`);
    let firstByteMs = 0;
    let size = 0;
    for await (const chunk of res.body) {
      if (!firstByteMs) firstByteMs = performance.now() - t0;
      size += (chunk as Buffer).length;
    }
    expect(size).toBe(2 * 1024 * 1024);
    expect(firstByteMs).toBeLessThan(700);
    expect((await get(`${s.base}/static/2m?slow_body=800`)).header('x-cache-status')).toBe('HIT');
  });

  it('passes objects over every tier limit through without storing them', async () => {
    s = await startStack({ cache: { ram: { maxObjectBytes: '64k' }, disk: { maxObjectBytes: '64k' } } });
    const a = await get(`${s.base}/static/100k`);
    expect(a.body.length).toBe(100 * 1024);
    expect(a.header('x-cache-status')).toBe('BYPASS');
    expect(a.header('cache-status')).toContain('too-large');
    expect((await get(`${s.base}/static/100k`)).header('x-cache-status')).toBe('BYPASS');
  });
});
