// Revalidation, conditional requests, Range, HEAD and Vary, end to end.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, originHits, sleep, startStack, type Stack } from '../helpers.ts';

let s: Stack;
beforeAll(async () => {
  s = await startStack();
});
afterAll(() => s.close());

let n = 0;
const fresh = (prefix = 'c') => `/${prefix}-${++n}-${Date.now()}`;

describe('revalidation with the origin', () => {
  it('revalidates an expired object with If-None-Match and answers REVALIDATED on 304', async () => {
    const p = `/static/2k?max_age=1&n=${++n}`;
    const a = await get(s.base + p);
    const before = s.origin.stats().conditional304;
    await sleep(1100);
    const b = await get(s.base + p);
    expect(b.header('x-cache-status')).toBe('REVALIDATED');
    expect(b.body.equals(a.body)).toBe(true);
    expect(s.origin.stats().conditional304).toBe(before + 1);
    const c = await get(s.base + p);
    expect(c.header('x-cache-status')).toBe('HIT');
  });

  it('revalidates with If-Modified-Since when the object has only Last-Modified', async () => {
    const lm = Math.floor(Date.now() / 1000) - 3600;
    const p = `${fresh()}?max_age=1&lm=${lm}`;
    await get(s.base + p);
    const before = s.origin.stats().conditional304;
    await sleep(1100);
    const b = await get(s.base + p);
    expect(b.header('x-cache-status')).toBe('REVALIDATED');
    expect(s.origin.stats().conditional304).toBe(before + 1);
  });
});

describe('conditional requests from clients', () => {
  it('answers If-None-Match with 304 from cache', async () => {
    const p = `/static/1k?n=${++n}`;
    const a = await get(s.base + p);
    const etag = a.header('etag')!;
    const b = await get(s.base + p, { headers: { 'if-none-match': etag } });
    expect(b.status).toBe(304);
    expect(b.body.length).toBe(0);
    expect(b.header('etag')).toBe(etag);
    expect(b.header('x-cache-status')).toBe('HIT');
  });

  it('answers If-Modified-Since with 304 from cache', async () => {
    const p = `/static/1k?n=${++n}`;
    const a = await get(s.base + p);
    const b = await get(s.base + p, { headers: { 'if-modified-since': a.header('last-modified')! } });
    expect(b.status).toBe(304);
  });

  it('answers a conditional request on a miss with 304 while storing the full object', async () => {
    const p = `/static/1k?n=${++n}`;
    const etag = (await get(`${s.origin.url}${p}`)).header('etag')!;
    const a = await get(s.base + p, { headers: { 'if-none-match': etag } });
    expect(a.status).toBe(304);
    const b = await get(s.base + p);
    expect(b.status).toBe(200);
    expect(b.body.length).toBe(1024);
    expect(b.header('x-cache-status')).toBe('HIT');
  });
});

describe('Range', () => {
  it('answers a byte range with 206 from a stored full object', async () => {
    const p = `/static/4k?n=${++n}`;
    const full = await get(s.base + p);
    const r = await get(s.base + p, { headers: { range: 'bytes=100-199' } });
    expect(r.status).toBe(206);
    expect(r.header('content-range')).toBe('bytes 100-199/4096');
    expect(r.body.equals(full.body.subarray(100, 200))).toBe(true);
    expect(r.header('x-cache-status')).toBe('HIT');
  });

  it('answers a suffix range', async () => {
    const p = `/static/4k?n=${++n}`;
    const full = await get(s.base + p);
    const r = await get(s.base + p, { headers: { range: 'bytes=-10' } });
    expect(r.status).toBe(206);
    expect(r.body.equals(full.body.subarray(4086))).toBe(true);
  });

  it('answers 416 for a range outside the object', async () => {
    const p = `/static/4k?n=${++n}`;
    await get(s.base + p);
    const r = await get(s.base + p, { headers: { range: 'bytes=5000-6000' } });
    expect(r.status).toBe(416);
    expect(r.header('content-range')).toBe('bytes */4096');
  });

  it('answers a range on a miss with 206 and stores the whole object', async () => {
    const p = `/static/8k?n=${++n}`;
    const r = await get(s.base + p, { headers: { range: 'bytes=0-99' } });
    expect(r.status).toBe(206);
    expect(r.body.length).toBe(100);
    const full = await get(s.base + p);
    expect(full.header('x-cache-status')).toBe('HIT');
    expect(full.body.length).toBe(8192);
    expect(full.body.subarray(0, 100).equals(r.body)).toBe(true);
  });
});

describe('HEAD', () => {
  it('answers HEAD from a stored GET', async () => {
    const p = `/static/3k?n=${++n}`;
    await get(s.base + p);
    const h = await get(s.base + p, { method: 'HEAD' });
    expect(h.status).toBe(200);
    expect(h.header('x-cache-status')).toBe('HIT');
    expect(h.header('content-length')).toBe('3072');
    expect(h.body.length).toBe(0);
  });

  it('fills the cache with a GET when HEAD misses', async () => {
    const p = `/static/3k?n=${++n}`;
    const h = await get(s.base + p, { method: 'HEAD' });
    expect(h.header('x-cache-status')).toBe('MISS');
    const g = await get(s.base + p);
    expect(g.header('x-cache-status')).toBe('HIT');
    expect(g.body.length).toBe(3072);
  });
});

describe('Vary', () => {
  it('keeps one variant per normalised Accept-Encoding', async () => {
    const p = `${fresh()}?max_age=60&vary=Accept-Encoding`;
    await get(s.base + p, { headers: { 'accept-encoding': 'gzip' } });
    const sameBucket = await get(s.base + p, { headers: { 'accept-encoding': 'gzip, deflate' } });
    expect(sameBucket.header('x-cache-status')).toBe('HIT');
    const other = await get(s.base + p, { headers: { 'accept-encoding': 'br, gzip' } });
    expect(other.header('x-cache-status')).toBe('MISS');
    const none = await get(s.base + p);
    expect(none.header('x-cache-status')).toBe('MISS');
    expect(originHits(s.origin, p)).toBe(3);
  });

  it('keeps variants per value of another Vary header', async () => {
    const p = `${fresh()}?max_age=60&vary=X-Device`;
    await get(s.base + p, { headers: { 'x-device': 'tv' } });
    expect((await get(s.base + p, { headers: { 'x-device': 'tv' } })).header('x-cache-status')).toBe('HIT');
    expect((await get(s.base + p, { headers: { 'x-device': 'phone' } })).header('x-cache-status')).toBe('MISS');
  });

  it('does not store responses with Vary: *', async () => {
    const p = `${fresh()}?max_age=60&vary=*`;
    await get(s.base + p);
    expect((await get(s.base + p)).header('x-cache-status')).toBe('BYPASS');
  });
});
