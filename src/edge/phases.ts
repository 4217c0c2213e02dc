// The request phases, declared once. Types, validation of hook registrations and the diagram in
// docs/architecture.md all come from PHASES.
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { CacheOutcome } from '../cache/outcome.ts';

export const PHASES = ['rewrite', 'access', 'cache', 'upstream', 'header_filter', 'body_filter', 'log'] as const;
export type Phase = (typeof PHASES)[number];

/** Phases that accept hooks. `cache` and `upstream` are built in; hooks influence them through ctx. */
export const HOOK_PHASES = ['rewrite', 'access', 'header_filter', 'body_filter', 'log'] as const satisfies readonly Phase[];
export type HookPhase = (typeof HOOK_PHASES)[number];

/** A response about to be sent to the client. Header names are lower-case. */
export interface ResponseHead {
  status: number;
  headers: Record<string, string | string[]>;
}

/** What a phase answers when it ends the request early. */
export interface EarlyResponse {
  readonly status: number;
  readonly headers?: Readonly<Record<string, string | string[]>>;
  readonly body?: string | Buffer;
}

export interface Timings {
  /** process.hrtime.bigint() when the request arrived. */
  readonly start: bigint;
  /** ms spent connecting to the origin (undefined when a pooled connection was reused or no origin was asked). */
  upstreamConnectMs?: number;
  /** ms from sending the request to the origin until its response headers arrived. */
  upstreamResponseMs?: number;
}

/** Per-request state shared by the phases. Fields marked mutable may be changed by rewrite/access hooks. */
export interface RequestContext {
  readonly method: string;
  readonly scheme: 'http' | 'https';
  readonly httpVersion: string;
  readonly clientIp: string;
  /** Lower-case host without a default port. Mutable in rewrite. */
  host: string;
  /** Path without the query. Mutable in rewrite. */
  path: string;
  /** Raw query string without '?'. Mutable in rewrite. */
  query: string;
  /** Request headers (lower-case). Mutable in rewrite/access; what the origin receives. */
  readonly headers: IncomingHttpHeaders;
  /** Name of the upstream pool the request goes to. Mutable in rewrite/access. */
  pool: string;
  /** Set by the cache stage. */
  cacheKey?: string;
  cacheOutcome?: CacheOutcome;
  /** Why the cache was bypassed or the response not stored, when it was. */
  cacheDetail?: string;
  collapsed: boolean;
  /** Status the origin answered, when it was asked. */
  upstreamStatus?: number;
  readonly timings: Timings;
  /** Free-form values shared by the hooks of one request across phases. */
  readonly vars: Map<string, unknown>;
  /** Set once the response head is final (after header_filter). */
  response?: ResponseHead;
  bytesSent: number;
  /** Set when a phase answered early. */
  early?: EarlyResponse;
  /**
   * Cache behaviour asked for in rewrite/access (the rules engine): `ttlMs` replaces the freshness
   * lifetime of what is stored; `bypass` skips the lookup but may still store (nginx
   * proxy_cache_bypass); `noStore` may serve from cache but stores nothing (proxy_no_cache).
   */
  cacheOverride?: { ttlMs?: number; bypass?: boolean; noStore?: boolean };
  /** Appended to the cache key as a variant (e.g. an A/B bucket); purging the URL purges every one. */
  cacheKeyExtra?: string;
  /** Compression of this response switched on or off; undefined leaves the configured default. */
  compress?: boolean;
  /** Send the body whole with Content-Length instead of chunked (buffered up to limits.maxBodyBytes). */
  wholeBody?: boolean;
}

/** Returned by rewrite/access hooks: 'handled' ends the request with ctx.early (or the given response). */
export type HookResult = void | 'continue' | EarlyResponse;

/**
 * A set of phase hooks, Pingora-style: every method is optional. Registered once at start; the
 * driver calls only the phases that have hooks, in registration order.
 */
export interface EdgeHooks {
  readonly name: string;
  rewrite?(ctx: RequestContext): HookResult | Promise<HookResult>;
  access?(ctx: RequestContext): HookResult | Promise<HookResult>;
  /** May change status and headers of what the client gets (not what is cached). */
  header_filter?(ctx: RequestContext, head: ResponseHead): void | Promise<void>;
  /**
   * Receives the whole body when present and returns the body to send. Registering one makes the
   * driver buffer bodies (up to limits.maxBodyBytes); Content-Length is fixed up afterwards.
   */
  body_filter?(ctx: RequestContext, body: Buffer): Buffer | Promise<Buffer>;
  /**
   * Whether this hook set's body_filter wants this response's body. Without it, a registered
   * body_filter sees every body; with it, bodies it does not want keep streaming untouched.
   */
  wantsBody?(ctx: RequestContext, head: ResponseHead): boolean;
  /**
   * How many leading bytes of this request's body inspectBody wants to see (0: none). Asked after
   * the access hooks, only for requests that carry a body; required with inspectBody.
   */
  wantsRequestBody?(ctx: RequestContext): number;
  /**
   * Sees the first wantsRequestBody(ctx) bytes of the request body (all of it when shorter) and
   * answers like access. The origin still gets the whole body, as the client sent it.
   */
  inspectBody?(ctx: RequestContext, prefix: Buffer): HookResult | Promise<HookResult>;
  log?(ctx: RequestContext): void;
}

export type BodySource = Buffer | Readable | null;
