// Conditional requests answered from a stored response (RFC 9110 §13, RFC 9111 §4.3.2).
import { listFirst, parseHttpDate, splitList } from './cache-control.ts';
import type { HeaderMap } from './policy.ts';
import type { HeaderList } from './storage/tier.ts';

export type ConditionalResult = 'not-modified' | 'precondition-failed' | 'full';

interface EntityTag {
  readonly weak: boolean;
  /** The opaque tag including its quotes; unquoted junk is kept verbatim and compared as such. */
  readonly tag: string;
}

function parseEntityTag(raw: string): EntityTag {
  const t = raw.trim();
  return t.startsWith('W/') ? { weak: true, tag: t.slice(2) } : { weak: false, tag: t };
}

/** RFC 9110 §8.8.3.2: strong comparison needs both tags strong and identical. */
function strongMatch(a: EntityTag, b: EntityTag): boolean {
  return !a.weak && !b.weak && a.tag === b.tag;
}

/** Weak comparison: identical opaque tags, whatever their weakness. */
function weakMatch(a: EntityTag, b: EntityTag): boolean {
  return a.tag === b.tag;
}

/** The members of If-Match / If-None-Match: `*`, or entity-tags (commas inside quotes are part of a tag). */
function tagList(value: string | string[]): '*' | EntityTag[] {
  const members = splitList(typeof value === 'string' ? value : value.join(','));
  if (members.length === 1 && members[0] === '*') return '*';
  return members.filter((m) => m !== '*').map(parseEntityTag);
}

/** A single valid HTTP-date, or undefined; a list of dates (several field lines) is invalid. */
function singleDate(value: string | string[] | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') return value.length === 1 ? parseHttpDate(value[0]) : undefined;
  return parseHttpDate(value);
}

/**
 * Evaluates the request's preconditions against a stored response, in RFC 9110 §13.2.2 order:
 * If-Match (strong), else If-Unmodified-Since; then If-None-Match (weak; `*` matches any stored
 * response), else — GET and HEAD only — If-Modified-Since. Range and If-Range are range.ts's.
 *
 * Preconditions are ignored when the stored response is not 2xx (§13.2.1). Invalid dates are
 * ignored, and so is If-Unmodified-Since when there is no Last-Modified (§13.1.4). For
 * If-Modified-Since without Last-Modified, the stored Date is used (RFC 9111 §4.3.2, case 2).
 *
 * RFC 9111 §4.3.2 calls If-Match and If-Unmodified-Since "not applicable to a cache"; they are
 * evaluated here as nginx does, so a GET whose If-Match fails against the cached copy gets a 412.
 * A caller that prefers to forward such requests to the origin can do so on 'precondition-failed'.
 */
export function evaluateConditional(method: string, req: HeaderMap, stored: { readonly status: number; readonly headers: HeaderList }): ConditionalResult {
  if (stored.status < 200 || stored.status > 299) return 'full';
  const etagRaw = listFirst(stored.headers, 'etag');
  const etag = etagRaw === undefined ? undefined : parseEntityTag(etagRaw);
  const lastModified = parseHttpDate(listFirst(stored.headers, 'last-modified'));

  const ifMatch = req['if-match'];
  if (ifMatch !== undefined) {
    const list = tagList(ifMatch);
    // `*` is true when a current representation exists, and the stored response is one.
    const ok = list === '*' || (etag !== undefined && list.some((t) => strongMatch(t, etag)));
    if (!ok) return 'precondition-failed';
  } else {
    const since = singleDate(req['if-unmodified-since']);
    if (since !== undefined && lastModified !== undefined && lastModified > since) return 'precondition-failed';
  }

  const isGetOrHead = method === 'GET' || method === 'HEAD';
  const ifNoneMatch = req['if-none-match'];
  if (ifNoneMatch !== undefined) {
    const list = tagList(ifNoneMatch);
    const matched = list === '*' || (etag !== undefined && list.some((t) => weakMatch(t, etag)));
    if (matched) return isGetOrHead ? 'not-modified' : 'precondition-failed';
    return 'full';
  }

  if (isGetOrHead) {
    const since = singleDate(req['if-modified-since']);
    const reference = lastModified ?? parseHttpDate(listFirst(stored.headers, 'date'));
    if (since !== undefined && reference !== undefined && reference <= since) return 'not-modified';
  }
  return 'full';
}

/**
 * Fields a 304 carries (RFC 9110 §15.4.5): those a 200 would have of Cache-Control,
 * Content-Location, Date, ETag, Expires and Vary; plus Last-Modified when there is no ETag, since it
 * is then the validator that guides the client's cache update. Age is the caller's to add.
 */
export function notModifiedHeaders(stored: HeaderList): HeaderList {
  const hasEtag = stored.some(([n]) => n === 'etag');
  return stored.filter(([n]) => NOT_MODIFIED_FIELDS.has(n) || (n === 'last-modified' && !hasEtag));
}

const NOT_MODIFIED_FIELDS: ReadonlySet<string> = new Set(['cache-control', 'content-location', 'date', 'etag', 'expires', 'vary']);
