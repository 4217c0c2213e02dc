// The load balancer's request path: pick an edge, stream the request to it and its response back,
// and name the edge in a response header. An idempotent request without a body whose connection
// fails before any response byte is sent to another edge (lb.retries); nothing else is retried,
// since the edge may already have acted on it. A response cut off mid-body cuts the client's
// connection too, so that a truncated body is never mistaken for a whole one.
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Dispatcher, Pool } from 'undici';
import type { Balancer, Member } from '../balance/balancer.ts';
import type { KeyFn } from '../balance/key.ts';
import { errorResponse } from '../edge/driver.ts';
import { clientAddress } from '../edge/request.ts';
import { OutpostError } from '../errors.ts';
import { upstreamHeaders, type ForwardingOptions } from '../upstream/headers.ts';
import { CONNECT_FAILURES, errorCode, failureKind, mapUpstreamError } from '../upstream/pool.ts';
import type { LbMetrics } from './metrics.ts';

export interface ProxyOptions {
  readonly balancer: Balancer<Pool>;
  /** Absent unless the policy hashes. */
  readonly keyOf: KeyFn | undefined;
  readonly retries: number;
  /** Lower-case response header naming the serving edge; '' for none. */
  readonly servedBy: string;
  readonly forwarding: ForwardingOptions;
  readonly metrics: LbMetrics;
  readonly log: Logger;
  readonly draining: () => boolean;
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
/** Per-connection response headers Node sets itself (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer']);

function responseHeaders(h: IncomingHttpHeaders | Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const conn = h.connection;
  const listed = typeof conn === 'string' && conn !== 'keep-alive' && conn !== 'close' ? conn.toLowerCase().split(',').map((s) => s.trim()) : undefined;
  for (const name in h) {
    const v = h[name];
    if (v === undefined || HOP_BY_HOP.has(name) || listed?.includes(name)) continue;
    out[name] = v;
  }
  return out;
}

function hasBody(req: IncomingMessage): boolean {
  const cl = req.headers['content-length'];
  return (cl !== undefined && cl !== '0') || req.headers['transfer-encoding'] !== undefined;
}

export function createProxy(o: ProxyOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const { balancer, metrics, log } = o;

  const finish = (member: string, status: number | 'reset' | 'aborted', t0: number): void => {
    metrics.requests.inc({ member, status: String(status) });
    metrics.duration.observeFor(member, (performance.now() - t0) / 1000);
  };

  const fail = (res: ServerResponse, err: OutpostError, t0: number, method: string): void => {
    const out = errorResponse(err);
    const body = out.body as Buffer;
    res.writeHead(out.status, { ...out.headers, 'content-length': body.length });
    res.end(method === 'HEAD' ? undefined : body);
    finish('none', out.status, t0);
  };

  const health = (req: IncomingMessage, res: ServerResponse): void => {
    const up = balancer.availableCount;
    const total = balancer.members.list().length;
    const ok = !o.draining() && up > 0;
    const text = o.draining() ? 'draining\n' : `${ok ? 'ok' : 'no edge up'}: ${up}/${total} edges up\n`;
    res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
    res.end(req.method === 'HEAD' ? undefined : text);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const t0 = performance.now();
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    if (url === '/health' && (method === 'GET' || method === 'HEAD')) return health(req, res);
    const ip = clientAddress(req.socket.remoteAddress);
    const headers = upstreamHeaders(req.headers, { ip, scheme: 'http', httpVersion: req.httpVersion }, o.forwarding, 'pass');
    if (url.charCodeAt(0) !== 47 /* '/' */) return fail(res, new OutpostError('BAD_REQUEST', 'expected a request target starting with "/"'), t0, method);
    const host = req.headers.host ?? '';
    // Without one (HTTP/1.0), undici sends the edge's own.
    if (host) headers.host = host;
    const withBody = hasBody(req);
    const retryable = !withBody && IDEMPOTENT.has(method);
    const key = o.keyOf ? o.keyOf({ url, host, headers: req.headers, ip }) : '';

    // Aborts the edge request if the client goes away before its response is complete.
    const ac = new AbortController();
    let clientGone = false;
    res.once('close', () => {
      if (res.writableFinished) return;
      clientGone = true;
      ac.abort();
    });

    let tried: Set<Member<Pool>> | undefined;
    let lastError: unknown;
    for (let attempt = 0; attempt <= o.retries; attempt++) {
      const m = balancer.acquire(key, tried);
      if (m === undefined) break;
      let up: Dispatcher.ResponseData;
      try {
        up = await m.resource.request({ method: method as 'GET', path: url, headers, body: withBody ? req : null, signal: ac.signal });
      } catch (err) {
        balancer.release(m);
        if (clientGone) return;
        lastError = err;
        const code = errorCode(err);
        const kind = failureKind(code);
        balancer.failure(m, kind, code);
        metrics.failures.inc({ member: m.name, kind });
        if (!retryable || !CONNECT_FAILURES.has(code)) break;
        metrics.retries.inc({ member: m.name });
        log.debug({ member: m.name, code, url }, 'retrying on another edge');
        (tried ??= new Set()).add(m);
        continue;
      }
      if (balancer.status(m, up.statusCode)) metrics.failures.inc({ member: m.name, kind: 'status' });
      const out = responseHeaders(up.headers);
      if (o.servedBy) out[o.servedBy] = m.name;
      if (o.draining()) out.connection = 'close';
      res.writeHead(up.statusCode, out);
      // body.pipe(res) rather than stream.pipeline: pipeline makes and aborts an AbortController
      // per call, a DOMException each time, 6 % of the load balancer's CPU.
      const body = up.body;
      let done = false;
      const end = (err: unknown): void => {
        if (done) return;
        done = true;
        balancer.release(m);
        if (err !== undefined && !clientGone) {
          // The edge failed mid-body: cut the client's connection so the truncation shows.
          res.destroy();
          const code = errorCode(err);
          balancer.failure(m, 'reset', code);
          metrics.failures.inc({ member: m.name, kind: 'reset' });
          log.warn({ member: m.name, code, url }, 'edge response cut off');
        }
        if (clientGone) body.destroy();
        finish(m.name, err !== undefined ? 'reset' : clientGone ? 'aborted' : up.statusCode, t0);
      };
      body.on('error', end);
      res.once('close', () => end(undefined));
      body.pipe(res);
      return;
    }
    fail(res, lastError === undefined ? new OutpostError('NO_MEMBER', 'no edge to send the request to') : mapUpstreamError(lastError), t0, method);
    if (lastError !== undefined) log.warn({ code: errorCode(lastError), url }, 'request failed on every edge tried');
  };

  return (req, res) => {
    handle(req, res).catch((err: unknown) => {
      log.error({ err }, 'load balancer request failed');
      if (!res.headersSent) fail(res, new OutpostError('INTERNAL', (err as Error).message), performance.now(), req.method ?? 'GET');
      else res.destroy();
    });
  };
}
