// Turns what users write (URLs, URL prefixes, tags) into storage purge specs. A URL purges both its
// http and https entries: users purge "the page", not one scheme's copy of it.
import { z } from 'zod';
import type { PurgeSpec } from '../cache/storage/tier.ts';
import { normalizeHost } from '../edge/request.ts';
import { OutpostError } from '../errors.ts';

export const PurgeBody = z
  .object({
    urls: z.array(z.string()).max(100_000).default([]),
    prefixes: z.array(z.string()).max(10_000).default([]),
    tags: z.array(z.string().min(1).max(1024)).max(10_000).default([]),
    all: z.boolean().default(false),
    soft: z.boolean().default(false),
  })
  .strict();
export type PurgeBody = z.output<typeof PurgeBody>;

export type KeyOf = (parts: { scheme: string; host: string; path: string; query: string }) => string;

function parseUrl(value: string, field: string): URL {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new OutpostError('BAD_REQUEST', `${field}: ${JSON.stringify(value)} is not an absolute URL (expected e.g. "https://example.com/path")`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new OutpostError('BAD_REQUEST', `${field}: ${JSON.stringify(value)} is not an http(s) URL`);
  return u;
}

function keysFor(u: URL, keyOf: KeyOf, withQuery: boolean): string[] {
  return (['http', 'https'] as const).map((scheme) => {
    const host = normalizeHost(u.host, scheme) ?? u.host.toLowerCase();
    return keyOf({ scheme, host, path: u.pathname, query: withQuery ? u.search.slice(1) : '' });
  });
}

export function purgeSpecs(body: PurgeBody, keyOf: KeyOf): PurgeSpec[] {
  if (body.all) return [{ kind: 'all' }];
  const specs: PurgeSpec[] = [];
  for (const url of body.urls) for (const key of keysFor(parseUrl(url, 'urls'), keyOf, true)) specs.push({ kind: 'key', key });
  for (const p of body.prefixes) {
    const u = parseUrl(p, 'prefixes');
    if (u.search) throw new OutpostError('BAD_REQUEST', `prefixes: ${JSON.stringify(p)} must not contain a query`);
    for (const key of keysFor(u, keyOf, false)) specs.push({ kind: 'prefix', prefix: key });
  }
  if (body.tags.length) specs.push({ kind: 'tags', tags: body.tags });
  if (specs.length === 0) throw new OutpostError('BAD_REQUEST', 'nothing to purge: give urls, prefixes, tags or all: true');
  return specs;
}
