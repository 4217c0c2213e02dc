// Cache outcomes (the X-Cache-Status vocabulary of nginx) and their Cache-Status rendering (RFC 9211).

export const CACHE_OUTCOMES = ['HIT', 'MISS', 'EXPIRED', 'STALE', 'UPDATING', 'REVALIDATED', 'BYPASS'] as const;
export type CacheOutcome = (typeof CACHE_OUTCOMES)[number];

/** RFC 9211 §2.2 reasons for going forward, most specific first. */
export type ForwardReason = 'bypass' | 'method' | 'uri-miss' | 'vary-miss' | 'miss' | 'request' | 'stale' | 'partial';

export interface CacheStatusInfo {
  readonly outcome: CacheOutcome;
  /** Remaining freshness in ms (negative when stale); rendered in whole seconds, rounded down. */
  readonly ttlMs?: number;
  /** Whether the forwarded response was stored. */
  readonly stored?: boolean;
  /** Whether this request was collapsed with another one's forward request. */
  readonly collapsed?: boolean;
  /** Status the origin answered the forwarded request with. */
  readonly fwdStatus?: number;
  /** Implementation detail: a BypassReason, the error behind a STALE, a tier name… */
  readonly detail?: string;
  readonly key?: string;
  /** Overrides the forward reason the outcome implies. */
  readonly fwd?: ForwardReason;
}

/** BypassReasons decided by looking at the response: the request went forward as a miss. */
const RESPONSE_SIDE = new Set(['response-no-store', 'private', 'authorization', 'set-cookie', 'vary-star', 'status', 'no-freshness', 'partial', 'too-large']);

/**
 * One Cache-Status list member (RFC 9211) for this cache. `hit` means "not forwarded" and `fwd`
 * means "went forward"; they never appear together (§2.1). The mapping:
 *
 * | outcome     | rendering                                    | why                                           |
 * |-------------|----------------------------------------------|-----------------------------------------------|
 * | HIT         | hit; ttl=N                                   | served from cache without going forward       |
 * | HIT+collapsed | fwd=uri-miss; collapsed; ttl=N           | waited on another request's forward (§2.5)    |
 * | UPDATING    | hit; ttl=-N                                  | stale-while-revalidate: this request did not go forward; the refresh is separate |
 * | STALE       | hit; ttl=-N; detail=…                        | origin unreachable: §2.1 lets a stale response used without going forward count as a hit |
 * | STALE+fwdStatus | fwd=stale; fwd-status=503; ttl=-N; detail=… | the origin answered with an error: the request did go forward |
 * | MISS        | fwd=uri-miss; fwd-status=200; stored; ttl=N  | nothing stored for the URI                    |
 * | EXPIRED     | fwd=stale; fwd-status=200; stored; ttl=N     | a stored response was stale and was replaced  |
 * | REVALIDATED | fwd=stale; fwd-status=304; ttl=N             | went forward to validate; §3 gives this exact example |
 * | BYPASS      | fwd=bypass / method / miss; fwd-status=N; detail=reason | 'method' → method; a response-side reason (private, no-store, …) → miss with stored=?0; otherwise bypass |
 *
 * `fwd` overrides the default reason (e.g. vary-miss, request, partial). stored and collapsed are
 * only written with fwd (§2.4, §2.5); false values are written as `?0`. BYPASS carries no ttl:
 * nothing was stored.
 */
export function formatCacheStatus(cacheName: string, o: CacheStatusInfo): string {
  let out = sfTokenOrString(cacheName);
  const ttl = o.ttlMs !== undefined && Number.isFinite(o.ttlMs) ? `; ttl=${Math.floor(o.ttlMs / 1000) || 0}` : '';
  const tail = (): string => (o.key !== undefined ? `; key=${sfString(o.key)}` : '') + (o.detail !== undefined ? `; detail=${sfTokenOrString(o.detail)}` : '');
  const forward = (reason: ForwardReason, fwdStatus: number | undefined, withTtl: boolean, stored = o.stored): string => {
    let s = `; fwd=${reason}`;
    if (fwdStatus !== undefined && Number.isInteger(fwdStatus)) s += `; fwd-status=${fwdStatus}`;
    if (stored !== undefined) s += stored ? '; stored' : '; stored=?0';
    if (o.collapsed !== undefined) s += o.collapsed ? '; collapsed' : '; collapsed=?0';
    if (withTtl) s += ttl;
    return s;
  };

  switch (o.outcome) {
    case 'HIT':
      out += o.collapsed === true ? forward(o.fwd ?? 'uri-miss', o.fwdStatus, true) : `; hit${ttl}`;
      break;
    case 'UPDATING':
      out += `; hit${ttl}`;
      break;
    case 'STALE':
      out += o.fwdStatus !== undefined || o.fwd !== undefined ? forward(o.fwd ?? 'stale', o.fwdStatus, true) : `; hit${ttl}`;
      break;
    case 'MISS':
      out += forward(o.fwd ?? 'uri-miss', o.fwdStatus, true);
      break;
    case 'EXPIRED':
      out += forward(o.fwd ?? 'stale', o.fwdStatus, true);
      break;
    case 'REVALIDATED':
      out += forward(o.fwd ?? 'stale', o.fwdStatus ?? 304, true);
      break;
    case 'BYPASS': {
      const responseSide = o.detail !== undefined && RESPONSE_SIDE.has(o.detail);
      const reason = o.fwd ?? (o.detail === 'method' ? 'method' : responseSide ? 'miss' : 'bypass');
      out += forward(reason, o.fwdStatus, false, o.stored ?? (responseSide ? false : undefined));
      break;
    }
  }
  return out + tail();
}

const SF_TOKEN = /^[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*$/;

function sfTokenOrString(s: string): string {
  return SF_TOKEN.test(s) ? s : sfString(s);
}

/** An RFC 8941 String: printable ASCII only, with `"` and `\` escaped; anything else percent-encoded. */
function sfString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (c >= 0x20 && c <= 0x7e) out += ch;
    else out += encodeChar(ch);
  }
  return `${out}"`;
}

function encodeChar(ch: string): string {
  try {
    return encodeURIComponent(ch);
  } catch {
    return '?';
  }
}
