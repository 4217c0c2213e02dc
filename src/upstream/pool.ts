// An origin pool: keep-alive connections to each peer (undici), round robin between peers, and a
// retry on the next peer when a connection fails before any response byte — for idempotent
// requests only, as nginx's proxy_next_upstream does by default.
import type { Readable } from 'node:stream';
import { Pool, buildConnector, errors as undiciErrors } from 'undici';
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
const CONNECT_FAILURES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET']);

function errorCode(err: unknown): string {
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

interface Peer {
  readonly url: URL;
  readonly hostHeader: string;
  readonly pool: Pool;
}

export class UpstreamPool {
  readonly name: string;
  private readonly peers: Peer[];
  private readonly config: PoolConfig;
  private readonly extraHeaders: ReadonlyArray<readonly [string, string]>;
  private next = 0;

  constructor(name: string, config: PoolConfig, metrics?: EdgeMetrics) {
    this.name = name;
    this.config = config;
    this.extraHeaders = Object.entries(config.headers).map(([k, v]) => [k.toLowerCase(), v] as const);
    this.peers = config.peers.map((peer) => {
      const url = new URL(peer);
      const connector = buildConnector({ timeout: config.connectTimeout });
      const connect: buildConnector.connector = (opts, cb) => {
        const t0 = performance.now();
        connector(opts, (err, socket) => {
          if (!err) metrics?.upstreamConnect.observe({ pool: name }, (performance.now() - t0) / 1000);
          // The callback's overloads differ only in which argument is null.
          (cb as (e: Error | null, s: typeof socket) => void)(err, socket);
        });
      };
      return {
        url,
        hostHeader: url.host,
        pool: new Pool(url.origin, {
          connections: config.connections,
          keepAliveTimeout: config.keepAliveTimeout,
          keepAliveMaxTimeout: Math.max(config.keepAliveTimeout, 1000),
          headersTimeout: config.readTimeout,
          bodyTimeout: config.readTimeout,
          connect,
          pipelining: 1,
        }),
      };
    });
  }

  /** Sends the request to a peer, trying the next ones when a connection fails (idempotent requests only). */
  async request(req: UpstreamRequest): Promise<UpstreamResponse> {
    const retryable = IDEMPOTENT.has(req.method) && !req.body;
    const attempts = retryable ? this.config.retries + 1 : 1;
    let lastError: unknown;
    for (let i = 0; i < attempts; i++) {
      const peer = this.peers[this.next++ % this.peers.length]!;
      const headers: UpstreamHeaders = { ...req.headers };
      headers.host = this.config.host === 'preserve' ? req.host : this.config.host === 'peer' ? peer.hostHeader : this.config.host;
      for (const [k, v] of this.extraHeaders) headers[k] = v;
      const t0 = performance.now();
      try {
        const res = await peer.pool.request({
          method: req.method as 'GET',
          path: req.path,
          headers,
          body: req.body ?? null,
          signal: req.signal ?? null,
        });
        return {
          status: res.statusCode,
          headers: res.headers,
          body: res.body,
          peer: peer.url.origin,
          responseMs: performance.now() - t0,
        };
      } catch (err) {
        lastError = err;
        if (!CONNECT_FAILURES.has(errorCode(err)) || req.signal?.aborted) break;
      }
    }
    throw mapUpstreamError(lastError);
  }

  async close(): Promise<void> {
    await Promise.all(this.peers.map((p) => p.pool.close().catch(() => p.pool.destroy())));
  }
}
