// Stale serving (stale-while-revalidate, stale-if-error), invalidation by unsafe methods, purge and
// prefetch: the origin is really stopped or switched to errors.
import { afterEach, describe, expect, it } from 'vitest';
import { get, originHits, sleep, startStack, type Stack } from '../helpers.ts';

let s: Stack | undefined;
afterEach(async () => {
  await s?.close();
  s = undefined;
});

const cc = (v: string) => encodeURIComponent(v);

async function postJson(url: string, body: unknown) {
  return get(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

describe('stale-while-revalidate', () => {
  it('serves stale while refreshing once in the background', async () => {
    s = await startStack();
    // A slow origin keeps the background refresh in flight while the five requests arrive.
    // max-age=2: the origin's Date has one-second resolution, so a 1 s lifetime can look spent at once.
    const p = `/swr?delay=300&cc=${cc('max-age=2, stale-while-revalidate=30')}`;
    await get(s.base + p);
    await sleep(2100);
    const results = await Promise.all(Array.from({ length: 5 }, () => get(s!.base + p)));
    for (const r of results) expect(r.header('x-cache-status')).toBe('UPDATING');
    await sleep(500);
    expect(originHits(s.origin, p)).toBe(2);
    expect((await get(s.base + p)).header('x-cache-status')).toBe('HIT');
  });
});

describe('stale-if-error', () => {
  it('serves stale when the origin is down, within the window', async () => {
    s = await startStack();
    const p = `/sie?cc=${cc('max-age=1, stale-if-error=60')}`;
    const a = await get(s.base + p);
    await s.origin.close();
    await sleep(1100);
    const b = await get(s.base + p);
    expect(b.status).toBe(200);
    expect(b.header('x-cache-status')).toBe('STALE');
    expect(b.text).toBe(a.text);
  });

  it('serves stale when the origin answers 5xx, within the window', async () => {
    s = await startStack();
    const p = `/sie5?cc=${cc('max-age=1, stale-if-error=60')}`;
    await get(s.base + p);
    s.origin.setMode({ mode: 'error', status: 503 });
    await sleep(1100);
    const b = await get(s.base + p);
    expect(b.status).toBe(200);
    expect(b.header('x-cache-status')).toBe('STALE');
  });

  it('serves stale when the origin times out', async () => {
    s = await startStack({ upstream: { pools: { default: { readTimeout: '300ms' } } } });
    const p = `/siet?cc=${cc('max-age=1, stale-if-error=60')}`;
    await get(s.base + p);
    s.origin.setMode({ mode: 'hang' });
    await sleep(1100);
    const b = await get(s.base + p);
    expect(b.header('x-cache-status')).toBe('STALE');
  });

  it('answers 502 once the stale-if-error window has passed', async () => {
    s = await startStack();
    const p = `/sie-out?cc=${cc('max-age=1, stale-if-error=1')}`;
    await get(s.base + p);
    await s.origin.close();
    await sleep(2200);
    const b = await get(s.base + p);
    expect(b.status).toBe(502);
    expect(b.header('x-outpost-error')).toBe('UPSTREAM_CONNECT');
  });

  it('never serves stale for must-revalidate responses', async () => {
    s = await startStack({ cache: { staleIfError: '60s' } });
    const p = `/mr?cc=${cc('max-age=1, must-revalidate')}`;
    await get(s.base + p);
    await s.origin.close();
    await sleep(1100);
    expect((await get(s.base + p)).status).toBe(502);
  });
});

describe('invalidation by unsafe methods', () => {
  it('drops the cached URL after a successful POST to it', async () => {
    s = await startStack();
    const p = '/inv?max_age=60';
    await get(s.base + p);
    expect((await get(s.base + p)).header('x-cache-status')).toBe('HIT');
    const post = await get(s.base + p, { method: 'POST', body: 'x=1' });
    expect(post.status).toBe(200);
    expect(post.header('x-cache-status')).toBe('BYPASS');
    expect((await get(s.base + p)).header('x-cache-status')).toBe('MISS');
  });

  it('drops the URL named in Location after an unsafe request', async () => {
    s = await startStack();
    await get(s.base + '/target');
    expect((await get(s.base + '/target')).header('x-cache-status')).toBe('HIT');
    await get(s.base + '/form?location=/target', { method: 'POST', body: 'x=1' });
    expect((await get(s.base + '/target')).header('x-cache-status')).toBe('MISS');
  });
});

describe('purge', () => {
  it('purges one URL through the admin API', async () => {
    s = await startStack();
    await get(s.base + '/p1?max_age=60');
    await get(s.base + '/p2?max_age=60');
    const r = await postJson(`${s.admin}/purge`, { urls: [`http://127.0.0.1:${s.node.edge.port}/p1?max_age=60`] });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text).purged).toBeGreaterThan(0);
    expect((await get(s.base + '/p1?max_age=60')).header('x-cache-status')).toBe('MISS');
    expect((await get(s.base + '/p2?max_age=60')).header('x-cache-status')).toBe('HIT');
  });

  it('purges by prefix', async () => {
    s = await startStack();
    const host = `http://127.0.0.1:${s.node.edge.port}`;
    await get(s.base + '/assets/a.js');
    await get(s.base + '/assets/b.css');
    await get(s.base + '/other');
    await postJson(`${s.admin}/purge`, { prefixes: [`${host}/assets/`] });
    expect((await get(s.base + '/assets/a.js')).header('x-cache-status')).toBe('MISS');
    expect((await get(s.base + '/assets/b.css')).header('x-cache-status')).toBe('MISS');
    expect((await get(s.base + '/other')).header('x-cache-status')).toBe('HIT');
  });

  it('purges by several tags from Surrogate-Key and Cache-Tag', async () => {
    s = await startStack();
    await get(s.base + '/t1?tags=product-1,all');
    await get(s.base + '/t2?tags=product-2,all');
    await get(s.base + '/t3?tags=product-3');
    const r = await postJson(`${s.admin}/purge`, { tags: ['product-1', 'product-2'] });
    expect(JSON.parse(r.text).purged).toBeGreaterThanOrEqual(2);
    expect((await get(s.base + '/t1?tags=product-1,all')).header('x-cache-status')).toBe('MISS');
    expect((await get(s.base + '/t2?tags=product-2,all')).header('x-cache-status')).toBe('MISS');
    expect((await get(s.base + '/t3?tags=product-3')).header('x-cache-status')).toBe('HIT');
  });

  it('purges everything', async () => {
    s = await startStack();
    await get(s.base + '/e1');
    await get(s.base + '/e2');
    await postJson(`${s.admin}/purge`, { all: true });
    expect((await get(s.base + '/e1')).header('x-cache-status')).toBe('MISS');
    expect((await get(s.base + '/e2')).header('x-cache-status')).toBe('MISS');
  });

  it('soft purge marks stale, so stale-if-error still serves the object when the origin is down', async () => {
    s = await startStack();
    const p = `/soft?cc=${cc('max-age=600, stale-if-error=600')}&tags=news`;
    const a = await get(s.base + p);
    await postJson(`${s.admin}/purge`, { tags: ['news'], soft: true });
    await s.origin.close();
    const b = await get(s.base + p);
    expect(b.status).toBe(200);
    expect(b.header('x-cache-status')).toBe('STALE');
    expect(b.text).toBe(a.text);
  });

  it('soft purge makes the next request refetch when the origin is up', async () => {
    s = await startStack();
    const p = `/soft2?cc=${cc('max-age=600')}&tags=news`;
    await get(s.base + p);
    await postJson(`${s.admin}/purge`, { tags: ['news'], soft: true });
    expect((await get(s.base + p)).header('x-cache-status')).toBe('EXPIRED');
  });

  it('accepts the PURGE method from allowed addresses', async () => {
    s = await startStack();
    await get(s.base + '/pm?max_age=60');
    const r = await get(s.base + '/pm?max_age=60', { method: 'PURGE' });
    expect(r.status).toBe(200);
    expect((await get(s.base + '/pm?max_age=60')).header('x-cache-status')).toBe('MISS');
  });

  it('refuses the PURGE method from addresses outside purge.allowFrom', async () => {
    s = await startStack({ purge: { allowFrom: ['10.0.0.0/8'] } });
    await get(s.base + '/pm2');
    const r = await get(s.base + '/pm2', { method: 'PURGE' });
    expect(r.status).toBe(403);
    expect((await get(s.base + '/pm2')).header('x-cache-status')).toBe('HIT');
  });

  it('refuses a purge request that names nothing, with a clear message', async () => {
    s = await startStack();
    const r = await postJson(`${s.admin}/purge`, {});
    expect(r.status).toBe(400);
    expect(r.text).toContain('nothing to purge');
    const bad = await postJson(`${s.admin}/purge`, { urls: ['not a url'] });
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('urls');
  });
});

describe('prefetch', () => {
  it('loads URLs so that the first client request is a HIT', async () => {
    s = await startStack();
    const host = `http://127.0.0.1:${s.node.edge.port}`;
    const r = await postJson(`${s.admin}/prefetch`, { urls: [`${host}/pf1`, `${host}/pf2`] });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text).failed).toBe(0);
    expect((await get(s.base + '/pf1')).header('x-cache-status')).toBe('HIT');
    expect((await get(s.base + '/pf2')).header('x-cache-status')).toBe('HIT');
  });

  it('refreshes an object that is already cached', async () => {
    s = await startStack();
    const host = `http://127.0.0.1:${s.node.edge.port}`;
    await get(s.base + '/pf3');
    await postJson(`${s.admin}/prefetch`, { urls: [`${host}/pf3`] });
    expect(originHits(s.origin, '/pf3')).toBe(2);
  });
});
