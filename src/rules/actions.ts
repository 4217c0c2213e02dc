// A rule's actions, compiled once: request-side ones run in the rewrite phase on the
// RequestContext, response-side ones (response headers) in header_filter. Values may use
// placeholders ({host}, {path}, {query}, {uri}, {country}, {ip}, {method}, {scheme}) filled from the
// request as it reached the rules engine.
import { STATUS_CODES } from 'node:http';
import type { EarlyResponse, RequestContext, ResponseHead } from '../edge/phases.ts';
import { OutpostError } from '../errors.ts';
import { abPosition, bucketAt, bucketBounds } from './ab.ts';
import type { Facts } from './conditions.ts';
import type { Actions, AbSplit } from './schema.ts';

export type Template = (f: Facts) => string;

const PLACEHOLDER = /\{(host|path|query|uri|country|ip|method|scheme)\}/g;

/**
 * The path with leading slashes collapsed: "//evil.example/x" put at the start of a Location would
 * be a protocol-relative URL, an open redirect to another site.
 */
function safePath(f: Facts): string {
  const p = f.rawPath;
  return p.charCodeAt(1) === 47 /* '/' */ ? p.replace(/^\/+/, '/') : p;
}

const FILL: Record<string, (f: Facts) => string> = {
  host: (f) => f.host,
  path: safePath,
  query: (f) => f.query,
  uri: (f) => (f.query ? `${safePath(f)}?${f.query}` : safePath(f)),
  country: (f) => f.country ?? '',
  ip: (f) => f.ip,
  method: (f) => f.method,
  scheme: (f) => f.scheme,
};

/** Splits a value into literal and placeholder parts once; a value without placeholders costs nothing. */
export function compileTemplate(t: string): Template {
  if (!t.includes('{')) return () => t;
  const parts: Array<string | ((f: Facts) => string)> = [];
  let last = 0;
  for (const m of t.matchAll(PLACEHOLDER)) {
    if (m.index > last) parts.push(t.slice(last, m.index));
    parts.push(FILL[m[1]!]!);
    last = m.index + m[0].length;
  }
  if (last === 0) return () => t;
  if (last < t.length) parts.push(t.slice(last));
  return (f) => {
    let out = '';
    for (const p of parts) out += typeof p === 'string' ? p : p(f);
    return out;
  };
}

interface CompiledAb {
  readonly name: string;
  readonly key: (f: Facts) => string;
  readonly bounds: readonly number[];
  readonly buckets: AbSplit['buckets'];
  readonly header: string;
  readonly cacheKey: boolean;
  readonly varName: string;
}

export interface CompiledActions {
  /** deny or redirect: ends the request in rewrite. */
  readonly early?: (f: Facts) => EarlyResponse;
  readonly rewrite?: { readonly re: RegExp | undefined; readonly to: string };
  readonly setRequest?: ReadonlyArray<readonly [string, Template]>;
  readonly removeRequest?: readonly string[];
  readonly pool?: string;
  readonly byCountry?: ReadonlyMap<string, string>;
  readonly countryDefault?: string;
  readonly ab?: CompiledAb;
  readonly cache?: { readonly ttlMs?: number; readonly bypass?: boolean; readonly noStore?: boolean };
  readonly compress?: boolean;
  readonly wholeBody?: boolean;
  readonly setResponse?: ReadonlyArray<readonly [string, Template]>;
  readonly removeResponse?: readonly string[];
  /** Whether header_filter has work to do for this rule. */
  readonly response: boolean;
  /** Every pool this rule may route to (checked against the configured pools). */
  readonly pools: readonly string[];
}

function abKey(key: string): (f: Facts) => string {
  if (key === 'ip') return (f) => f.ip;
  const colon = key.indexOf(':');
  const name = key.slice(colon + 1);
  // Without the cookie or header the client address decides, so a first visit is stable too.
  if (key.startsWith('cookie:')) return (f) => f.cookie(name) ?? f.ip;
  const lower = name.toLowerCase();
  return (f) => f.header(lower) ?? f.ip;
}

export function compileActions(a: Actions): CompiledActions {
  const out: { -readonly [K in keyof CompiledActions]: CompiledActions[K] } = { response: false, pools: [] };
  const pools = new Set<string>();
  if (a.deny) {
    const { status, message } = a.deny;
    const body = `${status} ${STATUS_CODES[status] ?? 'Error'}${message ? `: ${message}` : ''}\n`;
    const early: EarlyResponse = Object.freeze({ status, headers: Object.freeze({ 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }), body });
    out.early = () => early;
  } else if (a.redirect) {
    const { status } = a.redirect;
    const location = compileTemplate(a.redirect.location);
    out.early = (f) => ({ status, headers: { location: location(f), 'content-length': '0' } });
  }
  if (a.rewritePath) out.rewrite = { re: a.rewritePath.match === undefined ? undefined : new RegExp(a.rewritePath.match), to: a.rewritePath.to };
  if (a.requestHeaders?.set) out.setRequest = Object.entries(a.requestHeaders.set).map(([k, v]) => [k, compileTemplate(v)] as const);
  if (a.requestHeaders?.remove) out.removeRequest = a.requestHeaders.remove;
  if (a.responseHeaders?.set) out.setResponse = Object.entries(a.responseHeaders.set).map(([k, v]) => [k, compileTemplate(v)] as const);
  if (a.responseHeaders?.remove) out.removeResponse = a.responseHeaders.remove;
  out.response = out.setResponse !== undefined || out.removeResponse !== undefined;
  if (a.pool !== undefined) {
    out.pool = a.pool;
    pools.add(a.pool);
  }
  if (a.routeByCountry) {
    const m = new Map<string, string>();
    for (const [k, v] of Object.entries(a.routeByCountry)) {
      if (k === 'default') out.countryDefault = v;
      else m.set(k, v);
      pools.add(v);
    }
    out.byCountry = m;
  }
  if (a.ab) {
    const ab = a.ab;
    out.ab = { name: ab.name, key: abKey(ab.key), bounds: bucketBounds(ab.buckets.map((b) => b.percent)), buckets: ab.buckets, header: ab.header, cacheKey: ab.cacheKey, varName: `ab.${ab.name}` };
    for (const b of ab.buckets) if (b.pool !== undefined) pools.add(b.pool);
  }
  if (a.cacheTtl !== undefined || a.cacheBypass !== undefined || a.noStore !== undefined) {
    out.cache = { ...(a.cacheTtl !== undefined ? { ttlMs: a.cacheTtl } : {}), ...(a.cacheBypass !== undefined ? { bypass: a.cacheBypass } : {}), ...(a.noStore !== undefined ? { noStore: a.noStore } : {}) };
  }
  if (a.compress !== undefined) out.compress = a.compress;
  if (a.wholeBody !== undefined) out.wholeBody = a.wholeBody;
  out.pools = [...pools];
  return out;
}

/** The bucket of an experiment for this request. */
export function abBucket(ab: CompiledAb, f: Facts): AbSplit['buckets'][number] {
  return ab.buckets[bucketAt(ab.bounds, abPosition(ab.name, ab.key(f)))]!;
}

function route(ctx: RequestContext, pool: string, rule: string, known: ReadonlySet<string> | undefined): void {
  if (known && !known.has(pool)) {
    throw new OutpostError('NO_UPSTREAM', `rule ${rule} routes to pool "${pool}", which upstream.pools does not configure`);
  }
  ctx.pool = pool;
}

/**
 * Applies the request-side actions of one matched rule. Returns the early answer of a deny or a
 * redirect. `known` are the configured pools (undefined: not checked here).
 */
export function applyRequest(a: CompiledActions, rule: string, ctx: RequestContext, f: Facts, known: ReadonlySet<string> | undefined): EarlyResponse | undefined {
  if (a.early) return a.early(f);
  if (a.rewrite) {
    const { re, to } = a.rewrite;
    let target: string | undefined;
    if (re === undefined) target = to;
    else {
      const m = re.exec(f.path);
      if (m) target = to.replace(/\$(\d)/g, (_s, d: string) => m[Number(d)] ?? '');
    }
    if (target !== undefined) {
      const q = target.indexOf('?');
      if (q < 0) ctx.path = target;
      else {
        ctx.path = target.slice(0, q);
        ctx.query = target.slice(q + 1);
      }
    }
  }
  if (a.removeRequest) for (const h of a.removeRequest) delete ctx.headers[h];
  if (a.setRequest) for (const [h, v] of a.setRequest) ctx.headers[h] = v(f);
  if (a.pool !== undefined) route(ctx, a.pool, rule, known);
  if (a.byCountry) {
    const p = (f.country !== undefined ? a.byCountry.get(f.country) : undefined) ?? a.countryDefault;
    if (p !== undefined) route(ctx, p, rule, known);
  }
  if (a.ab) {
    const ab = a.ab;
    const b = abBucket(ab, f);
    ctx.headers[ab.header] = b.name;
    ctx.vars.set(ab.varName, b.name);
    if (ab.cacheKey) ctx.cacheKeyExtra = `${ctx.cacheKeyExtra ? `${ctx.cacheKeyExtra}&` : ''}${ab.varName}=${b.name}`;
    if (b.pool !== undefined) route(ctx, b.pool, rule, known);
  }
  if (a.cache) ctx.cacheOverride = ctx.cacheOverride ? { ...ctx.cacheOverride, ...a.cache } : a.cache;
  if (a.compress !== undefined) ctx.compress = a.compress;
  if (a.wholeBody !== undefined) ctx.wholeBody = a.wholeBody;
  return undefined;
}

/** Applies response header edits (header_filter): removals first, then values set. */
export function applyResponse(a: CompiledActions, head: ResponseHead, f: Facts): void {
  if (a.removeResponse) for (const h of a.removeResponse) delete head.headers[h];
  if (a.setResponse) for (const [h, v] of a.setResponse) head.headers[h] = v(f);
}
