// The four policies, driven through the Balancer as its users drive it.
import { afterEach, describe, expect, it } from 'vitest';
import { Balancer, type BalancerOptions, type Member, type MemberSpec } from './balancer.ts';
import { hash32 } from './hash.ts';

const open: Balancer<null>[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((b) => b.close()));
});

function balancer(policy: BalancerOptions<null>['policy'], specs: MemberSpec[], extra: Partial<BalancerOptions<null>> = {}): Balancer<null> {
  const b = new Balancer<null>({ policy, create: () => null, ...extra }, specs);
  open.push(b);
  return b;
}

const members = (n: number, weights: number[] = []): MemberSpec[] =>
  Array.from({ length: n }, (_, i) => ({ name: `edge-${i + 1}`, url: `http://127.0.0.1:${8001 + i}`, weight: weights[i] ?? 1 }));

const keys = Array.from({ length: 10_000 }, (_, i) => `/video/${i}/segment-${i % 97}.ts?session=${(i * 7919) % 10_007}`);

/** Picks one member per key (released at once: no load). */
function assign(b: Balancer<null>): Map<string, string> {
  const out = new Map<string, string>();
  for (const k of keys) {
    const m = b.acquire(k)!;
    b.release(m);
    out.set(k, m.name);
  }
  return out;
}

function countBy(values: Iterable<string>): Map<string, number> {
  const c = new Map<string, number>();
  for (const v of values) c.set(v, (c.get(v) ?? 0) + 1);
  return c;
}

describe('weighted round robin', () => {
  it('gives each member its weight share, interleaved rather than in runs', () => {
    const b = balancer('rr', members(3, [1, 2, 5]));
    const picks: string[] = [];
    for (let i = 0; i < 8000; i++) {
      const m = b.acquire()!;
      b.release(m);
      picks.push(m.name);
    }
    const c = countBy(picks);
    expect(c.get('edge-1')).toBe(1000);
    expect(c.get('edge-2')).toBe(2000);
    expect(c.get('edge-3')).toBe(5000);
    // Smooth: the heaviest member never gets more than its weight's worth in a row.
    let run = 0;
    let longest = 0;
    for (let i = 0; i < picks.length; i++) {
      run = picks[i] === picks[i - 1] ? run + 1 : 1;
      longest = Math.max(longest, run);
    }
    expect(longest).toBeLessThanOrEqual(3);
  });

  it('skips a member that is down and an excluded (already tried) one', () => {
    const b = balancer('rr', members(3));
    const [a, , c] = b.members.list() as Member<null>[];
    b.failure(a!, 'connect');
    b.failure(a!, 'connect');
    b.failure(a!, 'connect');
    expect(a!.available).toBe(false);
    const seen = new Set<string>();
    for (let i = 0; i < 100; i++) {
      const m = b.acquire('', new Set([c!]))!;
      b.release(m);
      seen.add(m.name);
    }
    expect([...seen]).toEqual(['edge-2']);
  });
});

describe('least connections', () => {
  it('picks the member with the fewest requests in flight', () => {
    const b = balancer('leastconn', members(3));
    const [a, bb, c] = b.members.list();
    a!.inFlight = 5;
    bb!.inFlight = 2;
    c!.inFlight = 7;
    expect(b.acquire()!.name).toBe('edge-2');
    expect(bb!.inFlight).toBe(3);
    // Loads 5 / 3 / 7: edge-2 still the least loaded.
    expect(b.acquire()!.name).toBe('edge-2');
    bb!.inFlight = 9;
    expect(b.acquire()!.name).toBe('edge-1');
  });

  it('weighs load by weight, and spreads ties evenly when idle', () => {
    const b = balancer('leastconn', members(2, [1, 3]));
    const [a, heavy] = b.members.list();
    a!.inFlight = 2;
    heavy!.inFlight = 5; // 5/3 < 2/1
    expect(b.acquire()!.name).toBe('edge-2');
    const idle = balancer('leastconn', members(4));
    const c = countBy(
      Array.from({ length: 400 }, () => {
        const m = idle.acquire()!;
        idle.release(m);
        return m.name;
      }),
    );
    expect([...c.values()]).toEqual([100, 100, 100, 100]);
  });

  it('always picks a least loaded member while requests come and go', () => {
    const b = balancer('leastconn', members(4));
    const live: Member<null>[] = [];
    let seed = 1;
    for (let i = 0; i < 5000; i++) {
      const least = Math.min(...b.members.list().map((m) => m.inFlight));
      const m = b.acquire()!;
      expect(m.inFlight - 1).toBe(least);
      live.push(m);
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      if (live.length > 40) b.release(live.splice(seed % live.length, 1)[0]!);
    }
  });
});

describe('consistent hashing', () => {
  it('sends one key to one member every time, and spreads keys by weight', () => {
    const b = balancer('chash', members(3, [1, 2, 3]));
    const first = assign(b);
    expect(assign(b)).toEqual(first);
    const c = countBy(first.values());
    // Weighted shares 1/6, 2/6, 3/6 of 10,000 keys, within 20 % of each.
    expect(c.get('edge-1')! / 10_000).toBeGreaterThan((1 / 6) * 0.8);
    expect(c.get('edge-1')! / 10_000).toBeLessThan((1 / 6) * 1.2);
    expect(c.get('edge-2')! / 10_000).toBeGreaterThan((2 / 6) * 0.8);
    expect(c.get('edge-2')! / 10_000).toBeLessThan((2 / 6) * 1.2);
    expect(c.get('edge-3')! / 10_000).toBeGreaterThan((3 / 6) * 0.8);
    expect(c.get('edge-3')! / 10_000).toBeLessThan((3 / 6) * 1.2);
  });

  it('remaps about 1/N of the keys when a member joins, all of them to the newcomer', () => {
    for (const n of [3, 5, 10]) {
      const b = balancer('chash', members(n));
      const before = assign(b);
      b.members.add({ name: 'newcomer', url: 'http://127.0.0.1:9999' });
      const after = assign(b);
      let moved = 0;
      for (const [k, owner] of before) {
        if (after.get(k) === owner) continue;
        moved++;
        expect(after.get(k)).toBe('newcomer');
      }
      const N = n + 1;
      expect(moved / keys.length, `${n} → ${N} members`).toBeGreaterThan(0.5 / N);
      expect(moved / keys.length, `${n} → ${N} members`).toBeLessThan(1.6 / N);
    }
  });

  it("moves only the removed member's keys when one leaves, and only a down member's keys while it is down", () => {
    const b = balancer('chash', members(5));
    const before = assign(b);
    b.members.remove('edge-3');
    const after = assign(b);
    for (const [k, owner] of before) {
      if (owner === 'edge-3') expect(after.get(k)).not.toBe('edge-3');
      else expect(after.get(k)).toBe(owner);
    }
    // Ejecting edge-2 moves its keys only; they return when it comes back.
    const m = b.members.get('edge-2')!;
    for (let i = 0; i < 3; i++) b.failure(m, 'connect');
    const down = assign(b);
    for (const [k, owner] of after) expect(down.get(k) === owner).toBe(owner !== 'edge-2');
  });

  it('picks a member by key in a few microseconds at most', () => {
    const b = balancer('chash', members(10));
    const t0 = performance.now();
    for (let r = 0; r < 20; r++) {
      for (const k of keys) b.release(b.acquire(k)!);
    }
    const perPick = ((performance.now() - t0) * 1000) / (20 * keys.length);
    expect(perPick).toBeLessThan(5);
    expect(hash32('a')).not.toBe(hash32('b'));
  });
});

describe('consistent hashing with bounded loads', () => {
  const c = 1.25;

  /** A skewed workload: half the requests ask for one hot key, the rest for 1,000 keys. */
  function* skewed(n: number): Generator<string> {
    let seed = 7;
    for (let i = 0; i < n; i++) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      yield seed % 2 === 0 ? '/hot/object' : `/cold/${seed % 1000}`;
    }
  }

  it('never loads a member above c × the average while requests only arrive', () => {
    const b = balancer('bounded', members(5), { loadFactor: c });
    let total = 0;
    for (const key of skewed(2000)) {
      b.acquire(key);
      total++;
      const loads = b.members.list().map((m) => m.inFlight);
      expect(Math.max(...loads)).toBeLessThanOrEqual(Math.ceil((c * total) / 5));
    }
    // Plain consistent hashing would have put the hot key's thousand requests on one member.
    const plain = balancer('chash', members(5));
    for (const key of skewed(2000)) plain.acquire(key);
    expect(Math.max(...plain.members.list().map((m) => m.inFlight))).toBeGreaterThan(1000);
  });

  it('keeps every assignment within c × average + 1 as requests come and go, and keeps keys home when loads are even', () => {
    const b = balancer('bounded', members(5), { loadFactor: c });
    const live: Member<null>[] = [];
    let seed = 3;
    for (const key of skewed(20_000)) {
      const m = b.acquire(key)!;
      live.push(m);
      const total = live.length;
      expect(m.inFlight).toBeLessThanOrEqual((c * total) / 5 + 1);
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      if (live.length > 50) b.release(live.splice(seed % live.length, 1)[0]!);
    }
    for (const m of live.splice(0)) b.release(m);
    // With nothing in flight every key goes to its own member, as with plain consistent hashing.
    const plain = balancer('chash', members(5));
    for (const k of keys.slice(0, 500)) {
      const m = b.acquire(k)!;
      b.release(m);
      const p = plain.acquire(k)!;
      plain.release(p);
      expect(m.name).toBe(p.name);
    }
  });

  it('respects weights in the bound', () => {
    const b = balancer('bounded', members(2, [1, 3]), { loadFactor: c });
    for (let i = 0; i < 400; i++) b.acquire('/hot');
    const [light, heavy] = b.members.list();
    expect(light!.inFlight).toBeLessThanOrEqual(Math.ceil(c * 400 * 0.25) + 1);
    expect(heavy!.inFlight).toBeLessThanOrEqual(Math.ceil(c * 400 * 0.75) + 1);
  });
});

describe('members at run time', () => {
  it('adds and removes members, refusing duplicates and bad specs with the field named', () => {
    const b = balancer('rr', members(2));
    expect(() => b.members.add({ name: 'edge-1', url: 'http://127.0.0.1:1' })).toThrow(/already exists/);
    expect(() => b.members.add({ name: 'x', url: 'ftp://h' })).toThrow(/member x url/);
    expect(() => b.members.add({ name: 'y', url: 'http://h:1', weight: 0 })).toThrow(/member y weight/);
    expect(() => b.members.add({ name: 'bad name', url: 'http://h:1' })).toThrow(/member name/);
    b.members.add({ name: 'edge-3', url: 'http://127.0.0.1:8003' });
    expect(b.members.list().map((m) => m.name)).toEqual(['edge-1', 'edge-2', 'edge-3']);
    expect(b.members.remove('edge-1')).toBe(true);
    expect(b.members.remove('edge-1')).toBe(false);
    const seen = new Set(Array.from({ length: 10 }, () => b.acquire()!.name));
    expect([...seen].sort()).toEqual(['edge-2', 'edge-3']);
  });

  it('returns no member when the set is empty or every member was tried', () => {
    const b = balancer('chash', []);
    expect(b.acquire('/x')).toBeUndefined();
    b.members.add({ name: 'only', url: 'http://127.0.0.1:1' });
    const m = b.acquire('/x')!;
    expect(b.acquire('/x', new Set([m]))).toBeUndefined();
  });
});
