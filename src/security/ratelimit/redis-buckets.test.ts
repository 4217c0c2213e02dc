// The Lua token bucket on a real Redis (the shared one, under a unique prefix), and what the
// connection reports when a private Redis goes away and comes back.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { startRedisServer } from '../../../test/support/redis-server.ts';
import { quietLog } from '../gates/testing.ts';
import { RedisBuckets } from './redis-buckets.ts';

const SHARED = 'redis://127.0.0.1:6379';
const prefix = `outpost-test-rl-${randomBytes(4).toString('hex')}`;
const open: RedisBuckets[] = [];

function connect(url = SHARED, onState: (up: boolean) => void = () => undefined): RedisBuckets {
  const b = new RedisBuckets({ kind: 'redis', urls: [url], timeoutMs: 500, log: quietLog, onState });
  open.push(b);
  return b;
}

afterAll(async () => {
  await Promise.all(open.map((b) => b.close()));
  const raw = new Redis(SHARED);
  const keys = await raw.keys(`${prefix}:*`);
  if (keys.length) await raw.del(...keys);
  raw.disconnect();
});

describe('token buckets in Redis', () => {
  it('grants up to what the bucket holds, shared by every connection, and takes back unused tokens', async () => {
    const [a, b] = [connect(), connect()];
    expect(await a.ready(2000)).toBe(true);
    expect(await b.ready(2000)).toBe(true);
    const key = RedisBuckets.keyOf(prefix, 'api', '203.0.113.9');
    expect(key).toMatch(new RegExp(`^${prefix}:api:[A-Za-z0-9_-]{22}$`));
    const bucket = { ratePerMs: 10 / 1000, burst: 10 };
    expect(await a.take(key, bucket, 6)).toEqual({ granted: 6, remaining: 4, waitMs: 0 });
    const g = await b.take(key, bucket, 6);
    expect(g.granted).toBe(4);
    expect(g.waitMs).toBeGreaterThan(50);
    expect(g.waitMs).toBeLessThanOrEqual(100);
    b.giveBack(key, bucket, 3);
    await new Promise((r) => setTimeout(r, 50));
    expect((await a.take(key, bucket, 10)).granted).toBeGreaterThanOrEqual(3);
    // The key expires once the bucket would be full again.
    const raw = new Redis(SHARED);
    const ttl = await raw.pttl(key);
    raw.disconnect();
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(1000 + 1000);
  });

  it('reports Redis going away at once and coming back within about a second', async () => {
    const server = await startRedisServer();
    const states: boolean[] = [];
    const b = connect(server.url, (up) => states.push(up));
    try {
      expect(await b.ready(2000)).toBe(true);
      expect(states).toEqual([true]);
      await server.stop();
      for (let i = 0; i < 50 && b.up; i++) await new Promise((r) => setTimeout(r, 20));
      expect(b.up).toBe(false);
      await expect(b.take('k', { ratePerMs: 1, burst: 1 }, 1)).rejects.toThrow();
      await server.start();
      const t0 = Date.now();
      expect(await b.ready(3000)).toBe(true);
      expect(Date.now() - t0).toBeLessThan(2500);
      expect(states).toEqual([true, false, true]);
    } finally {
      await server.destroy();
    }
  });
});
