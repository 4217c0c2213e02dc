// Workers' leases against one node authority, with a clock the test moves: what the node as a
// whole lets through, what an allowed request costs, and what idle leases give back.
import { describe, expect, it } from 'vitest';
import { quietLog } from '../gates/testing.ts';
import { RateLimitAuthority } from './authority.ts';
import type { RateLimitChannel } from './channel.ts';
import { LEASE_TTL_MS, LeaseTable } from './leases.ts';
import { parseRateLimit, policyOf, type RateLimitOptions } from './policy.ts';

function setup(options: RateLimitOptions, workers = 2) {
  let now = 10_000;
  const clock = () => now;
  const policy = policyOf(parseRateLimit(options), 0, 'test');
  const authority = new RateLimitAuthority([policy], { log: quietLog, clock });
  const inner = authority.channel();
  const calls = { lease: 0, returned: 0 };
  const channel: RateLimitChannel = {
    ...inner,
    lease: (i, k, w) => {
      calls.lease++;
      return inner.lease(i, k, w);
    },
    giveBack: (i, r) => {
      for (const [, n] of r) calls.returned += n;
      inner.giveBack(i, r);
    },
  };
  const tables = Array.from({ length: workers }, () => new LeaseTable({ channel, index: 0, maxLease: policy.maxLease, maxKeys: 1000, log: quietLog, clock, autoSweep: false }));
  return { tables, policy, calls, advance: (ms: number) => (now += ms) };
}

async function allowed(r: boolean | Promise<boolean>): Promise<number> {
  return (await r) ? 1 : 0;
}

describe('leases across the workers of a node', () => {
  it('lets the node as a whole through at the limit, whatever the split between workers', async () => {
    // 200/s, burst 50: over 5 s the node may let 50 + 1000 through.
    const { tables, advance } = setup({ rate: '200/s', burst: 50 });
    let total = 0;
    for (let step = 0; step < 500; step++) {
      // 10 requests per 10 ms (1000/s offered), unevenly split: 7 to one worker, 3 to the other.
      const batch: Array<boolean | Promise<boolean>> = [];
      for (let i = 0; i < 10; i++) batch.push(tables[i < 7 ? 0 : 1]!.take('client'));
      for (const r of batch) total += await allowed(r);
      advance(10);
      if (step % 10 === 0) for (const t of tables) t.sweep();
    }
    const expected = 50 + 200 * 5;
    expect(total).toBeLessThanOrEqual(expected);
    expect(total).toBeGreaterThanOrEqual(expected * 0.95);
  });

  it('serves allowed requests from the lease without asking the node, once demand is known', async () => {
    const { tables, calls, advance } = setup({ rate: '100000/s' });
    const t = tables[0]!;
    expect(await t.take('k')).toBe(true);
    advance(1);
    expect(await t.take('k')).toBe(true);
    const asked = calls.lease;
    let sync = 0;
    for (let i = 0; i < 1000; i++) {
      const r = t.take('k');
      if (r === true) sync++;
      else expect(await r).toBe(true);
    }
    // Demand of ~1 request per ms asks for 100 ms of it; a few round trips serve 1000 requests.
    expect(sync).toBeGreaterThan(900);
    expect(calls.lease - asked).toBeLessThan(15);
  });

  it('refuses without asking again until the next token is due, and says when that is', async () => {
    const { tables, calls, advance } = setup({ rate: '2/s', burst: 1 });
    const t = tables[0]!;
    expect(await t.take('k')).toBe(true);
    expect(await t.take('k')).toBe(false);
    const asked = calls.lease;
    expect(t.take('k')).toBe(false);
    expect(t.retryAfterMs('k')).toBeGreaterThan(400);
    expect(calls.lease).toBe(asked);
    advance(500);
    expect(await t.take('k')).toBe(true);
  });

  it('gives back what an idle worker holds, so the other worker is not starved', async () => {
    const { tables, calls, advance } = setup({ rate: '1000/s', burst: 1000 });
    const [a, b] = [tables[0]!, tables[1]!];
    // a sees demand and takes a lease of 20 (2 % of the limit), spends 1 and goes quiet.
    expect(await a.take('k')).toBe(true);
    advance(1);
    expect(await a.take('k')).toBe(true);
    expect(a.remaining('k')).toBeGreaterThanOrEqual(19);
    let gotB = 0;
    for (let i = 0; i < 1100; i++) gotB += await allowed(b.take('k'));
    expect(gotB).toBe(1000 + 1 - 21); // the burst, 1 ms of refill, less what a took
    // 200 ms later a's lease has expired: its 19 go back to the bucket, which refilled 200.
    advance(LEASE_TTL_MS);
    a.sweep();
    expect(calls.returned).toBe(19);
    gotB = 0;
    for (let i = 0; i < 400; i++) gotB += await allowed(b.take('k'));
    expect(gotB).toBe(200 + 19);
  });

  it('returns a partly used lease when it expires and forgets idle keys', async () => {
    const { tables, calls, advance } = setup({ rate: '10000/s' });
    const t = tables[0]!;
    await t.take('k');
    advance(1);
    for (let i = 0; i < 5; i++) await t.take('k');
    const held = t.remaining('k');
    expect(held).toBeGreaterThan(0);
    advance(LEASE_TTL_MS + 1);
    t.sweep();
    expect(calls.returned).toBeGreaterThan(0);
    expect(t.size).toBe(0);
  });

  it('lets requests through when the node does not answer', async () => {
    const broken: RateLimitChannel = { lease: () => Promise.reject(new Error('gone')), giveBack: () => undefined, watchModes: () => undefined };
    const t = new LeaseTable({ channel: broken, index: 0, maxLease: 10, maxKeys: 10, log: quietLog, autoSweep: false });
    expect(await t.take('k')).toBe(true);
  });

  it('keeps at most maxKeys keys, dropping the oldest idle ones', async () => {
    const { tables } = setup({ rate: '10/s' }, 1);
    const t = tables[0]!;
    for (let i = 0; i < 3000; i++) await t.take(`ip-${i}`);
    expect(t.size).toBeLessThanOrEqual(1000);
  });
});
