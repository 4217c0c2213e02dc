// Deterministic bodies for /static/<size>[.<ext>]: the same size always yields the same bytes and
// the same strong ETag, built once per size and reused, so benchmarks measure the proxy, not us.

import { createHash } from 'node:crypto';

export const MAX_STATIC_BYTES = 64 * 1024 * 1024;
// Bodies stay cached until they add up to this much; then the oldest sizes are dropped.
const CACHE_BUDGET_BYTES = 256 * 1024 * 1024;

export interface StaticBody {
  readonly body: Buffer;
  readonly etag: string;
  readonly contentLength: string;
}

export type StaticName =
  | { readonly kind: 'ok'; readonly size: number; readonly contentType: string }
  | { readonly kind: 'malformed' }
  | { readonly kind: 'too-large'; readonly size: number };

const CONTENT_TYPES: ReadonlyMap<string, string> = new Map([
  ['txt', 'text/plain; charset=utf-8'],
  ['html', 'text/html; charset=utf-8'],
  ['htm', 'text/html; charset=utf-8'],
  ['js', 'text/javascript; charset=utf-8'],
  ['mjs', 'text/javascript; charset=utf-8'],
  ['css', 'text/css; charset=utf-8'],
  ['json', 'application/json'],
  ['xml', 'application/xml'],
  ['svg', 'image/svg+xml'],
  ['jpg', 'image/jpeg'],
  ['jpeg', 'image/jpeg'],
  ['png', 'image/png'],
  ['gif', 'image/gif'],
  ['webp', 'image/webp'],
  ['avif', 'image/avif'],
  ['mp4', 'video/mp4'],
  ['ts', 'video/mp2t'],
  ['m3u8', 'application/vnd.apple.mpegurl'],
  ['wasm', 'application/wasm'],
]);
const DEFAULT_CONTENT_TYPE = 'application/octet-stream';

const NAME_SYNTAX = /^(\d{1,12})([kKmM]?)(?:\.([A-Za-z0-9.]{1,32}))?$/;

/** Reads `1234`, `1k`, `16k.txt`, `1m.mp4` (k = 1024, m = 1024²); the last extension picks the type. */
export function parseStaticName(name: string): StaticName {
  const m = NAME_SYNTAX.exec(name);
  if (m === null) return { kind: 'malformed' };
  const unit = m[2] === 'k' || m[2] === 'K' ? 1024 : m[2] === 'm' || m[2] === 'M' ? 1024 * 1024 : 1;
  const size = Number(m[1]) * unit;
  if (size > MAX_STATIC_BYTES) return { kind: 'too-large', size };
  const ext = m[3];
  const contentType =
    ext === undefined
      ? DEFAULT_CONTENT_TYPE
      : (CONTENT_TYPES.get(ext.slice(ext.lastIndexOf('.') + 1).toLowerCase()) ?? DEFAULT_CONTENT_TYPE);
  return { kind: 'ok', size, contentType };
}

const cache = new Map<number, StaticBody>();
let cachedBytes = 0;
let pattern: Buffer | undefined;

export function staticBody(size: number): StaticBody {
  const hit = cache.get(size);
  if (hit !== undefined) return hit;
  const body = Buffer.alloc(size, size === 0 ? 0 : textPattern());
  // Hashed once per size; sha1 is only a fingerprint here, not a security measure.
  const etag = `"${createHash('sha1').update(body).digest('base64url')}"`;
  const entry: StaticBody = { body, etag, contentLength: String(size) };
  cache.set(size, entry);
  cachedBytes += size;
  for (const [oldSize] of cache) {
    if (cachedBytes <= CACHE_BUDGET_BYTES || oldSize === size) break;
    cache.delete(oldSize);
    cachedBytes -= oldSize;
  }
  return entry;
}

/**
 * 64 KiB of printable pseudo-random lines from a fixed seed: readable with curl, and not so
 * repetitive that compression makes every body tiny.
 */
function textPattern(): Buffer {
  if (pattern !== undefined) return pattern;
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 .';
  const buf = Buffer.allocUnsafe(64 * 1024);
  let x = 0x9e3779b9;
  for (let i = 0; i < buf.length; i++) {
    if (i % 64 === 63) {
      buf[i] = 0x0a;
      continue;
    }
    // xorshift32
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf[i] = alphabet.charCodeAt((x >>> 0) & 63);
  }
  pattern = buf;
  return buf;
}
