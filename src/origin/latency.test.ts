import { describe, expect, it } from 'vitest';
import { OutpostError } from '../errors.ts';
import { SEED_LATENCY, parseLatency, pickLatencyMs, validateLatency } from './latency.ts';

/** A random() that returns the given values in turn, as fractions of 1. */
function sequence(...values: number[]): () => number {
  let i = 0;
  return () => values[i++] ?? 0;
}

describe('latency model', () => {
  it('reads off, seed and explicit bands', () => {
    expect(parseLatency('off')).toBe(false);
    expect(parseLatency('seed')).toBe(SEED_LATENCY);
    expect(parseLatency(' 50:1-20, 90:21-50,95:51-150,99:151-500 ')).toEqual(SEED_LATENCY);
    expect(SEED_LATENCY).toEqual([
      { p: 50, minMs: 1, maxMs: 20 },
      { p: 90, minMs: 21, maxMs: 50 },
      { p: 95, minMs: 51, maxMs: 150 },
      { p: 99, minMs: 151, maxMs: 500 },
    ]);
  });

  it.each([
    ['', 'empty'],
    ['fast', "'fast'"],
    ['50:1-20,40:21-30', 'increasing order'],
    ['101:1-2', 'integer 1-100'],
    ['0:1-2', 'integer 1-100'],
    ['50:20-1', 'MIN <= MAX'],
    ['50:1-20,,90:2-3', "got ''"],
    ['50:1-9999999', 'between 0 and'],
  ])('rejects %j with a CONFIG_INVALID error that names the problem', (spec, problem) => {
    let caught: unknown;
    try {
      parseLatency(spec);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(OutpostError);
    expect((caught as OutpostError).code).toBe('CONFIG_INVALID');
    expect((caught as OutpostError).message).toMatch(/^latency: /);
    expect((caught as OutpostError).message).toContain(problem);
  });

  it('rejects bands handed over in code that are not whole milliseconds', () => {
    expect(() => validateLatency([{ p: 50, minMs: 1.5, maxMs: 2 }])).toThrow(/whole milliseconds/);
    expect(() => validateLatency([])).toThrow(/at least one band/);
  });

  it('uses the first band whose percentile covers the roll', () => {
    // roll 1 → p50 band; second value picks inside [min, max]
    expect(pickLatencyMs(SEED_LATENCY, sequence(0, 0))).toBe(1);
    expect(pickLatencyMs(SEED_LATENCY, sequence(0.49, 0.999))).toBe(20);
    // roll 51 → p90 band
    expect(pickLatencyMs(SEED_LATENCY, sequence(0.5, 0))).toBe(21);
    // roll 94 → p95 band (94 <= 95)
    expect(pickLatencyMs(SEED_LATENCY, sequence(0.935, 0))).toBe(51);
    // roll 99 → p99 band, at its maximum
    expect(pickLatencyMs(SEED_LATENCY, sequence(0.985, 0.9999))).toBe(500);
  });

  it('puts rolls above the last percentile in the last band', () => {
    // roll 100 is above p99
    expect(pickLatencyMs(SEED_LATENCY, sequence(0.995, 0))).toBe(151);
  });

  it('follows the seed distribution over many requests', () => {
    const samples = Array.from({ length: 20_000 }, () => pickLatencyMs(SEED_LATENCY));
    const share = (lo: number, hi: number): number => samples.filter((ms) => ms >= lo && ms <= hi).length / samples.length;
    expect(share(1, 20)).toBeGreaterThan(0.46);
    expect(share(1, 20)).toBeLessThan(0.54);
    expect(share(21, 50)).toBeGreaterThan(0.36);
    expect(share(21, 50)).toBeLessThan(0.44);
    expect(share(151, 500)).toBeGreaterThan(0.035);
    expect(share(151, 500)).toBeLessThan(0.065);
    expect(Math.min(...samples)).toBeGreaterThanOrEqual(1);
    expect(Math.max(...samples)).toBeLessThanOrEqual(500);
  });
});
