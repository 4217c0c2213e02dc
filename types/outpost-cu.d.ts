// The Outpost computing unit (CU) API, as ambient declarations for editors. docs/cu-api.md is the
// reference; this file only lets an editor check and complete CU code.
//
// A CU is the BODY of a function: these names are in scope, `return` ends the CU and `await` may be
// used at the top level. To edit CUs as files, give them a tsconfig.json (or jsconfig.json) of
// their own that sees this file and no DOM or Node types:
//
//   {
//     "compilerOptions": {
//       "target": "es2024", "lib": ["es2024"], "types": [], "module": "esnext",
//       "moduleDetection": "force", "strict": true, "noEmit": true, "checkJs": true
//     },
//     "include": ["*.js", "*.ts", "../types/outpost-cu.d.ts"]
//   }
//
// The editor sees a file, not a function body, so it flags a top-level `return` (TS1108). `exit()`
// ends the CU by itself (its type is `never`), so `if (bad) exit(403);` needs no `return`.

/** The request phase a CU runs in. */
type OutpostCuPhase = 'rewrite' | 'access' | 'header_filter' | 'body_filter' | 'log';

/** A value `vars` can hold: what survives JSON. */
type OutpostCuJson = string | number | boolean | null | OutpostCuJson[] | { [key: string]: OutpostCuJson };

/**
 * Header names are matched without regard to case and stored lower-case. Values are strings; a
 * number is turned into one. Setting `null`/`undefined` or `delete` removes a header. Values with
 * CR, LF or NUL are refused. Writable in the phases named on `req.headers` and `res.headers`.
 */
interface OutpostCuHeaders {
  [name: string]: string | undefined;
}

interface OutpostCuRequest {
  readonly method: string;
  /** Path and query; follows `req.path` and `req.query` when a CU changed them. */
  readonly uri: string;
  /** Path without the query. Writable in rewrite and access (must start with "/", no whitespace). */
  path: string;
  /** Raw query string without "?". Writable in rewrite and access. */
  query: string;
  /** Decoded query arguments; the first value wins. Recomputed when the CU sets `req.query`. */
  readonly args: Readonly<Record<string, string | undefined>>;
  /** Request headers as the origin will get them. Writable in rewrite and access. */
  readonly headers: OutpostCuHeaders;
  readonly cookies: Readonly<Record<string, string | undefined>>;
  /** The client's address. */
  readonly ip: string;
  /** Host without a default port, lower-case. */
  readonly host: string;
  readonly scheme: 'http' | 'https';
}

interface OutpostCuResponse {
  /**
   * The response status: undefined in rewrite/access (there is no response yet; answer with
   * exit()), writable in header_filter, read-only after.
   */
  status: number | undefined;
  /**
   * rewrite/access: headers to add to the response when it comes (set-cookie after a login, say).
   * header_filter: the response headers, writable. body_filter and log: read-only.
   */
  readonly headers: OutpostCuHeaders;
  /**
   * body_filter: the whole response body as text, writable (Content-Length is fixed up by the host).
   * Only textual, unencoded bodies reach body_filter CUs. undefined in other phases.
   */
  body: string | undefined;
}

interface OutpostCuLog {
  debug(...parts: unknown[]): void;
  info(...parts: unknown[]): void;
  warn(...parts: unknown[]): void;
  error(...parts: unknown[]): void;
}

interface OutpostCuTimings {
  /** ms since the request arrived. */
  readonly requestMs: number;
  /** ms to connect to the origin (absent when a pooled connection was reused or the origin was not asked). */
  readonly upstreamConnectMs?: number;
  /** ms from sending the request to the origin until its response headers arrived. */
  readonly upstreamResponseMs?: number;
  /** The cache outcome. */
  readonly cacheStatus?: 'HIT' | 'MISS' | 'EXPIRED' | 'STALE' | 'UPDATING' | 'REVALIDATED' | 'BYPASS';
  readonly bytesSent?: number;
}

/** The node-local shared dictionary (like lua_shared_dict): shared by every worker of one node. */
interface OutpostCuShared {
  get(key: string): Promise<string | number | null>;
  /** ttlMs: the entry expires after this many ms (default: never). */
  set(key: string, value: string | number, ttlMs?: number): Promise<true>;
  /** Adds `by` (default 1) to a number, a missing key counting as 0; ttlMs applies when the key is new. */
  incr(key: string, by?: number, ttlMs?: number): Promise<number>;
  delete(key: string): Promise<boolean>;
}

/**
 * The Redis subset CUs may use, with Redis's own replies. Keys live in a namespace of their own in
 * the configured store (embedded, Redis or Redis Cluster); the host bounds every call by a timeout.
 */
interface OutpostCuRedis {
  get(key: string): Promise<string | null>;
  set(key: string, value: string | number, options?: { ex?: number; px?: number }): Promise<'OK'>;
  incr(key: string): Promise<number>;
  incrby(key: string, increment: number): Promise<number>;
  decr(key: string): Promise<number>;
  /** 1 when the timeout was set, 0 when the key does not exist. */
  expire(key: string, seconds: number): Promise<number>;
  pexpire(key: string, milliseconds: number): Promise<number>;
  /** Seconds left; -1 without expiry; -2 when the key does not exist. */
  ttl(key: string): Promise<number>;
  del(...keys: string[]): Promise<number>;
  exists(...keys: string[]): Promise<number>;
  hget(key: string, field: string): Promise<string | null>;
  hset(key: string, field: string, value: string | number): Promise<number>;
  hset(key: string, fields: Record<string, string | number>): Promise<number>;
  hincrby(key: string, field: string, increment: number): Promise<number>;
  hgetall(key: string): Promise<Record<string, string>>;
  sadd(key: string, ...members: Array<string | number>): Promise<number>;
  srem(key: string, ...members: Array<string | number>): Promise<number>;
  smembers(key: string): Promise<string[]>;
  /** 1 or 0. */
  sismember(key: string, member: string | number): Promise<number>;
}

interface OutpostCuCrypto {
  /** HMAC-SHA256 of `data` (UTF-8) with `key` (UTF-8); hex unless told otherwise. */
  hmacSha256(key: string, data: string, encoding?: 'hex' | 'base64' | 'base64url'): string;
  sha256(data: string, encoding?: 'hex' | 'base64' | 'base64url'): string;
  randomUUID(): string;
  /** Compares two secrets in time that reveals neither their content nor their length. */
  timingSafeEqual(a: string, b: string): boolean;
}

/** The request. */
declare const req: OutpostCuRequest;
/** The response (see the phases on each field). */
declare const res: OutpostCuResponse;
/**
 * Answers the request now with this status (100–599), body and headers, and ends the CU. In
 * rewrite and access the origin and cache are not asked; in header_filter it replaces the response.
 * Not available in body_filter and log.
 */
declare function exit(status: number, body?: string, headers?: Record<string, string | number>): never;
/** Values shared by the CUs of one request, across phases. JSON values only. */
declare const vars: Record<string, OutpostCuJson | undefined>;
declare const log: OutpostCuLog;
declare const timings: OutpostCuTimings;
declare const shared: OutpostCuShared;
declare const redis: OutpostCuRedis;
declare const crypto: OutpostCuCrypto;
