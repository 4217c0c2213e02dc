// The primary cache key of a request URL. Compiled once from the options; the returned function
// runs on every request.
import { OutpostError } from '../errors.ts';
import { VARIANT_SEPARATOR } from './storage/tier.ts';

export interface CacheKeyOptions {
  /** Include the (lower-cased, default-port-free) host; turn off when every host serves the same content. */
  readonly includeHost: boolean;
  /** Sort query parameters by name so that `?a=1&b=2` and `?b=2&a=1` share an entry. */
  readonly sortQuery: boolean;
  /** Parameters left out of the key: exact names, or prefix globs like 'utm_*'. */
  readonly ignoreParams: readonly string[];
}

export const DEFAULT_KEY_OPTIONS: CacheKeyOptions = Object.freeze({ includeHost: true, sortQuery: true, ignoreParams: Object.freeze([]) });

export interface KeyParts {
  readonly scheme: string;
  readonly host: string;
  /** The raw path, starting with '/'. */
  readonly path: string;
  /** The raw query, without '?'. */
  readonly query: string;
}

export type CacheKeyFn = (parts: KeyParts) => string;

interface Param {
  readonly raw: string;
  readonly name: string;
}

/**
 * Builds the key function: `scheme://host/path?query`, or `scheme:///path?query` without the host
 * (the empty authority keeps every key the same shape, which prefix purges rely on). Parameters
 * keep their raw encoding; sorting is stable, by raw name, so repeated names keep their order.
 * Ignore patterns match the percent-decoded name. Empty `&&` segments are dropped once the query
 * has to be rebuilt anyway; a query that ends up empty leaves no '?'.
 */
/** Compiles ignoreParams into a predicate on (decoded) parameter names; undefined when nothing is ignored. */
function compileIgnored(ignoreParams: readonly string[]): ((name: string) => boolean) | undefined {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  for (const p of ignoreParams) {
    const star = p.indexOf('*');
    if (p === '' || p === '*' || (star >= 0 && star !== p.length - 1)) {
      throw new OutpostError(
        'CONFIG_INVALID',
        `cache.key.ignoreParams: expected a parameter name or a prefix glob ending in '*' (like 'utm_*'), got '${p}'`,
      );
    }
    if (star < 0) exact.add(p);
    else prefixes.push(p.slice(0, -1));
  }
  if (exact.size === 0 && prefixes.length === 0) return undefined;
  return (name: string): boolean => {
    if (exact.has(name)) return true;
    for (const pre of prefixes) if (name.startsWith(pre)) return true;
    return false;
  };
}

/**
 * Removes ignored parameters from a raw query, keeping the others in order. The edge applies it to
 * the request before it reaches the origin: a parameter that is not part of the cache key must not
 * be able to change the response (unkeyed input is how caches get poisoned).
 */
export function compileIgnoredParamsFilter(ignoreParams: readonly string[]): ((query: string) => string) | undefined {
  const ignored = compileIgnored(ignoreParams);
  if (!ignored) return undefined;
  return (query) => {
    if (query === '') return query;
    let out = '';
    for (const raw of query.split('&')) {
      if (raw === '') continue;
      const eq = raw.indexOf('=');
      if (ignored(decodeName(eq < 0 ? raw : raw.slice(0, eq)))) continue;
      out += (out ? '&' : '') + raw;
    }
    return out;
  };
}

export function compileCacheKey(opts: CacheKeyOptions): CacheKeyFn {
  const ignoredFn = compileIgnored(opts.ignoreParams);
  const filtering = ignoredFn !== undefined;
  const ignored = ignoredFn ?? (() => false);
  const { includeHost, sortQuery } = opts;

  const normalizeQuery = (query: string): string => {
    if (!sortQuery && !filtering) return query;
    const params: Param[] = [];
    for (const raw of query.split('&')) {
      if (raw === '') continue;
      const eq = raw.indexOf('=');
      const name = eq < 0 ? raw : raw.slice(0, eq);
      if (filtering && ignored(decodeName(name))) continue;
      params.push({ raw, name });
    }
    if (sortQuery) params.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    let out = '';
    for (let i = 0; i < params.length; i++) out += (i ? '&' : '') + params[i]!.raw;
    return out;
  };

  return (parts) => {
    const scheme = parts.scheme.toLowerCase();
    const host = includeHost ? normalizeHost(scheme, parts.host) : '';
    const base = `${scheme}://${host}${parts.path}`;
    if (parts.query === '') return base;
    const q = normalizeQuery(parts.query);
    return q === '' ? base : `${base}?${q}`;
  };
}

function decodeName(name: string): string {
  if (!name.includes('%') && !name.includes('+')) return name;
  try {
    return decodeURIComponent(name.replaceAll('+', ' '));
  } catch {
    return name;
  }
}

function normalizeHost(scheme: string, host: string): string {
  const h = host.toLowerCase();
  if (scheme === 'http' && h.endsWith(':80')) return h.slice(0, -3);
  if (scheme === 'https' && h.endsWith(':443')) return h.slice(0, -4);
  return h;
}

/**
 * A key for one variant of a URL chosen at the edge (an A/B bucket, ctx.cacheKeyExtra). It sits
 * after the variant separator, like a Vary variant, so purging the URL purges every variant.
 */
export function withVariant(key: string, extra: string): string {
  return key + VARIANT_SEPARATOR + extra;
}
