// The cache stage of the pipeline: lookup across tiers, freshness, collapsing, fill, revalidation
// and stale serving. RFC rules come from policy.ts and friends; storage from the tiers.
import { PassThrough, Readable } from 'node:stream';
import { buffer as readAll } from 'node:stream/consumers';
import type { Logger } from 'pino';
import { toOutpostError } from '../errors.ts';
import type { RequestContext } from '../edge/phases.ts';
import type { EdgeMetrics } from '../metrics/metrics.ts';
import { mapUpstreamError, type UpstreamPool, type UpstreamResponse } from '../upstream/pool.ts';
import { upstreamHeaders, type ForwardingOptions } from '../upstream/headers.ts';
import { evaluateConditional, notModifiedHeaders } from './conditional.ts';
import { fillFromOrigin, sliceStream } from './fill.ts';
import {
  CompressingWrite,
  PLAN_NONE,
  addVaryAcceptEncoding,
  canDecode,
  compressedKey,
  compressionPlan,
  decodeHeaders,
  encodeHeaders,
  mayDecode,
  planInputFromList,
  planInputFromMap,
  requestForbidsTransform,
  variantHeaders,
  variantMeta,
  variesByEncoding,
  wantsCompression,
  withVaryAcceptEncoding,
  type CompressionOptions,
  type CompressionPlan,
} from './compress.ts';
import type { ContentCoding } from './compress-negotiate.ts';
import { bufferBody, Compression } from './compress-variants.ts';
import { PurgeLog } from './purge-log.ts';
import type { Collapser, LockGrant, SharedFill } from './lock.ts';
import { formatCacheStatus, type CacheOutcome } from './outcome.ts';
import {
  CDN_ONLY_HEADERS,
  HOP_BY_HOP,
  connectionListed,
  currentAgeMs,
  freshness,
  HEURISTICALLY_CACHEABLE,
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
  type FreshnessState,
  type HeaderMap,
  type PolicyOptions,
} from './policy.ts';
import { contentRange, parseRange, unsatisfiedRange } from './range.ts';
import { normalizeAcceptEncoding, parseVary, variantSuffix } from './vary.ts';
import { VARIANT_SEPARATOR, type HeaderList, type PurgeSpec, type StorageTier, type StoredBody, type StoredEntry, type StoredMeta, type WriteHandle } from './storage/tier.ts';

/** Bodies up to this size are read once and shared by the requests one fill woke (sharedRead). */
const SHARED_READ_MAX_BYTES = 1024 * 1024;
/** Objects up to this size are handed to other workers' waiters over IPC (SharedFill), base64 in JSON. */
const SHARE_MAX_BYTES = 256 * 1024;

export interface Outgoing {
  status: number;
  headers: Record<string, string | string[]>;
  body: Buffer | Readable | null;
}

export interface HttpCacheDeps {
  readonly enabled: boolean;
  /** Fastest first: RAM, then disk. */
  readonly tiers: readonly StorageTier[];
  readonly policy: PolicyOptions;
  /** Absent when request collapsing is switched off. */
  readonly collapser?: Collapser;
  readonly pool: (name: string) => UpstreamPool;
  readonly forwarding: ForwardingOptions;
  readonly metrics: EdgeMetrics;
  readonly log: Logger;
  /** Cache name in Cache-Status. */
  readonly name: string;
  /** Computes the cache key of a URL (for invalidation after unsafe methods). */
  readonly keyOf: (parts: { scheme: string; host: string; path: string; query: string }) => string;
  /** Removes URL keys node-wide (every worker's RAM tier and the disk tier). */
  readonly invalidate: (keys: readonly string[]) => Promise<void>;
  /** Edge compression (compress.ts); absent: bodies pass as the origin sent them. */
  readonly compression?: CompressionOptions;
}

const CACHEABLE_METHODS = new Set(['GET', 'HEAD']);
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);
const STALE_ON_STATUS = new Set([500, 502, 503, 504]);

/** Headers stored with an object: everything the origin sent but per-connection ones. */
function storableHeaders(headers: HeaderMap): HeaderList {
  const listed = new Set(connectionListed(headers));
  return headerMapToList(headers).filter(([n]) => !HOP_BY_HOP.has(n) && !listed.has(n));
}

function toClientHeaders(list: HeaderList): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of list) {
    if (CDN_ONLY_HEADERS.has(name) || name === 'content-length') continue;
    const prev = out[name];
    if (prev === undefined) out[name] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else out[name] = [prev, value];
  }
  return out;
}

function passHeaders(headers: HeaderMap): Record<string, string | string[]> {
  const listed = new Set(connectionListed(headers));
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const v = headers[name];
    if (v === undefined || HOP_BY_HOP.has(name) || listed.has(name) || CDN_ONLY_HEADERS.has(name)) continue;
    out[name] = v;
  }
  return out;
}

/**
 * The Cache-Status entries of caches nearer the origin, as a prefix for ours: RFC 9211 lists caches
 * from the origin's side first, each adding its entry at the end.
 */
function chainedStatus(h: Record<string, string | string[]>): string {
  const v = h['cache-status'];
  if (v === undefined || v === '') return '';
  return `${typeof v === 'string' ? v : v.join(', ')}, `;
}

/** Request fields that make evaluateConditional look at the stored validators. */
function hasPreconditions(req: HeaderMap): boolean {
  return req['if-match'] !== undefined || req['if-none-match'] !== undefined || req['if-modified-since'] !== undefined || req['if-unmodified-since'] !== undefined;
}

/**
 * What serving a stored entry needs from its meta, worked out once per meta object. The tiers hand
 * back the same meta on every hit until the entry changes (a new fill, a 304, a soft purge make a
 * new one), and re-parsing Date/Age and rebuilding the client headers on each hit was most of the
 * cache's share of a HIT's CPU (docs/performance.md, "Where the time goes").
 */
interface HitView {
  /**
   * The meta as the freshness functions of policy.ts need it, with its Date and Age already
   * applied: they read no other header (the freshness lifetime was worked out when it was stored,
   * into ttlMs), and current_age = max(0, initial_age + now - response_time) (RFC 9111 §4.2.3), so
   * with no headers and request_time = response_time - initial_age they compute the same ages.
   */
  readonly timing: StoredMeta;
  /** Client headers before the per-request ones (age, x-cache-status, cache-status, content-length). */
  readonly headers: Readonly<Record<string, string | string[]>>;
  /** The stored headers as clients see them (with Vary: Accept-Encoding when the body may be coded). */
  readonly list: HeaderList;
  /** What compression may do with this entry's body. */
  readonly plan: CompressionPlan;
  /** Storage keys of this entry's compressed variants, made on first use. */
  readonly vkeys: Partial<Record<ContentCoding, string>>;
  /** Whether some header repeats (an array value, which each response must copy). */
  readonly arrays: boolean;
  readonly size: string;
  /** The Cache-Status of a plain HIT for the ttl second `hitTtlS` (it changes once a second). */
  hitTtlS: number;
  hitStatus: string;
}

/** A freshness with its lifetime replaced by a rule's TTL (ctx.cacheOverride.ttlMs), when there is one. */
function withTtl<F extends { ttlMs: number }>(f: F, ttlMs: number | undefined): F {
  return ttlMs === undefined ? f : { ...f, ttlMs };
}

/**
 * The meta a hit takes ages from: the initial age worked out once, carried as a response delay
 * behind an `Age: 0` (currentAgeMs adds the delay only to an Age; policy.ts).
 */
function timingMeta(meta: StoredMeta): StoredMeta {
  const initialAgeMs = currentAgeMs(meta, meta.responseTime);
  return { ...meta, headers: AGE_ZERO, requestTime: meta.responseTime - initialAgeMs };
}
const AGE_ZERO: HeaderList = [['age', '0']];

/**
 * A variant with the soft purge its object carries: a purge noted in the purge log marks only the
 * copy of the object the lookup returned, and the variant must not look fresher than that.
 */
function sameInvalidation(variant: StoredEntry, object: StoredMeta): StoredEntry {
  if (object.invalidatedAt === undefined || variant.meta.invalidatedAt !== undefined) return variant;
  return { meta: { ...variant.meta, invalidatedAt: object.invalidatedAt }, body: variant.body };
}

/** A response's own copy of a view's headers: header_filter hooks may change it. */
function copyHeaders(v: HitView): Record<string, string | string[]> {
  if (!v.arrays) return { ...v.headers };
  const out: Record<string, string | string[]> = {};
  for (const k in v.headers) {
    const x = v.headers[k]!;
    out[k] = typeof x === 'string' ? x : [...x];
  }
  return out;
}

export class HttpCache {
  private readonly deps: HttpCacheDeps;
  private readonly promoting = new Set<string>();
  /** Bodies read once from a slower tier for every request of this worker woken by one fill (see sharedRead). */
  private readonly sharedReads = new Map<string, Promise<StoredBody | undefined>>();
  /** Fills whose response has been handed out, until every tier has committed (drain). */
  private readonly fills = new Set<Promise<void>>();
  /** Fills other workers shared (SharedFill), being put in RAM: once for all the waiters they woke. */
  private readonly adopting = new WeakMap<SharedFill, Promise<boolean>>();
  /** What the first of the waiters one fill woke found, per key, until the next turn (wokenLookup). */
  private readonly woken = new Map<string, { vary: readonly string[]; suffix: string; entry: Promise<StoredEntry | undefined> }>();
  private readonly revalidating = new Set<string>();
  private readonly purges = new PurgeLog();
  /** Per HttpCache: a view holds this cache's name in its Cache-Status. */
  private readonly views = new WeakMap<StoredMeta, HitView>();
  private readonly compression: Compression | undefined;

  constructor(deps: HttpCacheDeps) {
    this.deps = deps;
    this.compression = deps.compression
      ? new Compression({ options: deps.compression, tiers: deps.tiers, ...(deps.collapser ? { collapser: deps.collapser } : {}), metrics: deps.metrics, log: deps.log })
      : undefined;
  }

  private view(meta: StoredMeta): HitView {
    let v = this.views.get(meta);
    if (v === undefined) {
      const c = this.compression;
      const plan = c && !meta.varyMarker ? compressionPlan(c.options, planInputFromList(meta.status, meta.headers, meta.size)) : PLAN_NONE;
      const list = c && variesByEncoding(c.options, plan) ? withVaryAcceptEncoding(meta.headers) : meta.headers;
      const headers = toClientHeaders(list);
      let arrays = false;
      for (const k in headers) if (typeof headers[k] !== 'string') arrays = true;
      v = { timing: timingMeta(meta), headers, list, plan, vkeys: {}, arrays, size: String(meta.size), hitTtlS: Number.NaN, hitStatus: '' };
      this.views.set(meta, v);
    }
    return v;
  }

  /** freshnessState of a stored meta, without re-parsing its Date and Age. */
  private stateOf(meta: StoredMeta, now: number): FreshnessState {
    return freshnessState(this.view(meta).timing, now);
  }

  /** Called for every purge this process applies, so fills in flight can honour it (purge-log.ts). */
  notePurge(spec: PurgeSpec, soft: boolean): void {
    this.purges.note(spec, soft);
  }

  /** Re-applies purges that arrived while a fill was in flight to what the fill just committed. */
  private async honourLatePurges(since: number, key: string, tags: readonly string[]): Promise<void> {
    const late = this.purges.since(since, key, tags);
    if (!late.hardAt && !late.softAt) return;
    await Promise.all(this.deps.tiers.map((t) => (late.hardAt ? t.delete(key) : t.purge({ kind: 'key', key }, true)).catch(() => false)));
  }

  /**
   * Answers a request from cache or origin. `body` is the client's request body, if any.
   * A fresh HIT from RAM is answered synchronously (no promise); everything else returns one.
   */
  handle(ctx: RequestContext, body: Readable | null, opts: { refresh?: boolean } = {}): Outgoing | Promise<Outgoing> {
    if (!this.deps.enabled || !CACHEABLE_METHODS.has(ctx.method)) {
      ctx.cacheOutcome = 'BYPASS';
      ctx.cacheDetail = this.deps.enabled ? 'method' : 'config';
      return this.pass(ctx, body);
    }
    const key = ctx.cacheKey!;
    // A rule's override (ctx.cacheOverride): bypass skips the lookup as a refresh does, and may
    // store; noStore may serve what is stored but never stores, so it takes no part in collapsing.
    const ov = ctx.cacheOverride;
    const refresh = (opts.refresh ?? false) || ov?.bypass === true;
    const found = refresh ? undefined : this.find(key, ctx.headers);
    if (found) {
      const { entry, state } = found;
      if (state === 'fresh') return this.serveEntry(ctx, entry, 'HIT');
      if (state === 'stale-while-revalidate' && !ov?.noStore) {
        this.revalidateInBackground(ctx, key, entry);
        this.deps.metrics.staleServed.inc({ reason: 'updating' });
        return this.serveEntry(ctx, entry, 'UPDATING');
      }
    }
    if (ov?.noStore) return this.fetch(ctx, key, undefined, undefined);
    return this.fill(ctx, key, found?.entry, refresh);
  }

  /** Finds the entry for a key in the fastest tier holding a usable copy, following Vary. */
  lookup(key: string, req: HeaderMap): StoredEntry | undefined {
    return this.find(key, req)?.entry;
  }

  /** lookup(), and the freshness of what it found (worked out on the way, so not twice per hit). */
  private find(key: string, req: HeaderMap): { entry: StoredEntry; state: FreshnessState } | undefined {
    const tiers = this.deps.tiers;
    const now = Date.now();
    let best: StoredEntry | undefined;
    let state: FreshnessState = 'stale';
    let bestTier = -1;
    for (let i = 0; i < tiers.length; i++) {
      let e = tiers[i]!.get(key);
      if (e?.meta.varyMarker) e = tiers[i]!.get(key + VARIANT_SEPARATOR + variantSuffix(e.meta.vary, req));
      if (!e) continue;
      if (!best || e.meta.responseTime > best.meta.responseTime) {
        best = e;
        bestTier = i;
        state = this.stateOf(e.meta, now);
      }
      // A fresh copy in a faster tier ends the search; a stale one may have been refreshed below it
      // by another worker.
      if (state === 'fresh') break;
    }
    if (!best) return undefined;
    // An entry whose fill began before a purge that names it is purged, even if its commit landed
    // after the purge ran (the tiers' own purge could not see it then).
    if (this.purges.size) {
      const p = this.purges.since(best.meta.requestTime, best.meta.key, best.meta.tags);
      if (p.hardAt) return undefined;
      if (p.softAt && !best.meta.invalidatedAt) {
        best = { meta: { ...best.meta, invalidatedAt: p.softAt }, body: best.body };
        state = this.stateOf(best.meta, now);
      }
    }
    if (bestTier > 0) this.promote(key, best, bestTier);
    return { entry: best, state };
  }

  /**
   * lookup() for the requests of this worker that one fill wakes together. The first makes what
   * other workers stored visible (tier refresh) and looks up; the others take what it found when
   * they select the same variant, instead of each repeating the index read and the stat of the
   * body (~0.1 ms each: 10 ms for the 100 waiters of a 200-client herd in one worker). What it
   * found is kept until the event loop's next turn; each waiter still checks freshness itself.
   * When the entry is only in a slower tier (the disk, filled by another worker), its body is read
   * into memory once and shared (sharedRead).
   */
  private wokenLookup(key: string, req: HeaderMap): Promise<StoredEntry | undefined> {
    const w = this.woken.get(key);
    if (w && (w.vary.length === 0 || variantSuffix(w.vary, req) === w.suffix)) return w.entry;
    for (const t of this.deps.tiers) t.refresh?.();
    const found = this.lookup(key, req);
    const entry = this.sharedRead(found);
    if (found) {
      const mine = { vary: found.meta.vary, suffix: variantSuffix(found.meta.vary, req), entry };
      this.woken.set(key, mine);
      setImmediate(() => {
        if (this.woken.get(key) === mine) this.woken.delete(key);
      });
    }
    return entry;
  }

  /**
   * Reads a body found in a slower tier into memory once for every request asking at the same
   * time: otherwise each would open and read the same file through libuv's four-thread pool (the
   * ~100 readers of a 200-client herd in one worker took ~20 ms, mostly those reads). The promotion
   * to RAM that find() starts serves the requests after them.
   */
  private async sharedRead(e: StoredEntry | undefined): Promise<StoredEntry | undefined> {
    if (!e || e.body.buffer !== undefined || e.meta.size > SHARED_READ_MAX_BYTES) return e;
    const id = `${e.meta.key}\n${e.meta.responseTime}`;
    let read = this.sharedReads.get(id);
    if (!read) {
      read = readAll(e.body.stream())
        .then(
          (buf): StoredBody | undefined => bufferBody(buf),
          (err: unknown) => {
            this.deps.log.warn({ key: e.meta.key, err: (err as Error).message }, 'cache: reading a collapsed fill from a slower tier failed');
            return undefined;
          },
        )
        .finally(() => this.sharedReads.delete(id));
      this.sharedReads.set(id, read);
    }
    const body = await read;
    return body === undefined ? undefined : { meta: e.meta, body };
  }

  /** Keeps a fill that runs on after its response until it has committed everywhere (see drain). */
  private track(fill: Promise<void>): void {
    const done: Promise<void> = fill
      .catch((err: unknown) => this.deps.log.warn({ err }, 'cache fill failed after its response'))
      .finally(() => this.fills.delete(done));
    this.fills.add(done);
  }

  /**
   * Waits for the fills still committing: a response may be complete before the slower tiers have
   * the object (fill.ts), and a node shutting down must not lose what it has just served.
   */
  async drain(): Promise<void> {
    while (this.fills.size > 0) await Promise.allSettled([...this.fills]);
  }

  /** Puts an object another worker shared into this worker's RAM, for the waiters it woke. */
  private adopt(fill: SharedFill): Promise<boolean> {
    let done = this.adopting.get(fill);
    if (!done) {
      done = this.writeEntry(this.deps.tiers[0]!, fill.meta, fill.body).catch(() => false);
      this.adopting.set(fill, done);
    }
    return done;
  }

  /**
   * Once this worker's RAM holds a fill, the other workers' waiters get it over IPC (SharedFill)
   * instead of waiting for the disk's commit. Only what their RAM takes and needs no Vary marker:
   * a waiter that found nothing would go to the origin itself.
   */
  private shareFill(grant: Extract<LockGrant, { role: 'writer' }> | undefined, storageKey: string): void {
    if (!grant?.share) return;
    const ram = this.deps.tiers[0]!;
    const e = ram.get(storageKey);
    if (!e || e.body.buffer === undefined || e.meta.vary.length > 0 || e.meta.size > Math.min(ram.maxObjectBytes, SHARE_MAX_BYTES)) return;
    grant.share({ meta: e.meta, body: e.body.buffer });
  }

  /** Copies an entry found in a slower tier into the faster ones, in the background. */
  private promote(key: string, entry: StoredEntry, from: number): void {
    const meta = entry.meta;
    if (this.promoting.has(meta.key)) return;
    const targets = this.deps.tiers.slice(0, from).filter((t) => meta.size <= t.maxObjectBytes);
    if (targets.length === 0) return;
    this.promoting.add(meta.key);
    const copy = async () => {
      for (const tier of targets) {
        if (meta.key !== key) {
          const marker = this.deps.tiers[from]!.get(key);
          if (marker?.meta.varyMarker) await this.writeEntry(tier, marker.meta, null);
        }
        await this.writeEntry(tier, meta, entry.body.buffer ?? entry.body.stream());
      }
    };
    copy()
      .catch((err: unknown) => this.deps.log.warn({ err, key: meta.key }, 'cache promotion failed'))
      .finally(() => this.promoting.delete(meta.key));
  }

  private async writeEntry(tier: StorageTier, meta: StoredMeta, body: Buffer | Readable | null): Promise<boolean> {
    const w = tier.openWrite(meta.key, meta.size);
    if (!w) return false;
    try {
      if (Buffer.isBuffer(body)) await w.write(body);
      else if (body) for await (const chunk of body as AsyncIterable<Buffer>) await w.write(chunk);
      return await w.commit(meta);
    } catch (err) {
      await w.abort();
      throw err;
    }
  }

  /** Miss or stale: one request per key fetches from the origin; the others wait for it. */
  private async fill(ctx: RequestContext, key: string, stale: StoredEntry | undefined, refresh: boolean): Promise<Outgoing> {
    let grant: LockGrant | undefined;
    if (this.deps.collapser) {
      grant = await this.deps.collapser.acquire(key);
      // A refresh (prefetch) wants a copy fetched after it was asked for, not the fill it waited on.
      const woken = grant.role === 'reader' && grant.outcome === 'stored' && !refresh;
      // Whatever another worker stored while we waited must be visible to the lookups below.
      if (!woken) for (const t of this.deps.tiers) t.refresh?.();
      if (grant.role === 'reader') {
        ctx.collapsed = true;
        if (woken) {
          if (grant.shared) await this.adopt(grant.shared);
          const e = await this.wokenLookup(key, ctx.headers);
          if (e && this.stateOf(e.meta, Date.now()) === 'fresh') {
            this.deps.metrics.collapsed.inc({ result: 'hit' });
            return this.serveEntry(ctx, e, 'HIT');
          }
        }
        this.deps.metrics.collapsed.inc({ result: grant.outcome === 'stored' ? 'miss' : grant.outcome });
        if (grant.outcome === 'stored') {
          // Stored where this worker cannot read it: one local request fetches for the others here.
          const local = await this.deps.collapser.acquireLocal(key);
          if (local.role === 'writer') return this.fetch(ctx, key, stale, local);
          const e = this.lookup(key, ctx.headers);
          if (local.outcome === 'stored' && e && this.stateOf(e.meta, Date.now()) === 'fresh') return this.serveEntry(ctx, e, 'HIT');
        }
        // The fill failed, timed out or was uncacheable: go to the origin ourselves, without the lock.
        return this.fetch(ctx, key, stale, undefined);
      }
      // Another worker may have completed a fill between our lookup and the grant (a refresh
      // wants a new copy whatever is there).
      const e = refresh ? undefined : this.lookup(key, ctx.headers);
      if (e && this.stateOf(e.meta, Date.now()) === 'fresh' && e.meta.responseTime > (stale?.meta.responseTime ?? 0)) {
        grant.release('stored');
        return this.serveEntry(ctx, e, 'HIT');
      }
    }
    return this.fetch(ctx, key, stale, grant?.role === 'writer' ? grant : undefined);
  }

  private canServeStaleOnError(entry: StoredEntry | undefined): entry is StoredEntry {
    if (!entry) return false;
    const s = this.stateOf(entry.meta, Date.now());
    return s !== 'stale';
  }

  private async fetch(
    ctx: RequestContext,
    key: string,
    stale: StoredEntry | undefined,
    grant: Extract<LockGrant, { role: 'writer' }> | undefined,
    background = false,
  ): Promise<Outgoing> {
    const headers = upstreamHeaders(ctx.headers, { ip: ctx.clientIp, scheme: ctx.scheme, httpVersion: ctx.httpVersion }, this.deps.forwarding, 'fill');
    headers['accept-encoding'] = normalizeAcceptEncoding(ctx.headers['accept-encoding']);
    if (stale) Object.assign(headers, revalidationHeaders(stale.meta.headers));
    const requestTime = Date.now();
    let res: UpstreamResponse;
    try {
      res = await this.deps.pool(ctx.pool).request({ method: 'GET', path: ctx.query ? `${ctx.path}?${ctx.query}` : ctx.path, headers, host: ctx.host });
    } catch (err) {
      const e = mapUpstreamError(err);
      this.deps.metrics.upstreamErrors.inc({ pool: ctx.pool, code: e.code });
      grant?.release('failed');
      if (!background && this.canServeStaleOnError(stale)) return this.serveStale(ctx, stale, e.code);
      throw e;
    }
    const responseTime = Date.now();
    ctx.upstreamStatus = res.status;
    ctx.timings.upstreamResponseMs = res.responseMs;
    this.deps.metrics.upstreamResponse.observe({ pool: ctx.pool, status: String(res.status) }, res.responseMs / 1000);

    if (STALE_ON_STATUS.has(res.status) && !background && this.canServeStaleOnError(stale)) {
      res.body.resume();
      grant?.release('failed');
      return this.serveStale(ctx, stale, `origin-${res.status}`);
    }

    if (res.status === 304 && stale && !notModifiedMatches(stale.meta.headers, res.headers)) {
      // The 304 is about another representation than ours (RFC 9111 §4.3.4): ask again, in full.
      res.body.resume();
      return this.fetch(ctx, key, undefined, grant, background);
    }
    if (res.status === 304 && stale) {
      res.body.resume();
      const merged = mergeNotModified(stale.meta.headers, res.headers);
      const f = withTtl(freshness({ status: stale.meta.status, headers: headerListToMap(merged) }, requestTime, responseTime, this.deps.policy), ctx.cacheOverride?.ttlMs);
      const { invalidatedAt: _dropped, ...rest } = stale.meta;
      const meta: StoredMeta = { ...rest, headers: merged, requestTime, responseTime, ttlMs: f.ttlMs, swrMs: f.swrMs, sieMs: f.sieMs, tags: parseTags(headerListToMap(merged)) };
      await Promise.all(this.deps.tiers.map((t) => t.updateMeta(meta.key, meta).catch(() => false)));
      await this.compression?.refreshVariants(stale.meta, meta);
      grant?.release('stored');
      return this.serveEntry(ctx, { meta, body: stale.body }, 'REVALIDATED');
    }

    if (ctx.cacheOverride?.noStore) {
      ctx.cacheOutcome = 'BYPASS';
      ctx.cacheDetail = 'rule-no-store';
      return this.respondFromOrigin(ctx, res, passHeaders(res.headers));
    }
    const ttlOverride = ctx.cacheOverride?.ttlMs;
    let verdict = storability({ method: 'GET', headers: ctx.headers }, { status: res.status, headers: res.headers }, this.deps.policy);
    // A rule's TTL gives a lifetime to what the origin left without one; it never overrides
    // no-store, private, Authorization or Set-Cookie.
    if (ttlOverride !== undefined && !verdict.storable && (verdict.reason === 'no-freshness' || (verdict.reason === 'status' && HEURISTICALLY_CACHEABLE.has(res.status)))) verdict = { storable: true };
    const vary = parseVary(res.headers);
    if (!verdict.storable || vary === '*') {
      grant?.release('uncacheable');
      ctx.cacheOutcome = 'BYPASS';
      ctx.cacheDetail = verdict.storable ? 'vary-star' : verdict.reason;
      // A stale copy must not outlive an origin that now refuses caching. Only a successful answer
      // that says so explicitly counts: an error page, or a refusal caused by this client's own
      // request (Authorization, no-store), leaves the stale copy for stale-if-error and others.
      if (stale && res.status < 400 && !verdict.storable && (verdict.reason === 'response-no-store' || verdict.reason === 'private')) {
        void this.deps.invalidate([key]).catch(() => undefined);
      }
      return this.respondFromOrigin(ctx, res, passHeaders(res.headers));
    }

    const storageKey = vary.length ? key + VARIANT_SEPARATOR + variantSuffix(vary, ctx.headers) : key;
    const f = withTtl(freshness({ status: res.status, headers: res.headers }, requestTime, responseTime, this.deps.policy), ttlOverride);
    const lengthHeader = res.headers['content-length'];
    const sizeHint = typeof lengthHeader === 'string' ? Number(lengthHeader) : undefined;
    const writers = this.deps.tiers.map((t) => t.openWrite(storageKey, sizeHint)).filter((w) => w !== undefined);
    const outcome: CacheOutcome = stale ? 'EXPIRED' : 'MISS';
    if (writers.length === 0) {
      grant?.release('uncacheable');
      ctx.cacheOutcome = 'BYPASS';
      ctx.cacheDetail = 'too-large';
      return this.respondFromOrigin(ctx, res, passHeaders(res.headers));
    }
    if (vary.length) {
      const marker: StoredMeta = { key, status: 0, headers: [], requestTime, responseTime, ttlMs: f.ttlMs, swrMs: f.swrMs, sieMs: f.sieMs, tags: [], vary, size: 0, varyMarker: true };
      await Promise.all(this.deps.tiers.map((t) => this.writeEntry(t, marker, null).catch(() => false)));
    }
    const stored = storableHeaders(res.headers);
    const tags = parseTags(res.headers);
    const makeMeta = (size: number): StoredMeta => ({ key: storageKey, status: res.status, headers: stored, requestTime, responseTime, ttlMs: f.ttlMs, swrMs: f.swrMs, sieMs: f.sieMs, tags, vary: vary, size });

    ctx.cacheOutcome = outcome;
    const fillDone = async (result: { stored: boolean; error?: Error }) => {
      if (result.stored) await this.honourLatePurges(requestTime, storageKey, tags);
      grant?.release(result.stored ? 'stored' : result.error ? 'failed' : 'uncacheable');
      if (result.error) this.deps.log.warn({ key: storageKey, err: result.error.message }, 'cache fill failed; nothing stored');
    };
    const meta0 = makeMeta(sizeHint ?? 0);
    if (background) {
      const r = await fillFromOrigin(res.body, writers, null, makeMeta);
      await fillDone(r);
      return { status: res.status, headers: {}, body: null };
    }
    const c = this.compression;
    const plan = c ? compressionPlan(c.options, planInputFromList(res.status, stored, sizeHint)) : PLAN_NONE;
    const coding = c && sizeHint !== undefined ? this.fillCoding(ctx, plan) : 'identity';
    if (coding !== 'identity') {
      const variant = this.deps.tiers.map((t) => t.openWrite(compressedKey(storageKey, coding))).filter((w) => w !== undefined);
      if (variant.length) return this.fillCompressed(ctx, res, coding, { identity: writers, variant }, stored, makeMeta, meta0, outcome, fillDone);
    }
    const clientHeaders = toClientHeaders(c && variesByEncoding(c.options, plan) ? withVaryAcceptEncoding(stored) : stored);
    this.decorate(ctx, clientHeaders, meta0, outcome, true);
    const decodeFrom = plan.kind === 'encoded' ? this.decodeCoding(ctx, plan) : undefined;
    const cond = evaluateConditional(ctx.method, ctx.headers, { status: res.status, headers: stored });
    let client: PassThrough | null = null;
    let out: Outgoing;
    if (cond === 'not-modified' || cond === 'precondition-failed' || ctx.method === 'HEAD') {
      const status = cond === 'not-modified' ? 304 : cond === 'precondition-failed' ? 412 : res.status;
      const h = status === 304 ? this.notModified(ctx, meta0, outcome) : clientHeaders;
      if (ctx.method === 'HEAD' && sizeHint !== undefined && status === res.status) h['content-length'] = String(sizeHint);
      if (decodeFrom !== undefined && status === res.status) decodeHeaders(h);
      out = { status, headers: h, body: null };
    } else {
      client = new PassThrough();
      out = { status: res.status, headers: clientHeaders, body: client };
      if (decodeFrom !== undefined) {
        decodeHeaders(out.headers);
        out.body = this.compression!.decodeStream(client, decodeFrom) ?? client;
      } else if (sizeHint !== undefined) {
        const range = res.status === 200 ? parseRange(ctx.method, ctx.headers, sizeHint, stored) : ({ kind: 'full' } as const);
        if (range.kind === 'partial') {
          const slice = sliceStream(range.start, range.end);
          const source = client;
          // When the client goes away the slice closes; the source must close too so the fill stops feeding it.
          slice.once('close', () => source.destroy());
          out = { status: 206, headers: { ...clientHeaders, 'content-range': contentRange(range.start, range.end, sizeHint) }, body: source.pipe(slice) };
          out.headers['content-length'] = String(range.end - range.start + 1);
        } else if (range.kind === 'unsatisfiable') {
          out = { status: 416, headers: { 'content-range': unsatisfiedRange(sizeHint), 'x-cache-status': outcome, 'cache-status': clientHeaders['cache-status']! }, body: null };
          client = null;
        } else out.headers['content-length'] = String(sizeHint);
      }
    }
    // Whatever tier commits first, this worker can read it: its own waiters need not wait for the
    // others (the disk's commit syncs to disk). Other workers get a small object over IPC, or wait
    // for the release in fillDone.
    const firstCommitted = () => {
      grant?.releaseLocal?.();
      this.shareFill(grant, storageKey);
    };
    this.track(fillFromOrigin(res.body, writers, client, makeMeta, firstCommitted).then(fillDone));
    return out;
  }

  /**
   * The coding a fill compresses into while it streams from the origin, for the client that
   * caused it: only with a known size (the plan needs it) and without Range (a range of a body
   * still being compressed has no known length; the variant is made on a later request).
   */
  private fillCoding(ctx: RequestContext, plan: CompressionPlan): ContentCoding | 'identity' {
    const c = this.compression!;
    if (!wantsCompression(c.options, plan, ctx.compress) || ctx.headers.range !== undefined || requestForbidsTransform(ctx.headers['cache-control'])) return 'identity';
    return c.negotiate(ctx.headers['accept-encoding']);
  }

  /** The coding to decode a pre-compressed body from for this client, if it must be and can be. */
  private decodeCoding(ctx: RequestContext, plan: Extract<CompressionPlan, { kind: 'encoded' }>): string | undefined {
    const c = this.compression!;
    if (plan.codings.length !== 1 || !canDecode(plan.codings[0]!) || !mayDecode(c.options, ctx.compress)) return undefined;
    if (requestForbidsTransform(ctx.headers['cache-control']) || c.accepts(ctx.headers['accept-encoding'], plan.codings)) return undefined;
    return plan.codings[0];
  }

  /**
   * A fill that also compresses the object into its `coding` variant as it streams in, and sends
   * the client the compressed bytes: one compression serves this client and every later one.
   */
  private fillCompressed(
    ctx: RequestContext,
    res: UpstreamResponse,
    coding: ContentCoding,
    writers: { identity: WriteHandle[]; variant: WriteHandle[] },
    stored: HeaderList,
    makeMeta: (size: number) => StoredMeta,
    meta0: StoredMeta,
    outcome: CacheOutcome,
    fillDone: (r: { stored: boolean; error?: Error }) => Promise<void>,
  ): Outgoing {
    const c = this.compression!;
    const list = variantHeaders(stored, coding);
    const h = toClientHeaders(list);
    this.decorate(ctx, h, meta0, outcome, true);
    const cond = evaluateConditional(ctx.method, ctx.headers, { status: res.status, headers: list });
    let client: PassThrough | null = null;
    let out: Outgoing;
    if (cond === 'not-modified') out = { status: 304, headers: this.notModified(ctx, variantMeta(meta0, coding, 0), outcome), body: null };
    else if (cond === 'precondition-failed') out = { status: 412, headers: h, body: null };
    else if (ctx.method === 'HEAD') out = { status: res.status, headers: h, body: null };
    else {
      client = new PassThrough();
      out = { status: res.status, headers: h, body: client };
    }
    const w = new CompressingWrite({ coding, options: c.options, ...writers, client, onCompressed: (i, o) => c.counted(coding, i, o) });
    this.track(fillFromOrigin(res.body, [w], null, makeMeta).then(fillDone));
    return out;
  }

  private revalidateInBackground(ctx: RequestContext, key: string, stale: StoredEntry): void {
    if (this.revalidating.has(key)) return;
    this.revalidating.add(key);
    const run = async () => {
      let grant: LockGrant | undefined;
      if (this.deps.collapser) {
        grant = await this.deps.collapser.acquire(key);
        // Someone else (maybe another worker) is refreshing it already.
        if (grant.role === 'reader') return;
      }
      const bgCtx: RequestContext = { ...ctx, method: 'GET', vars: new Map(), timings: { start: ctx.timings.start }, collapsed: false };
      await this.fetch(bgCtx, key, stale, grant?.role === 'writer' ? grant : undefined, true);
    };
    run()
      .catch((err: unknown) => this.deps.log.warn({ key, err: toOutpostError(err).message }, 'background revalidation failed'))
      .finally(() => this.revalidating.delete(key));
  }

  private serveStale(ctx: RequestContext, entry: StoredEntry, detail: string): Outgoing | Promise<Outgoing> {
    this.deps.metrics.staleServed.inc({ reason: 'error' });
    ctx.cacheDetail = detail;
    return this.serveEntry(ctx, entry, 'STALE');
  }

  /**
   * Adds Age (stored responses only), X-Cache-Status and Cache-Status. `timing` is the meta to take
   * ages from: a view's timing meta, or, for a response straight from the origin, its new meta.
   */
  private decorate(ctx: RequestContext, h: Record<string, string | string[]>, timing: StoredMeta, outcome: CacheOutcome, fromOrigin: boolean, view?: HitView): void {
    const now = Date.now();
    if (!fromOrigin) h.age = String(Math.floor(currentAgeMs(timing, now) / 1000));
    ctx.cacheOutcome = outcome;
    // Behind another cache (an origin shield), its statuses came with the response.
    const upstreamStatus = chainedStatus(h);
    if (fromOrigin) this.countUpstreamTier(h);
    h['x-cache-status'] = outcome;
    const ttlMs = remainingTtlMs(timing, now);
    if (view !== undefined && outcome === 'HIT' && !ctx.collapsed && ctx.cacheDetail === undefined && ctx.upstreamStatus === undefined && Number.isFinite(ttlMs)) {
      // A plain HIT's Cache-Status changes only with its ttl second: rendered once per second per entry.
      const ttlS = Math.floor(ttlMs / 1000);
      if (view.hitTtlS !== ttlS) {
        view.hitStatus = upstreamStatus + formatCacheStatus(this.deps.name, { outcome, ttlMs });
        view.hitTtlS = ttlS;
      }
      h['cache-status'] = view.hitStatus;
      return;
    }
    h['cache-status'] = upstreamStatus + formatCacheStatus(this.deps.name, {
      outcome,
      ttlMs,
      ...(fromOrigin ? { stored: true, fwdStatus: ctx.upstreamStatus ?? timing.status } : ctx.upstreamStatus !== undefined ? { fwdStatus: ctx.upstreamStatus } : {}),
      ...(ctx.collapsed ? { collapsed: true } : {}),
      ...(ctx.cacheDetail ? { detail: ctx.cacheDetail } : {}),
    });
  }

  private notModified(ctx: RequestContext, meta: StoredMeta, outcome: CacheOutcome): Record<string, string | string[]> {
    const h = toClientHeaders(notModifiedHeaders(this.view(meta).list));
    this.decorate(ctx, h, this.view(meta).timing, outcome, false);
    return h;
  }

  /**
   * serveStored in the coding this client gets (docs/compression.md): the stored entry as it is,
   * its compressed variant (made now if it does not exist yet), or a pre-compressed entry decoded.
   * Synchronous unless a variant has to be made.
   */
  private serveEntry(ctx: RequestContext, entry: StoredEntry, outcome: CacheOutcome): Outgoing | Promise<Outgoing> {
    const c = this.compression;
    if (c === undefined) return this.serveStored(ctx, entry, outcome);
    const view = this.view(entry.meta);
    const plan = view.plan;
    if (plan.kind === 'none') return this.serveStored(ctx, entry, outcome);
    if (plan.kind === 'encoded') {
      const from = this.decodeCoding(ctx, plan);
      return from === undefined ? this.serveStored(ctx, entry, outcome) : this.serveDecoded(ctx, entry, from, outcome);
    }
    if (!wantsCompression(c.options, plan, ctx.compress) || requestForbidsTransform(ctx.headers['cache-control'])) return this.serveStored(ctx, entry, outcome);
    const coding = c.negotiate(ctx.headers['accept-encoding']);
    if (coding === 'identity') return this.serveStored(ctx, entry, outcome);
    const vkey = (view.vkeys[coding] ??= compressedKey(entry.meta.key, coding));
    const found = c.find(vkey, entry.meta.requestTime);
    if (found) {
      if (found.tier > 0) this.promote(vkey, found.entry, found.tier);
      return this.serveStored(ctx, sameInvalidation(found.entry, entry.meta), outcome);
    }
    if (c.failedBefore(vkey, entry.meta.requestTime)) return this.serveStored(ctx, entry, outcome);
    return this.serveNewVariant(ctx, entry, coding, outcome);
  }

  private async serveNewVariant(ctx: RequestContext, entry: StoredEntry, coding: ContentCoding, outcome: CacheOutcome): Promise<Outgoing> {
    const v = await this.compression!.variant(entry, coding);
    return this.serveStored(ctx, v ? sameInvalidation(v, entry.meta) : entry, outcome);
  }

  /** A pre-compressed entry, decoded for a client that does not take its coding: whole, streamed. */
  private serveDecoded(ctx: RequestContext, entry: StoredEntry, coding: string, outcome: CacheOutcome): Outgoing {
    const out = this.serveStored(ctx, entry, outcome, true);
    if (out.status === 304 || out.status === 412) return out;
    decodeHeaders(out.headers);
    if (out.body === null) return out;
    const source = Buffer.isBuffer(out.body) ? Readable.from([out.body]) : out.body;
    return { ...out, body: this.compression!.decodeStream(source, coding) ?? source };
  }

  /** Builds the response for a stored entry: 200, 206, 304, 412 or 416, HEAD without body. `whole` ignores Range. */
  serveStored(ctx: RequestContext, entry: StoredEntry, outcome: CacheOutcome, whole = false): Outgoing {
    const { meta, body } = entry;
    // Without precondition fields evaluateConditional answers 'full' whatever is stored.
    const cond = hasPreconditions(ctx.headers) ? evaluateConditional(ctx.method, ctx.headers, meta) : 'full';
    if (cond === 'not-modified') return { status: 304, headers: this.notModified(ctx, meta, outcome), body: null };
    const view = this.view(meta);
    const h = copyHeaders(view);
    this.decorate(ctx, h, view.timing, outcome, false, view);
    const bare = () => ({ 'x-cache-status': h['x-cache-status']!, 'cache-status': h['cache-status']! });
    if (cond === 'precondition-failed') return { status: 412, headers: bare(), body: null };
    // Ranges apply to complete 200 representations only; a cached 404 is never cut into a 206.
    const range = meta.status === 200 && !whole ? parseRange(ctx.method, ctx.headers, meta.size, meta.headers) : ({ kind: 'full' } as const);
    if (range.kind === 'unsatisfiable') {
      return { status: 416, headers: { ...bare(), 'content-range': unsatisfiedRange(meta.size) }, body: null };
    }
    if (range.kind === 'partial') {
      h['content-range'] = contentRange(range.start, range.end, meta.size);
      h['content-length'] = String(range.end - range.start + 1);
      if (ctx.method === 'HEAD') return { status: 206, headers: h, body: null };
      const slice = body.buffer ? body.buffer.subarray(range.start, range.end + 1) : body.stream({ start: range.start, end: range.end });
      return { status: 206, headers: h, body: slice };
    }
    h['content-length'] = view.size;
    if (ctx.method === 'HEAD') return { status: meta.status, headers: h, body: null };
    return { status: meta.status, headers: h, body: body.buffer ?? body.stream() };
  }

  /** Counts which tier behind this one answered a request this cache forwarded (docs/fleet.md). */
  private countUpstreamTier(h: Record<string, string | string[]>): void {
    const x = h['x-cache-status'];
    this.deps.metrics.upstreamCache.inc({ status: typeof x === 'string' && x ? x : 'none' });
  }

  private respondFromOrigin(ctx: RequestContext, res: UpstreamResponse, headers: Record<string, string | string[]>): Outgoing {
    const upstreamStatus = chainedStatus(headers);
    this.countUpstreamTier(headers);
    headers['x-cache-status'] = ctx.cacheOutcome ?? 'BYPASS';
    headers['cache-status'] = upstreamStatus + formatCacheStatus(this.deps.name, {
      outcome: ctx.cacheOutcome ?? 'BYPASS',
      fwdStatus: res.status,
      ...(ctx.cacheDetail ? { detail: ctx.cacheDetail } : {}),
    });
    const body = this.compression ? this.codeUncached(this.compression, ctx, res, headers) : res.body;
    if (ctx.method === 'HEAD') {
      res.body.resume();
      return { status: res.status, headers, body: null };
    }
    return { status: res.status, headers, body };
  }

  /**
   * A response that is not stored, in the coding this client gets: compressed on the fly
   * (compression.uncached), decoded, or as it came. Changes `headers` to match; for HEAD only
   * the headers matter.
   */
  private codeUncached(c: Compression, ctx: RequestContext, res: UpstreamResponse, headers: Record<string, string | string[]>): Readable {
    const plan = compressionPlan(c.options, planInputFromMap(res.status, res.headers));
    if (plan.kind === 'none') return res.body;
    if (plan.kind === 'encoded') {
      const from = this.decodeCoding(ctx, plan);
      if (from === undefined) return res.body;
      decodeHeaders(headers);
      return ctx.method === 'HEAD' ? res.body : (c.decodeStream(res.body, from) ?? res.body);
    }
    if (!c.options.uncached) return res.body;
    if (variesByEncoding(c.options, plan)) addVaryAcceptEncoding(headers);
    if (!wantsCompression(c.options, plan, ctx.compress) || requestForbidsTransform(ctx.headers['cache-control'])) return res.body;
    const coding = c.negotiate(ctx.headers['accept-encoding']);
    if (coding === 'identity') return res.body;
    encodeHeaders(headers, coding);
    return ctx.method === 'HEAD' ? res.body : c.encodeStream(res.body, coding);
  }

  /** Requests the cache does not handle: straight to the origin, then invalidation for unsafe methods. */
  private async pass(ctx: RequestContext, body: Readable | null): Promise<Outgoing> {
    const headers = upstreamHeaders(ctx.headers, { ip: ctx.clientIp, scheme: ctx.scheme, httpVersion: ctx.httpVersion }, this.deps.forwarding, 'pass');
    let res: UpstreamResponse;
    try {
      res = await this.deps.pool(ctx.pool).request({
        method: ctx.method,
        path: ctx.query ? `${ctx.path}?${ctx.query}` : ctx.path,
        headers,
        host: ctx.host,
        body,
      });
    } catch (err) {
      const e = mapUpstreamError(err);
      this.deps.metrics.upstreamErrors.inc({ pool: ctx.pool, code: e.code });
      throw e;
    }
    ctx.upstreamStatus = res.status;
    ctx.timings.upstreamResponseMs = res.responseMs;
    this.deps.metrics.upstreamResponse.observe({ pool: ctx.pool, status: String(res.status) }, res.responseMs / 1000);
    if (this.deps.enabled && !SAFE_METHODS.has(ctx.method)) {
      const effective = new URL(`${ctx.scheme}://${ctx.host}${ctx.path}${ctx.query ? `?${ctx.query}` : ''}`);
      const targets = invalidationTargets(ctx.method, res.status, effective, res.headers);
      if (targets.length) {
        const keys = targets.map((u) => this.deps.keyOf({ scheme: u.protocol.slice(0, -1), host: u.host, path: u.pathname, query: u.search.slice(1) }));
        await this.deps.invalidate(keys).catch((err: unknown) => this.deps.log.warn({ err: toOutpostError(err).message }, 'invalidation failed'));
      }
    }
    return this.respondFromOrigin(ctx, res, passHeaders(res.headers));
  }
}

