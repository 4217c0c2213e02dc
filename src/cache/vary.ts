// Vary (RFC 9110 §12.5.5, RFC 9111 §4.1): which request headers select a stored variant, and the
// storage-key suffix that names the variant a request selects.
import type { HeaderMap } from './policy.ts';
import { parseAcceptEncoding } from './compress-negotiate.ts';
import { HTTP_TOKEN } from '../edge/http-token.ts';


/**
 * The request header names a response varies on: lower-case, deduplicated, sorted (so equal sets
 * give equal keys). `*` — or a member that is not a field name, which we cannot honour — means the
 * response can never be selected (RFC 9111 §4.1).
 */
export function parseVary(headers: HeaderMap): string[] | '*' {
  const v = headers.vary;
  if (v === undefined) return [];
  const names = new Set<string>();
  for (const line of typeof v === 'string' ? [v] : v) {
    for (const part of line.split(',')) {
      const name = part.trim();
      if (name === '') continue;
      if (name === '*' || !HTTP_TOKEN.test(name)) return '*';
      names.add(name.toLowerCase());
    }
  }
  return [...names].sort();
}

export type NormalizedEncoding = 'br' | 'gzip' | 'identity';

// Below any qvalue a client can send: identity is acceptable when not mentioned, but only as a last resort.
const IMPLICIT_IDENTITY_Q = 1e-6;
const PREFERENCE: readonly NormalizedEncoding[] = ['br', 'gzip', 'identity'];

/**
 * Reduces Accept-Encoding to the one coding we would serve (RFC 9110 §12.5.3): the acceptable
 * coding with the highest qvalue, ties broken br > gzip > identity. q=0 means "not acceptable";
 * `*` covers codings not listed; x-gzip is gzip (§8.4.1.3); identity is acceptable unless
 * excluded by `identity;q=0` or by `*;q=0` without an identity entry. A missing header, an empty
 * one, or one that accepts nothing we have gives identity. Members with an invalid qvalue are
 * ignored rather than guessed at.
 */
export function normalizeAcceptEncoding(value: string | readonly string[] | undefined): NormalizedEncoding {
  if (value === undefined) return 'identity';
  const { listed, star } = parseAcceptEncoding(value);
  const qOf = (c: NormalizedEncoding): number =>
    listed.get(c) ?? star ?? (c === 'identity' ? IMPLICIT_IDENTITY_Q : 0);
  let best: NormalizedEncoding = 'identity';
  let bestQ = 0;
  for (const c of PREFERENCE) {
    const q = qOf(c);
    if (q > bestQ) {
      best = c;
      bestQ = q;
    }
  }
  return best;
}

/** Separates the per-header parts of a variant suffix; CTLs cannot occur in field values. */
export const VARY_FIELD_SEPARATOR = '\u0001';

/**
 * The part of a storage key that names the variant `req` selects, given the (parsed, sorted) Vary
 * names: `name=value` per header, joined by U+0001, which the HTTP parser never lets into a value.
 * An absent header is written as its bare name, so it differs from an empty one (RFC 9111 §4.1:
 * absent only matches absent). Values are trimmed and repeated lines joined with ", " (§4.1 allows
 * both); they are not lower-cased, since most headers' values are case-sensitive. Accept-Encoding
 * is replaced by its normalized coding: the edge sends that same value to the origin, so the
 * stored variant is exactly what the origin was asked for.
 */
export function variantSuffix(vary: readonly string[], req: HeaderMap): string {
  let out = '';
  for (let i = 0; i < vary.length; i++) {
    const name = vary[i]!;
    if (i > 0) out += VARY_FIELD_SEPARATOR;
    if (name === 'accept-encoding') {
      out += `${name}=${normalizeAcceptEncoding(req[name])}`;
      continue;
    }
    const v = req[name];
    if (v === undefined) out += name;
    else out += `${name}=${typeof v === 'string' ? v.trim() : v.map((x) => x.trim()).join(', ')}`;
  }
  return out;
}
