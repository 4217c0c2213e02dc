// The cache stage of the pipeline: lookup across tiers, freshness, collapsing, fill, revalidation
// and stale serving. RFC rules come from policy.ts and friends; storage from the tiers.
import { PassThrough, type Readable } from 'node:stream';
import type { Logger } from 'pino';
import { toOutpostError } from '../errors.ts';
import type { RequestContext } from '../edge/phases.ts';
import type { EdgeMetrics } from '../metrics/metrics.ts';
import { mapUpstreamError, type UpstreamPool, type UpstreamResponse } from '../upstream/pool.ts';
import { upstreamHeaders, type ForwardingOptions } from '../upstream/headers.ts';
import { evaluateConditional, notModifiedHeaders } from './conditional.ts';
import { fillFromOrigin, sliceStream } from './fill.ts';
import { PurgeLog } from './purge-log.ts';
import type { Collapser, LockGrant } from './lock.ts';
import { formatCacheStatus, type CacheOutcome } from './outcome.ts';
import {
  CDN_ONLY_HEADERS,
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
  type FreshnessState,
  type HeaderMap,
  type PolicyOptions,
} from './policy.ts';
import { contentRange, parseRange, unsatisfiedRange } from './range.ts';
import { normalizeAcceptEncoding, parseVary, variantSuffix } from './vary.ts';
import { VARIANT_SEPARATOR, type HeaderList, type PurgeSpec, type StorageTier, type StoredEntry, type StoredMeta } from './storage/tier.ts';

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
  /** Whether some header repeats (an array value, which each response must copy). */
  readonly arrays: boolean;
  readonly size: string;
  /** The Cache-Status of a plain HIT for the ttl second `hitTtlS` (it changes once a second). */
  hitTtlS: number;
  hitStatus: string;
}

const NO_HEADERS: HeaderList = [];

function timingMeta(meta: StoredMeta): StoredMeta {
  const initialAgeMs = currentAgeMs(meta, meta.responseTime);
  return { ...meta, headers: NO_HEADERS, requestTime: meta.responseTime - initialAgeMs };
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
  private readonly revalidating = new Set<string>();
  private readonly purges = new PurgeLog();
  /** Per HttpCache: a view holds this cache's name in its Cache-Status. */
  private readonly views = new WeakMap<StoredMeta, HitView>();

  constructor(deps: HttpCacheDeps) {
    this.deps = deps;
  }

  private view(meta: StoredMeta): HitView {
    let v = this.views.get(meta);
    if (v === undefined) {
      const headers = toClientHeaders(meta.headers);
      let arrays = false;
      for (const k in headers) if (typeof headers[k] !== 'string') arrays = true;
      v = { timing: timingMeta(meta), headers, arrays, size: String(meta.size), hitTtlS: Number.NaN, hitStatus: '' };
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

  /** Answers a request from cache or origin. `body` is the client's request body, if any. */
  async handle(ctx: RequestContext, body: Readable | null, opts: { refresh?: boolean } = {}): Promise<Outgoing> {
    if (!this.deps.enabled || !CACHEABLE_METHODS.has(ctx.method)) {
      ctx.cacheOutcome = 'BYPASS';
      ctx.cacheDetail = this.deps.enabled ? 'method' : 'config';
      return this.pass(ctx, body);
    }
    const key = ctx.cacheKey!;
    const found = opts.refresh ? undefined : this.find(key, ctx.headers);
    if (found) {
      const { entry, state } = found;
      if (state === 'fresh') return this.serveStored(ctx, entry, 'HIT');
      if (state === 'stale-while-revalidate') {
        this.revalidateInBackground(ctx, key, entry);
        this.deps.metrics.staleServed.inc({ reason: 'updating' });
        return this.serveStored(ctx, entry, 'UPDATING');
      }
    }
    return this.fill(ctx, key, found?.entry, opts.refresh ?? false);
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
      if (grant.role === 'reader') {
        ctx.collapsed = true;
        // A refresh (prefetch) wants a copy fetched after it was asked for, not the fill it waited on.
        if (grant.outcome === 'stored' && !refresh) {
          const e = this.lookup(key, ctx.headers);
          if (e && this.stateOf(e.meta, Date.now()) === 'fresh') {
            this.deps.metrics.collapsed.inc({ result: 'hit' });
            return this.serveStored(ctx, e, 'HIT');
          }
        }
        this.deps.metrics.collapsed.inc({ result: grant.outcome === 'stored' ? 'miss' : grant.outcome });
        if (grant.outcome === 'stored') {
          // Stored where this worker cannot read it: one local request fetches for the others here.
          const local = await this.deps.collapser.acquireLocal(key);
          if (local.role === 'writer') return this.fetch(ctx, key, stale, local);
          const e = this.lookup(key, ctx.headers);
          if (local.outcome === 'stored' && e && this.stateOf(e.meta, Date.now()) === 'fresh') return this.serveStored(ctx, e, 'HIT');
        }
        // The fill failed, timed out or was uncacheable: go to the origin ourselves, without the lock.
        return this.fetch(ctx, key, stale, undefined);
      }
      // Another worker may have completed a fill between our lookup and the grant (a refresh
      // wants a new copy whatever is there).
      const e = refresh ? undefined : this.lookup(key, ctx.headers);
      if (e && this.stateOf(e.meta, Date.now()) === 'fresh' && e.meta.responseTime > (stale?.meta.responseTime ?? 0)) {
        grant.release('stored');
        return this.serveStored(ctx, e, 'HIT');
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
      const f = freshness({ status: stale.meta.status, headers: headerListToMap(merged) }, requestTime, responseTime, this.deps.policy);
      const { invalidatedAt: _dropped, ...rest } = stale.meta;
      const meta: StoredMeta = { ...rest, headers: merged, requestTime, responseTime, ttlMs: f.ttlMs, swrMs: f.swrMs, sieMs: f.sieMs, tags: parseTags(headerListToMap(merged)) };
      await Promise.all(this.deps.tiers.map((t) => t.updateMeta(meta.key, meta).catch(() => false)));
      grant?.release('stored');
      return this.serveStored(ctx, { meta, body: stale.body }, 'REVALIDATED');
    }

    const verdict = storability({ method: 'GET', headers: ctx.headers }, { status: res.status, headers: res.headers }, this.deps.policy);
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
    const f = freshness({ status: res.status, headers: res.headers }, requestTime, responseTime, this.deps.policy);
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
    const clientHeaders = toClientHeaders(stored);
    this.decorate(ctx, clientHeaders, meta0, outcome, true);
    const cond = evaluateConditional(ctx.method, ctx.headers, { status: res.status, headers: stored });
    let client: PassThrough | null = null;
    let out: Outgoing;
    if (cond === 'not-modified' || cond === 'precondition-failed' || ctx.method === 'HEAD') {
      const status = cond === 'not-modified' ? 304 : cond === 'precondition-failed' ? 412 : res.status;
      const h = status === 304 ? this.notModified(ctx, meta0, outcome) : clientHeaders;
      if (ctx.method === 'HEAD' && sizeHint !== undefined && status === res.status) h['content-length'] = String(sizeHint);
      out = { status, headers: h, body: null };
    } else {
      client = new PassThrough();
      out = { status: res.status, headers: clientHeaders, body: client };
      if (sizeHint !== undefined) {
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
    void fillFromOrigin(res.body, writers, client, makeMeta).then(fillDone);
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

  private serveStale(ctx: RequestContext, entry: StoredEntry, detail: string): Outgoing {
    this.deps.metrics.staleServed.inc({ reason: 'error' });
    ctx.cacheDetail = detail;
    return this.serveStored(ctx, entry, 'STALE');
  }

  /**
   * Adds Age (stored responses only), X-Cache-Status and Cache-Status. `timing` is the meta to take
   * ages from: a view's timing meta, or, for a response straight from the origin, its new meta.
   */
  private decorate(ctx: RequestContext, h: Record<string, string | string[]>, timing: StoredMeta, outcome: CacheOutcome, fromOrigin: boolean, view?: HitView): void {
    const now = Date.now();
    if (!fromOrigin) h.age = String(Math.floor(currentAgeMs(timing, now) / 1000));
    ctx.cacheOutcome = outcome;
    h['x-cache-status'] = outcome;
    const ttlMs = remainingTtlMs(timing, now);
    if (view !== undefined && outcome === 'HIT' && !ctx.collapsed && ctx.cacheDetail === undefined && ctx.upstreamStatus === undefined && Number.isFinite(ttlMs)) {
      // A plain HIT's Cache-Status changes only with its ttl second: rendered once per second per entry.
      const ttlS = Math.floor(ttlMs / 1000);
      if (view.hitTtlS !== ttlS) {
        view.hitStatus = formatCacheStatus(this.deps.name, { outcome, ttlMs });
        view.hitTtlS = ttlS;
      }
      h['cache-status'] = view.hitStatus;
      return;
    }
    h['cache-status'] = formatCacheStatus(this.deps.name, {
      outcome,
      ttlMs,
      ...(fromOrigin ? { stored: true, fwdStatus: ctx.upstreamStatus ?? timing.status } : ctx.upstreamStatus !== undefined ? { fwdStatus: ctx.upstreamStatus } : {}),
      ...(ctx.collapsed ? { collapsed: true } : {}),
      ...(ctx.cacheDetail ? { detail: ctx.cacheDetail } : {}),
    });
  }

  private notModified(ctx: RequestContext, meta: StoredMeta, outcome: CacheOutcome): Record<string, string | string[]> {
    const h = toClientHeaders(notModifiedHeaders(meta.headers));
    this.decorate(ctx, h, this.view(meta).timing, outcome, false);
    return h;
  }

  /** Builds the response for a stored entry: 200, 206, 304, 412 or 416, HEAD without body. */
  serveStored(ctx: RequestContext, entry: StoredEntry, outcome: CacheOutcome): Outgoing {
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
    const range = meta.status === 200 ? parseRange(ctx.method, ctx.headers, meta.size, meta.headers) : ({ kind: 'full' } as const);
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

  private respondFromOrigin(ctx: RequestContext, res: UpstreamResponse, headers: Record<string, string | string[]>): Outgoing {
    headers['x-cache-status'] = ctx.cacheOutcome ?? 'BYPASS';
    headers['cache-status'] = formatCacheStatus(this.deps.name, {
      outcome: ctx.cacheOutcome ?? 'BYPASS',
      fwdStatus: res.status,
      ...(ctx.cacheDetail ? { detail: ctx.cacheDetail } : {}),
    });
    if (ctx.method === 'HEAD') {
      res.body.resume();
      return { status: res.status, headers, body: null };
    }
    return { status: res.status, headers, body: res.body };
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

