// The contract every cache storage tier (RAM, disk, …) implements. Tiers store opaque entries
// under string keys; all HTTP semantics (freshness, Vary, revalidation) live above, in src/cache.
import type { Readable } from 'node:stream';

export type TierName = 'ram' | 'disk';

/** Response headers as stored: lower-case names, in order, repeated names allowed. */
export type HeaderList = Array<[name: string, value: string]>;

/** Everything the HTTP cache needs to know about a stored response, apart from its body. */
export interface StoredMeta {
  /** The storage key this entry lives under (primary key, plus the Vary suffix for variants). */
  readonly key: string;
  readonly status: number;
  readonly headers: HeaderList;
  /** ms since epoch when the request that produced this response was sent (RFC 9111 §4.2.3 request_time). */
  readonly requestTime: number;
  /** ms since epoch when the response was received (response_time). */
  readonly responseTime: number;
  /** Freshness lifetime in ms, computed when stored. */
  readonly ttlMs: number;
  /** stale-while-revalidate window in ms after expiry. */
  readonly swrMs: number;
  /** stale-if-error window in ms after expiry. */
  readonly sieMs: number;
  /** Purge tags (Surrogate-Key / Cache-Tag). */
  readonly tags: readonly string[];
  /** Request header names this response varies on (lower-case); empty when it does not vary. */
  readonly vary: readonly string[];
  /** Body size in bytes. */
  readonly size: number;
  /** ms since epoch when a soft purge marked this entry stale; absent if never. */
  readonly invalidatedAt?: number;
  /** Set on a marker entry that only records which headers the URL varies on; it has no body. */
  readonly varyMarker?: boolean;
}

/** A stored body. RAM-resident bodies expose `buffer` so hits can be written without streams. */
export interface StoredBody {
  readonly size: number;
  readonly buffer?: Buffer;
  /** Streams the body, or the inclusive byte range [start, end] of it. */
  stream(range?: { start: number; end: number }): Readable;
}

export interface StoredEntry {
  readonly meta: StoredMeta;
  readonly body: StoredBody;
}

/**
 * An unfinished write. Bytes are appended with `write`; the entry becomes visible to readers only
 * when `commit` resolves. A handle that is never committed (abort, error, crash) leaves nothing behind.
 */
export interface WriteHandle {
  write(chunk: Buffer): Promise<void>;
  /**
   * Makes the entry visible. Resolves false when it was not stored (it outgrew maxObjectBytes, or
   * the handle was aborted); the tier then holds no trace of it.
   */
  commit(meta: StoredMeta): Promise<boolean>;
  abort(): Promise<void>;
}

export type PurgeSpec =
  /** One URL's primary key and every Vary variant of it. */
  | { readonly kind: 'key'; readonly key: string }
  | { readonly kind: 'prefix'; readonly prefix: string }
  | { readonly kind: 'tags'; readonly tags: readonly string[] }
  | { readonly kind: 'all' };

export interface TierStats {
  readonly bytes: number;
  readonly entries: number;
  readonly evictions: number;
  readonly maxBytes: number;
}

export interface StorageTier {
  readonly name: TierName;
  /** The largest body this tier will store; larger writes are refused by `openWrite` returning undefined. */
  readonly maxObjectBytes: number;
  /**
   * Looks an entry up. Synchronous on purpose: the RAM tier is a map and the disk tier's index is a
   * memory-mapped LMDB, so a hit costs no event-loop turn; only the body is streamed.
   */
  get(key: string): StoredEntry | undefined;
  /**
   * Makes the next get() see what other processes committed up to now. A shared tier may read from
   * a snapshot (LMDB's read transaction) that lags behind other workers' writes by up to an event
   * turn; callers that just waited for another worker's write (a lock released) call this first.
   */
  refresh?(): void;
  /** Starts a write; `sizeHint` (when known from Content-Length) lets the tier refuse early. */
  openWrite(key: string, sizeHint?: number): WriteHandle | undefined;
  /** Replaces the metadata of an existing entry (after a 304), keeping its body. */
  updateMeta(key: string, meta: StoredMeta): Promise<boolean>;
  delete(key: string): Promise<boolean>;
  /**
   * Removes (hard) or marks stale (soft, sets invalidatedAt) the entries matching `spec`.
   * Resolves to the number of entries affected.
   */
  purge(spec: PurgeSpec, soft: boolean): Promise<number>;
  stats(): TierStats;
  close(): Promise<void>;
}

/** Separates a primary key from the Vary part of a variant key. Never appears in URLs. */
export const VARIANT_SEPARATOR = '\u0000';
