// The simulated-work model of seed 004: a request falls into a percentile band, then sleeps a random
// time inside that band, so the origin's latency has a long tail like a real backend.

import { OutpostError } from '../errors.ts';

export interface LatencyBand {
  readonly p: number;
  readonly minMs: number;
  readonly maxMs: number;
}

export const SEED_LATENCY: readonly LatencyBand[] = Object.freeze([
  Object.freeze({ p: 50, minMs: 1, maxMs: 20 }),
  Object.freeze({ p: 90, minMs: 21, maxMs: 50 }),
  Object.freeze({ p: 95, minMs: 51, maxMs: 150 }),
  Object.freeze({ p: 99, minMs: 151, maxMs: 500 }),
]);

const MAX_LATENCY_MS = 600_000;
const BAND_SYNTAX = /^(\d+):(\d+)-(\d+)$/;

/** 'off' → false, 'seed' → SEED_LATENCY, or bands written as `P:MIN-MAX,P:MIN-MAX,…`. */
export function parseLatency(spec: string): readonly LatencyBand[] | false {
  const text = spec.trim();
  if (text === 'off') return false;
  if (text === 'seed') return SEED_LATENCY;
  if (text === '') throw invalid(`expected 'off', 'seed' or bands like '50:1-20,99:21-500', got an empty value`);
  const bands: LatencyBand[] = [];
  for (const part of text.split(',')) {
    const m = BAND_SYNTAX.exec(part.trim());
    if (m === null) throw invalid(`expected a band written P:MIN-MAX (like 90:21-50), got '${part.trim()}'`);
    bands.push({ p: Number(m[1]), minMs: Number(m[2]), maxMs: Number(m[3]) });
  }
  return validateLatency(bands);
}

/** Checks bands handed over in code the same way as parsed ones; returns a frozen copy. */
export function validateLatency(bands: readonly LatencyBand[]): readonly LatencyBand[] {
  if (bands.length === 0) throw invalid('expected at least one band');
  let previousP = 0;
  for (const band of bands) {
    const { p, minMs, maxMs } = band;
    const name = `band ${p}:${minMs}-${maxMs}`;
    if (!Number.isInteger(p) || p < 1 || p > 100) throw invalid(`${name}: expected the percentile to be an integer 1-100`);
    if (p <= previousP) throw invalid(`${name}: expected percentiles in increasing order, got ${p} after ${previousP}`);
    if (!Number.isInteger(minMs) || !Number.isInteger(maxMs) || minMs < 0 || maxMs > MAX_LATENCY_MS) {
      throw invalid(`${name}: expected whole milliseconds between 0 and ${MAX_LATENCY_MS}`);
    }
    if (minMs > maxMs) throw invalid(`${name}: expected MIN <= MAX`);
    previousP = p;
  }
  return Object.freeze(bands.map((b) => Object.freeze({ p: b.p, minMs: b.minMs, maxMs: b.maxMs })));
}

/**
 * r = random 1..100; the first band with r <= p wins, and r above the last p uses the last band
 * (seed 004 stops at p99, leaving the slowest percent in its slowest band).
 */
export function pickLatencyMs(bands: readonly LatencyBand[], random: () => number = Math.random): number {
  const r = 1 + Math.floor(random() * 100);
  let band = bands[bands.length - 1];
  for (const b of bands) {
    if (r <= b.p) {
      band = b;
      break;
    }
  }
  if (band === undefined) return 0;
  return band.minMs + Math.floor(random() * (band.maxMs - band.minMs + 1));
}

function invalid(problem: string): OutpostError {
  return new OutpostError('CONFIG_INVALID', `latency: ${problem}`);
}
