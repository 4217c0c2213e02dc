// The demo origin: seed 004's JSON API, deterministic static files, query switches for misbehaving on
// purpose, the simulated-latency model and a small control API under /__origin/. Benchmarks put nginx,
// Varnish and Outpost in front of it, so the common path builds one header array and writes once.

import http from 'node:http';
import { brotliCompressSync, gzipSync } from 'node:zlib';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { OutpostError, toOutpostError } from '../errors.ts';
import { isNotModified, readConditions } from './conditional.ts';
import { HLS_PLAYLIST_TYPE, HLS_SEGMENT_TYPE, livePlaylist, segmentBody } from './hls.ts';
import { INDEX_PAGE } from './index-page.ts';
import { pickLatencyMs, validateLatency } from './latency.ts';
import type { LatencyBand } from './latency.ts';
import { parseStaticName, staticBody } from './static-content.ts';
import { NO_SWITCHES, parseSwitches } from './switches.ts';
import type { Switches } from './switches.ts';

export type { LatencyBand } from './latency.ts';
export { SEED_LATENCY, parseLatency } from './latency.ts';

export interface DemoOriginOptions {
  /** 0 = an ephemeral port (default). */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default false (no simulated latency). */
  latency?: readonly LatencyBand[] | false;
}

export interface OriginStats {
  requests: number;
  /** Keyed by path + query exactly as received. */
  byPath: Record<string, number>;
  conditional304: number;
  inFlight: number;
}

export type OriginMode = { mode: 'ok' } | { mode: 'error'; status: number } | { mode: 'hang' };

export interface DemoOrigin {
  readonly port: number;
  readonly url: string;
  stats(): OriginStats;
  reset(): void;
  setMode(m: OriginMode): void;
  /** Stops listening and closes every connection; with graceMs, busy connections get that long to finish. */
  close(graceMs?: number): Promise<void>;
}

const KEEP_ALIVE_TIMEOUT_MS = 65_000;
// byPath stops taking new keys here so that a cache-busting benchmark cannot grow it without bound.
const MAX_TRACKED_PATHS = 100_000;
const MAX_CONTROL_BODY_BYTES = 64 * 1024;

const JSON_TYPE = 'application/json';
const HTML_TYPE = 'text/html; charset=utf-8';
const JSON_MAX_AGE = 10;
const STATIC_MAX_AGE = 3600;
const INDEX_MAX_AGE = 10;
const NO_STORE = 'no-store';
const SET_COOKIE = 'session=abc; Path=/';
const READ_ONLY = 'GET, HEAD';
const API_METHODS = 'GET, HEAD, POST, PUT, DELETE, PATCH';

/** What a route produced, before the switches shape the response. */
interface Reply {
  readonly body: Buffer;
  readonly contentType: string;
  /** undefined: the answer is never cacheable (no-store) and max_age does not apply. */
  readonly maxAge: number | undefined;
  readonly etag: string | undefined;
  readonly lastModified: string | undefined;
  readonly lastModifiedSec: number | undefined;
}

const INDEX_REPLY: Reply = {
  body: INDEX_PAGE,
  contentType: HTML_TYPE,
  maxAge: INDEX_MAX_AGE,
  etag: undefined,
  lastModified: undefined,
  lastModifiedSec: undefined,
};

// Cache-Control strings for the defaults, so the common path concatenates nothing.
const CACHE_CONTROL_FOR: ReadonlyMap<number, string> = new Map(
  [JSON_MAX_AGE, STATIC_MAX_AGE].map((n) => [n, `public, max-age=${n}`]),
);

export async function startDemoOrigin(opts: DemoOriginOptions = {}): Promise<DemoOrigin> {
  const port = opts.port ?? 0;
  const host = opts.host ?? '127.0.0.1';
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new OutpostError('CONFIG_INVALID', `origin port: expected an integer 0-65535, got ${String(port)}`);
  }
  if (typeof host !== 'string' || host === '') {
    throw new OutpostError('CONFIG_INVALID', 'origin host: expected a host name or address, got an empty value');
  }
  const latency = opts.latency === undefined || opts.latency === false ? false : validateLatency(opts.latency);

  const startSec = Math.floor(Date.now() / 1000);
  const startDate = new Date(startSec * 1000).toUTCString();

  let requests = 0;
  let conditional304 = 0;
  let inFlight = 0;
  const byPath = new Map<string, number>();
  let mode: OriginMode = { mode: 'ok' };
  let errorBody = Buffer.alloc(0);

  const decInFlight = (): void => {
    inFlight--;
  };

  function onRequest(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? '/';
    if (url.startsWith('/__origin/')) {
      control(req, res, url);
      return;
    }
    requests++;
    const seen = byPath.get(url);
    if (seen !== undefined) byPath.set(url, seen + 1);
    else if (byPath.size < MAX_TRACKED_PATHS) byPath.set(url, 1);
    inFlight++;

    const modeNow = mode;
    if (modeNow.mode === 'hang') {
      res.once('close', decInFlight);
      return;
    }
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    let sw = NO_SWITCHES;
    if (q >= 0 && q < url.length - 1) {
      try {
        sw = parseSwitches(url.slice(q + 1));
      } catch (err) {
        sendError(res, toOutpostError(err, 'BAD_REQUEST'));
        inFlight--;
        return;
      }
    }
    if (sw.hang) {
      res.once('close', decInFlight);
      return;
    }
    const delayMs = sw.delayMs ?? (latency === false ? 0 : pickLatencyMs(latency));
    const method = req.method ?? 'GET';
    const readsBody = method !== 'GET' && method !== 'HEAD';

    if (delayMs === 0 && !readsBody) {
      answer(req, res, method, path, sw, modeNow);
      // slow_body is still writing; everything else is done.
      if (res.writableEnded) inFlight--;
      else res.once('close', decInFlight);
      return;
    }

    let timer: NodeJS.Timeout | undefined;
    res.once('close', () => {
      inFlight--;
      if (timer !== undefined) clearTimeout(timer);
    });
    const afterDelay = (): void => {
      timer = undefined;
      if (!res.destroyed) answer(req, res, method, path, sw, modeNow);
    };
    const wait = (): void => {
      if (delayMs === 0) afterDelay();
      else timer = setTimeout(afterDelay, delayMs);
    };
    if (readsBody) {
      // Bodies are discarded; answering only after the last byte keeps the connection reusable.
      req.once('end', wait);
      req.resume();
    } else {
      wait();
    }
  }

  function answer(req: IncomingMessage, res: ServerResponse, method: string, path: string, sw: Switches, m: OriginMode): void {
    try {
      if (m.mode === 'error') {
        res.writeHead(m.status, ['Content-Type', JSON_TYPE, 'Cache-Control', NO_STORE, 'Content-Length', String(errorBody.length)]);
        res.end(method === 'HEAD' ? undefined : errorBody);
        return;
      }
      const isRead = method === 'GET' || method === 'HEAD';
      if (path === '/') {
        if (!isRead) return notAllowed(res, READ_ONLY);
        return send(req, res, method, INDEX_REPLY, sw);
      }
      if (path.startsWith('/static/')) {
        if (!isRead) return notAllowed(res, READ_ONLY);
        const name = parseStaticName(path.slice('/static/'.length));
        if (name.kind === 'malformed') {
          return sendError(res, new OutpostError('NOT_FOUND', `no static file ${path}; expected /static/<size>[.<ext>] like /static/16k.txt`));
        }
        if (name.kind === 'too-large') {
          return sendError(res, new OutpostError('BAD_REQUEST', `static size ${name.size} bytes is over the 64 MiB limit`));
        }
        const file = staticBody(name.size);
        return send(req, res, method, {
          body: file.body,
          contentType: name.contentType,
          maxAge: STATIC_MAX_AGE,
          etag: file.etag,
          lastModified: startDate,
          lastModifiedSec: startSec,
        }, sw);
      }
      if (path.startsWith('/hls/') && isRead) {
        // Live HLS: the playlist changes every segment (max-age 1), segments never change.
        const m = /^\/hls\/([A-Za-z0-9_-]+)(?:\.m3u8|_(\d+)\.ts)$/.exec(path);
        if (!m) return sendError(res, new OutpostError('NOT_FOUND', `no HLS resource ${path}; try /hls/colorbar.m3u8`));
        if (m[2] === undefined) {
          const body = Buffer.from(livePlaylist(m[1]!));
          return send(req, res, method, { body, contentType: HLS_PLAYLIST_TYPE, maxAge: 1, etag: undefined, lastModified: undefined, lastModifiedSec: undefined }, sw);
        }
        return send(req, res, method, { body: segmentBody(Number(m[2])), contentType: HLS_SEGMENT_TYPE, maxAge: 3600, etag: undefined, lastModified: undefined, lastModifiedSec: undefined }, sw);
      }
      if (isRead) {
        const body = Buffer.from(`{"service":"api","value":42,"request":${JSON.stringify(path)}}`);
        return send(req, res, method, { body, contentType: JSON_TYPE, maxAge: JSON_MAX_AGE, etag: undefined, lastModified: undefined, lastModifiedSec: undefined }, sw);
      }
      if (method === 'POST' || method === 'PUT' || method === 'DELETE' || method === 'PATCH') {
        const body = Buffer.from(`{"service":"api","method":"${method}","request":${JSON.stringify(path)}}`);
        return send(req, res, method, { body, contentType: JSON_TYPE, maxAge: undefined, etag: undefined, lastModified: undefined, lastModifiedSec: undefined }, sw);
      }
      notAllowed(res, API_METHODS);
    } catch (err) {
      // A bug here must cost one response, not the process.
      if (!res.headersSent) sendError(res, toOutpostError(err));
      else res.destroy();
    }
  }

  function send(req: IncomingMessage, res: ServerResponse, method: string, reply: Reply, sw: Switches): void {
    let status = sw.status ?? 200;
    const etag = sw.etag ?? reply.etag;
    const lastModified = sw.lastModified ?? reply.lastModified;
    const lastModifiedSec = sw.lastModifiedSec ?? reply.lastModifiedSec;
    const isRead = method === 'GET' || method === 'HEAD';
    if (status === 200 && isRead && isNotModified(readConditions(req.rawHeaders), etag, lastModifiedSec)) {
      status = 304;
      conditional304++;
    }
    // 304 carries the validators and caching headers but no content metadata.
    const headers: string[] = status === 304 ? [] : ['Content-Type', reply.contentType];
    if (sw.cacheControl !== undefined) {
      if (sw.cacheControl !== '') headers.push('Cache-Control', sw.cacheControl);
    } else if (reply.maxAge === undefined) {
      headers.push('Cache-Control', NO_STORE);
    } else {
      const maxAge = sw.maxAge ?? reply.maxAge;
      headers.push('Cache-Control', CACHE_CONTROL_FOR.get(maxAge) ?? `public, max-age=${maxAge}`);
    }
    if (sw !== NO_SWITCHES) {
      if (sw.vary !== undefined) headers.push('Vary', sw.vary);
      if (sw.surrogateKey !== undefined && sw.cacheTag !== undefined) headers.push('Surrogate-Key', sw.surrogateKey, 'Cache-Tag', sw.cacheTag);
      if (sw.setCookie) headers.push('Set-Cookie', SET_COOKIE);
      if (sw.location !== undefined) headers.push('Location', sw.location, 'Content-Location', sw.location);
    }
    if (etag !== undefined) headers.push('ETag', etag);
    if (lastModified !== undefined) headers.push('Last-Modified', lastModified);
    let content = reply.body;
    if (sw.contentEncoding !== undefined && status !== 304) {
      // A pre-compressed origin: the coding is applied whatever the client accepts.
      content = sw.contentEncoding === 'gzip' ? gzipSync(content) : brotliCompressSync(content);
      headers.push('Content-Encoding', sw.contentEncoding);
    }
    if (sw.headers !== undefined) addCustomHeaders(headers, sw.headers);

    const noContent = status === 204 || status === 205 || status === 304;
    const body = noContent ? undefined : content;
    if (status === 205) headers.push('Content-Length', '0');
    else if (body !== undefined && !sw.chunked) headers.push('Content-Length', String(body.length));
    res.writeHead(status, headers);

    if (body === undefined || method === 'HEAD') {
      res.end();
      return;
    }
    if (!sw.chunked && sw.slowBodyMs === undefined) {
      res.end(body);
      return;
    }
    const half = body.length >>> 1;
    if (half > 0) res.write(body.subarray(0, half));
    if (sw.slowBodyMs === undefined) {
      res.end(body.subarray(half));
      return;
    }
    const timer = setTimeout(() => {
      if (!res.destroyed) res.end(body.subarray(half));
    }, sw.slowBodyMs);
    res.once('close', () => clearTimeout(timer));
  }

  function control(req: IncomingMessage, res: ServerResponse, url: string): void {
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const method = req.method ?? 'GET';
    switch (path) {
      case '/__origin/stats':
        if (method !== 'GET' && method !== 'HEAD') return notAllowed(res, READ_ONLY);
        return sendJson(res, method, 200, stats());
      case '/__origin/reset':
        if (method !== 'POST') return notAllowed(res, 'POST');
        reset();
        return afterBody(req, res, () => sendJson(res, method, 200, { reset: true }));
      case '/__origin/mode':
        if (method === 'GET' || method === 'HEAD') return sendJson(res, method, 200, mode);
        if (method !== 'POST') return notAllowed(res, 'GET, HEAD, POST');
        return readBody(req, res, (text) => {
          let value: unknown;
          try {
            value = JSON.parse(text);
          } catch {
            return sendError(res, new OutpostError('BAD_REQUEST', 'origin mode: the body is not JSON'));
          }
          try {
            setMode(toMode(value));
          } catch (err) {
            return sendError(res, toOutpostError(err, 'BAD_REQUEST'));
          }
          sendJson(res, method, 200, mode);
        });
      default:
        return sendError(res, new OutpostError('NOT_FOUND', `no control endpoint ${path}; try /__origin/stats, /__origin/reset or /__origin/mode`));
    }
  }

  function stats(): OriginStats {
    return { requests, byPath: Object.fromEntries(byPath), conditional304, inFlight };
  }

  function reset(): void {
    requests = 0;
    conditional304 = 0;
    byPath.clear();
  }

  function setMode(m: OriginMode): void {
    const next = toMode(m);
    mode = next;
    errorBody = next.mode === 'error' ? Buffer.from(JSON.stringify({ error: 'origin in error mode', status: next.status })) : Buffer.alloc(0);
  }

  const server = http.createServer(
    { keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS, headersTimeout: KEEP_ALIVE_TIMEOUT_MS + 1000, requireHostHeader: false },
    onRequest,
  );
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      reject(new OutpostError('CONFIG_INVALID', `origin: cannot listen on ${host}:${port}: ${err.message}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  // After start, a socket error must not become an unhandled 'error' event.
  server.on('error', () => {});

  const address = server.address();
  const boundPort = typeof address === 'object' && address !== null ? address.port : port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${boundPort}`;
  let closing: Promise<void> | undefined;

  return {
    port: boundPort,
    url,
    stats,
    reset,
    setMode,
    close(graceMs = 0): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        let force: NodeJS.Timeout | undefined;
        server.close(() => {
          if (force !== undefined) clearTimeout(force);
          resolve();
        });
        if (graceMs > 0) force = setTimeout(() => server.closeAllConnections(), graceMs);
        else server.closeAllConnections();
      });
      return closing;
    },
  };
}

function toMode(value: unknown): OriginMode {
  if (typeof value === 'object' && value !== null && 'mode' in value) {
    const m: { mode: unknown; status?: unknown } = value;
    if (m.mode === 'ok' || m.mode === 'hang') return { mode: m.mode };
    if (m.mode === 'error') {
      const status = m.status;
      if (typeof status === 'number' && Number.isInteger(status) && status >= 400 && status <= 599) return { mode: 'error', status };
      throw new OutpostError('BAD_REQUEST', `origin mode error: expected "status" to be an integer 400-599, got ${JSON.stringify(status) ?? 'nothing'}`);
    }
  }
  throw new OutpostError('BAD_REQUEST', `origin mode: expected {"mode":"ok"}, {"mode":"error","status":503} or {"mode":"hang"}, got ${JSON.stringify(value)}`);
}

/** h= headers replace generated ones of the same name; repeats of one name are all kept. */
function addCustomHeaders(headers: string[], custom: readonly string[]): void {
  const names = new Set<string>();
  for (let i = 0; i < custom.length; i += 2) names.add((custom[i] ?? '').toLowerCase());
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    if (names.has((headers[i] ?? '').toLowerCase())) headers.splice(i, 2);
  }
  headers.push(...custom);
}

function sendJson(res: ServerResponse, method: string, status: number, value: unknown): void {
  const body = Buffer.from(JSON.stringify(value));
  res.writeHead(status, ['Content-Type', JSON_TYPE, 'Cache-Control', NO_STORE, 'Content-Length', String(body.length)]);
  res.end(method === 'HEAD' ? undefined : body);
}

function sendError(res: ServerResponse, err: OutpostError, extra: readonly string[] = []): void {
  const body = Buffer.from(JSON.stringify(err.toJSON()));
  res.writeHead(err.status, ['Content-Type', JSON_TYPE, 'Cache-Control', NO_STORE, ...extra, 'Content-Length', String(body.length)]);
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

function notAllowed(res: ServerResponse, allow: string): void {
  sendError(res, new OutpostError('METHOD_NOT_ALLOWED', `${res.req.method ?? ''} is not allowed here; allowed: ${allow}`), ['Allow', allow]);
}

function afterBody(req: IncomingMessage, res: ServerResponse, then: () => void): void {
  if (req.complete) return then();
  req.once('end', then);
  req.resume();
}

function readBody(req: IncomingMessage, res: ServerResponse, then: (text: string) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (chunk: Buffer) => {
    if (res.headersSent) return; // over the limit: drain and drop the rest
    size += chunk.length;
    if (size > MAX_CONTROL_BODY_BYTES) {
      sendError(res, new OutpostError('BODY_TOO_LARGE', `control bodies are limited to ${MAX_CONTROL_BODY_BYTES} bytes`));
      return;
    }
    chunks.push(chunk);
  });
  req.once('end', () => {
    if (!res.headersSent) then(Buffer.concat(chunks).toString('utf8'));
  });
}
