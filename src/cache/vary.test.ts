import { describe, expect, it } from 'vitest';
import { VARIANT_SEPARATOR } from './storage/tier.ts';
import { VARY_FIELD_SEPARATOR, normalizeAcceptEncoding, parseVary, variantSuffix } from './vary.ts';

describe('parseVary', () => {
  it('lower-cases, deduplicates and sorts the names', () => {
    expect(parseVary({ vary: 'User-Agent, accept-encoding, Accept-Encoding' })).toEqual(['accept-encoding', 'user-agent']);
  });

  it('reads repeated Vary lines', () => {
    expect(parseVary({ vary: ['Origin', 'Accept'] })).toEqual(['accept', 'origin']);
  });

  it('returns * when any member is *', () => {
    expect(parseVary({ vary: 'Accept, *' })).toBe('*');
    expect(parseVary({ vary: ['Accept', '*'] })).toBe('*');
  });

  it('returns * for a member that is not a field name, since it cannot be honoured', () => {
    expect(parseVary({ vary: 'accept encoding' })).toBe('*');
    expect(parseVary({ vary: 'a"b' })).toBe('*');
  });

  it('returns no names without Vary or with an empty one', () => {
    expect(parseVary({})).toEqual([]);
    expect(parseVary({ vary: ' , ,' })).toEqual([]);
  });
});

describe('normalizeAcceptEncoding', () => {
  it('gives identity without the header or with an empty one', () => {
    expect(normalizeAcceptEncoding(undefined)).toBe('identity');
    expect(normalizeAcceptEncoding('')).toBe('identity');
  });

  it('prefers br, then gzip, at equal quality', () => {
    expect(normalizeAcceptEncoding('gzip, deflate, br, zstd')).toBe('br');
    expect(normalizeAcceptEncoding('gzip, deflate')).toBe('gzip');
    expect(normalizeAcceptEncoding('deflate')).toBe('identity');
  });

  it('honours qvalues', () => {
    expect(normalizeAcceptEncoding('br;q=0.5, gzip;q=0.8')).toBe('gzip');
    expect(normalizeAcceptEncoding('gzip;q=0.2, identity;q=0.5')).toBe('identity');
    expect(normalizeAcceptEncoding('br;q=0.001')).toBe('br');
  });

  it('treats q=0 as not acceptable', () => {
    expect(normalizeAcceptEncoding('br;q=0, gzip')).toBe('gzip');
    expect(normalizeAcceptEncoding('br;q=0.000, gzip;q=0')).toBe('identity');
  });

  it('applies * to codings not listed', () => {
    expect(normalizeAcceptEncoding('*')).toBe('br');
    expect(normalizeAcceptEncoding('br;q=0, *')).toBe('gzip');
    expect(normalizeAcceptEncoding('gzip;q=0.5, *;q=0.1')).toBe('gzip');
  });

  it('excludes identity only when asked to', () => {
    expect(normalizeAcceptEncoding('gzip;q=0.1')).toBe('gzip');
    expect(normalizeAcceptEncoding('*;q=0')).toBe('identity');
    expect(normalizeAcceptEncoding('*;q=0, identity;q=0.5')).toBe('identity');
    expect(normalizeAcceptEncoding('*;q=0, gzip')).toBe('gzip');
  });

  it('falls back to identity when nothing we have is acceptable', () => {
    expect(normalizeAcceptEncoding('identity;q=0')).toBe('identity');
    expect(normalizeAcceptEncoding('zstd')).toBe('identity');
  });

  it('reads x-gzip as gzip, names case-insensitively and tolerates whitespace', () => {
    expect(normalizeAcceptEncoding('x-gzip')).toBe('gzip');
    expect(normalizeAcceptEncoding(' GZIP ; Q=1.0 , Br ; q = 0.9 ')).toBe('gzip');
  });

  it('ignores members with an invalid qvalue', () => {
    expect(normalizeAcceptEncoding('br;q=2, gzip')).toBe('gzip');
    expect(normalizeAcceptEncoding('br;q=abc')).toBe('identity');
    expect(normalizeAcceptEncoding('br;q=0.0001, gzip;q=0.5')).toBe('gzip');
  });

  it('uses the first occurrence of a repeated coding', () => {
    expect(normalizeAcceptEncoding('br;q=0, br, gzip;q=0.5')).toBe('gzip');
  });

  it('reads repeated header lines', () => {
    expect(normalizeAcceptEncoding(['gzip', 'br'])).toBe('br');
  });
});

describe('variantSuffix', () => {
  it('is empty without Vary names', () => {
    expect(variantSuffix([], { 'accept-language': 'en' })).toBe('');
  });

  it('names each header with its value, separated by a character that cannot occur in values', () => {
    expect(variantSuffix(['accept-language', 'origin'], { 'accept-language': 'en', origin: 'https://a.example' })).toBe(
      `accept-language=en${VARY_FIELD_SEPARATOR}origin=https://a.example`,
    );
    expect(VARY_FIELD_SEPARATOR).not.toBe(VARIANT_SEPARATOR);
  });

  it('distinguishes an absent header from an empty one', () => {
    const absent = variantSuffix(['x-a'], {});
    const empty = variantSuffix(['x-a'], { 'x-a': '' });
    expect(absent).not.toBe(empty);
  });

  it('trims values and joins repeated lines', () => {
    expect(variantSuffix(['x-a'], { 'x-a': '  v  ' })).toBe(variantSuffix(['x-a'], { 'x-a': 'v' }));
    expect(variantSuffix(['x-a'], { 'x-a': [' a', 'b '] })).toBe(variantSuffix(['x-a'], { 'x-a': 'a, b' }));
  });

  it('does not lower-case values', () => {
    expect(variantSuffix(['x-a'], { 'x-a': 'Value' })).not.toBe(variantSuffix(['x-a'], { 'x-a': 'value' }));
  });

  it('replaces Accept-Encoding by its normalized coding', () => {
    const br = variantSuffix(['accept-encoding'], { 'accept-encoding': 'gzip, deflate, br' });
    expect(br).toBe('accept-encoding=br');
    expect(variantSuffix(['accept-encoding'], { 'accept-encoding': 'br;q=1, gzip;q=0.5' })).toBe(br);
    expect(variantSuffix(['accept-encoding'], {})).toBe('accept-encoding=identity');
  });

  it('gives different suffixes for different values of any varied header', () => {
    const a = variantSuffix(['accept-encoding', 'accept-language'], { 'accept-encoding': 'gzip', 'accept-language': 'en' });
    const b = variantSuffix(['accept-encoding', 'accept-language'], { 'accept-encoding': 'gzip', 'accept-language': 'fr' });
    expect(a).not.toBe(b);
  });
});
