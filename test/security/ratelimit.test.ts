// Rate limits from the configuration, through a real in-process edge in front of the demo origin.
import { afterEach, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/log/logger.ts';
import { securityHooks } from '../../src/security/cascade.ts';
import { RateLimitAuthority } from '../../src/security/ratelimit/index.ts';
import { get, originHits, startStack, type Stack } from '../helpers.ts';

let s: Stack | undefined;
afterEach(async () => {
  await s?.close();
  s = undefined;
});

async function statuses(url: string, n: number, headers: Record<string, string> = {}): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await get(url, { headers })).status);
  return out;
}

describe('rate limiting at the edge', () => {
  it('answers 429 with Retry-After and the RateLimit fields once the burst is spent, before the cache and the origin', async () => {
    // 3 at once, then one every 20 s: nothing refills during the test.
    s = await startStack({ security: { rateLimit: { rate: '3/min' } } });
    expect(await statuses(`${s.base}/rl?max_age=0`, 3)).toEqual([200, 200, 200]);
    const refused = await get(`${s.base}/rl?max_age=0`);
    expect(refused.status).toBe(429);
    expect(Number(refused.header('retry-after'))).toBeGreaterThanOrEqual(15);
    expect(Number(refused.header('retry-after'))).toBeLessThanOrEqual(20);
    expect(refused.header('ratelimit-policy')).toBe('"default";q=3;w=60');
    expect(refused.header('ratelimit')).toBe(`"default";r=0;t=${refused.header('retry-after')}`);
    expect(refused.header('x-outpost-error')).toBe('RATE_LIMITED');
    expect(refused.header('cache-control')).toBe('no-store');
    expect(refused.text).toMatch(/^429 Too Many Requests: rate limit "default" exceeded/);
    expect(originHits(s.origin, '/rl?max_age=0')).toBe(3);
    const metrics = (await get(`${s.admin}/metrics`)).text;
    expect(metrics).toMatch(/outpost_ratelimit_refused_total\{limit="default"\} 1/);
    expect(metrics).toMatch(/outpost_ratelimit_mode\{limit="default",mode="local"\} 1/);
  });

  it('keys by a header: each API key has its own bucket, requests without one count by client address', async () => {
    s = await startStack({ security: { rateLimit: { rate: '2/min', key: 'header:X-Api-Key' } } });
    const url = `${s.base}/k`;
    expect(await statuses(url, 3, { 'x-api-key': 'alpha' })).toEqual([200, 200, 429]);
    expect(await statuses(url, 3, { 'x-api-key': 'beta' })).toEqual([200, 200, 429]);
    expect(await statuses(url, 3)).toEqual([200, 200, 429]);
    // A client that names its address as the key does not share the address's bucket.
    expect(await statuses(url, 1, { 'x-api-key': '127.0.0.1' })).toEqual([200]);
  });

  it('keys by a cookie and by path', async () => {
    s = await startStack({
      security: {
        rateLimit: [
          { name: 'session', rate: '2/min', key: 'cookie:sid', paths: ['/app/'] },
          { name: 'per-path', rate: '1/min', key: 'path', paths: ['/files/'] },
        ],
      },
    });
    expect(await statuses(`${s.base}/app/x`, 3, { cookie: 'theme=dark; sid=one' })).toEqual([200, 200, 429]);
    expect(await statuses(`${s.base}/app/x`, 1, { cookie: 'sid=two' })).toEqual([200]);
    expect(await statuses(`${s.base}/files/a`, 2)).toEqual([200, 429]);
    expect(await statuses(`${s.base}/files/b`, 2)).toEqual([200, 429]);
    // The path is normalised first: another spelling is the same bucket.
    expect(await statuses(`${s.base}/files//a`, 1)).toEqual([429]);
    const r = await get(`${s.base}/files/a`);
    expect(r.header('ratelimit-policy')).toBe('"per-path";q=1;w=60');
  });

  it('applies only within its scope', async () => {
    s = await startStack({ security: { rateLimit: { rate: '1/min', paths: ['/api/'] } } });
    expect(await statuses(`${s.base}/api/a`, 2)).toEqual([200, 429]);
    expect(await statuses(`${s.base}/static/1k`, 5)).toEqual([200, 200, 200, 200, 200]);
    expect(await statuses(`${s.base}/api/b`, 1)).toEqual([429]);
  });

  it('adds RateLimit fields to allowed responses with headers: always, one member per limit', async () => {
    s = await startStack({
      security: {
        rateLimit: [
          { name: 'burst', rate: '5/s', headers: 'always' },
          { name: 'hourly', rate: '100/h', headers: 'always' },
        ],
      },
    });
    const a = await get(`${s.base}/h`);
    expect(a.status).toBe(200);
    expect(a.header('ratelimit-policy')).toBe('"burst";q=5;w=1, "hourly";q=100;w=3600');
    expect(a.header('ratelimit')).toMatch(/^"burst";r=4;t=1, "hourly";r=99;t=\d+$/);
    const b = await get(`${s.base}/h`);
    expect(b.header('ratelimit')).toMatch(/^"burst";r=[0-3];t=1, "hourly";r=9[0-8];t=\d+$/);
  });

  it('names the setting when a limit is misconfigured', async () => {
    const bad = resolveConfig({ security: { rateLimit: [{ rate: '10/s' }, { rate: 'lots' }] } });
    expect(() => securityHooks(bad.security, createLogger('silent'))).toThrow(/security\.rateLimit\.1: .*rate: expected a rate such as "100\/s"/s);
    const noRedis = resolveConfig({ security: { rateLimit: { rate: '10/s', global: true } } });
    await expect(RateLimitAuthority.start(noRedis, createLogger('silent'))).rejects.toThrow(/security\.rateLimit\.global\.url: expected a redis:\/\/ URL \(compute\.store\.kind is "embedded"/);
  });
});
