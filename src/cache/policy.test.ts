import { describe, expect, it } from 'vitest';
import { formatHttpDate } from './cache-control.ts';
import {
  CDN_ONLY_HEADERS,
  DEFAULT_POLICY,
  HOP_BY_HOP,
  connectionListed,
  currentAgeMs,
  freshness,
  freshnessState,
  headerListToMap,
  headerMapToList,
  invalidationTargets,
  mergeNotModified,
  notModifiedMatches,
  parseTags,
  remainingTtlMs,
  revalidationHeaders,
  storability,
  type HeaderMap,
  type PolicyOptions,
} from './policy.ts';
import type { HeaderList, StoredMeta } from './storage/tier.ts';

const T0 = Date.UTC(2024, 0, 10, 12, 0, 0);
const DATE = formatHttpDate(T0);
const ago = (s: number) => formatHttpDate(T0 - s * 1000);
const ahead = (s: number) => formatHttpDate(T0 + s * 1000);

const opts = (o: Partial<PolicyOptions> = {}): PolicyOptions => ({ ...DEFAULT_POLICY, ...o });
const GET = (headers: HeaderMap = {}) => ({ method: 'GET', headers });
const res = (headers: HeaderMap, status = 200) => ({ status, headers: { date: DATE, ...headers } });
const store = (headers: HeaderMap, o: Partial<PolicyOptions> = {}, req = GET(), status = 200) => storability(req, res(headers, status), opts(o));
const fresh = (headers: HeaderMap, o: Partial<PolicyOptions> = {}, status = 200) => freshness(res(headers, status), T0, T0, opts(o));

describe('storability', () => {
  it('stores a 200 with max-age', () => {
    expect(store({ 'cache-control': 'max-age=60' })).toEqual({ storable: true });
  });

  it('does not store responses to HEAD or unsafe methods', () => {
    expect(storability({ method: 'HEAD', headers: {} }, res({ 'cache-control': 'max-age=60' }), DEFAULT_POLICY)).toEqual({ storable: false, reason: 'method' });
    expect(storability({ method: 'POST', headers: {} }, res({ 'cache-control': 'max-age=60' }), DEFAULT_POLICY)).toEqual({ storable: false, reason: 'method' });
  });

  it('honours a request no-store', () => {
    expect(store({ 'cache-control': 'max-age=60' }, {}, GET({ 'cache-control': 'No-Store' }))).toEqual({ storable: false, reason: 'request-no-store' });
  });

  it('ignores other request directives when deciding to store', () => {
    expect(store({ 'cache-control': 'max-age=60' }, {}, GET({ 'cache-control': 'no-cache, max-age=0' }))).toEqual({ storable: true });
  });

  it('refuses non-final and out-of-range statuses', () => {
    expect(store({ 'cache-control': 'max-age=60' }, {}, GET(), 103)).toEqual({ storable: false, reason: 'status' });
    expect(store({ 'cache-control': 'max-age=60' }, {}, GET(), 600)).toEqual({ storable: false, reason: 'status' });
  });

  it('does not store 206 partial content', () => {
    expect(store({ 'cache-control': 'max-age=60' }, {}, GET(), 206)).toEqual({ storable: false, reason: 'partial' });
  });

  it('does not store a 304', () => {
    expect(store({ 'cache-control': 'max-age=60', etag: '"a"' }, {}, GET(), 304)).toEqual({ storable: false, reason: 'status' });
  });

  it('honours a response no-store', () => {
    expect(store({ 'cache-control': 'max-age=60, no-store' })).toEqual({ storable: false, reason: 'response-no-store' });
  });

  it('does not store private responses, qualified or not', () => {
    expect(store({ 'cache-control': 'private, max-age=60' })).toEqual({ storable: false, reason: 'private' });
    expect(store({ 'cache-control': 'private="set-cookie", max-age=60' })).toEqual({ storable: false, reason: 'private' });
  });

  it('Authorization makes a response unstorable unless public, s-maxage or must-revalidate', () => {
    const auth = GET({ authorization: 'Bearer x' });
    expect(store({ 'cache-control': 'max-age=60' }, {}, auth)).toEqual({ storable: false, reason: 'authorization' });
    expect(store({ 'cache-control': 'max-age=60, public' }, {}, auth)).toEqual({ storable: true });
    expect(store({ 'cache-control': 's-maxage=60' }, {}, auth)).toEqual({ storable: true });
    expect(store({ 'cache-control': 'max-age=60, must-revalidate' }, {}, auth)).toEqual({ storable: true });
    expect(store({ 'cache-control': 'max-age=60, proxy-revalidate' }, {}, auth)).toEqual({ storable: false, reason: 'authorization' });
  });

  it('counts an empty Authorization header as present', () => {
    expect(store({ 'cache-control': 'max-age=60' }, {}, GET({ authorization: '' }))).toEqual({ storable: false, reason: 'authorization' });
  });

  it('does not store Set-Cookie responses unless configured to', () => {
    const h = { 'cache-control': 'max-age=60, public', 'set-cookie': ['a=1'] };
    expect(store(h)).toEqual({ storable: false, reason: 'set-cookie' });
    expect(store(h, { cacheSetCookie: true })).toEqual({ storable: true });
  });

  it('does not store Vary: *, nor a Vary it cannot honour', () => {
    expect(store({ 'cache-control': 'max-age=60', vary: 'Accept-Encoding, *' })).toEqual({ storable: false, reason: 'vary-star' });
    expect(store({ 'cache-control': 'max-age=60', vary: 'accept encoding' })).toEqual({ storable: false, reason: 'vary-star' });
    expect(store({ 'cache-control': 'max-age=60', vary: 'Accept-Encoding' })).toEqual({ storable: true });
  });

  it('refuses a status that is not heuristically cacheable without explicit freshness', () => {
    expect(store({ etag: '"a"', 'last-modified': ago(3600) }, {}, GET(), 500)).toEqual({ storable: false, reason: 'status' });
    expect(store({ etag: '"a"' }, {}, GET(), 302)).toEqual({ storable: false, reason: 'status' });
  });

  it('stores any final status with explicit freshness', () => {
    expect(store({ 'cache-control': 'max-age=5' }, {}, GET(), 500)).toEqual({ storable: true });
    expect(store({ expires: ahead(60) }, {}, GET(), 302)).toEqual({ storable: true });
  });

  it('stores a status with a configured TTL, and key 0 covers every status', () => {
    expect(store({}, { statusTtlMs: new Map([[502, 5000]]) }, GET(), 502)).toEqual({ storable: true });
    expect(store({}, { statusTtlMs: new Map([[0, 5000]]) }, GET(), 418)).toEqual({ storable: true });
    expect(store({}, { statusTtlMs: new Map([[404, 5000]]) }, GET(), 418)).toEqual({ storable: false, reason: 'status' });
  });

  it('does not store a response with neither explicit freshness nor a validator', () => {
    expect(store({})).toEqual({ storable: false, reason: 'no-freshness' });
    expect(store({ 'cache-control': 'public' })).toEqual({ storable: false, reason: 'no-freshness' });
  });

  it('stores a heuristically cacheable response that has a validator', () => {
    expect(store({ etag: '"a"' })).toEqual({ storable: true });
    expect(store({ 'last-modified': ago(3600) })).toEqual({ storable: true });
    expect(store({ etag: 'W/"a"' }, {}, GET(), 404)).toEqual({ storable: true });
  });

  it('does not count an unparseable Last-Modified as a validator', () => {
    expect(store({ 'last-modified': 'yesterday' })).toEqual({ storable: false, reason: 'no-freshness' });
  });

  it('lets public make a non-heuristic status storable when it has a validator', () => {
    expect(store({ 'cache-control': 'public', 'last-modified': ago(3600) }, {}, GET(), 302)).toEqual({ storable: true });
  });

  it('does not store what can never be reused: zero freshness, no validator, no stale window', () => {
    expect(store({ 'cache-control': 'max-age=0' })).toEqual({ storable: false, reason: 'no-freshness' });
    expect(store({ 'cache-control': 'no-cache' })).toEqual({ storable: false, reason: 'no-freshness' });
    expect(store({ expires: ago(10) })).toEqual({ storable: false, reason: 'no-freshness' });
    expect(store({ expires: '0' })).toEqual({ storable: false, reason: 'no-freshness' });
    expect(store({ 'cache-control': 'max-age=abc' })).toEqual({ storable: false, reason: 'no-freshness' });
  });

  it('stores zero-freshness responses that can be revalidated or served stale', () => {
    expect(store({ 'cache-control': 'max-age=0', etag: '"a"' })).toEqual({ storable: true });
    expect(store({ 'cache-control': 'no-cache', 'last-modified': ago(60) })).toEqual({ storable: true });
    expect(store({ 'cache-control': 'max-age=0, stale-while-revalidate=30' })).toEqual({ storable: true });
    expect(store({ 'cache-control': 'max-age=0' }, { defaultSieMs: 60_000 })).toEqual({ storable: true });
  });

  it('gives an Expires without Date the benefit of the doubt', () => {
    expect(storability(GET(), { status: 200, headers: { expires: ahead(60) } }, DEFAULT_POLICY)).toEqual({ storable: true });
  });

  it('treats a configured status TTL of zero as no freshness', () => {
    expect(store({}, { statusTtlMs: new Map([[404, 0]]) }, GET(), 404)).toEqual({ storable: false, reason: 'no-freshness' });
  });

  it('CDN-Cache-Control replaces Cache-Control: it can allow what Cache-Control forbids', () => {
    expect(store({ 'cache-control': 'no-store', 'cdn-cache-control': 'max-age=600' })).toEqual({ storable: true });
    expect(store({ 'cache-control': 'private', 'cdn-cache-control': 'max-age=600' })).toEqual({ storable: true });
  });

  it('CDN-Cache-Control replaces Cache-Control: it can forbid what Cache-Control allows', () => {
    expect(store({ 'cache-control': 'max-age=600', 'cdn-cache-control': 'no-store' })).toEqual({ storable: false, reason: 'response-no-store' });
    expect(store({ 'cache-control': 'public, max-age=600', 'cdn-cache-control': 'private' })).toEqual({ storable: false, reason: 'private' });
  });

  it('ignores an invalid CDN-Cache-Control and falls back to Cache-Control', () => {
    expect(store({ 'cache-control': 'no-store', 'cdn-cache-control': 'Max-Age=600' })).toEqual({ storable: false, reason: 'response-no-store' });
    expect(store({ 'cache-control': 'no-store', 'cdn-cache-control': '' })).toEqual({ storable: false, reason: 'response-no-store' });
  });

  it('a CDN-Cache-Control of "none" still silences Cache-Control', () => {
    expect(store({ 'cache-control': 'no-store', 'cdn-cache-control': 'none', etag: '"a"' })).toEqual({ storable: true });
  });

  it('Surrogate-Control replaces Cache-Control, and CDN-Cache-Control wins over it', () => {
    expect(store({ 'cache-control': 'no-store', 'surrogate-control': 'max-age=60' })).toEqual({ storable: true });
    expect(store({ 'cache-control': 'max-age=60', 'surrogate-control': 'no-store' })).toEqual({ storable: false, reason: 'response-no-store' });
    expect(store({ 'surrogate-control': 'no-store', 'cdn-cache-control': 'max-age=60' })).toEqual({ storable: true });
  });

  it('keeps Cache-Control when Surrogate-Control carries no caching directive', () => {
    expect(store({ 'cache-control': 'no-store', 'surrogate-control': 'content="ESI/1.0"' })).toEqual({ storable: false, reason: 'response-no-store' });
    expect(fresh({ 'cache-control': 'max-age=60', 'surrogate-control': 'content="ESI/1.0"' })).toMatchObject({ ttlMs: 60_000, source: 'max-age' });
  });

  it('reads Surrogate-Control no-store-remote as no-store for a CDN', () => {
    expect(store({ 'surrogate-control': 'no-store-remote, max-age=60' })).toEqual({ storable: false, reason: 'response-no-store' });
  });

  it('ignores Surrogate-Control directives targeted at another device', () => {
    expect(store({ 'cache-control': 'max-age=60', 'surrogate-control': 'no-store;abc' })).toEqual({ storable: true });
  });

  it('must-understand overrides no-store for a status it understands', () => {
    expect(store({ 'cache-control': 'must-understand, no-store, max-age=60' })).toEqual({ storable: true });
  });

  it('must-understand refuses a status it does not understand', () => {
    expect(store({ 'cache-control': 'must-understand, no-store, max-age=60' }, {}, GET(), 299)).toEqual({ storable: false, reason: 'status' });
  });

  it('honours public, s-maxage and must-revalidate in a targeted field for Authorization', () => {
    expect(store({ 'cdn-cache-control': 'public, max-age=60' }, {}, GET({ authorization: 'x' }))).toEqual({ storable: true });
    expect(store({ 'cache-control': 'public', 'cdn-cache-control': 'max-age=60' }, {}, GET({ authorization: 'x' }))).toEqual({
      storable: false,
      reason: 'authorization',
    });
  });
});

describe('freshness', () => {
  it('s-maxage wins over max-age', () => {
    expect(fresh({ 'cache-control': 'max-age=60, s-maxage=120' })).toMatchObject({ ttlMs: 120_000, source: 's-maxage' });
  });

  it('uses max-age when there is no s-maxage', () => {
    expect(fresh({ 'cache-control': 'max-age=60' })).toMatchObject({ ttlMs: 60_000, source: 'max-age' });
  });

  it('max-age wins over Expires', () => {
    expect(fresh({ 'cache-control': 'max-age=60', expires: ahead(3600) })).toMatchObject({ ttlMs: 60_000, source: 'max-age' });
  });

  it('uses Expires minus Date', () => {
    expect(fresh({ expires: ahead(300) })).toMatchObject({ ttlMs: 300_000, source: 'expires' });
  });

  it('uses the time of receipt for Expires when Date is missing or invalid', () => {
    const f = freshness({ status: 200, headers: { expires: ahead(100) } }, T0 - 5000, T0 + 40_000, DEFAULT_POLICY);
    expect(f).toMatchObject({ ttlMs: 60_000, source: 'expires' });
    const g = freshness({ status: 200, headers: { expires: ahead(100), date: 'garbage' } }, T0, T0, DEFAULT_POLICY);
    expect(g.ttlMs).toBe(100_000);
  });

  it('an Expires in the past means already stale', () => {
    expect(fresh({ expires: ago(60) })).toMatchObject({ ttlMs: 0, source: 'expires' });
  });

  it('an invalid Expires such as 0 means already expired', () => {
    expect(fresh({ expires: '0', 'last-modified': ago(10_000) })).toMatchObject({ ttlMs: 0, source: 'expires' });
  });

  it('uses the first of several Expires lines', () => {
    expect(fresh({ expires: [ahead(60), ahead(600)] })).toMatchObject({ ttlMs: 60_000 });
  });

  it('treats an invalid max-age as stale rather than falling back', () => {
    expect(fresh({ 'cache-control': 'max-age=1.5', expires: ahead(600) })).toMatchObject({ ttlMs: 0, source: 'max-age' });
    expect(fresh({ 'cache-control': 's-maxage=soon, max-age=60' })).toMatchObject({ ttlMs: 0, source: 's-maxage' });
  });

  it('uses the first of repeated max-age directives', () => {
    expect(fresh({ 'cache-control': ['max-age=60', 'max-age=0'] })).toMatchObject({ ttlMs: 60_000 });
  });

  it('caps a huge max-age at 2^31 seconds', () => {
    expect(fresh({ 'cache-control': 'max-age=99999999999' }).ttlMs).toBe(2 ** 31 * 1000);
  });

  it('a targeted field max-age wins over Cache-Control s-maxage', () => {
    expect(fresh({ 'cache-control': 's-maxage=60', 'cdn-cache-control': 'max-age=600' })).toMatchObject({ ttlMs: 600_000, source: 'cdn-cache-control' });
  });

  it('a targeted field s-maxage wins over its max-age', () => {
    expect(fresh({ 'cdn-cache-control': 'max-age=600, s-maxage=900' })).toMatchObject({ ttlMs: 900_000, source: 'cdn-cache-control' });
  });

  it('a targeted field without max-age ignores Cache-Control and Expires', () => {
    const h = { 'cache-control': 'max-age=60', expires: ahead(60), 'cdn-cache-control': 'stale-if-error=30', 'last-modified': ago(1000) };
    expect(fresh(h)).toMatchObject({ ttlMs: 100_000, source: 'heuristic', sieMs: 30_000 });
  });

  it('uses Surrogate-Control max-age, with its freshness extension as a stale-if-error window', () => {
    expect(fresh({ 'cache-control': 'max-age=5', 'surrogate-control': 'max-age=30' })).toMatchObject({ ttlMs: 30_000, source: 'surrogate-control' });
    expect(fresh({ 'surrogate-control': 'max-age=30+60' })).toMatchObject({ ttlMs: 30_000, sieMs: 60_000, source: 'surrogate-control' });
    expect(fresh({ 'surrogate-control': 'max-age=30+60, stale-if-error=5' })).toMatchObject({ sieMs: 5000 });
  });

  it('uses a configured status TTL when the response states no freshness', () => {
    expect(fresh({}, { statusTtlMs: new Map([[200, 7000]]) })).toMatchObject({ ttlMs: 7000, source: 'status-default' });
  });

  it('prefers the exact status over the any-status entry', () => {
    const statusTtlMs = new Map([
      [0, 1000],
      [404, 9000],
    ]);
    expect(fresh({}, { statusTtlMs }, 404).ttlMs).toBe(9000);
    expect(fresh({}, { statusTtlMs }, 410).ttlMs).toBe(1000);
  });

  it('prefers explicit freshness over a configured status TTL', () => {
    expect(fresh({ 'cache-control': 'max-age=1' }, { statusTtlMs: new Map([[200, 7000]]) })).toMatchObject({ ttlMs: 1000, source: 'max-age' });
  });

  it('prefers a configured status TTL over the heuristic', () => {
    expect(fresh({ 'last-modified': ago(100_000) }, { statusTtlMs: new Map([[200, 7000]]) })).toMatchObject({ ttlMs: 7000, source: 'status-default' });
  });

  it('computes heuristic freshness as a fraction of the time since Last-Modified', () => {
    expect(fresh({ 'last-modified': ago(1000) })).toMatchObject({ ttlMs: 100_000, source: 'heuristic' });
    expect(fresh({ 'last-modified': ago(1000) }, { heuristicFraction: 0.5 })).toMatchObject({ ttlMs: 500_000 });
  });

  it('caps heuristic freshness', () => {
    expect(fresh({ 'last-modified': ago(10 * 86400 * 365) })).toMatchObject({ ttlMs: 86_400_000 });
    expect(fresh({ 'last-modified': ago(1000) }, { heuristicMaxMs: 5000 }).ttlMs).toBe(5000);
  });

  it('uses no heuristic for statuses that are not heuristically cacheable', () => {
    expect(fresh({ 'last-modified': ago(1000) }, {}, 302)).toMatchObject({ ttlMs: 0, source: 'none' });
    expect(fresh({ 'last-modified': ago(1000) }, {}, 404)).toMatchObject({ ttlMs: 100_000, source: 'heuristic' });
  });

  it('uses a heuristic for a public response of any status', () => {
    expect(fresh({ 'cache-control': 'public', 'last-modified': ago(1000) }, {}, 302)).toMatchObject({ ttlMs: 100_000, source: 'heuristic' });
  });

  it('gives no heuristic freshness when Last-Modified is not before Date', () => {
    expect(fresh({ 'last-modified': ahead(10) })).toMatchObject({ ttlMs: 0, source: 'none' });
    expect(fresh({ 'last-modified': DATE })).toMatchObject({ ttlMs: 0, source: 'none' });
  });

  it('measures the heuristic against the time of receipt when Date is missing', () => {
    const f = freshness({ status: 200, headers: { 'last-modified': ago(1000) } }, T0, T0 + 1000_000, DEFAULT_POLICY);
    expect(f.ttlMs).toBe(200_000);
  });

  it('response no-cache means zero freshness (stored, always revalidated)', () => {
    expect(fresh({ 'cache-control': 'no-cache, max-age=600' })).toMatchObject({ ttlMs: 0, source: 'none' });
    expect(fresh({ 'cdn-cache-control': 'no-cache, max-age=600' })).toMatchObject({ ttlMs: 0, source: 'cdn-cache-control' });
    expect(fresh({ 'cache-control': 'no-cache="set-cookie", max-age=600' }).ttlMs).toBe(0);
  });

  it('reads stale-while-revalidate and stale-if-error from the response', () => {
    expect(fresh({ 'cache-control': 'max-age=60, stale-while-revalidate=30, stale-if-error=600' })).toMatchObject({ swrMs: 30_000, sieMs: 600_000 });
  });

  it('applies the configured windows when the response names none', () => {
    expect(fresh({ 'cache-control': 'max-age=60' }, { defaultSwrMs: 5000, defaultSieMs: 9000 })).toMatchObject({ swrMs: 5000, sieMs: 9000 });
    expect(fresh({ 'cache-control': 'max-age=60, stale-if-error=1' }, { defaultSwrMs: 5000, defaultSieMs: 9000 })).toMatchObject({ swrMs: 5000, sieMs: 1000 });
  });

  it('has no stale windows by default', () => {
    expect(fresh({ 'cache-control': 'max-age=60' })).toMatchObject({ swrMs: 0, sieMs: 0 });
  });

  it('must-revalidate, proxy-revalidate and no-cache forbid serving stale', () => {
    const o = { defaultSwrMs: 5000, defaultSieMs: 9000 };
    for (const cc of ['must-revalidate', 'proxy-revalidate', 'no-cache']) {
      expect(fresh({ 'cache-control': `max-age=60, ${cc}, stale-while-revalidate=30, stale-if-error=30` }, o), cc).toMatchObject({ swrMs: 0, sieMs: 0 });
    }
  });

  it('s-maxage forbids the configured stale windows but honours the ones the origin sends', () => {
    const o = { defaultSwrMs: 5000, defaultSieMs: 9000 };
    expect(fresh({ 'cache-control': 's-maxage=60' }, o)).toMatchObject({ swrMs: 0, sieMs: 0 });
    expect(fresh({ 'cache-control': 's-maxage=60, stale-while-revalidate=30' }, o)).toMatchObject({ swrMs: 30_000, sieMs: 0 });
  });

  it('treats an invalid stale window as zero, not as the default', () => {
    expect(fresh({ 'cache-control': 'max-age=60, stale-while-revalidate=x' }, { defaultSwrMs: 5000 }).swrMs).toBe(0);
  });

  it('must-revalidate in a targeted field forbids stale too', () => {
    expect(fresh({ 'cdn-cache-control': 'max-age=60, must-revalidate, stale-if-error=60' })).toMatchObject({ sieMs: 0 });
  });

  it('reports none when nothing gives freshness', () => {
    expect(fresh({ etag: '"a"' })).toEqual({ ttlMs: 0, swrMs: 0, sieMs: 0, source: 'none' });
  });
});

const meta = (m: Partial<StoredMeta> & { headers?: HeaderList } = {}): StoredMeta => ({
  key: 'k',
  status: 200,
  headers: [['date', DATE]],
  requestTime: T0,
  responseTime: T0,
  ttlMs: 60_000,
  swrMs: 0,
  sieMs: 0,
  tags: [],
  vary: [],
  size: 0,
  ...m,
});

describe('currentAgeMs', () => {
  it('is the resident time when the response arrived instantly with a current Date', () => {
    expect(currentAgeMs(meta(), T0 + 5000)).toBe(5000);
  });

  it('counts the response delay only with an Age measured upstream, as nginx and Varnish do', () => {
    expect(currentAgeMs(meta({ requestTime: T0 - 2000, headers: [] }), T0)).toBe(0);
    expect(currentAgeMs(meta({ requestTime: T0 - 2000, headers: [['age', '0']] }), T0)).toBe(2000);
  });

  it('ignores an apparent age under one second, the resolution of Date', () => {
    expect(currentAgeMs(meta({ responseTime: T0 + 900, headers: [['date', DATE]] }), T0 + 900)).toBe(0);
    expect(currentAgeMs(meta({ responseTime: T0 + 1000, headers: [['date', DATE]] }), T0 + 1000)).toBe(1000);
  });

  it('uses the apparent age from Date when it is larger', () => {
    expect(currentAgeMs(meta({ headers: [['date', ago(30)]] }), T0 + 1000)).toBe(31_000);
  });

  it('adds the Age header to the response delay', () => {
    expect(currentAgeMs(meta({ requestTime: T0 - 1000, headers: [['date', DATE], ['age', '100']] }), T0 + 10_000)).toBe(111_000);
  });

  it('takes the larger of apparent age and corrected Age', () => {
    const m = meta({ headers: [['date', ago(50)], ['age', '20']] });
    expect(currentAgeMs(m, T0)).toBe(50_000);
  });

  it('ignores a Date in the future (clock skew)', () => {
    expect(currentAgeMs(meta({ headers: [['date', ahead(100)]] }), T0 + 1000)).toBe(1000);
  });

  it('treats a missing or invalid Date as the time of receipt', () => {
    expect(currentAgeMs(meta({ headers: [['date', 'nonsense']] }), T0 + 1000)).toBe(1000);
    expect(currentAgeMs(meta({ headers: [] }), T0 + 1000)).toBe(1000);
  });

  it('uses the first Age line', () => {
    expect(currentAgeMs(meta({ headers: [['age', '10'], ['age', '500']] }), T0)).toBe(10_000);
  });

  it('considers a response with an invalid Age stale', () => {
    for (const age of ['abc', '-5', '10, 20', '1.5']) {
      const m = meta({ headers: [['age', age]], ttlMs: 86_400_000 });
      expect(currentAgeMs(m, T0), age).toBe(2 ** 31 * 1000);
      expect(freshnessState(m, T0), age).toBe('stale');
    }
  });
});

describe('freshnessState', () => {
  it('is fresh before expiry and stale from the moment of expiry', () => {
    const m = meta({ ttlMs: 10_000 });
    expect(freshnessState(m, T0)).toBe('fresh');
    expect(freshnessState(m, T0 + 9999)).toBe('fresh');
    expect(freshnessState(m, T0 + 10_000)).toBe('stale');
  });

  it('is never fresh with a zero lifetime', () => {
    expect(freshnessState(meta({ ttlMs: 0 }), T0)).toBe('stale');
  });

  it('passes through the stale-while-revalidate then stale-if-error windows', () => {
    const m = meta({ ttlMs: 10_000, swrMs: 5000, sieMs: 20_000 });
    expect(freshnessState(m, T0 + 10_000)).toBe('stale-while-revalidate');
    expect(freshnessState(m, T0 + 14_999)).toBe('stale-while-revalidate');
    expect(freshnessState(m, T0 + 15_000)).toBe('stale-if-error');
    expect(freshnessState(m, T0 + 29_999)).toBe('stale-if-error');
    expect(freshnessState(m, T0 + 30_000)).toBe('stale');
  });

  it('prefers stale-while-revalidate while both windows are open', () => {
    const m = meta({ ttlMs: 0, swrMs: 5000, sieMs: 5000 });
    expect(freshnessState(m, T0 + 1000)).toBe('stale-while-revalidate');
    expect(freshnessState(m, T0 + 5000)).toBe('stale');
  });

  it('counts age carried by the response against freshness', () => {
    const m = meta({ ttlMs: 60_000, headers: [['date', DATE], ['age', '50']] });
    expect(freshnessState(m, T0 + 9000)).toBe('fresh');
    expect(freshnessState(m, T0 + 10_000)).toBe('stale');
  });

  it('makes a soft-purged entry stale from the purge, with windows counted from it', () => {
    const m = meta({ ttlMs: 60_000, swrMs: 5000, sieMs: 10_000, invalidatedAt: T0 + 1000 });
    expect(freshnessState(m, T0 + 1000)).toBe('stale-while-revalidate');
    expect(freshnessState(m, T0 + 6000)).toBe('stale-if-error');
    expect(freshnessState(m, T0 + 11_000)).toBe('stale');
  });

  it('counts the windows from expiry when the entry expired before the soft purge', () => {
    const m = meta({ ttlMs: 1000, swrMs: 5000, invalidatedAt: T0 + 4000 });
    expect(freshnessState(m, T0 + 5000)).toBe('stale-while-revalidate');
    expect(freshnessState(m, T0 + 6000)).toBe('stale');
  });

  it('treats a soft purge stamped in the future (clock skew) as effective now', () => {
    const m = meta({ ttlMs: 60_000, invalidatedAt: T0 + 5000 });
    expect(freshnessState(m, T0)).toBe('stale');
  });
});

describe('remainingTtlMs', () => {
  it('is the time left before expiry', () => {
    expect(remainingTtlMs(meta({ ttlMs: 60_000 }), T0 + 15_000)).toBe(45_000);
  });

  it('is negative once stale', () => {
    expect(remainingTtlMs(meta({ ttlMs: 60_000 }), T0 + 75_000)).toBe(-15_000);
  });

  it('is at most zero for a soft-purged entry', () => {
    expect(remainingTtlMs(meta({ ttlMs: 60_000, invalidatedAt: T0 + 1000 }), T0 + 3000)).toBe(-2000);
    expect(remainingTtlMs(meta({ ttlMs: 60_000, invalidatedAt: T0 + 9000 }), T0)).toBe(0);
  });
});

describe('revalidationHeaders', () => {
  it('sends both validators when the stored response has both', () => {
    expect(revalidationHeaders([['etag', '"v1"'], ['last-modified', DATE]])).toEqual({ 'if-none-match': '"v1"', 'if-modified-since': DATE });
  });

  it('sends a weak ETag as it is (If-None-Match compares weakly)', () => {
    expect(revalidationHeaders([['etag', 'W/"v1"']])).toEqual({ 'if-none-match': 'W/"v1"' });
  });

  it('sends nothing for an invalid Last-Modified or no validators', () => {
    expect(revalidationHeaders([['last-modified', 'yesterday']])).toEqual({});
    expect(revalidationHeaders([['content-type', 'text/plain']])).toEqual({});
  });
});

describe('mergeNotModified', () => {
  const stored: HeaderList = [
    ['date', ago(600)],
    ['content-type', 'text/html'],
    ['cache-control', 'max-age=60'],
    ['etag', '"v1"'],
    ['content-length', '1234'],
    ['content-encoding', 'gzip'],
    ['x-a', '1'],
    ['x-a', '2'],
  ];

  it('replaces stored fields in place and appends new ones', () => {
    const merged = mergeNotModified(stored, { date: DATE, 'cache-control': 'max-age=300', 'x-new': 'y' });
    expect(merged).toEqual([
      ['date', DATE],
      ['content-type', 'text/html'],
      ['cache-control', 'max-age=300'],
      ['etag', '"v1"'],
      ['content-length', '1234'],
      ['content-encoding', 'gzip'],
      ['x-a', '1'],
      ['x-a', '2'],
      ['x-new', 'y'],
    ]);
  });

  it('replaces every line of a repeated field', () => {
    const merged = mergeNotModified(stored, { date: DATE, 'x-a': ['3'] });
    expect(merged.filter(([n]) => n === 'x-a')).toEqual([['x-a', '3']]);
  });

  it('never updates Content-Length, Content-Encoding, Content-Range or Transfer-Encoding', () => {
    const merged = mergeNotModified(stored, {
      date: DATE,
      'content-length': '0',
      'content-encoding': 'br',
      'content-range': 'bytes 0-1/2',
      'transfer-encoding': 'chunked',
    });
    expect(merged).toContainEqual(['content-length', '1234']);
    expect(merged).toContainEqual(['content-encoding', 'gzip']);
    expect(merged.some(([n]) => n === 'content-range' || n === 'transfer-encoding')).toBe(false);
  });

  it('does not merge hop-by-hop or Connection-listed fields', () => {
    const merged = mergeNotModified(stored, { date: DATE, connection: 'close, x-hop', 'x-hop': '1', 'keep-alive': 'timeout=5', 'proxy-authenticate': 'Basic' });
    expect(merged.map(([n]) => n)).not.toContain('x-hop');
    expect(merged.map(([n]) => n)).not.toContain('connection');
    expect(merged.map(([n]) => n)).not.toContain('keep-alive');
    expect(merged.map(([n]) => n)).not.toContain('proxy-authenticate');
  });

  it("does not merge the 304's Set-Cookie into the shared copy", () => {
    expect(mergeNotModified(stored, { date: DATE, 'set-cookie': ['s=1'] }).some(([n]) => n === 'set-cookie')).toBe(false);
  });

  it('drops the stored Date and Age when the 304 carries none, so age restarts at revalidation', () => {
    const merged = mergeNotModified([...stored, ['age', '500']], { etag: '"v1"' });
    expect(merged.some(([n]) => n === 'date' || n === 'age')).toBe(false);
    const m = { headers: merged, requestTime: T0, responseTime: T0 };
    expect(currentAgeMs(m, T0)).toBe(0);
  });

  it('takes Age from the 304 when it has one', () => {
    const merged = mergeNotModified([...stored, ['age', '500']], { date: DATE, age: '3' });
    expect(merged).toContainEqual(['age', '3']);
    expect(merged).not.toContainEqual(['age', '500']);
  });

  it('updates the ETag and freshness fields from the 304', () => {
    const merged = mergeNotModified(stored, { date: DATE, etag: '"v1"', expires: ahead(60) });
    expect(merged).toContainEqual(['expires', ahead(60)]);
  });
});

describe('notModifiedMatches', () => {
  it('accepts a 304 with the same strong ETag', () => {
    expect(notModifiedMatches([['etag', '"a"']], { etag: '"a"' })).toBe(true);
  });

  it('refuses a 304 with a different strong ETag', () => {
    expect(notModifiedMatches([['etag', '"a"']], { etag: '"b"' })).toBe(false);
  });

  it('refuses a strong ETag that only matches a stored weak one', () => {
    expect(notModifiedMatches([['etag', 'W/"a"']], { etag: '"a"' })).toBe(false);
  });

  it('accepts a weak ETag that weakly matches', () => {
    expect(notModifiedMatches([['etag', '"a"']], { etag: 'W/"a"' })).toBe(true);
    expect(notModifiedMatches([['etag', 'W/"a"']], { etag: 'W/"a"' })).toBe(true);
    expect(notModifiedMatches([['etag', 'W/"a"']], { etag: 'W/"b"' })).toBe(false);
  });

  it('refuses an ETag when the stored response had none', () => {
    expect(notModifiedMatches([['last-modified', DATE]], { etag: '"a"' })).toBe(false);
  });

  it('refuses a different Last-Modified, accepts the same or none', () => {
    expect(notModifiedMatches([['last-modified', DATE]], { 'last-modified': ago(5) })).toBe(false);
    expect(notModifiedMatches([['last-modified', DATE]], { 'last-modified': DATE })).toBe(true);
    expect(notModifiedMatches([['last-modified', DATE]], {})).toBe(true);
  });
});

describe('invalidationTargets', () => {
  const url = new URL('https://example.com/items/1?x=1#frag');

  it('invalidates the target URI after a successful unsafe request', () => {
    expect(invalidationTargets('POST', 201, url, {}).map(String)).toEqual(['https://example.com/items/1?x=1']);
  });

  it('invalidates nothing after a safe method', () => {
    for (const m of ['GET', 'HEAD', 'OPTIONS', 'TRACE']) expect(invalidationTargets(m, 200, url, {})).toEqual([]);
  });

  it('treats methods of unknown safety (and lower-case names) as unsafe', () => {
    expect(invalidationTargets('PURGEALL', 200, url, {})).toHaveLength(1);
    expect(invalidationTargets('get', 200, url, {})).toHaveLength(1);
  });

  it('invalidates after 3xx but not after errors', () => {
    expect(invalidationTargets('DELETE', 302, url, {})).toHaveLength(1);
    expect(invalidationTargets('DELETE', 404, url, {})).toEqual([]);
    expect(invalidationTargets('DELETE', 500, url, {})).toEqual([]);
    expect(invalidationTargets('DELETE', 100, url, {})).toEqual([]);
  });

  it('adds same-origin Location and Content-Location, resolving relative references', () => {
    const targets = invalidationTargets('PUT', 200, url, { location: '/items/2', 'content-location': 'https://example.com/items/1/v2' });
    expect(targets.map(String)).toEqual(['https://example.com/items/1?x=1', 'https://example.com/items/2', 'https://example.com/items/1/v2']);
  });

  it('ignores cross-origin Location and Content-Location', () => {
    const targets = invalidationTargets('POST', 200, url, { location: 'https://evil.example/x', 'content-location': 'http://example.com/items/1' });
    expect(targets.map(String)).toEqual(['https://example.com/items/1?x=1']);
  });

  it('treats an explicit default port as the same origin', () => {
    expect(invalidationTargets('POST', 200, url, { location: 'https://example.com:443/y' }).map(String)).toContain('https://example.com/y');
  });

  it('deduplicates and ignores invalid or repeated Location fields', () => {
    expect(invalidationTargets('POST', 200, url, { location: '/items/1?x=1' })).toHaveLength(1);
    expect(invalidationTargets('POST', 200, url, { location: 'http://[bad' })).toHaveLength(1);
    expect(invalidationTargets('POST', 200, url, { location: ['/a', '/b'] })).toHaveLength(1);
  });
});

describe('parseTags', () => {
  it('reads space-separated Surrogate-Key and comma-separated Cache-Tag', () => {
    expect(parseTags({ 'surrogate-key': ' a  b\tc ', 'cache-tag': 'd, e ,f' })).toEqual(['a', 'b', 'c', 'd', 'e', 'f']);
  });

  it('deduplicates across both fields, keeping case and first appearance', () => {
    expect(parseTags({ 'surrogate-key': 'a B a', 'cache-tag': 'B,b' })).toEqual(['a', 'B', 'b']);
  });

  it('reads repeated field lines', () => {
    expect(parseTags({ 'surrogate-key': ['a b', 'c'], 'cache-tag': ['d', 'e,f'] })).toEqual(['a', 'b', 'c', 'd', 'e', 'f']);
  });

  it('keeps at most 256 tags', () => {
    const many = Array.from({ length: 300 }, (_, i) => `t${i}`);
    const tags = parseTags({ 'surrogate-key': many.join(' '), 'cache-tag': 'late' });
    expect(tags).toHaveLength(256);
    expect(tags[255]).toBe('t255');
  });

  it('ignores tags longer than 1024 characters', () => {
    expect(parseTags({ 'cache-tag': `${'x'.repeat(1025)},ok,${'y'.repeat(1024)}` })).toEqual(['ok', 'y'.repeat(1024)]);
  });

  it('returns nothing without tag fields', () => {
    expect(parseTags({})).toEqual([]);
    expect(parseTags({ 'cache-tag': ' , ,' })).toEqual([]);
  });
});

describe('header sets and helpers', () => {
  it('lists the CDN-only fields', () => {
    expect([...CDN_ONLY_HEADERS].sort()).toEqual(['cache-tag', 'cdn-cache-control', 'surrogate-control', 'surrogate-key']);
  });

  it('lists the hop-by-hop fields of RFC 9110 §7.6.1 and the proxy-specific ones', () => {
    for (const n of ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authenticate', 'proxy-authorization']) {
      expect(HOP_BY_HOP.has(n), n).toBe(true);
    }
    expect(HOP_BY_HOP.has('content-length')).toBe(false);
  });

  it('connectionListed returns the lower-cased names in Connection', () => {
    expect(connectionListed({ connection: 'Keep-Alive, X-Foo ,,x-foo' })).toEqual(['keep-alive', 'x-foo']);
    expect(connectionListed({ connection: ['close', 'X-Bar'] })).toEqual(['close', 'x-bar']);
    expect(connectionListed({})).toEqual([]);
  });

  it('converts between header lists and maps', () => {
    const list: HeaderList = [
      ['a', '1'],
      ['set-cookie', 'x'],
      ['set-cookie', 'y'],
      ['set-cookie', 'z'],
    ];
    const map = headerListToMap(list);
    expect(map).toEqual({ a: '1', 'set-cookie': ['x', 'y', 'z'] });
    expect(headerMapToList(map)).toEqual(list);
  });

  it('headerMapToList lower-cases names and skips undefined values', () => {
    expect(headerMapToList({ 'X-A': '1', b: undefined, c: [] })).toEqual([['x-a', '1']]);
  });

  it('DEFAULT_POLICY reuses nothing without freshness or a validator and serves nothing stale', () => {
    expect(DEFAULT_POLICY.statusTtlMs.size).toBe(0);
    expect(DEFAULT_POLICY.defaultSwrMs).toBe(0);
    expect(DEFAULT_POLICY.defaultSieMs).toBe(0);
    expect(DEFAULT_POLICY.cacheSetCookie).toBe(false);
    expect(DEFAULT_POLICY.heuristicFraction).toBe(0.1);
  });
});
