// Edge compression end to end: negotiation, one compression per object and coding, variants
// stored separately, Range / conditional / HEAD on variants, pre-compressed origins, purges.
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EdgeHooks } from '../../src/edge/phases.ts';
import { get, originHits, sleep, startStack, type Got, type Stack } from '../helpers.ts';

// A rule engine stand-in: ?compress=off / ?compress=on set ctx.compress, as a rule action does.
const ruleHook: EdgeHooks = {
  name: 'compress-rule',
  access(ctx) {
    if (/(?:^|&)compress=off(?:&|$)/.test(ctx.query)) ctx.compress = false;
    if (/(?:^|&)compress=on(?:&|$)/.test(ctx.query)) ctx.compress = true;
  },
};

let s: Stack;
beforeAll(async () => {
  s = await startStack({}, { hooks: [ruleHook] });
});
afterAll(() => s.close());

let n = 0;
const uniq = (path: string, extra = '') => `${path}?n=${++n}-${Date.now()}${extra ? `&${extra}` : ''}`;
const BR = { 'accept-encoding': 'gzip, deflate, br' };
const GZIP = { 'accept-encoding': 'gzip' };

async function compressions(): Promise<{ br: number; gzip: number }> {
  const v = (await s.node.edge.metrics.compressions.get()).values;
  const of = (e: string) => v.find((x) => x.labels.encoding === e)?.value ?? 0;
  return { br: of('br'), gzip: of('gzip') };
}

function decoded(r: Got): Buffer {
  const ce = r.header('content-encoding');
  if (ce === 'br') return brotliDecompressSync(r.body);
  if (ce === 'gzip') return gunzipSync(r.body);
  expect(ce).toBeUndefined();
  return r.body;
}

async function postJson(url: string, body: unknown) {
  return get(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

describe('compressed variants', () => {
  it('compresses each coding once however many clients ask, stores them apart, and serves identity to clients that did not ask', async () => {
    const p = uniq('/static/16k.txt');
    const plain = await get(s.origin.url + p);
    const before = await compressions();

    const first = await get(s.base + p, { headers: BR });
    expect(first.header('x-cache-status')).toBe('MISS');
    expect(first.header('content-encoding')).toBe('br');
    expect(decoded(first).equals(plain.body)).toBe(true);

    const brs = await Promise.all(Array.from({ length: 10 }, () => get(s.base + p, { headers: BR })));
    const gzips = await Promise.all(Array.from({ length: 10 }, () => get(s.base + p, { headers: GZIP })));
    const none = await Promise.all(Array.from({ length: 5 }, () => get(s.base + p)));

    for (const r of brs) {
      expect(r.header('x-cache-status')).toBe('HIT');
      expect(r.header('content-encoding')).toBe('br');
      expect(r.body.equals(first.body)).toBe(true);
      expect(Number(r.header('content-length'))).toBe(first.body.length);
      expect(r.header('vary')).toMatch(/accept-encoding/i);
      expect(r.header('etag')).toBe(plain.header('etag')!.replace(/"$/, '-br"'));
    }
    for (const r of gzips) {
      expect(r.header('x-cache-status')).toBe('HIT');
      expect(r.header('content-encoding')).toBe('gzip');
      expect(decoded(r).equals(plain.body)).toBe(true);
      expect(r.header('etag')).toBe(plain.header('etag')!.replace(/"$/, '-gzip"'));
    }
    for (const r of none) {
      expect(r.header('x-cache-status')).toBe('HIT');
      expect(r.header('content-encoding')).toBeUndefined();
      expect(r.body.equals(plain.body)).toBe(true);
      expect(r.header('content-length')).toBe('16384');
      expect(r.header('etag')).toBe(plain.header('etag'));
      expect(r.header('vary')).toMatch(/accept-encoding/i);
    }
    expect(first.body.length).toBeLessThan(16384 * 0.8);
    expect(await compressions()).toEqual({ br: before.br + 1, gzip: before.gzip + 1 });
    // The test's own request, and the edge's one fill.
    expect(originHits(s.origin, p)).toBe(2);
  });

  it('makes a missing variant once when many clients ask for it at the same moment', async () => {
    const p = uniq('/static/64k.json');
    await get(s.base + p);
    const before = await compressions();
    const rs = await Promise.all(Array.from({ length: 20 }, () => get(s.base + p, { headers: GZIP })));
    const bodies = new Set(rs.map((r) => r.body.toString('base64')));
    expect(bodies.size).toBe(1);
    for (const r of rs) expect(r.header('content-encoding')).toBe('gzip');
    expect(decoded(rs[0]!).length).toBe(65536);
    expect(await compressions()).toEqual({ br: before.br, gzip: before.gzip + 1 });
  });

  it('collapses a cold object: one origin request and one compression for many clients', async () => {
    const p = uniq('/static/32k.html', 'delay=100');
    const before = await compressions();
    const rs = await Promise.all(Array.from({ length: 10 }, () => get(s.base + p, { headers: BR })));
    for (const r of rs) {
      expect(r.header('content-encoding')).toBe('br');
      expect(decoded(r).length).toBe(32768);
    }
    expect(originHits(s.origin, p)).toBe(1);
    expect(await compressions()).toEqual({ br: before.br + 1, gzip: before.gzip });
  });

  it('never serves a variant made from an older copy of the object: a new body is compressed again', async () => {
    // An ETag the origin never matches: the refetch after expiry is a new 200, not a 304.
    const p = uniq('/static/16k.txt', `max_age=2&h=${encodeURIComponent('ETag:"never-matches"')}`);
    await get(s.base + p, { headers: BR });
    await sleep(2100);
    const refill = await get(s.base + p);
    expect(refill.header('x-cache-status')).toBe('EXPIRED');
    const before = await compressions();
    const r = await get(s.base + p, { headers: BR });
    expect(r.header('x-cache-status')).toBe('HIT');
    expect(r.header('content-encoding')).toBe('br');
    expect(await compressions()).toEqual({ br: before.br + 1, gzip: before.gzip });
  });

  it.skipIf(process.env.OUTPOST_TEST_DISK === '0')('serves a variant kept on disk without compressing again once the RAM tier forgot it', async () => {
    const p = uniq('/static/8k.css');
    const a = await get(s.base + p, { headers: BR });
    await s.node.edge.tiers[0]!.purge({ kind: 'all' }, false);
    const before = await compressions();
    const b = await get(s.base + p, { headers: BR });
    expect(b.header('x-cache-status')).toBe('HIT');
    expect(b.body.equals(a.body)).toBe(true);
    expect(await compressions()).toEqual(before);
  });
});

describe('negotiation', () => {
  const cases: ReadonlyArray<readonly [string | undefined, string | undefined]> = [
    [undefined, undefined],
    ['identity', undefined],
    ['deflate', undefined],
    ['gzip', 'gzip'],
    ['br', 'br'],
    ['gzip, br', 'br'],
    ['br;q=0.5, gzip', 'gzip'],
    ['br;q=0.9, gzip;q=0.8', 'br'],
    ['br;q=0, gzip;q=0', undefined],
    ['*', 'br'],
    ['*;q=0.5, br;q=0', 'gzip'],
    ['identity, gzip;q=0.5', undefined],
  ];
  it.each(cases)('Accept-Encoding %j gets %j', async (ae, want) => {
    const p = uniq('/static/4k.js');
    await get(s.base + p);
    const r = await get(s.base + p, { headers: ae === undefined ? {} : { 'accept-encoding': ae } });
    expect(r.header('content-encoding')).toBe(want);
    expect(decoded(r).length).toBe(4096);
  });
});

describe('what is never compressed', () => {
  it.each(['/static/16k.png', '/static/16k.jpg', '/static/16k.mp4', '/static/16k'])('%s', async (path) => {
    const p = uniq(path);
    const before = await compressions();
    for (let i = 0; i < 2; i++) {
      const r = await get(s.base + p, { headers: BR });
      expect(r.header('content-encoding')).toBeUndefined();
      expect(r.body.length).toBe(16384);
      expect(r.header('vary')).toBeUndefined();
    }
    expect(await compressions()).toEqual(before);
  });

  it('bodies below compression.minSize', async () => {
    const p = uniq('/static/1000.txt');
    await get(s.base + p, { headers: BR });
    const r = await get(s.base + p, { headers: BR });
    expect(r.header('x-cache-status')).toBe('HIT');
    expect(r.header('content-encoding')).toBeUndefined();
    expect(r.body.length).toBe(1000);
  });

  it('responses whose Cache-Control says no-transform', async () => {
    const p = uniq('/static/16k.txt', `cc=${encodeURIComponent('public, max-age=60, no-transform')}`);
    await get(s.base + p, { headers: BR });
    const r = await get(s.base + p, { headers: BR });
    expect(r.header('x-cache-status')).toBe('HIT');
    expect(r.header('content-encoding')).toBeUndefined();
  });

  it('for a request a rule switched compression off, while others still get it', async () => {
    const p = uniq('/static/16k.txt');
    const off = await get(`${s.base}${p}&compress=off`, { headers: BR });
    expect(off.header('content-encoding')).toBeUndefined();
    expect(off.body.length).toBe(16384);
    const on = await get(s.base + p, { headers: BR });
    expect(on.header('content-encoding')).toBe('br');
  });

  it('a type not listed, unless a rule switches compression on', async () => {
    const p = uniq('/static/16k', `h=${encodeURIComponent('Content-Type:text/x-custom')}`);
    const plain = await get(s.base + p, { headers: BR });
    expect(plain.header('content-encoding')).toBeUndefined();
    const ruled = await get(`${s.base}${p}&compress=on`, { headers: BR });
    expect(ruled.header('content-encoding')).toBe('br');
    expect(decoded(ruled).length).toBe(16384);
  });
});

describe('Range, conditional requests and HEAD on a variant', () => {
  it('ranges over the compressed bytes, with their length in Content-Range', async () => {
    const p = uniq('/static/256k.txt');
    const full = await get(s.base + p, { headers: BR });
    expect(full.header('content-encoding')).toBe('br');
    const size = full.body.length;
    const r = await get(s.base + p, { headers: { ...BR, range: 'bytes=10-99' } });
    expect(r.status).toBe(206);
    expect(r.header('content-encoding')).toBe('br');
    expect(r.header('content-range')).toBe(`bytes 10-99/${size}`);
    expect(r.header('content-length')).toBe('90');
    expect(r.body.equals(full.body.subarray(10, 100))).toBe(true);
    const tail = await get(s.base + p, { headers: { ...BR, range: `bytes=${size - 5}-` } });
    expect(tail.body.equals(full.body.subarray(size - 5))).toBe(true);
    const past = await get(s.base + p, { headers: { ...BR, range: `bytes=${size}-` } });
    expect(past.status).toBe(416);
    expect(past.header('content-range')).toBe(`bytes */${size}`);
    // The same range for a client without Accept-Encoding is a range of the identity bytes.
    const id = await get(s.base + p, { headers: { range: 'bytes=10-99' } });
    expect(id.header('content-range')).toBe('bytes 10-99/262144');
    expect(id.header('content-encoding')).toBeUndefined();
  });

  it('honours If-Range with the variant ETag, and ignores Range when it names the identity ETag', async () => {
    const p = uniq('/static/64k.txt');
    const full = await get(s.base + p, { headers: GZIP });
    const etag = full.header('etag')!;
    expect(etag).toMatch(/-gzip"$/);
    const ok = await get(s.base + p, { headers: { ...GZIP, range: 'bytes=0-9', 'if-range': etag } });
    expect(ok.status).toBe(206);
    const other = await get(s.base + p, { headers: { ...GZIP, range: 'bytes=0-9', 'if-range': etag.replace('-gzip"', '"') } });
    expect(other.status).toBe(200);
    expect(other.body.equals(full.body)).toBe(true);
  });

  it('answers If-None-Match with the variant ETag with 304, and with the identity ETag with the full variant', async () => {
    const p = uniq('/static/16k.txt');
    const full = await get(s.base + p, { headers: BR });
    const etag = full.header('etag')!;
    const nm = await get(s.base + p, { headers: { ...BR, 'if-none-match': etag } });
    expect(nm.status).toBe(304);
    expect(nm.header('etag')).toBe(etag);
    expect(nm.header('vary')).toMatch(/accept-encoding/i);
    const other = await get(s.base + p, { headers: { ...BR, 'if-none-match': etag.replace('-br"', '"') } });
    expect(other.status).toBe(200);
    expect(other.header('content-encoding')).toBe('br');
  });

  it('answers a conditional request on a miss against the variant it stores', async () => {
    const p = uniq('/static/16k.txt');
    const originEtag = (await get(s.origin.url + p)).header('etag')!;
    const r = await get(s.base + p, { headers: { ...BR, 'if-none-match': originEtag.replace(/"$/, '-br"') } });
    expect(r.status).toBe(304);
    const hit = await get(s.base + p, { headers: BR });
    expect(hit.header('x-cache-status')).toBe('HIT');
    expect(hit.header('content-encoding')).toBe('br');
  });

  it("gives HEAD the variant's headers", async () => {
    const p = uniq('/static/16k.txt');
    const full = await get(s.base + p, { headers: BR });
    const h = await get(s.base + p, { method: 'HEAD', headers: BR });
    expect(h.status).toBe(200);
    expect(h.body.length).toBe(0);
    expect(h.header('content-encoding')).toBe('br');
    expect(h.header('content-length')).toBe(String(full.body.length));
    const plain = await get(s.base + p, { method: 'HEAD' });
    expect(plain.header('content-encoding')).toBeUndefined();
    expect(plain.header('content-length')).toBe('16384');
  });
});

describe('pre-compressed origin responses', () => {
  it('pass through untouched to clients that accept their coding, and are decoded for the others', async () => {
    const p = uniq('/static/16k.txt', 'ce=gzip');
    const fromOrigin = await get(s.origin.url + p);
    const before = await compressions();
    const miss = await get(s.base + p, { headers: GZIP });
    const hit = await get(s.base + p, { headers: BR });
    expect(miss.header('content-encoding')).toBe('gzip');
    expect(miss.body.equals(fromOrigin.body)).toBe(true);
    expect(hit.header('x-cache-status')).toBe('HIT');
    expect(hit.header('content-encoding')).toBe('gzip');
    const gz = await get(s.base + p, { headers: GZIP });
    expect(gz.header('x-cache-status')).toBe('HIT');
    expect(gz.body.equals(fromOrigin.body)).toBe(true);
    expect(gz.header('vary')).toMatch(/accept-encoding/i);

    const plain = await get(s.base + p);
    expect(plain.header('x-cache-status')).toBe('HIT');
    expect(plain.header('content-encoding')).toBeUndefined();
    expect(plain.header('etag')).toBe(`W/${fromOrigin.header('etag')}`);
    expect(plain.body.equals(gunzipSync(fromOrigin.body))).toBe(true);
    const brOnly = await get(s.base + p, { headers: { 'accept-encoding': 'br' } });
    expect(brOnly.header('content-encoding')).toBeUndefined();
    expect(brOnly.body.length).toBe(16384);
    expect(await compressions()).toEqual(before);
  });

  it('are decoded on a miss too, for a client that did not ask for compression', async () => {
    const p = uniq('/static/16k.txt', 'ce=br');
    const r = await get(s.base + p);
    expect(r.header('x-cache-status')).toBe('MISS');
    expect(r.header('content-encoding')).toBeUndefined();
    expect(r.body.length).toBe(16384);
  });
});

describe('responses that are not stored', () => {
  it('are compressed on the fly for clients that ask, and only for them', async () => {
    const p = uniq('/static/16k.txt', 'cc=no-store');
    const before = await compressions();
    const br = await get(s.base + p, { headers: BR });
    expect(br.header('x-cache-status')).toBe('BYPASS');
    expect(br.header('content-encoding')).toBe('br');
    expect(br.header('content-length')).toBeUndefined();
    expect(decoded(br).length).toBe(16384);
    const plain = await get(s.base + p);
    expect(plain.header('content-encoding')).toBeUndefined();
    expect(plain.body.length).toBe(16384);
    expect(plain.header('vary')).toMatch(/accept-encoding/i);
    expect(await compressions()).toEqual({ br: before.br + 1, gzip: before.gzip });
  });
});

describe('purges reach the variants', () => {
  it('a URL purge removes every coding', async () => {
    const p = uniq('/static/16k.txt');
    await get(s.base + p, { headers: BR });
    await get(s.base + p, { headers: GZIP });
    const purge = await get(s.base + p, { method: 'PURGE' });
    // The object and two variants, in each tier.
    expect(JSON.parse(purge.text).purged).toBe(3 * s.node.edge.tiers.length);
    const before = await compressions();
    const br = await get(s.base + p, { headers: BR });
    expect(br.header('x-cache-status')).toBe('MISS');
    const gz = await get(s.base + p, { headers: GZIP });
    expect(gz.header('x-cache-status')).toBe('HIT');
    expect(await compressions()).toEqual({ br: before.br + 1, gzip: before.gzip + 1 });
  });

  it('a tag purge removes them', async () => {
    const tag = `ctag-${++n}`;
    const p = uniq('/static/16k.txt', `tags=${tag}`);
    await get(s.base + p, { headers: BR });
    const r = await postJson(`${s.admin}/purge`, { tags: [tag] });
    expect(JSON.parse(r.text).purged).toBe(2 * s.node.edge.tiers.length);
    expect((await get(s.base + p, { headers: BR })).header('x-cache-status')).toBe('MISS');
  });

  it('a prefix purge removes them', async () => {
    // A size no other test asks for, so that the prefix names this object only.
    const path = '/static/20001.txt';
    const p = uniq(path);
    await get(s.base + p, { headers: BR });
    const r = await postJson(`${s.admin}/purge`, { prefixes: [`http://127.0.0.1:${s.node.edge.port}${path}`] });
    expect(JSON.parse(r.text).purged).toBe(2 * s.node.edge.tiers.length);
    expect((await get(s.base + p, { headers: BR })).header('x-cache-status')).toBe('MISS');
  });

  it('a soft purge revalidates the object and keeps its variants (a 304 refreshes them; no new compression)', async () => {
    const tag = `soft-${++n}`;
    const p = uniq('/static/16k.txt', `tags=${tag}`);
    const a = await get(s.base + p, { headers: BR });
    await postJson(`${s.admin}/purge`, { tags: [tag], soft: true });
    const before = await compressions();
    const b = await get(s.base + p, { headers: BR });
    expect(b.header('x-cache-status')).toBe('REVALIDATED');
    expect(b.header('content-encoding')).toBe('br');
    expect(b.body.equals(a.body)).toBe(true);
    const c = await get(s.base + p, { headers: BR });
    expect(c.header('x-cache-status')).toBe('HIT');
    expect(c.body.equals(a.body)).toBe(true);
    expect(await compressions()).toEqual(before);
  });
});
