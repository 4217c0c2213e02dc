import http from 'node:http';
import net from 'node:net';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { OutpostError } from '../errors.ts';
import { startDemoOrigin } from './demo-origin.ts';
import type { DemoOrigin } from './demo-origin.ts';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** ms since the request was sent, for each body chunk received */
  chunkTimes: number[];
}

/** A plain node:http client, so framing headers (Transfer-Encoding) and chunk timing are visible. */
function call(
  base: string,
  path: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string; signal?: AbortSignal } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    // node:http sends a DELETE body without framing unless told its length.
    const headers = opts.body === undefined ? opts.headers : { ...opts.headers, 'content-length': String(Buffer.byteLength(opts.body)) };
    const req = http.request(`${base}${path}`, { method: opts.method ?? 'GET', headers, agent: false, signal: opts.signal }, (res) => {
      const chunks: Buffer[] = [];
      const chunkTimes: number[] = [];
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        chunkTimes.push(Date.now() - started);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), chunkTimes }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

async function waitFor(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('demo origin', () => {
  let origin: DemoOrigin;
  let base: string;

  beforeAll(async () => {
    origin = await startDemoOrigin();
    base = origin.url;
  });
  afterAll(async () => {
    await origin.close();
  });
  beforeEach(() => {
    origin.setMode({ mode: 'ok' });
  });

  describe('GET /', () => {
    it('serves an HTML page that lists the endpoints, cacheable for 10 s', async () => {
      const res = await request(`${base}/`);
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(res.headers['cache-control']).toBe('public, max-age=10');
      const html = await res.body.text();
      for (const part of ['/static/', '/__origin/stats', '/__origin/mode', 'max_age', 'slow_body']) expect(html).toContain(part);
    });
  });

  describe('JSON API', () => {
    it('answers any path with the seed body, JSON type, Date, Content-Length and max-age 10', async () => {
      const res = await request(`${base}/path/to/my/content.ext`);
      const body = await res.body.text();
      expect(res.statusCode).toBe(200);
      expect(body).toBe('{"service":"api","value":42,"request":"/path/to/my/content.ext"}');
      expect(res.headers['content-type']).toBe('application/json');
      expect(res.headers['cache-control']).toBe('public, max-age=10');
      expect(res.headers['content-length']).toBe(String(Buffer.byteLength(body)));
      expect(Number.isNaN(Date.parse(String(res.headers['date'])))).toBe(false);
      expect(res.headers['keep-alive']).toBe('timeout=65');
    });

    it('leaves the query out of "request" and escapes the path as JSON', async () => {
      // A raw socket, because HTTP clients percent-encode the quote.
      const socket = net.connect(Number(new URL(base).port), '127.0.0.1');
      socket.end('GET /a%22b/c"d\\e?x=1 HTTP/1.1\r\nHost: origin\r\nConnection: close\r\n\r\n');
      const chunks: Buffer[] = [];
      for await (const chunk of socket) chunks.push(chunk as Buffer);
      const raw = Buffer.concat(chunks).toString();
      const body = raw.slice(raw.indexOf('\r\n\r\n') + 4);
      expect(JSON.parse(body)).toEqual({ service: 'api', value: 42, request: '/a%22b/c"d\\e' });
    });

    it('treats /static without a trailing slash as an API path', async () => {
      const res = await call(base, '/static');
      expect(res.body.toString()).toBe('{"service":"api","value":42,"request":"/static"}');
    });
  });

  describe('query switches', () => {
    it('max_age sets the max-age', async () => {
      const res = await call(base, '/x?max_age=40');
      expect(res.headers['cache-control']).toBe('public, max-age=40');
    });

    it('cc replaces Cache-Control entirely, and an empty cc removes it', async () => {
      const replaced = await call(base, '/x?cc=private,%20no-cache&max_age=5');
      expect(replaced.headers['cache-control']).toBe('private, no-cache');
      const removed = await call(base, '/x?cc=');
      expect(removed.headers['cache-control']).toBeUndefined();
      expect(removed.status).toBe(200);
    });

    it('status answers that status with the same body', async () => {
      const res = await call(base, '/missing?status=404');
      expect(res.status).toBe(404);
      expect(res.body.toString()).toBe('{"service":"api","value":42,"request":"/missing"}');
      expect(res.headers['cache-control']).toBe('public, max-age=10');
      const noContent = await call(base, '/x?status=204');
      expect(noContent.status).toBe(204);
      expect(noContent.body.length).toBe(0);
    });

    it('delay waits before answering', async () => {
      const started = Date.now();
      const res = await call(base, '/slow?delay=150');
      expect(res.status).toBe(200);
      expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    });

    it('hang never answers and keeps the request in flight until the client leaves', async () => {
      origin.reset();
      const abort = new AbortController();
      const pending = call(base, '/stuck?hang=1', { signal: abort.signal });
      await waitFor(() => origin.stats().inFlight === 1, 'the hung request');
      await new Promise((r) => setTimeout(r, 100));
      expect(origin.stats().inFlight).toBe(1);
      abort.abort();
      await expect(pending).rejects.toThrow();
      await waitFor(() => origin.stats().inFlight === 0, 'the aborted request to leave');
      expect(origin.stats().byPath['/stuck?hang=1']).toBe(1);
    });

    it('tags become Surrogate-Key (spaces) and Cache-Tag (commas)', async () => {
      const res = await call(base, '/x?tags=a,b');
      expect(res.headers['surrogate-key']).toBe('a b');
      expect(res.headers['cache-tag']).toBe('a,b');
    });

    it('vary sets Vary', async () => {
      const res = await call(base, '/x?vary=Accept-Encoding');
      expect(res.headers['vary']).toBe('Accept-Encoding');
    });

    it('etag sets the ETag verbatim and If-None-Match is compared weakly', async () => {
      const strong = await call(base, '/e?etag=%22v1%22');
      expect(strong.headers['etag']).toBe('"v1"');
      const weak = await call(base, '/e?etag=W/%22v1%22');
      expect(weak.headers['etag']).toBe('W/"v1"');

      const hit = await call(base, '/e?etag=%22v1%22', { headers: { 'if-none-match': 'W/"v1"' } });
      expect(hit.status).toBe(304);
      expect(hit.body.length).toBe(0);
      expect(hit.headers['etag']).toBe('"v1"');
      expect(hit.headers['cache-control']).toBe('public, max-age=10');
      const inList = await call(base, '/e?etag=W/%22v1%22', { headers: { 'if-none-match': '"v0", "v1"' } });
      expect(inList.status).toBe(304);
      const miss = await call(base, '/e?etag=%22v2%22', { headers: { 'if-none-match': '"v1"' } });
      expect(miss.status).toBe(200);
      const star = await call(base, '/e?etag=%22v2%22', { headers: { 'if-none-match': '*' } });
      expect(star.status).toBe(304);
    });

    it('lm sets Last-Modified and If-Modified-Since is evaluated against it', async () => {
      const lm = 1_700_000_000;
      const res = await call(base, `/l?lm=${lm}`);
      expect(res.headers['last-modified']).toBe(new Date(lm * 1000).toUTCString());
      const same = await call(base, `/l?lm=${lm}`, { headers: { 'if-modified-since': new Date(lm * 1000).toUTCString() } });
      expect(same.status).toBe(304);
      expect(same.headers['last-modified']).toBe(new Date(lm * 1000).toUTCString());
      const older = await call(base, `/l?lm=${lm}`, { headers: { 'if-modified-since': new Date((lm - 1) * 1000).toUTCString() } });
      expect(older.status).toBe(200);
      const garbage = await call(base, `/l?lm=${lm}`, { headers: { 'if-modified-since': 'yesterday' } });
      expect(garbage.status).toBe(200);
    });

    it('If-None-Match wins over If-Modified-Since', async () => {
      const res = await call(base, '/l?lm=1000&etag=%22a%22', {
        headers: { 'if-none-match': '"b"', 'if-modified-since': new Date().toUTCString() },
      });
      expect(res.status).toBe(200);
    });

    it('conditional requests are not answered with 304 when status asks for an error', async () => {
      const res = await call(base, '/e?etag=%22v1%22&status=500', { headers: { 'if-none-match': '"v1"' } });
      expect(res.status).toBe(500);
    });

    it('set_cookie adds the session cookie', async () => {
      const res = await call(base, '/x?set_cookie=1');
      expect(res.headers['set-cookie']).toEqual(['session=abc; Path=/']);
      const none = await call(base, '/x');
      expect(none.headers['set-cookie']).toBeUndefined();
    });

    it('h adds headers, repeatable, replacing a generated header of the same name', async () => {
      const res = await call(base, '/x?h=X-Test:one&h=X-Test:two&h=Cache-Control:private&h=X-Colon:a:b');
      expect(res.headers['x-test']).toBe('one, two');
      expect(res.headers['cache-control']).toBe('private');
      expect(res.headers['x-colon']).toBe('a:b');
    });

    it('chunked sends no Content-Length and uses chunked transfer', async () => {
      const res = await call(base, '/static/64k?chunked=1');
      expect(res.headers['content-length']).toBeUndefined();
      expect(res.headers['transfer-encoding']).toBe('chunked');
      expect(res.body.equals((await call(base, '/static/64k')).body)).toBe(true);
    });

    it('slow_body sends half the body, pauses, then sends the rest', async () => {
      const res = await call(base, '/static/1k.txt?slow_body=200');
      expect(res.body.length).toBe(1024);
      expect(res.headers['content-length']).toBe('1024');
      const first = res.chunkTimes[0] ?? 0;
      const last = res.chunkTimes[res.chunkTimes.length - 1] ?? 0;
      expect(last - first).toBeGreaterThanOrEqual(150);
    });

    it('location sets Location and Content-Location', async () => {
      const res = await call(base, '/old?location=/new&status=301');
      expect(res.status).toBe(301);
      expect(res.headers['location']).toBe('/new');
      expect(res.headers['content-location']).toBe('/new');
    });

    it('ignores query arguments that are not switches', async () => {
      const res = await call(base, '/x?v=123&utm_source=mail');
      expect(res.status).toBe(200);
      expect(res.headers['cache-control']).toBe('public, max-age=10');
    });

    it.each([
      ['/x?max_age=soon', 'max_age'],
      ['/x?status=99', 'status'],
      ['/x?delay=-1', 'delay'],
      ['/x?hang=maybe', 'hang'],
      ['/x?h=NoColon', 'h'],
      ['/x?h=Content-Length:1', 'h'],
      ['/x?etag=%0Abad', 'etag'],
      ['/x?lm=%E0%A4%A', 'lm'],
    ])('rejects %s with a 400 that names the switch', async (path, name) => {
      const res = await call(base, path);
      expect(res.status).toBe(400);
      expect(res.headers['cache-control']).toBe('no-store');
      const body = JSON.parse(res.body.toString()) as { error: string; message: string };
      expect(body.error).toBe('BAD_REQUEST');
      expect(body.message).toContain(`switch ${name}`);
    });
  });

  describe('writes', () => {
    it.each(['POST', 'PUT', 'DELETE', 'PATCH'])('%s reads the body and answers JSON with no-store', async (method) => {
      const res = await call(base, '/orders/7', { method, body: 'x'.repeat(100_000), headers: { 'content-type': 'text/plain' } });
      expect(res.status).toBe(200);
      expect(res.body.toString()).toBe(`{"service":"api","method":"${method}","request":"/orders/7"}`);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.headers['content-type']).toBe('application/json');
    });

    it('applies switches such as location to writes, but not max_age', async () => {
      const res = await call(base, '/orders?location=/orders/8&status=201&max_age=60', { method: 'POST', body: '{}' });
      expect(res.status).toBe(201);
      expect(res.headers['location']).toBe('/orders/8');
      expect(res.headers['cache-control']).toBe('no-store');
    });

    it('answers other methods with 405 and Allow', async () => {
      const res = await call(base, '/x', { method: 'OPTIONS' });
      expect(res.status).toBe(405);
      expect(res.headers['allow']).toBe('GET, HEAD, POST, PUT, DELETE, PATCH');
      const onStatic = await call(base, '/static/1k', { method: 'POST', body: 'x' });
      expect(onStatic.status).toBe(405);
      expect(onStatic.headers['allow']).toBe('GET, HEAD');
    });
  });

  describe('GET /static', () => {
    it.each([
      ['1234', 1234],
      ['1k', 1024],
      ['16k', 16 * 1024],
      ['256k', 256 * 1024],
      ['1m', 1024 * 1024],
      ['0', 0],
    ])('/static/%s is %i bytes', async (name, size) => {
      const res = await call(base, `/static/${name}`);
      expect(res.status).toBe(200);
      expect(res.body.length).toBe(size);
      expect(res.headers['content-length']).toBe(String(size));
    });

    it('sends the same bytes and the same strong ETag every time, with the ETag hashing the content', async () => {
      const a = await call(base, '/static/16k.txt');
      const b = await call(base, '/static/16k.bin');
      expect(a.body.equals(b.body)).toBe(true);
      expect(a.headers['etag']).toBe(b.headers['etag']);
      expect(a.headers['etag']).toMatch(/^"[^"]+"$/);
      expect(a.headers['etag']).toBe(`"${createHash('sha1').update(a.body).digest('base64url')}"`);
      const other = await call(base, '/static/16385');
      expect(other.headers['etag']).not.toBe(a.headers['etag']);
    });

    it('uses the origin start time as Last-Modified and caches for an hour by default', async () => {
      const before = Math.floor(Date.now() / 1000);
      const fresh = await startDemoOrigin();
      try {
        const res = await call(fresh.url, '/static/1k');
        const lm = Date.parse(String(res.headers['last-modified'])) / 1000;
        expect(lm).toBeGreaterThanOrEqual(before);
        expect(lm).toBeLessThanOrEqual(Math.floor(Date.now() / 1000));
        expect(res.headers['cache-control']).toBe('public, max-age=3600');
        const again = await call(fresh.url, '/static/2k');
        expect(again.headers['last-modified']).toBe(res.headers['last-modified']);
      } finally {
        await fresh.close();
      }
    });

    it.each([
      ['1k.txt', 'text/plain; charset=utf-8'],
      ['1k.html', 'text/html; charset=utf-8'],
      ['1k.js', 'text/javascript; charset=utf-8'],
      ['1k.css', 'text/css; charset=utf-8'],
      ['1k.json', 'application/json'],
      ['1k.jpg', 'image/jpeg'],
      ['1k.png', 'image/png'],
      ['1k.mp4', 'video/mp4'],
      ['1k.min.js', 'text/javascript; charset=utf-8'],
      ['1k.weird', 'application/octet-stream'],
      ['1k', 'application/octet-stream'],
    ])('/static/%s has Content-Type %s', async (name, type) => {
      const res = await call(base, `/static/${name}`);
      expect(res.headers['content-type']).toBe(type);
    });

    it('answers sizes over 64 MiB with 400 and unreadable names with 404', async () => {
      expect((await call(base, '/static/65m')).status).toBe(400);
      expect((await call(base, `/static/${64 * 1024 * 1024 + 1}`)).status).toBe(400);
      expect((await call(base, '/static/big.txt')).status).toBe(404);
      expect((await call(base, '/static/1x')).status).toBe(404);
    });

    it('serves the 64 MiB maximum', async () => {
      const res = await request(`${base}/static/64m`, { method: 'HEAD' });
      await res.body.dump();
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-length']).toBe(String(64 * 1024 * 1024));
    });

    it('answers If-None-Match (exact, weak and *) and If-Modified-Since with 304, and counts them', async () => {
      origin.reset();
      const first = await call(base, '/static/4k.txt');
      const etag = String(first.headers['etag']);
      const lastModified = String(first.headers['last-modified']);
      const exact = await call(base, '/static/4k.txt', { headers: { 'if-none-match': etag } });
      expect(exact.status).toBe(304);
      expect(exact.headers['etag']).toBe(etag);
      expect(exact.headers['content-length']).toBeUndefined();
      expect((await call(base, '/static/4k.txt', { headers: { 'if-none-match': `W/${etag}` } })).status).toBe(304);
      expect((await call(base, '/static/4k.txt', { headers: { 'if-none-match': '*' } })).status).toBe(304);
      expect((await call(base, '/static/4k.txt', { headers: { 'if-modified-since': lastModified } })).status).toBe(304);
      expect((await call(base, '/static/4k.txt', { headers: { 'if-none-match': '"other"' } })).status).toBe(200);
      const stale = new Date(Date.parse(lastModified) - 1000).toUTCString();
      expect((await call(base, '/static/4k.txt', { headers: { 'if-modified-since': stale } })).status).toBe(200);
      expect(origin.stats().conditional304).toBe(4);
    });

    it('lets etag and lm switches override the static validators', async () => {
      const res = await call(base, '/static/1k?etag=%22mine%22&lm=1000', { headers: { 'if-none-match': '"mine"' } });
      expect(res.status).toBe(304);
      expect(res.headers['last-modified']).toBe(new Date(1_000_000).toUTCString());
    });
  });

  describe('HEAD', () => {
    it.each(['/', '/api/thing', '/static/16k.txt'])('HEAD %s returns the GET headers without a body', async (path) => {
      const get = await call(base, path);
      const head = await call(base, path, { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.body.length).toBe(0);
      expect(head.headers['content-length']).toBe(get.headers['content-length']);
      expect(head.headers['content-type']).toBe(get.headers['content-type']);
      expect(head.headers['etag']).toBe(get.headers['etag']);
    });
  });

  describe('control API', () => {
    it('counts every request by path and query, but never /__origin requests', async () => {
      await call(base, '/__origin/reset', { method: 'POST' });
      await call(base, '/a?x=1');
      await call(base, '/a?x=1');
      await call(base, '/a');
      await call(base, '/static/1k');
      await call(base, '/x?status=abc');
      await call(base, '/__origin/stats');
      const res = await request(`${base}/__origin/stats`);
      expect(res.headers['cache-control']).toBe('no-store');
      const stats = (await res.body.json()) as Record<string, unknown>;
      expect(stats).toEqual({
        requests: 5,
        byPath: { '/a?x=1': 2, '/a': 1, '/static/1k': 1, '/x?status=abc': 1 },
        conditional304: 0,
        inFlight: 0,
      });
      expect(origin.stats()).toEqual(stats);
    });

    it('reset zeroes the counters', async () => {
      await call(base, '/a');
      const res = await call(base, '/__origin/reset', { method: 'POST' });
      expect(res.status).toBe(200);
      expect(origin.stats()).toEqual({ requests: 0, byPath: {}, conditional304: 0, inFlight: 0 });
      expect((await call(base, '/__origin/reset')).status).toBe(405);
    });

    it('error mode answers every request with that status and no-store, until ok mode', async () => {
      const set = await call(base, '/__origin/mode', { method: 'POST', body: '{"mode":"error","status":503}' });
      expect(set.status).toBe(200);
      expect(JSON.parse(set.body.toString())).toEqual({ mode: 'error', status: 503 });
      for (const path of ['/a?max_age=60', '/static/1k', '/']) {
        const res = await call(base, path);
        expect(res.status).toBe(503);
        expect(res.headers['cache-control']).toBe('no-store');
      }
      expect(JSON.parse((await call(base, '/__origin/mode')).body.toString())).toEqual({ mode: 'error', status: 503 });
      expect((await call(base, '/__origin/stats')).status).toBe(200);
      await call(base, '/__origin/mode', { method: 'POST', body: '{"mode":"ok"}' });
      expect((await call(base, '/a')).status).toBe(200);
    });

    it('hang mode holds every request but the control API still answers', async () => {
      origin.reset();
      await call(base, '/__origin/mode', { method: 'POST', body: '{"mode":"hang"}' });
      const abort = new AbortController();
      const pending = call(base, '/static/1k', { signal: abort.signal });
      await waitFor(() => origin.stats().inFlight === 1, 'the held request');
      const stats = JSON.parse((await call(base, '/__origin/stats')).body.toString()) as { inFlight: number; requests: number };
      expect(stats).toMatchObject({ inFlight: 1, requests: 1 });
      abort.abort();
      await expect(pending).rejects.toThrow();
      await call(base, '/__origin/mode', { method: 'POST', body: '{"mode":"ok"}' });
      await waitFor(() => origin.stats().inFlight === 0, 'the aborted request to leave');
    });

    it.each([
      ['not json', 'not JSON'],
      ['{"mode":"broken"}', 'expected {"mode":"ok"}'],
      ['{"mode":"error"}', 'integer 400-599'],
      ['{"mode":"error","status":200}', 'integer 400-599'],
    ])('rejects the mode body %s with 400', async (body, problem) => {
      const res = await call(base, '/__origin/mode', { method: 'POST', body });
      expect(res.status).toBe(400);
      expect((JSON.parse(res.body.toString()) as { message: string }).message).toContain(problem);
    });

    it('setMode rejects an invalid mode in code too', () => {
      expect(() => origin.setMode({ mode: 'error', status: 42 })).toThrow(OutpostError);
    });

    it('answers unknown control paths with 404', async () => {
      const res = await call(base, '/__origin/nothing');
      expect(res.status).toBe(404);
      expect(origin.stats().byPath['/__origin/nothing']).toBeUndefined();
    });
  });
});

describe('demo origin with the latency model', () => {
  it('delays requests by the band it picks, lets delay= override it and never delays /__origin', async () => {
    const origin = await startDemoOrigin({ latency: [{ p: 100, minMs: 120, maxMs: 130 }] });
    try {
      let started = Date.now();
      await call(origin.url, '/modelled');
      expect(Date.now() - started).toBeGreaterThanOrEqual(115);
      started = Date.now();
      await call(origin.url, '/static/1k');
      expect(Date.now() - started).toBeGreaterThanOrEqual(115);
      started = Date.now();
      await call(origin.url, '/overridden?delay=0');
      expect(Date.now() - started).toBeLessThan(100);
      started = Date.now();
      await call(origin.url, '/__origin/stats');
      expect(Date.now() - started).toBeLessThan(100);
    } finally {
      await origin.close();
    }
  });

  it('shows delayed requests as in flight', async () => {
    const origin = await startDemoOrigin({ latency: [{ p: 100, minMs: 300, maxMs: 300 }] });
    try {
      const pending = call(origin.url, '/wait');
      await waitFor(() => origin.stats().inFlight === 1, 'the delayed request');
      expect((await pending).status).toBe(200);
      await waitFor(() => origin.stats().inFlight === 0, 'the request to finish');
    } finally {
      await origin.close();
    }
  });
});

describe('demo origin lifecycle', () => {
  it('rejects invalid options with CONFIG_INVALID naming the setting', async () => {
    await expect(startDemoOrigin({ port: 70000 })).rejects.toThrow(/origin port/);
    await expect(startDemoOrigin({ host: '' })).rejects.toThrow(/origin host/);
    await expect(startDemoOrigin({ latency: [{ p: 50, minMs: 5, maxMs: 1 }] })).rejects.toThrow(/latency/);
  });

  it('reports a port that is taken as CONFIG_INVALID', async () => {
    const first = await startDemoOrigin();
    try {
      await expect(startDemoOrigin({ port: first.port })).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    } finally {
      await first.close();
    }
  });

  it('close() ends hung, delayed and idle keep-alive connections promptly', async () => {
    const origin = await startDemoOrigin();
    const hung = call(origin.url, '/h?hang=1');
    const delayed = call(origin.url, '/d?delay=60000');
    const idle = await request(`${origin.url}/idle`);
    await idle.body.dump();
    await waitFor(() => origin.stats().inFlight === 2, 'both held requests');
    // Attach the expectations first: the held requests fail while close() runs.
    const hungFails = expect(hung).rejects.toThrow();
    const delayedFails = expect(delayed).rejects.toThrow();
    const started = Date.now();
    await origin.close();
    expect(Date.now() - started).toBeLessThan(1000);
    await hungFails;
    await delayedFails;
    await expect(call(origin.url, '/after')).rejects.toThrow();
  });

  it('close(graceMs) lets a busy request finish within the grace period', async () => {
    const origin = await startDemoOrigin();
    const busy = call(origin.url, '/b?delay=100');
    await waitFor(() => origin.stats().inFlight === 1, 'the busy request');
    await origin.close(2000);
    expect((await busy).status).toBe(200);
  });
});
