import { describe, expect, it } from 'vitest';
import {
  DELTA_SECONDS_MAX,
  deltaSeconds,
  firstValue,
  formatHttpDate,
  joinedValue,
  listFirst,
  parseCacheControl,
  parseHttpDate,
  parseTargetedCacheControl,
  splitList,
} from './cache-control.ts';

const obj = (m: ReadonlyMap<string, string | true> | undefined) => (m ? Object.fromEntries(m) : m);

describe('parseCacheControl', () => {
  it('lower-cases directive names', () => {
    expect(obj(parseCacheControl('Max-Age=60, PUBLIC'))).toEqual({ 'max-age': '60', public: true });
  });

  it('gives true to directives without an argument', () => {
    expect(parseCacheControl('no-store').get('no-store')).toBe(true);
  });

  it('unquotes quoted arguments, including escaped quotes and commas inside them', () => {
    const d = parseCacheControl('no-cache="set-cookie, x-a", private="a\\"b", max-age=5');
    expect(d.get('no-cache')).toBe('set-cookie, x-a');
    expect(d.get('private')).toBe('a"b');
    expect(d.get('max-age')).toBe('5');
  });

  it('keeps the first occurrence of a repeated directive', () => {
    expect(parseCacheControl('max-age=60, max-age=0').get('max-age')).toBe('60');
  });

  it('combines several field lines', () => {
    expect(obj(parseCacheControl(['public', 'max-age=10']))).toEqual({ public: true, 'max-age': '10' });
  });

  it('tolerates empty members, stray commas and whitespace around "="', () => {
    expect(obj(parseCacheControl(' , max-age = 30 ,, ,public,'))).toEqual({ 'max-age': '30', public: true });
  });

  it('returns an empty map for an absent or empty field', () => {
    expect(parseCacheControl(undefined).size).toBe(0);
    expect(parseCacheControl('').size).toBe(0);
  });

  it('keeps junk arguments as they are so that they fail validation later', () => {
    expect(parseCacheControl('max-age=60 foo').get('max-age')).toBe('60 foo');
  });

  it('survives an unterminated quoted string', () => {
    expect(parseCacheControl('private="x, max-age=5').get('private')).toBe('x, max-age=5');
  });

  it('ignores junk after a closing quote', () => {
    expect(obj(parseCacheControl('a="x"junk, b'))).toEqual({ a: 'x', b: true });
  });

  it('accepts an empty argument', () => {
    expect(parseCacheControl('max-age=').get('max-age')).toBe('');
  });
});

describe('deltaSeconds', () => {
  const d = (v: string) => parseCacheControl(v);

  it('reads a non-negative integer', () => {
    expect(deltaSeconds(d('max-age=3600'), 'max-age')).toBe(3600);
    expect(deltaSeconds(d('max-age=0'), 'max-age')).toBe(0);
  });

  it('accepts the quoted form', () => {
    expect(deltaSeconds(d('max-age="60"'), 'max-age')).toBe(60);
  });

  it('caps values above 2^31 at 2^31 seconds', () => {
    expect(deltaSeconds(d('max-age=99999999999999999999'), 'max-age')).toBe(DELTA_SECONDS_MAX);
    expect(deltaSeconds(d('max-age=2147483649'), 'max-age')).toBe(2 ** 31);
    expect(deltaSeconds(d('max-age=2147483647'), 'max-age')).toBe(2147483647);
  });

  it('rejects negative, decimal, signed, empty and missing arguments', () => {
    for (const v of ['max-age=-1', 'max-age=1.5', 'max-age=+5', 'max-age=', 'max-age', 'max-age=1e3', 'max-age=0x10']) {
      expect(deltaSeconds(d(v), 'max-age')).toBeUndefined();
    }
  });

  it('is undefined for an absent directive', () => {
    expect(deltaSeconds(d('public'), 'max-age')).toBeUndefined();
  });
});

describe('parseTargetedCacheControl', () => {
  it('parses a Structured Fields dictionary', () => {
    expect(obj(parseTargetedCacheControl('max-age=600, must-revalidate, private="x-a"'))).toEqual({
      'max-age': '600',
      'must-revalidate': true,
      private: 'x-a',
    });
  });

  it('is undefined when absent, empty or blank: such a field is ignored', () => {
    expect(parseTargetedCacheControl(undefined)).toBeUndefined();
    expect(parseTargetedCacheControl('')).toBeUndefined();
    expect(parseTargetedCacheControl('   ')).toBeUndefined();
  });

  it('rejects the whole field on any parse error', () => {
    for (const bad of ['Max-Age=60', 'max-age=60,', 'max-age=60;', 'max-age=60 public', '=5', 'a="unterminated', 'a="\\x"', 'a=?2', 'a=1.2345', 'a=(1 2', 'a=:abc', 'a=@']) {
      expect(parseTargetedCacheControl(bad), bad).toBeUndefined();
    }
  });

  it('accepts a field whose only directive is unknown', () => {
    expect(obj(parseTargetedCacheControl('none'))).toEqual({ none: true });
  });

  it('lets later members override earlier ones, and false remove them', () => {
    expect(obj(parseTargetedCacheControl('max-age=1, max-age=2'))).toEqual({ 'max-age': '2' });
    expect(obj(parseTargetedCacheControl('no-store, no-store=?0, public=?1'))).toEqual({ public: true });
  });

  it('ignores parameters', () => {
    expect(obj(parseTargetedCacheControl('max-age=60;foo=bar;baz, public;x'))).toEqual({ 'max-age': '60', public: true });
  });

  it('maps integers, decimals, tokens, byte sequences and inner lists to text or true', () => {
    expect(obj(parseTargetedCacheControl('a=007, b=-3, c=1.5, d=tok/en:x, e=:aGk=:, f=("x" y);p'))).toEqual({
      a: '7',
      b: '-3',
      c: '1.5',
      d: 'tok/en:x',
      e: ':aGk=:',
      f: true,
    });
  });

  it('combines field lines with a comma', () => {
    expect(obj(parseTargetedCacheControl(['max-age=60', 'stale-if-error=30']))).toEqual({ 'max-age': '60', 'stale-if-error': '30' });
  });

  it('allows optional whitespace around commas and leading spaces', () => {
    expect(obj(parseTargetedCacheControl('  a=1 ,\tb'))).toEqual({ a: '1', b: true });
  });

  it('rejects an integer with more than 15 digits', () => {
    expect(parseTargetedCacheControl('max-age=1234567890123456')).toBeUndefined();
  });
});

describe('parseHttpDate', () => {
  const t = Date.UTC(1994, 10, 6, 8, 49, 37);

  it('reads the IMF-fixdate format', () => {
    expect(parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT')).toBe(t);
  });

  it('reads the obsolete RFC 850 format', () => {
    expect(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT')).toBe(t);
  });

  it('reads the obsolete asctime format', () => {
    expect(parseHttpDate('Sun Nov  6 08:49:37 1994')).toBe(t);
    expect(parseHttpDate('Sun Nov 16 08:49:37 1994')).toBe(Date.UTC(1994, 10, 16, 8, 49, 37));
  });

  it('maps an RFC 850 two-digit year more than 50 years ahead to the previous century', () => {
    const year = new Date().getUTCFullYear();
    const ahead = (year + 60) % 100;
    const parsed = parseHttpDate(`Monday, 01-Jan-${String(ahead).padStart(2, '0')} 00:00:00 GMT`)!;
    expect(new Date(parsed).getUTCFullYear()).toBe(year + 60 - 100);
    const near = (year + 10) % 100;
    const parsedNear = parseHttpDate(`Monday, 01-Jan-${String(near).padStart(2, '0')} 00:00:00 GMT`)!;
    expect(new Date(parsedNear).getUTCFullYear()).toBe(year + 10);
  });

  it('matches case-insensitively and trims whitespace', () => {
    expect(parseHttpDate('  sun, 06 nov 1994 08:49:37 gmt ')).toBe(t);
  });

  it('rejects zones other than GMT', () => {
    expect(parseHttpDate('Sun, 06 Nov 1994 08:49:37 UTC')).toBeUndefined();
    expect(parseHttpDate('Sun, 06 Nov 1994 08:49:37 +0000')).toBeUndefined();
  });

  it('rejects impossible dates and times instead of rolling them over', () => {
    expect(parseHttpDate('Mon, 31 Feb 2020 00:00:00 GMT')).toBeUndefined();
    expect(parseHttpDate('Mon, 10 Feb 2020 24:00:00 GMT')).toBeUndefined();
    expect(parseHttpDate('Mon, 10 Feb 2020 10:60:00 GMT')).toBeUndefined();
    expect(parseHttpDate('Mon, 00 Feb 2020 10:00:00 GMT')).toBeUndefined();
    expect(parseHttpDate('Mon, 10 Foo 2020 10:00:00 GMT')).toBeUndefined();
  });

  it('accepts 29 February in a leap year only', () => {
    expect(parseHttpDate('Sat, 29 Feb 2020 00:00:00 GMT')).toBe(Date.UTC(2020, 1, 29));
    expect(parseHttpDate('Sun, 29 Feb 2021 00:00:00 GMT')).toBeUndefined();
  });

  it('takes a leap second as the last second of the minute', () => {
    expect(parseHttpDate('Sat, 31 Dec 2016 23:59:60 GMT')).toBe(Date.UTC(2016, 11, 31, 23, 59, 59));
  });

  it('rejects junk, "0" and "-1"', () => {
    for (const v of ['0', '-1', '', 'tomorrow', '2020-01-01T00:00:00Z', 'Sun, 06 Nov 1994']) expect(parseHttpDate(v)).toBeUndefined();
    expect(parseHttpDate(undefined)).toBeUndefined();
  });

  it('tolerates a single-digit day in IMF-fixdate', () => {
    expect(parseHttpDate('Sun, 6 Nov 1994 08:49:37 GMT')).toBe(t);
  });

  it('round-trips through formatHttpDate', () => {
    expect(formatHttpDate(t)).toBe('Sun, 06 Nov 1994 08:49:37 GMT');
    expect(parseHttpDate(formatHttpDate(t))).toBe(t);
  });
});

describe('header access helpers', () => {
  it('firstValue takes the first of repeated lines', () => {
    expect(firstValue({ a: ['1', '2'] }, 'a')).toBe('1');
    expect(firstValue({ a: '1' }, 'a')).toBe('1');
    expect(firstValue({}, 'a')).toBeUndefined();
  });

  it('joinedValue combines repeated lines with a comma', () => {
    expect(joinedValue({ a: ['1', '2'] }, 'a')).toBe('1, 2');
    expect(joinedValue({ a: [] }, 'a')).toBeUndefined();
  });

  it('listFirst finds the first line in a stored header list', () => {
    expect(listFirst([['x', '1'], ['etag', '"a"'], ['etag', '"b"']], 'etag')).toBe('"a"');
    expect(listFirst([], 'etag')).toBeUndefined();
  });

  it('splitList keeps commas inside quoted strings', () => {
    expect(splitList('"a,b", W/"c" ,, "d\\",e"')).toEqual(['"a,b"', 'W/"c"', '"d\\",e"']);
  });
});
