// Conditional GET for the demo origin (RFC 9110 §13): If-None-Match with weak comparison wins over
// If-Modified-Since. Reads rawHeaders so that requests without conditions never build req.headers.

export interface Conditions {
  readonly ifNoneMatch: string | undefined;
  readonly ifModifiedSince: string | undefined;
}

const NONE: Conditions = Object.freeze({ ifNoneMatch: undefined, ifModifiedSince: undefined });

export function readConditions(rawHeaders: readonly string[]): Conditions {
  let ifNoneMatch: string | undefined;
  let ifModifiedSince: string | undefined;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i];
    if (name === undefined) continue;
    if (name.length === 13 && name.toLowerCase() === 'if-none-match') {
      ifNoneMatch = ifNoneMatch === undefined ? rawHeaders[i + 1] : `${ifNoneMatch}, ${rawHeaders[i + 1]}`;
    } else if (name.length === 17 && name.toLowerCase() === 'if-modified-since') {
      ifModifiedSince = rawHeaders[i + 1];
    }
  }
  return ifNoneMatch === undefined && ifModifiedSince === undefined ? NONE : { ifNoneMatch, ifModifiedSince };
}

/** True when a 200 for a representation with these validators should become a 304. */
export function isNotModified(c: Conditions, etag: string | undefined, lastModifiedSec: number | undefined): boolean {
  if (c.ifNoneMatch !== undefined) return etagListMatches(c.ifNoneMatch, etag);
  if (c.ifModifiedSince === undefined || lastModifiedSec === undefined) return false;
  const since = Date.parse(c.ifModifiedSince);
  return !Number.isNaN(since) && lastModifiedSec <= Math.floor(since / 1000);
}

/** Weak comparison: `W/"a"` matches `"a"`; `*` matches any existing representation. */
export function etagListMatches(list: string, etag: string | undefined): boolean {
  const ours = etag === undefined ? undefined : etag.startsWith('W/') ? etag.slice(2) : etag;
  let i = 0;
  const n = list.length;
  while (i < n) {
    const c = list.charCodeAt(i);
    if (c === 0x20 || c === 0x09 || c === 0x2c) {
      i++;
      continue;
    }
    if (c === 0x2a) return true;
    if (list.startsWith('W/', i)) i += 2;
    let end: number;
    if (list.charCodeAt(i) === 0x22) {
      const close = list.indexOf('"', i + 1);
      end = close < 0 ? n : close + 1;
    } else {
      // Not a quoted entity-tag; compare the bare token so that verbatim ?etag=v1 still works.
      const comma = list.indexOf(',', i);
      end = comma < 0 ? n : comma;
    }
    if (ours !== undefined && list.slice(i, end).trim() === ours) return true;
    i = end;
  }
  return false;
}
