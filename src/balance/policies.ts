// The balancing policies. Each picks one member among those usable for this attempt: available
// (healthy) unless the balancer is in panic mode, and not already tried by this request.
//   rr        smooth weighted round robin (nginx's): weights respected, picks interleaved
//   leastconn fewest requests in flight relative to weight; ties rotate
//   chash     consistent hashing of a key on a ring with virtual nodes
//   bounded   consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam 2016, as in
//             HAProxy's hash-balance-factor): walk the ring from the key to the first member whose
//             load is below its share of c × (total + 1)
import { hash32 } from './hash.ts';
import type { Member } from './member.ts';
import { HashRing } from './ring.ts';

export const POLICIES = ['rr', 'leastconn', 'chash', 'bounded'] as const;
export type PolicyName = (typeof POLICIES)[number];

/** What one pick may use: members not tried yet, healthy ones unless `anyHealth` (panic mode). */
export interface Eligibility<T> {
  readonly exclude: ReadonlySet<Member<T>> | undefined;
  readonly anyHealth: boolean;
}

function usable<T>(m: Member<T>, e: Eligibility<T>): boolean {
  return (e.anyHealth || m.available) && (e.exclude === undefined || !e.exclude.has(m));
}

export interface Policy<T> {
  /** Members were added or removed (health changes need no rebuild). */
  rebuild(members: readonly Member<T>[]): void;
  pick(members: readonly Member<T>[], key: string, e: Eligibility<T>): Member<T> | undefined;
}

class RoundRobin<T> implements Policy<T> {
  #current = new Float64Array(0);

  rebuild(members: readonly Member<T>[]): void {
    this.#current = new Float64Array(members.length);
  }

  pick(members: readonly Member<T>[], _key: string, e: Eligibility<T>): Member<T> | undefined {
    const cur = this.#current;
    let total = 0;
    let best = -1;
    for (let i = 0; i < members.length; i++) {
      const m = members[i]!;
      if (!usable(m, e)) continue;
      cur[i]! += m.weight;
      total += m.weight;
      if (best < 0 || cur[i]! > cur[best]!) best = i;
    }
    if (best < 0) return undefined;
    cur[best]! -= total;
    return members[best];
  }
}

class LeastConnections<T> implements Policy<T> {
  #next = 0;

  rebuild(): void {
    this.#next = 0;
  }

  pick(members: readonly Member<T>[], _key: string, e: Eligibility<T>): Member<T> | undefined {
    const n = members.length;
    if (n === 0) return undefined;
    // Starting the scan at a rotating place spreads ties (idle members) evenly.
    const start = this.#next++ % n;
    let best: Member<T> | undefined;
    for (let k = 0; k < n; k++) {
      const m = members[(start + k) % n]!;
      if (!usable(m, e)) continue;
      // inFlight/weight compared without dividing.
      if (best === undefined || m.inFlight * best.weight < best.inFlight * m.weight) best = m;
    }
    return best;
  }
}

class ConsistentHash<T> implements Policy<T> {
  readonly ring: HashRing;
  readonly #loadFactor: number | undefined;

  /** `loadFactor` set: bounded loads with that c. */
  constructor(vnodes: number, loadFactor?: number) {
    this.ring = new HashRing(vnodes);
    this.#loadFactor = loadFactor;
  }

  rebuild(members: readonly Member<T>[]): void {
    this.ring.build(members);
  }

  pick(members: readonly Member<T>[], key: string, e: Eligibility<T>): Member<T> | undefined {
    const { points, owners } = this.ring;
    const n = points.length;
    if (n === 0) return undefined;
    const c = this.#loadFactor;
    let slots = 0;
    let totalWeight = 0;
    if (c !== undefined) {
      let load = 0;
      for (const m of members) {
        if (!usable(m, e)) continue;
        load += m.inFlight;
        totalWeight += m.weight;
      }
      if (totalWeight === 0) return undefined;
      slots = Math.ceil((load + 1) * c);
    }
    let fallback: Member<T> | undefined;
    let i = this.ring.first(hash32(key));
    for (let k = 0; k < n; k++) {
      const m = members[owners[i]!]!;
      if (usable(m, e)) {
        // A member's capacity is its weight's share of c × (load + 1), rounded up.
        if (c === undefined || m.inFlight < Math.ceil((slots * m.weight) / totalWeight)) return m;
        fallback ??= m;
      }
      if (++i === n) i = 0;
    }
    // Only when tried members were excluded can every usable one be full: take the key's own.
    return fallback;
  }
}

export function createPolicy<T>(name: PolicyName, opts: { vnodes?: number; loadFactor?: number } = {}): Policy<T> {
  switch (name) {
    case 'rr':
      return new RoundRobin<T>();
    case 'leastconn':
      return new LeastConnections<T>();
    case 'chash':
      return new ConsistentHash<T>(opts.vnodes ?? 160);
    case 'bounded':
      return new ConsistentHash<T>(opts.vnodes ?? 160, opts.loadFactor ?? 1.25);
  }
}
