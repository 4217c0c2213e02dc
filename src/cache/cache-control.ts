// Parsers for the header fields the cache rules read: Cache-Control (lenient, RFC 9111 §5.2), its
// targeted siblings (strict Structured Fields dictionaries, RFC 9213 §2.1), delta-seconds and
// HTTP-dates. Everything here is tolerant of junk: bad input yields "absent" or "invalid", never a throw.
import type { HeaderMap } from './policy.ts';
import type { HeaderList } from './storage/tier.ts';

/** Directive name (lower-case) to its argument, or `true` when it has none. */
export type Directives = ReadonlyMap<string, string | true>;

/** RFC 9111 §1.2.2: delta-seconds too large to represent are taken as 2^31. */
export const DELTA_SECONDS_MAX = 2_147_483_648;

/**
 * Parses Cache-Control (or Surrogate-Control): `#( token [ "=" ( token / quoted-string ) ] )`.
 * Names are compared case-insensitively (§5.2), so they are lower-cased; quoted arguments are
 * unquoted; both argument forms are accepted (§5.2: recipients ought to accept both). When a
 * directive repeats, the first occurrence wins (§4.2.1).
 */
export function parseCacheControl(value: string | readonly string[] | undefined): Directives {
  const out = new Map<string, string | true>();
  if (value === undefined) return out;
  const s = typeof value === 'string' ? value : value.join(',');
  const n = s.length;
  let i = 0;
  // Bounded: every iteration consumes at least one character.
  while (i < n) {
    let j = i;
    while (j < n && s[j] !== '=' && s[j] !== ',') j++;
    const name = s.slice(i, j).trim().toLowerCase();
    let arg: string | true = true;
    if (j < n && s[j] === '=') {
      j++;
      while (j < n && (s[j] === ' ' || s[j] === '\t')) j++;
      if (s[j] === '"') {
        let v = '';
        j++;
        while (j < n && s[j] !== '"') {
          if (s[j] === '\\' && j + 1 < n) j++;
          v += s[j];
          j++;
        }
        arg = v;
        // Skip the closing quote and any junk up to the next directive.
        while (j < n && s[j] !== ',') j++;
      } else {
        const start = j;
        while (j < n && s[j] !== ',') j++;
        arg = s.slice(start, j).trim();
      }
    }
    if (name !== '' && !out.has(name)) out.set(name, arg);
    i = j + 1;
  }
  return out;
}

/**
 * The argument of `name` as delta-seconds (1*DIGIT), capped at 2^31 (RFC 9111 §1.2.2).
 * Undefined when the directive is absent, has no argument, or the argument is not a non-negative
 * integer; callers that care whether it was present but invalid check `d.has(name)`.
 */
export function deltaSeconds(d: Directives, name: string): number | undefined {
  const v = d.get(name);
  return typeof v === 'string' ? parseDeltaSeconds(v) : undefined;
}

/** delta-seconds from a bare string (the Age field uses the same grammar). */
export function parseDeltaSeconds(v: string): number | undefined {
  if (v.length === 0 || !/^[0-9]+$/.test(v)) return undefined;
  const n = Number(v);
  return n > DELTA_SECONDS_MAX ? DELTA_SECONDS_MAX : n;
}

// ---------------------------------------------------------------------------------------------
// Targeted fields (CDN-Cache-Control) are Structured Field Dictionaries (RFC 8941 §3.2, §4.2.2).
// RFC 9213 §2.1: "If a targeted field in a given response is empty, or a parsing error is
// encountered, that field MUST be ignored by the cache", so this parser is strict and all-or-nothing.

class SfError extends Error {}

const isLcAlpha = (c: string | undefined): boolean => c !== undefined && c >= 'a' && c <= 'z';
const isAlpha = (c: string | undefined): boolean => c !== undefined && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'));
const isDigit = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '9';
const TCHAR_EXTRA = "!#$%&'*+-.^_`|~";
const isTchar = (c: string | undefined): boolean => c !== undefined && (isAlpha(c) || isDigit(c) || TCHAR_EXTRA.includes(c));
const isBase64 = (c: string | undefined): boolean => c !== undefined && (isAlpha(c) || isDigit(c) || c === '+' || c === '/' || c === '=');

class SfParser {
  private readonly s: string;
  private i = 0;

  constructor(s: string) {
    this.s = s;
  }

  dictionary(): Map<string, string | true> {
    const out = new Map<string, string | true>();
    this.skip(' ');
    if (this.i >= this.s.length) throw new SfError('empty');
    for (;;) {
      const key = this.key();
      let value: string | boolean = true;
      if (this.s[this.i] === '=') {
        this.i++;
        value = this.itemOrInnerList();
      } else {
        this.parameters();
      }
      // Later members overwrite earlier ones (RFC 8941 §4.2.2); Boolean false means "not set".
      out.delete(key);
      if (value !== false) out.set(key, value);
      this.skipOws();
      if (this.i >= this.s.length) return out;
      if (this.s[this.i] !== ',') throw new SfError('expected ,');
      this.i++;
      this.skipOws();
      if (this.i >= this.s.length) throw new SfError('trailing comma');
    }
  }

  private skip(c: string): void {
    while (this.s[this.i] === c) this.i++;
  }

  private skipOws(): void {
    while (this.s[this.i] === ' ' || this.s[this.i] === '\t') this.i++;
  }

  private key(): string {
    const start = this.i;
    const c = this.s[this.i];
    if (!isLcAlpha(c) && c !== '*') throw new SfError('bad key');
    this.i++;
    for (;;) {
      const d = this.s[this.i];
      if (isLcAlpha(d) || isDigit(d) || d === '_' || d === '-' || d === '.' || d === '*') this.i++;
      else break;
    }
    return this.s.slice(start, this.i);
  }

  private itemOrInnerList(): string | boolean {
    if (this.s[this.i] === '(') {
      this.i++;
      for (;;) {
        this.skip(' ');
        if (this.s[this.i] === ')') {
          this.i++;
          this.parameters();
          // An inner list has no meaning for any cache directive; keep the directive, drop the list.
          return true;
        }
        this.bareItem();
        this.parameters();
        const c = this.s[this.i];
        if (c !== ' ' && c !== ')') throw new SfError('bad inner list');
      }
    }
    const v = this.bareItem();
    this.parameters();
    return v;
  }

  /** Parameters are parsed for validity and ignored (RFC 9213 §2.1). */
  private parameters(): void {
    while (this.s[this.i] === ';') {
      this.i++;
      this.skip(' ');
      this.key();
      if (this.s[this.i] === '=') {
        this.i++;
        this.bareItem();
      }
    }
  }

  private bareItem(): string | boolean {
    const c = this.s[this.i];
    if (c === '-' || isDigit(c)) return this.number();
    if (c === '"') return this.string();
    if (c === '*' || isAlpha(c)) return this.token();
    if (c === ':') return this.bytes();
    if (c === '?') return this.boolean();
    throw new SfError('bad item');
  }

  private number(): string {
    const start = this.i;
    if (this.s[this.i] === '-') this.i++;
    if (!isDigit(this.s[this.i])) throw new SfError('bad number');
    let intDigits = 0;
    while (isDigit(this.s[this.i])) {
      this.i++;
      intDigits++;
    }
    if (this.s[this.i] !== '.') {
      if (intDigits > 15) throw new SfError('integer too long');
      return String(Number(this.s.slice(start, this.i)));
    }
    if (intDigits > 12) throw new SfError('decimal too long');
    this.i++;
    let frac = 0;
    while (isDigit(this.s[this.i])) {
      this.i++;
      frac++;
    }
    if (frac === 0 || frac > 3) throw new SfError('bad decimal');
    return this.s.slice(start, this.i);
  }

  private string(): string {
    this.i++;
    let out = '';
    for (;;) {
      const c = this.s[this.i];
      if (c === undefined) throw new SfError('unterminated string');
      this.i++;
      if (c === '"') return out;
      if (c === '\\') {
        const e = this.s[this.i];
        if (e !== '"' && e !== '\\') throw new SfError('bad escape');
        out += e;
        this.i++;
        continue;
      }
      const code = c.charCodeAt(0);
      if (code < 0x20 || code > 0x7e) throw new SfError('bad string char');
      out += c;
    }
  }

  private token(): string {
    const start = this.i;
    this.i++;
    while (isTchar(this.s[this.i]) || this.s[this.i] === ':' || this.s[this.i] === '/') this.i++;
    return this.s.slice(start, this.i);
  }

  private bytes(): string {
    const start = this.i;
    this.i++;
    while (isBase64(this.s[this.i])) this.i++;
    if (this.s[this.i] !== ':') throw new SfError('bad byte sequence');
    this.i++;
    return this.s.slice(start, this.i);
  }

  private boolean(): boolean {
    const v = this.s[this.i + 1];
    if (v !== '0' && v !== '1') throw new SfError('bad boolean');
    this.i += 2;
    return v === '1';
  }
}

/**
 * Parses a targeted cache-control field such as CDN-Cache-Control as an RFC 8941 Dictionary.
 * Returns undefined when the field is absent, empty or fails to parse: RFC 9213 §2.1 says such a
 * field is ignored. A valid field may still yield no directives (e.g. `none`, or `a=?0`).
 * Values map as: Boolean true → `true`, Integer/Decimal/Token/String → their text.
 */
export function parseTargetedCacheControl(value: string | readonly string[] | undefined): Directives | undefined {
  if (value === undefined) return undefined;
  // Multiple field lines combine with a comma (RFC 8941 §4.2).
  const s = typeof value === 'string' ? value : value.join(', ');
  if (s.trim() === '') return undefined;
  try {
    return new SfParser(s).dictionary();
  } catch (err) {
    if (err instanceof SfError) return undefined;
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP-date (RFC 9110 §5.6.7): recipients MUST accept IMF-fixdate, rfc850-date and asctime-date.

const MONTHS: Record<string, number> = { jan: 0, feb: 1, mar: 2, apr: 3, may: 4, jun: 5, jul: 6, aug: 7, sep: 8, oct: 9, nov: 10, dec: 11 };
const IMF = /^(?:mon|tue|wed|thu|fri|sat|sun), ([0-9]{1,2}) ([a-z]{3}) ([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) gmt$/;
const RFC850 = /^(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday), ([0-9]{2})-([a-z]{3})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) gmt$/;
const ASCTIME = /^(?:mon|tue|wed|thu|fri|sat|sun) ([a-z]{3}) ( [0-9]|[0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) ([0-9]{4})$/;

/**
 * Parses an HTTP-date to ms since the epoch, or undefined when invalid. Matching is
 * case-insensitive and only GMT is accepted (RFC 9111 §4.2: a recipient SHOULD match dates
 * case-insensitively and SHOULD treat other zones as invalid). Never uses the local time zone.
 */
export function parseHttpDate(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const s = value.trim().toLowerCase();
  let m = IMF.exec(s);
  if (m) return build(Number(m[3]), m[2]!, Number(m[1]), m[4]!, m[5]!, m[6]!);
  m = RFC850.exec(s);
  if (m) {
    // RFC 9110 §5.6.7: a two-digit year more than 50 years in the future means the most recent
    // past year with those digits.
    const thisYear = new Date().getUTCFullYear();
    let year = Math.floor(thisYear / 100) * 100 + Number(m[3]);
    if (year > thisYear + 50) year -= 100;
    return build(year, m[2]!, Number(m[1]), m[4]!, m[5]!, m[6]!);
  }
  m = ASCTIME.exec(s);
  if (m) return build(Number(m[6]), m[1]!, Number(m[2]!.trim()), m[3]!, m[4]!, m[5]!);
  return undefined;
}

function build(year: number, mon: string, day: number, hh: string, mm: string, ss: string): number | undefined {
  const month = MONTHS[mon];
  const h = Number(hh);
  const mi = Number(mm);
  const se = Number(ss);
  if (month === undefined || h > 23 || mi > 59 || se > 60 || day < 1) return undefined;
  const d = new Date(0);
  d.setUTCFullYear(year, month, day);
  // Rejects 31 Feb and friends instead of rolling over into the next month.
  if (d.getUTCMonth() !== month) return undefined;
  // A leap second (:60) is taken as the last second of the minute.
  d.setUTCHours(h, mi, Math.min(se, 59), 0);
  return d.getTime();
}

/** Formats ms since the epoch as an IMF-fixdate. */
export function formatHttpDate(ms: number): string {
  return new Date(ms).toUTCString();
}

// ---------------------------------------------------------------------------------------------
// Field access on the two header shapes the cache handles.

/** The first value of a field (for singleton fields: Date, Expires, ETag, Last-Modified, Age). */
export function firstValue(h: HeaderMap, name: string): string | undefined {
  const v = h[name];
  return typeof v === 'string' || v === undefined ? v : v[0];
}

/** All values of a list field, combined with ", " (RFC 9110 §5.3). */
export function joinedValue(h: HeaderMap, name: string): string | undefined {
  const v = h[name];
  return typeof v === 'string' || v === undefined ? v : v.length === 0 ? undefined : v.join(', ');
}

/** The first value of a field in a stored header list. */
export function listFirst(list: HeaderList, name: string): string | undefined {
  for (const [n, v] of list) if (n === name) return v;
  return undefined;
}

/** Splits a comma-separated list, respecting quoted strings; drops empty members. */
export function splitList(value: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (quoted) {
      cur += c;
      if (c === '\\' && i + 1 < value.length) cur += value[++i]!;
      else if (c === '"') quoted = false;
    } else if (c === '"') {
      quoted = true;
      cur += c;
    } else if (c === ',') {
      const t = cur.trim();
      if (t) out.push(t);
      cur = '';
    } else cur += c;
  }
  const t = cur.trim();
  if (t) out.push(t);
  return out;
}
