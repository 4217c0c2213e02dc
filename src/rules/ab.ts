// Stable A/B buckets: the same key (client address, cookie or header value) always lands in the same
// bucket of an experiment, and different experiments split independently (the name is hashed too).
// FNV-1a is enough: the point is an even, repeatable spread, not secrecy.

/** 32-bit FNV-1a over the UTF-16 code units of s. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A position from 0 to 9999 (hundredths of a percent) for this experiment and key. */
export function abPosition(experiment: string, key: string): number {
  // One more mixing round (murmur3's finaliser): FNV alone spreads short, similar keys poorly
  // in its low digits, and addresses like 10.0.0.1 … 10.0.0.255 are exactly that.
  let h = fnv1a(`${experiment}\u0000${key}`);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) % 10_000;
}

/** Upper bounds (exclusive, in hundredths of a percent) of each bucket, in order. */
export function bucketBounds(percents: readonly number[]): number[] {
  let acc = 0;
  return percents.map((p) => (acc += Math.round(p * 100)));
}

/** Index of the bucket a position falls in. */
export function bucketAt(bounds: readonly number[], position: number): number {
  for (let i = 0; i < bounds.length; i++) if (position < bounds[i]!) return i;
  return bounds.length - 1;
}
