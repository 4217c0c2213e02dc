import { describe, expect, it } from 'vitest';
import { acceptsCoding, negotiateEncoding, parseAcceptEncoding, type ContentCoding } from './compress-negotiate.ts';

const BOTH: readonly ContentCoding[] = ['br', 'gzip'];

describe('negotiateEncoding', () => {
  const table: ReadonlyArray<readonly [string | undefined, readonly ContentCoding[], string]> = [
    [undefined, BOTH, 'identity'],
    ['', BOTH, 'identity'],
    ['identity', BOTH, 'identity'],
    ['gzip', BOTH, 'gzip'],
    ['br', BOTH, 'br'],
    ['gzip, deflate, br', BOTH, 'br'],
    ['gzip, deflate, br, zstd', BOTH, 'br'],
    ['deflate', BOTH, 'identity'],
    ['zstd', BOTH, 'identity'],
    // qvalues decide; equal qvalues go to the server's order.
    ['br;q=0.5, gzip', BOTH, 'gzip'],
    ['gzip;q=0.8, br;q=0.9', BOTH, 'br'],
    ['gzip;q=1, br;q=1', BOTH, 'br'],
    ['gzip;q=1, br;q=1', ['gzip', 'br'], 'gzip'],
    ['br, gzip', ['gzip'], 'gzip'],
    ['br', ['gzip'], 'identity'],
    // q=0 refuses.
    ['br;q=0, gzip', BOTH, 'gzip'],
    ['br;q=0, gzip;q=0', BOTH, 'identity'],
    ['gzip;q=0', BOTH, 'identity'],
    // `*` covers what is not listed.
    ['*', BOTH, 'br'],
    ['*;q=0.5, gzip', BOTH, 'gzip'],
    ['*;q=0', BOTH, 'identity'],
    ['br;q=0, *', BOTH, 'gzip'],
    // identity named with a higher qvalue wins; at an equal one a coding does.
    ['identity, gzip;q=0.5', BOTH, 'identity'],
    ['gzip, identity', BOTH, 'gzip'],
    ['identity;q=0, gzip;q=0.1', BOTH, 'gzip'],
    // Spelling: case, spaces, x-gzip, several field lines, first mention wins.
    ['GZIP ; Q=0.5', BOTH, 'gzip'],
    ['x-gzip', BOTH, 'gzip'],
    ['gzip;q=0.5, gzip;q=0', BOTH, 'gzip'],
    ['br;q=0, br', BOTH, 'identity'],
    // Invalid qvalues drop the member rather than guess.
    ['br;q=2, gzip', BOTH, 'gzip'],
    ['br;q=0.5555, gzip;q=0.1', BOTH, 'gzip'],
    ['br;q=abc', BOTH, 'identity'],
    ['br;q=1.000, gzip', BOTH, 'br'],
    ['br;level=5', BOTH, 'br'],
  ];
  it.each(table)('Accept-Encoding %j with %j → %s', (header, offered, want) => {
    expect(negotiateEncoding(header, offered)).toBe(want);
  });

  it('reads several field lines as one list', () => {
    expect(negotiateEncoding(['gzip;q=0.5', 'br;q=0.6'], BOTH)).toBe('br');
  });
});

describe('acceptsCoding', () => {
  it('takes identity unless it is excluded, and nothing else from a client that sent no Accept-Encoding', () => {
    expect(acceptsCoding(undefined, 'identity')).toBe(true);
    expect(acceptsCoding(undefined, 'gzip')).toBe(false);
    expect(acceptsCoding('gzip', 'identity')).toBe(true);
    expect(acceptsCoding('identity;q=0', 'identity')).toBe(false);
    expect(acceptsCoding('*;q=0', 'identity')).toBe(false);
    expect(acceptsCoding('*;q=0, identity', 'identity')).toBe(true);
  });

  it('follows listed codings, then `*`', () => {
    expect(acceptsCoding('gzip', 'gzip')).toBe(true);
    expect(acceptsCoding('x-gzip', 'gzip')).toBe(true);
    expect(acceptsCoding('gzip;q=0', 'gzip')).toBe(false);
    expect(acceptsCoding('br', 'gzip')).toBe(false);
    expect(acceptsCoding('*', 'zstd')).toBe(true);
    expect(acceptsCoding('*, zstd;q=0', 'zstd')).toBe(false);
  });
});

describe('parseAcceptEncoding', () => {
  it('keeps the first qvalue of each coding and the one of `*`', () => {
    const a = parseAcceptEncoding('gzip;q=0.3, br, *;q=0.1, gzip;q=1');
    expect([...a.listed]).toEqual([
      ['gzip', 0.3],
      ['br', 1],
    ]);
    expect(a.star).toBe(0.1);
  });
});
