// HTTP caching rules for a shared cache (RFC 9111), with targeted cache control (RFC 9213),
// Surrogate-Control, and stale-while-revalidate / stale-if-error (RFC 5861). Pure functions: the
// cache layer passes headers and clock readings in, and stores the numbers these return.
import {
  DELTA_SECONDS_MAX,
  deltaSeconds,
  firstValue,
  joinedValue,
  listFirst,
  parseCacheControl,
  parseDeltaSeconds,
  parseHttpDate,
  parseTargetedCacheControl,
  type Directives,
} from './cache-control.ts';
import type { HeaderList, StoredMeta } from './storage/tier.ts';
import { parseVary } from './vary.ts';

/** Request or response headers with lower-case names, like Node's IncomingHttpHeaders. */
export type HeaderMap = Readonly<Record<string, string | string[] | undefined>>;

export interface PolicyOptions {
  /** Freshness for responses that state none, by status; key 0 means any status (like nginx proxy_cache_valid). */
  readonly statusTtlMs: ReadonlyMap<number, number>;
  /** Share of (Date − Last-Modified) used as heuristic freshness (RFC 9111 §4.2.2 suggests 10%). */
  readonly heuristicFraction: number;
  readonly heuristicMaxMs: number;
  /** stale-while-revalidate window used when the response names none. */
  readonly defaultSwrMs: number;
  /** stale-if-error window used when the response names none. */
  readonly defaultSieMs: number;
  /** false: responses with Set-Cookie are not stored, as nginx and Varnish do. */
  readonly cacheSetCookie: boolean;
}

export const DEFAULT_POLICY: PolicyOptions = Object.freeze({
  // Empty: out of the box a response with neither explicit freshness nor a validator is not reused.
  statusTtlMs: new Map<number, number>(),
  heuristicFraction: 0.1,
  heuristicMaxMs: 86_400_000,
  // No stale serving unless the origin or the operator asks for it (RFC 9111 §4.2.4).
  defaultSwrMs: 0,
  defaultSieMs: 0,
  cacheSetCookie: false,
});

/** Why a response was not stored. Used verbatim in logs, Cache-Status detail and metric labels. */
export type BypassReason =
  | 'method'
  | 'request-no-store'
  | 'response-no-store'
  | 'private'
  | 'authorization'
  | 'set-cookie'
  | 'vary-star'
  | 'status'
  | 'no-freshness'
  | 'partial'
  | 'too-large'
  | 'config';

export type FreshnessSource =
  | 'cdn-cache-control'
  | 'surrogate-control'
  | 's-maxage'
  | 'max-age'
  | 'expires'
  | 'status-default'
  | 'heuristic'
  | 'none';

export interface Freshness {
  readonly ttlMs: number;
  readonly swrMs: number;
  readonly sieMs: number;
  readonly source: FreshnessSource;
}

/** RFC 9110 §15.1 (and RFC 7725 for 451): reusable with heuristic freshness. */
export const HEURISTICALLY_CACHEABLE: ReadonlySet<number> = new Set([200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 451, 501]);

/**
 * Final status codes whose caching rules this cache implements, for must-understand
 * (RFC 9111 §5.2.2.3). 206 and 304 are understood but never stored.
 */
const UNDERSTOOD_STATUS: ReadonlySet<number> = new Set([
  200, 201, 202, 203, 204, 205, 300, 301, 302, 303, 307, 308, 400, 401, 403, 404, 405, 406, 408, 409, 410, 411,
  412, 413, 414, 415, 416, 417, 421, 422, 426, 428, 429, 431, 451, 500, 501, 502, 503, 504, 505, 511,
]);

/** Never sent to clients: instructions meant for this CDN. */
export const CDN_ONLY_HEADERS: ReadonlySet<string> = new Set(['cdn-cache-control', 'surrogate-control', 'surrogate-key', 'cache-tag']);

/**
 * Per-connection fields, removed before forwarding and never stored. RFC 9110 §7.6.1 names
 * Connection, Proxy-Connection, Keep-Alive, TE, Transfer-Encoding and Upgrade; Trailer announces
 * trailers a stored response no longer has; RFC 9111 §3.1 forbids storing Proxy-Authenticate,
 * Proxy-Authentication-Info and Proxy-Authorization (they concern the proxy, not the resource).
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-authenticate',
  'proxy-authentication-info',
  'proxy-authorization',
]);

/** Field names listed in Connection (RFC 9110 §7.6.1), lower-case; they go with the connection. */
export function connectionListed(headers: HeaderMap): string[] {
  const v = joinedValue(headers, 'connection');
  if (v === undefined) return [];
  const out = new Set<string>();
  for (const part of v.split(',')) {
    const name = part.trim().toLowerCase();
    if (name) out.add(name);
  }
  return [...out];
}

export function headerListToMap(list: HeaderList): HeaderMap {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of list) {
    const prev = out[name];
    if (prev === undefined) out[name] = value;
    else if (typeof prev === 'string') out[name] = [prev, value];
    else prev.push(value);
  }
  return out;
}

export function headerMapToList(map: HeaderMap): HeaderList {
  const out: HeaderList = [];
  for (const rawName of Object.keys(map)) {
    const v = map[rawName];
    if (v === undefined) continue;
    const name = rawName.toLowerCase();
    if (typeof v === 'string') out.push([name, v]);
    else for (const one of v) out.push([name, one]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The response's caching instructions, as seen by this cache.

/** A delta-seconds directive: absent, present with a valid value (seconds), or present but invalid. */
type Delta = number | 'invalid' | undefined;

interface ResponsePolicy {
  /** Which field the directives came from. */
  readonly field: 'cdn-cache-control' | 'surrogate-control' | 'cache-control';
  readonly noStore: boolean;
  readonly noCache: boolean;
  readonly private: boolean;
  readonly public: boolean;
  readonly mustRevalidate: boolean;
  readonly proxyRevalidate: boolean;
  readonly mustUnderstand: boolean;
  readonly sMaxage: Delta;
  readonly maxAge: Delta;
  readonly swr: Delta;
  readonly sie: Delta;
  /** RFC 9213 §2.2: a selected targeted field makes the cache ignore Cache-Control and Expires. */
  readonly useExpires: boolean;
}

function delta(d: Directives, name: string): Delta {
  if (!d.has(name)) return undefined;
  return deltaSeconds(d, name) ?? 'invalid';
}

/**
 * Picks the field that governs this cache: the first valid, non-empty field of the target list
 * [CDN-Cache-Control, Surrogate-Control], else Cache-Control (RFC 9213 §2.2). The selected field
 * replaces Cache-Control and Expires entirely, including no-store and private: that is the point
 * of `Cache-Control: no-store` + `CDN-Cache-Control: max-age=600` (RFC 9213 §3.1).
 */
function responsePolicy(headers: HeaderMap): ResponsePolicy {
  const cdn = parseTargetedCacheControl(headers['cdn-cache-control']);
  if (cdn) return fromDirectives('cdn-cache-control', cdn, undefined);
  const sc = parseSurrogateControl(headers['surrogate-control']);
  if (sc) return fromDirectives('surrogate-control', sc.directives, sc.extensionSeconds);
  return fromDirectives('cache-control', parseCacheControl(headers['cache-control']), undefined);
}

function fromDirectives(field: ResponsePolicy['field'], d: Directives, surrogateSie: number | undefined): ResponsePolicy {
  return {
    field,
    // Surrogate-Control's no-store-remote addresses surrogates far from the origin: a CDN is one.
    noStore: d.has('no-store') || (field === 'surrogate-control' && d.has('no-store-remote')),
    // The qualified forms (no-cache="f", private="f") are treated as unqualified, the stricter
    // reading that RFC 9111 §5.2.2.4 and §5.2.2.7 note most caches use.
    noCache: d.has('no-cache'),
    private: d.has('private'),
    public: d.has('public'),
    mustRevalidate: d.has('must-revalidate'),
    proxyRevalidate: d.has('proxy-revalidate'),
    mustUnderstand: d.has('must-understand'),
    sMaxage: delta(d, 's-maxage'),
    maxAge: delta(d, 'max-age'),
    swr: delta(d, 'stale-while-revalidate'),
    sie: d.has('stale-if-error') ? delta(d, 'stale-if-error') : surrogateSie,
    useExpires: field === 'cache-control',
  };
}

/**
 * Surrogate-Control (W3C Edge Architecture 1.0) uses Cache-Control syntax plus two extras:
 * `directive;device` targets one named surrogate (we have no device token, so such directives are
 * ignored), and `max-age=N+M` adds a freshness extension of M seconds, which we read as a
 * stale-if-error window (the conservative reading: stale only when the origin cannot answer).
 * The field is selected only when it carries at least one caching directive.
 */
function parseSurrogateControl(value: string | readonly string[] | undefined): { directives: Directives; extensionSeconds: number | undefined } | undefined {
  if (value === undefined) return undefined;
  const parsed = parseCacheControl(value);
  const out = new Map<string, string | true>();
  let ext: number | undefined;
  for (const [name, arg] of parsed) {
    if (name.includes(';') || (typeof arg === 'string' && arg.includes(';'))) continue;
    if (name === 'max-age' && typeof arg === 'string') {
      const m = /^([0-9]+)\+([0-9]+)$/.exec(arg);
      if (m) {
        out.set(name, m[1]!);
        ext = parseDeltaSeconds(m[2]!);
        continue;
      }
    }
    out.set(name, arg);
  }
  // A field that only carries ESI's content="ESI/1.0" says nothing about caching: keep Cache-Control.
  for (const name of out.keys()) if (CACHING_DIRECTIVES.has(name)) return { directives: out, extensionSeconds: ext };
  return undefined;
}

const CACHING_DIRECTIVES: ReadonlySet<string> = new Set([
  'max-age',
  's-maxage',
  'no-store',
  'no-store-remote',
  'no-cache',
  'private',
  'public',
  'must-revalidate',
  'proxy-revalidate',
  'must-understand',
  'stale-while-revalidate',
  'stale-if-error',
]);

function statusTtl(status: number, opts: PolicyOptions): number | undefined {
  return opts.statusTtlMs.get(status) ?? opts.statusTtlMs.get(0);
}

function hasValidator(headers: HeaderMap): boolean {
  return firstValue(headers, 'etag') !== undefined || parseHttpDate(firstValue(headers, 'last-modified')) !== undefined;
}

// ---------------------------------------------------------------------------------------------
// Storing (RFC 9111 §3).

export type Storability = { readonly storable: true } | { readonly storable: false; readonly reason: BypassReason };

const no = (reason: BypassReason): Storability => ({ storable: false, reason });

/**
 * May this shared cache store the response? RFC 9111 §3, plus two refusals RFC-permitted and
 * common to nginx and Varnish: Set-Cookie (unless `cacheSetCookie`), and responses that could
 * never be reused (no explicit freshness, no validator, no configured status TTL; or freshness of
 * zero with neither a validator nor a stale window — §3 notes such responses are "not usually
 * useful to store"). HEAD responses are not stored: the edge turns HEAD misses into GETs.
 */
export function storability(
  req: { readonly method: string; readonly headers: HeaderMap },
  res: { readonly status: number; readonly headers: HeaderMap },
  opts: PolicyOptions,
): Storability {
  if (req.method !== 'GET') return no('method');
  if (parseCacheControl(req.headers['cache-control']).has('no-store')) return no('request-no-store');
  const status = res.status;
  if (!Number.isInteger(status) || status < 200 || status > 599) return no('status');
  if (status === 206) return no('partial');
  if (status === 304) return no('status');
  const p = responsePolicy(res.headers);
  // must-understand lets a cache that understands the status ignore no-store (§5.2.2.3).
  if (p.mustUnderstand && !UNDERSTOOD_STATUS.has(status)) return no('status');
  if (p.noStore && !p.mustUnderstand) return no('response-no-store');
  if (p.private) return no('private');
  // §3.5: with Authorization, only public, s-maxage or must-revalidate allow shared reuse.
  if (req.headers.authorization !== undefined && !p.public && p.sMaxage === undefined && !p.mustRevalidate) return no('authorization');
  if (parseVary(res.headers) === '*') return no('vary-star');
  if (!opts.cacheSetCookie && res.headers['set-cookie'] !== undefined) return no('set-cookie');

  const explicit = p.sMaxage !== undefined || p.maxAge !== undefined || (p.useExpires && firstValue(res.headers, 'expires') !== undefined);
  const configured = statusTtl(status, opts);
  if (!explicit && configured === undefined && !HEURISTICALLY_CACHEABLE.has(status) && !p.public) return no('status');
  const validator = hasValidator(res.headers);
  if (!explicit && !validator && !(configured !== undefined && configured > 0)) return no('no-freshness');
  if (!validator) {
    // Measured against the origin's own Date; without one an Expires lifetime cannot be judged
    // here, so it is given the benefit of the doubt.
    const date = parseHttpDate(firstValue(res.headers, 'date'));
    if (date !== undefined || !p.useExpires || firstValue(res.headers, 'expires') === undefined) {
      const f = computeFreshness(p, res, date ?? 0, opts);
      if (f.ttlMs <= 0 && f.swrMs <= 0 && f.sieMs <= 0) return no('no-freshness');
    }
  }
  return { storable: true };
}

// ---------------------------------------------------------------------------------------------
// Freshness (RFC 9111 §4.2).

/**
 * Freshness lifetime and stale windows of a response, in ms. Order: targeted field s-maxage or
 * max-age → s-maxage → max-age → Expires − Date → configured status TTL → heuristic → 0.
 * A directive or Expires that is present but invalid counts as "already stale" (§4.2.1, §5.3).
 * `requestTime` is accepted for symmetry with the age calculation; the lifetime does not depend on it.
 */
export function freshness(
  res: { readonly status: number; readonly headers: HeaderMap },
  requestTime: number,
  responseTime: number,
  opts: PolicyOptions,
): Freshness {
  void requestTime;
  return computeFreshness(responsePolicy(res.headers), res, responseTime, opts);
}

function computeFreshness(
  p: ResponsePolicy,
  res: { readonly status: number; readonly headers: HeaderMap },
  responseTime: number,
  opts: PolicyOptions,
): Freshness {
  const { ttlMs, source } = lifetime(p, res, responseTime, opts);
  // RFC 9111 §4.2.4: no stale response when no-cache, must-revalidate or proxy-revalidate forbid it.
  // s-maxage "incorporates the semantics of proxy-revalidate" (§5.2.2.10), which forbids serving it
  // stale on our own initiative, so the configured default windows are not applied. A
  // stale-while-revalidate or stale-if-error the origin sends alongside s-maxage is an explicit
  // permission (RFC 5861: "regardless of other freshness information") and is honoured, as the
  // common `s-maxage=N, stale-while-revalidate=M` intends. must-revalidate and proxy-revalidate are
  // the origin saying the opposite outright, so they win over any window.
  if (p.noCache || p.mustRevalidate || p.proxyRevalidate) return { ttlMs, swrMs: 0, sieMs: 0, source };
  const allowDefaults = p.sMaxage === undefined;
  const window = (d: Delta, fallback: number): number =>
    d === undefined ? (allowDefaults ? Math.max(0, fallback) : 0) : d === 'invalid' ? 0 : d * 1000;
  return { ttlMs, swrMs: window(p.swr, opts.defaultSwrMs), sieMs: window(p.sie, opts.defaultSieMs), source };
}

function lifetime(
  p: ResponsePolicy,
  res: { readonly status: number; readonly headers: HeaderMap },
  responseTime: number,
  opts: PolicyOptions,
): { ttlMs: number; source: FreshnessSource } {
  const targeted = p.field !== 'cache-control';
  // no-cache: stored, but never reused without validation (§5.2.2.4).
  if (p.noCache) return { ttlMs: 0, source: targeted ? p.field : 'none' };
  const seconds = (d: Exclude<Delta, undefined>): number => (d === 'invalid' ? 0 : d * 1000);
  if (targeted) {
    const d = p.sMaxage ?? p.maxAge;
    if (d !== undefined) return { ttlMs: seconds(d), source: p.field as FreshnessSource };
  } else {
    if (p.sMaxage !== undefined) return { ttlMs: seconds(p.sMaxage), source: 's-maxage' };
    if (p.maxAge !== undefined) return { ttlMs: seconds(p.maxAge), source: 'max-age' };
    const expiresRaw = firstValue(res.headers, 'expires');
    if (expiresRaw !== undefined) {
      const expires = parseHttpDate(expiresRaw);
      // An invalid Expires (e.g. "0") means "already expired" (§5.3).
      if (expires === undefined) return { ttlMs: 0, source: 'expires' };
      const date = parseHttpDate(firstValue(res.headers, 'date')) ?? responseTime;
      return { ttlMs: Math.max(0, Math.min(expires - date, DELTA_SECONDS_MAX * 1000)), source: 'expires' };
    }
  }
  const configured = statusTtl(res.status, opts);
  if (configured !== undefined) return { ttlMs: Math.max(0, configured), source: 'status-default' };
  // §4.2.2: heuristics only for heuristically cacheable statuses, or responses marked public.
  if (HEURISTICALLY_CACHEABLE.has(res.status) || p.public) {
    const lastModified = parseHttpDate(firstValue(res.headers, 'last-modified'));
    if (lastModified !== undefined) {
      const date = parseHttpDate(firstValue(res.headers, 'date')) ?? responseTime;
      const since = date - lastModified;
      if (since > 0) {
        const ttl = Math.min(Math.floor(since * opts.heuristicFraction), opts.heuristicMaxMs);
        return { ttlMs: Math.max(0, ttl), source: 'heuristic' };
      }
    }
  }
  return { ttlMs: 0, source: 'none' };
}

/**
 * current_age of a stored response in ms, exactly as RFC 9111 §4.2.3:
 *   apparent_age = max(0, response_time - date_value)
 *   corrected_age_value = age_value + (response_time - request_time)
 *   current_age = max(apparent_age, corrected_age_value) + (now - response_time)
 * A missing or invalid Date counts as the time of receipt (RFC 9110 §6.6.1). An Age that is present
 * but invalid makes the response stale (§5.1), so it is taken as 2^31 seconds.
 */
export function currentAgeMs(meta: { readonly headers: HeaderList; readonly requestTime: number; readonly responseTime: number }, now: number): number {
  const date = parseHttpDate(listFirst(meta.headers, 'date')) ?? meta.responseTime;
  const ageRaw = listFirst(meta.headers, 'age');
  const ageValue = ageRaw === undefined ? 0 : (parseDeltaSeconds(ageRaw.trim()) ?? DELTA_SECONDS_MAX);
  // Two departures from RFC 9111 §4.2.3, the same nginx and Varnish make (docs/caching.md, "Age"):
  // Date has a resolution of one second, so an apparent age under a second says nothing and counts
  // as 0; and the response delay corrects an Age measured upstream for the time the response then
  // took, so without an Age header freshness runs from the response's arrival. Otherwise a 10 s
  // object on a 200 ms origin lived 8.8–9.8 s here and 10 s in the caches users compare with.
  const apparent = meta.responseTime - date;
  const apparentAge = apparent >= 1000 ? apparent : 0;
  const responseDelay = Math.max(0, meta.responseTime - meta.requestTime);
  const correctedAgeValue = ageRaw === undefined ? 0 : ageValue * 1000 + responseDelay;
  const correctedInitialAge = Math.max(apparentAge, correctedAgeValue);
  return Math.max(0, correctedInitialAge + (now - meta.responseTime));
}

export type FreshnessState = 'fresh' | 'stale-while-revalidate' | 'stale-if-error' | 'stale';

/**
 * When the entry stops being fresh, in ms since the epoch: its expiry, or the soft purge if earlier.
 * Expiry does not depend on `now`: current_age grows exactly as fast as the clock.
 */
function staleFrom(meta: StoredMeta): number {
  const expiresAt = meta.responseTime + meta.ttlMs - currentAgeMs(meta, meta.responseTime);
  return meta.invalidatedAt === undefined ? expiresAt : Math.min(expiresAt, meta.invalidatedAt);
}

/**
 * fresh: reusable. stale-while-revalidate: serve, and refresh in the background.
 * stale-if-error: serve only if the origin fails. stale: must go to the origin.
 * A soft-purged entry is never fresh; its windows run from the earlier of expiry and the purge.
 */
export function freshnessState(meta: StoredMeta, now: number): FreshnessState {
  const from = staleFrom(meta);
  if (meta.invalidatedAt === undefined && now < from) return 'fresh';
  // A purge stamped slightly ahead of this clock (another node) still counts from now.
  const staleFor = Math.max(0, now - from);
  if (staleFor < meta.swrMs) return 'stale-while-revalidate';
  if (staleFor < meta.sieMs) return 'stale-if-error';
  return 'stale';
}

/** Remaining freshness in ms (negative when stale), for Cache-Status ttl. */
export function remainingTtlMs(meta: StoredMeta, now: number): number {
  const left = staleFrom(meta) - now;
  return meta.invalidatedAt === undefined ? left : Math.min(left, 0);
}

// ---------------------------------------------------------------------------------------------
// Validation (RFC 9111 §4.3).

/**
 * Precondition fields for revalidating a stored response: both validators when both exist
 * (If-None-Match takes precedence at the origin; If-Modified-Since serves origins without ETags).
 */
export function revalidationHeaders(stored: HeaderList): Record<string, string> {
  const out: Record<string, string> = {};
  const etag = listFirst(stored, 'etag');
  if (etag !== undefined && etag.trim() !== '') out['if-none-match'] = etag.trim();
  const lastModified = listFirst(stored, 'last-modified');
  if (lastModified !== undefined && parseHttpDate(lastModified) !== undefined) out['if-modified-since'] = lastModified.trim();
  return out;
}

/**
 * Fields a 304 never updates in the stored response (RFC 9111 §3.2, §4.3.4): those never stored
 * (§3.1), Content-Length, those the stored body depends on (Content-Encoding, Content-MD5: the body
 * we keep is encoded), and those processed per message (Content-Range, Transfer-Encoding).
 * Set-Cookie is also kept out: it is for the client whose request triggered the revalidation,
 * and merging it would hand that client's cookie to everyone.
 */
const NOT_UPDATED: ReadonlySet<string> = new Set([
  ...HOP_BY_HOP,
  'content-length',
  'content-encoding',
  'content-md5',
  'content-range',
  'set-cookie',
]);

/**
 * The stored headers updated from a 304 (RFC 9111 §4.3.4): every field the 304 carries replaces all
 * stored lines of that name, in place; new fields are appended. Date and Age describe a message,
 * not the representation: when the 304 lacks them the stored ones are dropped, so the age of the
 * refreshed entry is computed from the revalidation (a missing Date counts as the time of receipt).
 */
export function mergeNotModified(stored: HeaderList, fresh: HeaderMap): HeaderList {
  const listed = new Set(connectionListed(fresh));
  const updates = new Map<string, string[]>();
  for (const [name, value] of headerMapToList(fresh)) {
    if (NOT_UPDATED.has(name) || listed.has(name)) continue;
    const arr = updates.get(name);
    if (arr) arr.push(value);
    else updates.set(name, [value]);
  }
  const out: HeaderList = [];
  const emitted = new Set<string>();
  for (const [name, value] of stored) {
    const replacement = updates.get(name);
    if (replacement) {
      if (!emitted.has(name)) {
        for (const v of replacement) out.push([name, v]);
        emitted.add(name);
      }
      continue;
    }
    if (name === 'date' || name === 'age') continue;
    out.push([name, value]);
  }
  for (const [name, values] of updates) if (!emitted.has(name)) for (const v of values) out.push([name, v]);
  return out;
}

/**
 * Whether a 304 may update this stored response (RFC 9111 §4.3.4): a strong ETag in the 304 must
 * equal the stored one, a weak one must match it weakly, and a differing Last-Modified means the
 * 304 is about another representation. When false the cache should fetch the full response.
 */
export function notModifiedMatches(stored: HeaderList, fresh: HeaderMap): boolean {
  const newTag = firstValue(fresh, 'etag')?.trim();
  if (newTag !== undefined) {
    const oldTag = listFirst(stored, 'etag')?.trim();
    if (oldTag === undefined) return false;
    const weakNew = newTag.startsWith('W/');
    const weakOld = oldTag.startsWith('W/');
    const opaque = (t: string): string => (t.startsWith('W/') ? t.slice(2) : t);
    if (!weakNew) return !weakOld && newTag === oldTag;
    if (opaque(newTag) !== opaque(oldTag)) return false;
  }
  const newLm = parseHttpDate(firstValue(fresh, 'last-modified'));
  const oldLm = parseHttpDate(listFirst(stored, 'last-modified'));
  return newLm === undefined || oldLm === undefined || newLm === oldLm;
}

// ---------------------------------------------------------------------------------------------
// Invalidation (RFC 9111 §4.4).

const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

/**
 * URLs to invalidate after a request: for an unsafe method (or one whose safety is unknown;
 * methods are case-sensitive, so "get" is unknown) answered with 2xx or 3xx, the target URI and,
 * when same-origin, the Location and Content-Location URIs.
 */
export function invalidationTargets(method: string, status: number, effectiveUrl: URL, resHeaders: HeaderMap): URL[] {
  if (SAFE_METHODS.has(method) || status < 200 || status > 399) return [];
  const out: URL[] = [];
  const seen = new Set<string>();
  const add = (u: URL): void => {
    u.hash = '';
    if (seen.has(u.href)) return;
    seen.add(u.href);
    out.push(u);
  };
  add(new URL(effectiveUrl.href));
  for (const name of ['location', 'content-location']) {
    const v = resHeaders[name];
    // A repeated singleton field is invalid; ignore it rather than guess.
    if (typeof v !== 'string' || v.trim() === '') continue;
    let u: URL;
    try {
      u = new URL(v.trim(), effectiveUrl);
    } catch {
      continue;
    }
    // Cross-origin invalidation is forbidden (denial of service against other sites).
    if (u.origin === effectiveUrl.origin && u.origin !== 'null') add(u);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Purge tags.

export const MAX_TAGS = 256;
export const MAX_TAG_LENGTH = 1024;

/**
 * Purge tags from Surrogate-Key (space-separated, Fastly style) then Cache-Tag (comma-separated,
 * Cloudflare style): trimmed, deduplicated in order of appearance, case kept. Tags longer than
 * 1024 characters are ignored, and so is everything after the 256th distinct tag.
 */
export function parseTags(headers: HeaderMap): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const add = (raw: string): boolean => {
    const tag = raw.trim();
    if (tag === '' || tag.length > MAX_TAG_LENGTH || seen.has(tag)) return true;
    seen.add(tag);
    out.push(tag);
    return out.length < MAX_TAGS;
  };
  const lines = (name: string): readonly string[] => {
    const v = headers[name];
    return v === undefined ? [] : typeof v === 'string' ? [v] : v;
  };
  for (const line of lines('surrogate-key')) for (const t of line.split(/[ \t]+/)) if (!add(t)) return out;
  for (const line of lines('cache-tag')) for (const t of line.split(',')) if (!add(t)) return out;
  return out;
}
