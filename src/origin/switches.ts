// Query-string switches that make the demo origin misbehave on purpose (?max_age=, ?cc=, ?status=, …).
// Parsed once per request by a hand-written scanner; requests without a query share NO_SWITCHES.

import { validateHeaderName, validateHeaderValue } from 'node:http';
import { OutpostError } from '../errors.ts';

export interface Switches {
  readonly maxAge: number | undefined;
  /** Replaces Cache-Control entirely; '' means send none. */
  readonly cacheControl: string | undefined;
  readonly status: number | undefined;
  readonly delayMs: number | undefined;
  readonly hang: boolean;
  readonly surrogateKey: string | undefined;
  readonly cacheTag: string | undefined;
  readonly vary: string | undefined;
  readonly etag: string | undefined;
  readonly lastModified: string | undefined;
  readonly lastModifiedSec: number | undefined;
  readonly setCookie: boolean;
  /** Flat [name, value, name, value, …] as given by repeated `h=Name:Value`. */
  readonly headers: readonly string[] | undefined;
  readonly chunked: boolean;
  readonly slowBodyMs: number | undefined;
  readonly location: string | undefined;
  /** The body sent compressed with this coding, whatever the request's Accept-Encoding. */
  readonly contentEncoding: 'gzip' | 'br' | undefined;
}

type MutableSwitches = { -readonly [K in keyof Switches]: Switches[K] };

export const NO_SWITCHES: Switches = Object.freeze(blank());

const MAX_WAIT_MS = 600_000;
const DIGITS = /^\d{1,10}$/;
// The origin's framing is Node's job; letting a query string set these would only break the connection.
const FRAMING_HEADERS: ReadonlySet<string> = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade']);

/** Parses the part of the URL after `?`; throws OutpostError('BAD_REQUEST') naming the bad switch. */
export function parseSwitches(query: string): Switches {
  let sw: MutableSwitches | undefined;
  let start = 0;
  while (start <= query.length) {
    let end = query.indexOf('&', start);
    if (end < 0) end = query.length;
    if (end > start) {
      const eq = query.indexOf('=', start);
      const hasValue = eq >= 0 && eq < end;
      const key = decode(query.slice(start, hasValue ? eq : end), 'a switch name');
      const value = hasValue ? decode(query.slice(eq + 1, end), key) : '';
      if (isSwitch(key)) apply((sw ??= blank()), key, value);
    }
    start = end + 1;
  }
  return sw ?? NO_SWITCHES;
}

const SWITCH_NAMES: ReadonlySet<string> = new Set([
  'max_age', 'cc', 'status', 'delay', 'hang', 'tags', 'vary', 'etag', 'lm', 'set_cookie', 'h', 'chunked', 'slow_body', 'location', 'ce',
]);

function isSwitch(key: string): boolean {
  return SWITCH_NAMES.has(key);
}

function apply(sw: MutableSwitches, key: string, value: string): void {
  switch (key) {
    case 'max_age':
      sw.maxAge = integer(key, value, 0, 2_147_483_647);
      return;
    case 'cc':
      sw.cacheControl = headerValue(key, value);
      return;
    case 'status':
      sw.status = integer(key, value, 200, 599);
      return;
    case 'delay':
      sw.delayMs = integer(key, value, 0, MAX_WAIT_MS);
      return;
    case 'hang':
      sw.hang = flag(key, value);
      return;
    case 'tags': {
      const tags = value.split(',').map((t) => t.trim()).filter((t) => t !== '');
      if (tags.length === 0) return;
      sw.surrogateKey = headerValue(key, tags.join(' '));
      sw.cacheTag = tags.join(',');
      return;
    }
    case 'vary':
      sw.vary = headerValue(key, value);
      return;
    case 'etag':
      sw.etag = headerValue(key, value);
      return;
    case 'lm': {
      const seconds = integer(key, value, 0, 253_402_300_799); // up to year 9999
      sw.lastModified = new Date(seconds * 1000).toUTCString();
      sw.lastModifiedSec = seconds;
      return;
    }
    case 'set_cookie':
      sw.setCookie = flag(key, value);
      return;
    case 'h': {
      const colon = value.indexOf(':');
      if (colon <= 0) throw bad(key, `expected Name:Value, got '${value}'`);
      const name = value.slice(0, colon).trim();
      const headerVal = value.slice(colon + 1).trim();
      try {
        validateHeaderName(name);
      } catch {
        throw bad(key, `'${name}' is not a valid header name`);
      }
      if (FRAMING_HEADERS.has(name.toLowerCase())) throw bad(key, `${name} is set by the origin itself`);
      headerValue(key, headerVal);
      sw.headers = [...(sw.headers ?? []), name, headerVal];
      return;
    }
    case 'chunked':
      sw.chunked = flag(key, value);
      return;
    case 'slow_body':
      sw.slowBodyMs = integer(key, value, 0, MAX_WAIT_MS);
      return;
    case 'location':
      sw.location = headerValue(key, value);
      return;
    case 'ce':
      if (value !== 'gzip' && value !== 'br') throw bad(key, `expected gzip or br, got '${value}'`);
      sw.contentEncoding = value;
      return;
  }
}

function blank(): MutableSwitches {
  return {
    maxAge: undefined,
    cacheControl: undefined,
    status: undefined,
    delayMs: undefined,
    hang: false,
    surrogateKey: undefined,
    cacheTag: undefined,
    vary: undefined,
    etag: undefined,
    lastModified: undefined,
    lastModifiedSec: undefined,
    setCookie: false,
    headers: undefined,
    chunked: false,
    slowBodyMs: undefined,
    location: undefined,
    contentEncoding: undefined,
  };
}

function decode(raw: string, what: string): string {
  if (raw.indexOf('%') < 0 && raw.indexOf('+') < 0) return raw;
  try {
    return decodeURIComponent(raw.replaceAll('+', ' '));
  } catch {
    throw bad(what, `bad percent-encoding in '${raw}'`);
  }
}

function integer(key: string, value: string, min: number, max: number): number {
  const n = DIGITS.test(value) ? Number(value) : Number.NaN;
  if (!(n >= min && n <= max)) throw bad(key, `expected an integer ${min}-${max}, got '${value}'`);
  return n;
}

function flag(key: string, value: string): boolean {
  if (value === '1' || value === 'true' || value === '') return true;
  if (value === '0' || value === 'false') return false;
  throw bad(key, `expected 1 or 0, got '${value}'`);
}

function headerValue(key: string, value: string): string {
  try {
    validateHeaderValue('x', value);
  } catch {
    throw bad(key, 'the value contains characters not allowed in a header');
  }
  return value;
}

function bad(key: string, problem: string): OutpostError {
  return new OutpostError('BAD_REQUEST', `switch ${key}: ${problem}`);
}
