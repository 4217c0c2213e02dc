// Malformed and hostile requests over raw sockets: each gets a 4xx, nothing is cached from it, and
// the edge keeps serving.
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, originHits, sleep, startStack, type Stack } from '../helpers.ts';

let s: Stack;
beforeAll(async () => {
  s = await startStack({ limits: { maxHeaderBytes: '8k', headersTimeout: '1s', requestTimeout: '2s', maxBodyBytes: '64k' } });
});
afterAll(() => s.close());

/** Sends raw bytes and returns everything the server writes until it closes or goes quiet. */
function raw(payload: string | Buffer, opts: { waitMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(s.node.edge.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(Buffer.concat(chunks).toString('latin1'));
    }, opts.waitMs ?? 3000);
    sock.on('data', (c) => chunks.push(c));
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
    sock.on('error', reject);
    sock.write(payload);
  });
}

const statusOf = (response: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1] ?? 0);

async function stillServing(): Promise<void> {
  const r = await get(`${s.base}/health`);
  expect(r.status).toBe(200);
}

describe('bad input', () => {
  it('answers 400 to a malformed request line', async () => {
    expect(statusOf(await raw('GET /a b c HTTP/1.1\r\nHost: x\r\n\r\n'))).toBe(400);
    expect(statusOf(await raw('NOT-HTTP\r\n\r\n'))).toBe(400);
    await stillServing();
  });

  it('answers 431 to oversized headers', async () => {
    const big = 'x'.repeat(10_000);
    expect(statusOf(await raw(`GET /big HTTP/1.1\r\nHost: localhost\r\nX-Big: ${big}\r\n\r\n`))).toBe(431);
    await stillServing();
  });

  it('answers 408 to a client that is too slow sending its headers', async () => {
    const res = await raw('GET /slow HTTP/1.1\r\nHost: localhost\r\n', { waitMs: 5000 });
    expect(statusOf(res)).toBe(408);
    await stillServing();
  });

  it('answers 400 to a request with both Content-Length and Transfer-Encoding', async () => {
    const res = await raw('POST /smuggle HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
    expect(statusOf(res)).toBe(400);
    expect(originHits(s.origin, '/smuggle')).toBe(0);
    await stillServing();
  });

  it('answers 400 to two different Content-Length headers', async () => {
    const res = await raw('POST /cl2 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde');
    expect(statusOf(res)).toBe(400);
    expect(originHits(s.origin, '/cl2')).toBe(0);
  });

  it('answers 400 to a missing Host header', async () => {
    expect(statusOf(await raw('GET /nohost HTTP/1.1\r\n\r\n'))).toBe(400);
  });

  it('answers 400 to two Host headers', async () => {
    expect(statusOf(await raw('GET /twohosts HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n'))).toBe(400);
    expect(originHits(s.origin, '/twohosts')).toBe(0);
  });

  it('answers 400 to odd Host headers', async () => {
    for (const host of ['a b', 'evil.com/path', 'user@evil.com', 'a.com:99999', 'a..com', '-a.com:80:80']) {
      const res = await raw(`GET /oddhost HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      expect(statusOf(res), host).toBe(400);
    }
    expect(originHits(s.origin, '/oddhost')).toBe(0);
  });

  it('answers 400 to an absolute-form target naming another host than Host', async () => {
    const res = await raw('GET http://evil.example/abs HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    expect(statusOf(res)).toBe(400);
    expect(originHits(s.origin, '/abs')).toBe(0);
  });

  it('serves an absolute-form target naming the same host, under the same cache key', async () => {
    const port = s.node.edge.port;
    const a = await raw(`GET http://127.0.0.1:${port}/abs-ok HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`);
    expect(statusOf(a)).toBe(200);
    const b = await get(`${s.base}/abs-ok`);
    expect(b.header('x-cache-status')).toBe('HIT');
  });

  it('answers 413 to a request body over limits.maxBodyBytes', async () => {
    const r = await get(`${s.base}/upload`, { method: 'POST', body: 'x'.repeat(70_000) });
    expect(r.status).toBe(413);
    expect(originHits(s.origin, '/upload')).toBe(0);
  });

  it('caches nothing from refused requests and keeps the worker up after all of them', async () => {
    await stillServing();
    const r = await get(`${s.base}/oddhost`);
    expect(r.header('x-cache-status')).toBe('MISS');
  });

  it('closes idle keep-alive connections after the keep-alive timeout without harm', async () => {
    await get(`${s.base}/ka`);
    await sleep(50);
    await stillServing();
  });
});
