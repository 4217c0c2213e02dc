// A consistent-hash ring with virtual nodes. Each member owns `vnodes × weight` points placed by
// hashing "name#i", so a member's points depend on its name alone: adding a member takes only the
// keys that now land on its points (about 1/N of them), and removing one moves only its own keys.
import { hash32 } from './hash.ts';

export class HashRing {
  /** Point hashes, ascending. */
  points: Uint32Array = new Uint32Array(0);
  /** Index (in the member list given to build) of each point's owner. */
  owners: Uint32Array = new Uint32Array(0);
  readonly vnodes: number;

  constructor(vnodes = 160) {
    this.vnodes = vnodes;
  }

  build(members: ReadonlyArray<{ readonly name: string; readonly weight: number }>): void {
    let total = 0;
    const counts = members.map((m) => {
      const n = Math.max(1, Math.round(this.vnodes * m.weight));
      total += n;
      return n;
    });
    // hash × 2^20 + owner packs both into one exactly representable double, so one numeric sort
    // of a typed array orders the points (ties between members fall to the lower index).
    const packed = new Float64Array(total);
    let k = 0;
    for (let i = 0; i < members.length; i++) {
      const name = members[i]!.name;
      for (let r = 0; r < counts[i]!; r++) packed[k++] = hash32(`${name}#${r}`) * 1048576 + i;
    }
    packed.sort();
    this.points = new Uint32Array(total);
    this.owners = new Uint32Array(total);
    for (let j = 0; j < total; j++) {
      const v = packed[j]!;
      const owner = v % 1048576;
      this.owners[j] = owner;
      this.points[j] = (v - owner) / 1048576;
    }
  }

  /** Index of the first point at or clockwise after `hash`. */
  first(hash: number): number {
    const p = this.points;
    let lo = 0;
    let hi = p.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (p[mid]! < hash) lo = mid + 1;
      else hi = mid;
    }
    return lo === p.length ? 0 : lo;
  }
}
