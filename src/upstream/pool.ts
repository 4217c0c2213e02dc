// An origin pool: keep-alive connections to each peer (undici), peers chosen by the balancer
// (src/balance: weighted round robin by default, or least connections, consistent hashing, bounded
// loads; passive and optional active health), and a retry on another peer when a connection fails
// before any response byte — for idempotent requests only, as nginx's proxy_next_upstream does by default.
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { Pool, buildConnector, errors as undiciErrors } from 'undici';
import { Balancer, type FailureKind, type Member } from '../balance/balancer.ts';
import { compileHashKey, type KeyFn } from '../balance/key.ts';
import type { PoolConfig } from '../config/schema.ts';
import { OutpostError } from '../errors.ts';
import type { EdgeMetrics } from '../metrics/metrics.ts';

export type UpstreamHeaders = Record<string, string | string[]>;

export interface UpstreamRequest {
  readonly method: string;
  /** Path with query, as sent on the request line. */
  readonly path: string;
  readonly headers: UpstreamHeaders;
  /** The client's Host (without default port); used when the pool's host policy is 'preserve'. */
  readonly host: string;
  readonly body?: Readable | null;
  readonly signal?: AbortSignal;
}

export interface UpstreamResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Readable;
  readonly peer: string;
  /** ms from dispatch until the response headers arrived. */
  readonly responseMs: number;
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/** Errors meaning the request never reached the origin, so trying another peer is safe. */
export const CONNECT_FAILURES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET']);

export function errorCode(err: unknown): string {
  const e = err as { code?: unknown; cause?: { code?: unknown } };
  if (typeof e?.code === 'string' && e.code !== 'UND_ERR_SOCKET') return e.code;
  if (typeof e?.cause?.code === 'string') return e.cause.code;
  return typeof e?.code === 'string' ? e.code : 'UNKNOWN';
}

export function mapUpstreamError(err: unknown): OutpostError {
  if (err instanceof OutpostError) return err;
  const code = errorCode(err);
  const message = `origin request failed: ${code} ${(err as Error)?.message ?? ''}`.trim();
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
    return new OutpostError('UPSTREAM_TIMEOUT', message, { cause: err });
  }
  if (CONNECT_FAILURES.has(code)) return new OutpostError('UPSTREAM_CONNECT', message, { cause: err });
  if (err instanceof undiciErrors.RequestAbortedError) return new OutpostError('UPSTREAM_ABORTED', message, { cause: err });
  return new OutpostError('UPSTREAM_PROTOCOL', message, { cause: err });
}

/** How passive health counts an error code: timeouts, failed connections, anything else. */
export function failureKind(code: string): FailureKind {
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') return 'timeout';
  return CONNECT_FAILURES.has(code) ? 'connect' : 'reset';
}

/** The client address the edge appended to X-Forwarded-For (for hashKey: ip). */
function forwardedFor(headers: UpstreamHeaders): string {
  const v = headers['x-forwarded-for'];
  const s = Array.isArray(v) ? v.join(', ') : (v ?? '');
  const comma = s.lastIndexOf(',');
  return (comma < 0 ? s : s.slice(comma + 1)).trim();
}

export class UpstreamPool {
  readonly name: string;
  readonly balancer: Balancer<Pool>;
  private readonly config: PoolConfig;
  private readonly extraHeaders: ReadonlyArray<readonly [string, string]>;
  private readonly keyOf: KeyFn | undefined;

  constructor(name: string, config: PoolConfig, metrics?: EdgeMetrics, log?: Logger) {
    this.name = name;
    this.config = config;
    this.extraHeaders = Object.entries(config.headers).map(([k, v]) => [k.toLowerCase(), v] as const);
    this.keyOf = config.policy === 'chash' || config.policy === 'bounded' ? compileHashKey(config.hashKey) : undefined;
    const connector = buildConnector({ timeout: config.connectTimeout });
    const connect: buildConnector.connector = (opts, cb) => {
      const t0 = performance.now();
      connector(opts, (err, socket) => {
        if (!err) metrics?.upstreamConnect.observe({ pool: name }, (performance.now() - t0) / 1000);
        // The callback's overloads differ only in which argument is null.
        (cb as (e: Error | null, s: typeof socket) => void)(err, socket);
      });
    };
    // A peer listed twice counts twice, as it did under plain round robin.
    const weights = new Map<string, number>();
    for (const peer of config.peers) {
      const origin = new URL(peer).origin;
      weights.set(origin, (weights.get(origin) ?? 0) + (config.weights[peer] ?? 1));
    }
    this.balancer = new Balancer<Pool>(
      {
        policy: config.policy,
        loadFactor: config.loadFactor,
        healthCheck: config.healthCheck?.enabled ? config.healthCheck : undefined,
        passive: config.passive,
        create: (m) =>
          new Pool(m.url.origin, {
            connections: config.connections,
            keepAliveTimeout: config.keepAliveTimeout,
            keepAliveMaxTimeout: Math.max(config.keepAliveTimeout, 1000),
            headersTimeout: config.readTimeout,
            bodyTimeout: config.readTimeout,
            connect,
            pipelining: 1,
          }),
        destroy: (p) => p.close().catch(() => p.destroy()),
        ...(log ? { log: log.child({ pool: name }) } : {}),
      },
      [...weights].map(([url, weight]) => ({ name: url, url, weight })),
    );
  }

  /** Sends the request to a peer, trying others when a connection fails (idempotent requests only). */
  async request(req: UpstreamRequest): Promise<UpstreamResponse> {
    const retryable = IDEMPOTENT.has(req.method) && !req.body;
    const attempts = retryable ? this.config.retries + 1 : 1;
    const key = this.keyOf ? this.keyOf({ url: req.path, host: req.host, headers: req.headers, ip: this.config.hashKey === 'ip' ? forwardedFor(req.headers) : '' }) : '';
    let tried: Set<Member<Pool>> | undefined;
    let lastError: unknown;
    for (let i = 0; i < attempts; i++) {
      const peer = this.balancer.acquire(key, tried);
      if (!peer) break;
      const headers: UpstreamHeaders = { ...req.headers };
      headers.host = this.config.host === 'preserve' ? req.host : this.config.host === 'peer' ? peer.url.host : this.config.host;
      for (const [k, v] of this.extraHeaders) headers[k] = v;
      const t0 = performance.now();
      try {
        const res = await peer.resource.request({
          method: req.method as 'GET',
          path: req.path,
          headers,
          body: req.body ?? null,
          signal: req.signal ?? null,
        });
        this.balancer.status(peer, res.statusCode);
        // In flight until the body is done: least connections and bounded loads count it.
        res.body.once('close', () => this.balancer.release(peer));
        return {
          status: res.statusCode,
          headers: res.headers,
          body: res.body,
          peer: peer.url.origin,
          responseMs: performance.now() - t0,
        };
      } catch (err) {
        this.balancer.release(peer);
        lastError = err;
        if (req.signal?.aborted) break;
        const code = errorCode(err);
        this.balancer.failure(peer, failureKind(code), code);
        if (!CONNECT_FAILURES.has(code)) break;
        (tried ??= new Set()).add(peer);
      }
    }
    if (lastError === undefined) throw new OutpostError('UPSTREAM_CONNECT', `pool ${this.name} has no peer left to try`);
    throw mapUpstreamError(lastError);
  }

  async close(): Promise<void> {
    await this.balancer.close();
  }
}
