// A fast 32-bit string hash for the hash ring: FNV-1a over UTF-16 code units, then MurmurHash3's
// finalizer. FNV alone spreads similar strings ("edge-1#7", "edge-1#8") poorly around the ring; the
// finalizer mixes every input bit into every output bit. Not for anything an attacker must not
// predict: keys choose a member, nothing more.

/** Hashes a string to an unsigned 32-bit integer. */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
