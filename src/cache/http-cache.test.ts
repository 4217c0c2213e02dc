// The hit path works out a stored entry's age once per entry, not once per request: these check
// that Age and freshness still follow the origin's Date and Age (RFC 9111 §4.2.3) on every hit.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, startStack, type Stack } from '../../test/helpers.ts';

let s: Stack;
beforeAll(async () => {
  s = await startStack();
});
afterAll(() => s.close());

let n = 0;
const path = (q: string) => `/hit-age-${++n}-${Date.now()}?${q}`;
const ttlOf = (cacheStatus: string | undefined) => Number(/ttl=(-?\d+)/.exec(cacheStatus ?? '')?.[1]);

describe('cache hits and the origin age', () => {
  it("adds the origin's Age to the Age of every hit and takes it off the remaining ttl", async () => {
    const p = path(`max_age=60&h=${encodeURIComponent('Age:50')}`);
    await get(s.base + p);
    for (let i = 0; i < 3; i++) {
      const r = await get(s.base + p);
      expect(r.header('x-cache-status')).toBe('HIT');
      expect(Number(r.header('age'))).toBeGreaterThanOrEqual(50);
      expect(Number(r.header('age'))).toBeLessThanOrEqual(52);
      expect(ttlOf(r.header('cache-status'))).toBeLessThanOrEqual(10);
    }
  });

  it('counts an old Date as age already spent', async () => {
    const date = new Date(Date.now() - 30_000).toUTCString();
    const p = path(`max_age=60&h=${encodeURIComponent(`Date:${date}`)}`);
    await get(s.base + p);
    const r = await get(s.base + p);
    expect(r.header('x-cache-status')).toBe('HIT');
    expect(Number(r.header('age'))).toBeGreaterThanOrEqual(29);
    expect(ttlOf(r.header('cache-status'))).toBeLessThanOrEqual(31);
  });

  it('never serves as a HIT a response whose origin Age is past its max-age', async () => {
    const p = path(`max_age=60&h=${encodeURIComponent('Age:70')}`);
    await get(s.base + p);
    const r = await get(s.base + p);
    expect(r.header('x-cache-status')).not.toBe('HIT');
  });
});
