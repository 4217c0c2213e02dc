import { describe, expect, it } from 'vitest';
import { parseDuration, parseSize } from './units.ts';

describe('units', () => {
  it('reads durations like nginx: bare numbers are seconds', () => {
    expect(parseDuration(10)).toBe(10_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration('1d')).toBe(86_400_000);
    expect(parseDuration('soon')).toBeUndefined();
    expect(parseDuration(-1)).toBeUndefined();
  });

  it('reads sizes: bare numbers are bytes, k/m/g are powers of 1024', () => {
    expect(parseSize(512)).toBe(512);
    expect(parseSize('16k')).toBe(16_384);
    expect(parseSize('256MiB')).toBe(256 * 1024 ** 2);
    expect(parseSize('1g')).toBe(1024 ** 3);
    expect(parseSize('12q')).toBeUndefined();
  });
});
