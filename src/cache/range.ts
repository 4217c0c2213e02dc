// Byte ranges served from a stored response (RFC 9110 §14, If-Range §13.1.5).
import { listFirst, parseHttpDate } from './cache-control.ts';
import type { HeaderMap } from './policy.ts';
import type { HeaderList } from './storage/tier.ts';

export type RangeResult =
  | { readonly kind: 'full' }
  | { readonly kind: 'partial'; readonly start: number; readonly end: number }
  | { readonly kind: 'unsatisfiable' };

const FULL: RangeResult = Object.freeze({ kind: 'full' });
const UNSATISFIABLE: RangeResult = Object.freeze({ kind: 'unsatisfiable' });

const INT_RANGE = /^([0-9]+)-([0-9]*)$/;
const SUFFIX_RANGE = /^-([0-9]+)$/;

/**
 * What to send for a request with Range, given a stored body of `size` bytes. Call it only when
 * the response would otherwise be a 200 (after preconditions; §14.2). `end` is inclusive.
 *
 * - Only GET: Range is undefined for other methods (§14.2), HEAD included.
 * - Only `bytes`, compared case-insensitively; another unit is ignored (full).
 * - One range only. Several ranges would need multipart/byteranges; §14.2 lets a server ignore
 *   Range, so they get the full response (Varnish does the same).
 * - An invalid ranges-specifier (syntax, last < first, several Range lines) is ignored (§14.2).
 * - `first-` past the end, or a zero-length suffix `-0`, is unsatisfiable (416, §14.1.2). On an
 *   empty body every int-range is unsatisfiable; a suffix range would be satisfiable but cannot
 *   be expressed in Content-Range, so it gets the (empty) full response, as §14.2 permits.
 * - If-Range (§13.1.5): an entity-tag must strongly match the stored ETag, a date must equal the
 *   stored Last-Modified; otherwise the Range is ignored and the full response is sent.
 */
export function parseRange(method: string, req: HeaderMap, size: number, stored: HeaderList): RangeResult {
  if (method !== 'GET') return FULL;
  const raw = req.range;
  if (raw === undefined) return FULL;
  if (typeof raw !== 'string' && raw.length !== 1) return FULL;
  const value = typeof raw === 'string' ? raw : raw[0]!;
  const ifRange = req['if-range'];
  if (ifRange !== undefined && !ifRangeHolds(ifRange, stored)) return FULL;

  const eq = value.indexOf('=');
  if (eq < 0) return FULL;
  if (value.slice(0, eq).trim().toLowerCase() !== 'bytes') return FULL;
  const specs = value
    .slice(eq + 1)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (specs.length !== 1) return FULL;
  const spec = specs[0]!;

  const int = INT_RANGE.exec(spec);
  if (int) {
    const first = Number(int[1]);
    const last = int[2] === '' ? undefined : Number(int[2]);
    if (last !== undefined && last < first) return FULL;
    if (first >= size) return UNSATISFIABLE;
    return { kind: 'partial', start: first, end: Math.min(last ?? size - 1, size - 1) };
  }
  const suffix = SUFFIX_RANGE.exec(spec);
  if (suffix) {
    const length = Number(suffix[1]);
    if (length === 0) return UNSATISFIABLE;
    if (size === 0) return FULL;
    return { kind: 'partial', start: Math.max(0, size - length), end: size - 1 };
  }
  return FULL;
}

function ifRangeHolds(value: string | string[], stored: HeaderList): boolean {
  if (typeof value !== 'string') return false;
  const v = value.trim();
  if (v.startsWith('"') || v.startsWith('W/"')) {
    // Weak tags never match strongly, so a weak If-Range is always false.
    const etag = listFirst(stored, 'etag')?.trim();
    return !v.startsWith('W/') && etag !== undefined && !etag.startsWith('W/') && etag === v;
  }
  const date = parseHttpDate(v);
  const lastModified = parseHttpDate(listFirst(stored, 'last-modified'));
  return date !== undefined && lastModified !== undefined && date === lastModified;
}

/** Content-Range for a 206: `bytes first-last/size`. */
export function contentRange(start: number, end: number, size: number): string {
  return `bytes ${start}-${end}/${size}`;
}

// Content-Range for a 416: "bytes */size".
export function unsatisfiedRange(size: number): string {
  return `bytes */${size}`;
}
