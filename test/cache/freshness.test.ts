// RFC 9111 freshness and storability, end to end: a real origin, a real edge, real sockets.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, originHits, sleep, startStack, type Stack } from '../helpers.ts';

let s: Stack;
beforeAll(async () => {
  s = await startStack({ cache: { statusTtl: { '404': '1m' }, key: { ignoreParams: ['utm_*'] } } });
});
afterAll(() => s.close());

let n = 0;
/** A path no other test uses, so tests do not share cache entries. */
const fresh = (prefix = 'f') => `/${prefix}-${++n}-${Date.now()}`;

describe('cache freshness', () => {
  it('answers MISS then HIT for the same URL, asking the origin once', async () => {
    const p = fresh();
    const a = await get(s.base + p);
    const b = await get(s.base + p);
    expect(a.header('x-cache-status')).toBe('MISS');
    expect(b.header('x-cache-status')).toBe('HIT');
    expect(b.text).toBe(a.text);
    expect(originHits(s.origin, p)).toBe(1);
  });

  it('treats query parameters in any order as one cache key', async () => {
    const p = fresh();
    await get(`${s.base}${p}?a=1&b=2`);
    const b = await get(`${s.base}${p}?b=2&a=1`);
    expect(b.header('x-cache-status')).toBe('HIT');
  });

  it('ignores configured parameters such as utm_* in the cache key', async () => {
    const p = fresh();
    await get(`${s.base}${p}?utm_source=x`);
    const b = await get(`${s.base}${p}?utm_source=y&utm_medium=z`);
    expect(b.header('x-cache-status')).toBe('HIT');
  });

  it('uses s-maxage over max-age', async () => {
    const p = `${fresh()}?cc=${encodeURIComponent('public, max-age=0, s-maxage=60')}`;
    await get(s.base + p);
    expect((await get(s.base + p)).header('x-cache-status')).toBe('HIT');
  });

  it('reuses a response with Expires and no Cache-Control until it expires', async () => {
    const expires = new Date(Date.now() + 60_000).toUTCString();
    const p = `${fresh()}?cc=&h=${encodeURIComponent(`Expires:${expires}`)}`;
    await get(s.base + p);
    expect((await get(s.base + p)).header('x-cache-status')).toBe('HIT');
  });

  it('computes heuristic freshness from an old Last-Modified', async () => {
    const lm = Math.floor(Date.now() / 1000) - 10 * 86400;
    const p = `${fresh()}?cc=&lm=${lm}`;
    await get(s.base + p);
    expect((await get(s.base + p)).header('x-cache-status')).toBe('HIT');
  });

  it('does not reuse a response with neither freshness nor a validator', async () => {
    const p = `${fresh()}?cc=`;
    const a = await get(s.base + p);
    const b = await get(s.base + p);
    expect(a.header('x-cache-status')).toBe('BYPASS');
    expect(b.header('x-cache-status')).toBe('BYPASS');
    expect(originHits(s.origin, p)).toBe(2);
  });

  it('applies a configured per-status TTL (like proxy_cache_valid) to responses that state none', async () => {
    const p = `${fresh()}?cc=&status=404`;
    const a = await get(s.base + p);
    const b = await get(s.base + p);
    expect(a.status).toBe(404);
    expect(b.header('x-cache-status')).toBe('HIT');
    expect(originHits(s.origin, p)).toBe(1);
  });

  it('never stores private responses', async () => {
    const p = `${fresh()}?cc=${encodeURIComponent('private, max-age=60')}`;
    await get(s.base + p);
    const b = await get(s.base + p);
    expect(b.header('x-cache-status')).toBe('BYPASS');
    expect(b.header('cache-status')).toContain('private');
  });

  it('never stores no-store responses', async () => {
    const p = `${fresh()}?cc=no-store`;
    await get(s.base + p);
    expect((await get(s.base + p)).header('x-cache-status')).toBe('BYPASS');
    expect(originHits(s.origin, p)).toBe(2);
  });

  it('stores no-cache responses but revalidates them on every use', async () => {
    const p = `${fresh()}?cc=no-cache&etag=${encodeURIComponent('"v1"')}`;
    const a = await get(s.base + p);
    const b = await get(s.base + p);
    expect(a.header('x-cache-status')).toBe('MISS');
    expect(b.header('x-cache-status')).toBe('REVALIDATED');
    expect(b.text).toBe(a.text);
  });

  it('does not store responses to requests with Authorization unless the origin says public', async () => {
    const p1 = `${fresh()}?cc=${encodeURIComponent('max-age=60')}`;
    const auth = { authorization: 'Bearer secret' };
    await get(s.base + p1, { headers: auth });
    expect((await get(s.base + p1, { headers: auth })).header('x-cache-status')).toBe('BYPASS');
    const p2 = `${fresh()}?cc=${encodeURIComponent('public, max-age=60')}`;
    await get(s.base + p2, { headers: auth });
    expect((await get(s.base + p2, { headers: auth })).header('x-cache-status')).toBe('HIT');
  });

  it('does not store responses that set cookies', async () => {
    const p = `${fresh()}?max_age=60&set_cookie=1`;
    await get(s.base + p);
    const b = await get(s.base + p);
    expect(b.header('x-cache-status')).toBe('BYPASS');
    expect(b.header('set-cookie')).toContain('session=abc');
  });

  it('honours CDN-Cache-Control over Cache-Control and does not forward it to clients', async () => {
    const p = `${fresh()}?cc=no-store&h=${encodeURIComponent('CDN-Cache-Control:max-age=60')}`;
    const a = await get(s.base + p);
    const b = await get(s.base + p);
    expect(b.header('x-cache-status')).toBe('HIT');
    expect(a.header('cdn-cache-control')).toBeUndefined();
    expect(b.header('cdn-cache-control')).toBeUndefined();
    expect(b.header('cache-control')).toBe('no-store');
  });

  it('honours Surrogate-Control and does not forward it to clients', async () => {
    const p = `${fresh()}?cc=no-store&h=${encodeURIComponent('Surrogate-Control:max-age=60')}`;
    await get(s.base + p);
    const b = await get(s.base + p);
    expect(b.header('x-cache-status')).toBe('HIT');
    expect(b.header('surrogate-control')).toBeUndefined();
  });

  it('sends Age, growing with the time an object spent in cache', async () => {
    const p = `${fresh()}?max_age=60`;
    await get(s.base + p);
    await sleep(1100);
    const b = await get(s.base + p);
    expect(Number(b.header('age'))).toBeGreaterThanOrEqual(1);
  });

  it('states what happened in Cache-Status (RFC 9211)', async () => {
    const p = `${fresh()}?max_age=60`;
    const a = await get(s.base + p);
    const b = await get(s.base + p);
    expect(a.header('cache-status')).toMatch(/^outpost; fwd=uri-miss; fwd-status=200; stored/);
    expect(b.header('cache-status')).toMatch(/^outpost; hit; ttl=\d+/);
  });

  it('does not send purge tags (Surrogate-Key, Cache-Tag) to clients', async () => {
    const p = `${fresh()}?max_age=60&tags=a,b`;
    const a = await get(s.base + p);
    expect(a.header('surrogate-key')).toBeUndefined();
    expect(a.header('cache-tag')).toBeUndefined();
  });

  it('refetches an expired object and says EXPIRED', async () => {
    const p = `${fresh()}?max_age=1`;
    await get(s.base + p);
    await sleep(1100);
    const b = await get(s.base + p);
    expect(b.header('x-cache-status')).toBe('EXPIRED');
    expect(originHits(s.origin, p)).toBe(2);
  });
});
