// The node's token buckets and the parsing of rates, with a clock the test moves.
import { describe, expect, it } from 'vitest';
import { TokenBuckets } from './buckets.ts';
import { parseRate, policyOf, parseRateLimit, rateLimitSettings } from './policy.ts';

function clock() {
  let now = 1000;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

describe('token buckets', () => {
  it('grants the burst at once, then tokens at the rate, never more than asked or held', () => {
    const c = clock();
    const b = new TokenBuckets({ ratePerMs: 10 / 1000, burst: 5 }, { maxKeys: 100, clock: c.now });
    expect(b.take('a', 3)).toEqual({ granted: 3, remaining: 2, waitMs: 0 });
    expect(b.take('a', 3)).toEqual({ granted: 2, remaining: 0, waitMs: 100 });
    expect(b.take('a', 1)).toEqual({ granted: 0, remaining: 0, waitMs: 100 });
    c.advance(250); // 2.5 tokens
    expect(b.take('a', 5)).toMatchObject({ granted: 2, remaining: 0, waitMs: 50 });
    c.advance(10_000);
    expect(b.take('a', 99)).toMatchObject({ granted: 5 });
    expect(b.take('b', 1)).toMatchObject({ granted: 1, remaining: 4 });
  });

  it('takes back unused tokens up to the burst', () => {
    const c = clock();
    const b = new TokenBuckets({ ratePerMs: 1 / 1000, burst: 4 }, { maxKeys: 100, clock: c.now });
    b.take('k', 4);
    b.giveBack('k', 3);
    expect(b.take('k', 10)).toMatchObject({ granted: 3 });
    b.giveBack('k', 100);
    expect(b.take('k', 10)).toMatchObject({ granted: 4 });
  });

  it('keeps at most maxKeys, and forgets a bucket once it would be full again', () => {
    const c = clock();
    const b = new TokenBuckets({ ratePerMs: 1 / 1000, burst: 2 }, { maxKeys: 100, clock: c.now });
    for (let i = 0; i < 1000; i++) b.take(`ip-${i}`, 1);
    expect(b.size).toBe(100);
    b.take('x', 2);
    c.advance(1999);
    expect(b.take('x', 0).remaining).toBe(1);
    c.advance(2001);
    expect(b.size).toBeLessThanOrEqual(100);
    expect(b.take('x', 5)).toMatchObject({ granted: 2 });
    // A full bucket is not stored at all.
    const before = b.size;
    c.advance(10_000);
    b.take('y', 0);
    expect(b.size).toBeLessThanOrEqual(before);
  });
});

describe('rates and policies', () => {
  it('reads rates as people write them', () => {
    expect(parseRate('100/s')).toEqual({ limit: 100, perMs: 1000 });
    expect(parseRate('30r/m')).toEqual({ limit: 30, perMs: 60_000 });
    expect(parseRate('6000/min')).toEqual({ limit: 6000, perMs: 60_000 });
    expect(parseRate('5/10s')).toEqual({ limit: 5, perMs: 10_000 });
    expect(parseRate('50/100ms')).toEqual({ limit: 50, perMs: 100 });
    expect(parseRate('1000/hour')).toEqual({ limit: 1000, perMs: 3_600_000 });
    expect(parseRate({ limit: 10, per: '2s' })).toEqual({ limit: 10, perMs: 2000 });
    for (const bad of ['100', '0/s', '10/fortnight', '-1/s', 'x/s', { limit: 1.5, per: '1s' }, { limit: 1 }]) expect(parseRate(bad), JSON.stringify(bad)).toBeUndefined();
  });

  it('derives the burst, the local fallback and a lease size of 2 % of the limit', () => {
    const p = policyOf(parseRateLimit({ rate: '1000/s', global: { url: 'redis://127.0.0.1:6379', localRate: '300/s' } }), 0, 'api');
    expect(p).toMatchObject({ burst: 1000, maxLease: 20, local: { burst: 300 } });
    expect(p.local.ratePerMs).toBeCloseTo(0.3);
    expect(policyOf(parseRateLimit({ rate: '10/s', burst: 3 }), 1, 'x')).toMatchObject({ burst: 3, maxLease: 1 });
    // A burst far above the rate: leases are 2 % of the burst, so a burst is not served one round trip at a time.
    expect(policyOf(parseRateLimit({ rate: '10/s', burst: 1000 }), 2, 'y')).toMatchObject({ maxLease: 20 });
    expect(policyOf(parseRateLimit({ rate: '1000/s', burst: 10 }), 3, 'z')).toMatchObject({ maxLease: 10 });
  });

  it('names the option that is wrong', () => {
    expect(() => parseRateLimit({ rate: '100 per second' })).toThrow(/rate: expected a rate such as "100\/s"/);
    expect(() => parseRateLimit({ rate: '1/s', key: 'header:' })).toThrow(/key(\.0)?: expected "ip", "path", "host", "header:<Name>"/);
    expect(() => parseRateLimit({ rate: '1/s', global: { url: 'http://x' } })).toThrow(/global\.url: expected a redis:\/\//);
    expect(() => parseRateLimit({ rate: '1/s', burst: 0 })).toThrow(/burst: expected a number >= 1, got 0/);
    expect(() => parseRateLimit({ rate: '1/s', limit: 5 })).toThrow(/unknown option "limit"/);
    expect(() => rateLimitSettings([{ rate: '1/s', name: 'a' }, { rate: '2/s', name: 'a' }])).toThrow(/security\.rateLimit\.1\.name: expected a name no other limit uses/);
  });
});
