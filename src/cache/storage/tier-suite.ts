// The StorageTier contract as one vitest suite, run against every tier (ram.test.ts, disk.test.ts).
import type { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { bodyOf } from './fixtures/bodies.ts';
import { VARIANT_SEPARATOR, type StorageTier, type StoredMeta } from './tier.ts';

export { bodyOf };

export type MakeTier = (opts: { maxBytes: number; maxObjectBytes: number }) => Promise<StorageTier>;

const SEP = VARIANT_SEPARATOR;
const DEFAULTS = { maxBytes: 1024 * 1024, maxObjectBytes: 64 * 1024 };

export function metaFor(key: string, size: number, extra: Partial<StoredMeta> = {}): StoredMeta {
  return {
    key,
    status: 200,
    headers: [
      ['content-type', 'text/plain'],
      ['x-dup', '1'],
      ['x-dup', '2'],
    ],
    requestTime: 1_700_000_000_000,
    responseTime: 1_700_000_000_050,
    ttlMs: 60_000,
    swrMs: 5_000,
    sieMs: 10_000,
    tags: [],
    vary: [],
    size,
    ...extra,
  };
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** Writes `body` in chunks and commits; resolves to commit's answer. */
export async function put(tier: StorageTier, key: string, body: Buffer, extra: Partial<StoredMeta> = {}): Promise<boolean> {
  const w = tier.openWrite(key, body.length);
  if (w === undefined) throw new Error(`openWrite(${JSON.stringify(key)}) refused`);
  for (let i = 0; i < body.length; i += 7000) await w.write(body.subarray(i, i + 7000));
  return w.commit(metaFor(key, body.length, extra));
}

/** Tiers that evict in the background (disk) expose maintain(); run it so the bound holds now. */
async function settle(tier: StorageTier): Promise<void> {
  const maintain = (tier as { maintain?: () => Promise<unknown> }).maintain;
  if (typeof maintain === 'function') await maintain.call(tier);
}

export function describeStorageTier(name: string, makeTier: MakeTier): void {
  describe(`${name} tier: StorageTier contract`, () => {
    const opened: StorageTier[] = [];
    const open = async (opts: { maxBytes: number; maxObjectBytes: number } = DEFAULTS): Promise<StorageTier> => {
      const tier = await makeTier(opts);
      opened.push(tier);
      return tier;
    };
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((t) => t.close()));
    });

    it('returns the committed meta and body, whole and by byte range', async () => {
      const tier = await open();
      const body = bodyOf(20_000, 1);
      const meta = metaFor('https://h/a', body.length, { tags: ['t1', 't2'], vary: ['accept-encoding'] });
      const w = tier.openWrite('https://h/a', body.length)!;
      for (let i = 0; i < body.length; i += 3000) await w.write(body.subarray(i, i + 3000));
      expect(await w.commit(meta)).toBe(true);

      const entry = tier.get('https://h/a')!;
      expect(entry.meta).toEqual(meta);
      expect(entry.body.size).toBe(body.length);
      if (entry.body.buffer !== undefined) expect(entry.body.buffer.equals(body)).toBe(true);
      expect((await readAll(entry.body.stream())).equals(body)).toBe(true);
      expect((await readAll(entry.body.stream({ start: 0, end: 0 }))).equals(body.subarray(0, 1))).toBe(true);
      expect((await readAll(entry.body.stream({ start: 100, end: 9099 }))).equals(body.subarray(100, 9100))).toBe(true);
      expect((await readAll(entry.body.stream({ start: 19_999, end: 19_999 }))).equals(body.subarray(19_999))).toBe(true);
      // An end past the body is clamped to its last byte.
      expect((await readAll(entry.body.stream({ start: 19_990, end: 50_000 }))).equals(body.subarray(19_990))).toBe(true);
    });

    it('stores an empty body, such as a Vary marker', async () => {
      const tier = await open();
      const w = tier.openWrite('https://h/m', 0)!;
      const meta = metaFor('https://h/m', 0, { status: 0, vary: ['accept'], varyMarker: true });
      expect(await w.commit(meta)).toBe(true);
      const entry = tier.get('https://h/m')!;
      expect(entry.meta).toEqual(meta);
      expect(entry.body.size).toBe(0);
      expect((await readAll(entry.body.stream())).length).toBe(0);
    });

    it('keeps a write invisible until it is committed', async () => {
      const tier = await open();
      const w = tier.openWrite('https://h/a')!;
      await w.write(bodyOf(1000));
      expect(tier.get('https://h/a')).toBeUndefined();
      expect(tier.stats().entries).toBe(0);
      expect(await w.commit(metaFor('https://h/a', 1000))).toBe(true);
      expect(tier.get('https://h/a')).toBeDefined();
    });

    it('leaves nothing behind when a write is aborted', async () => {
      const tier = await open();
      const w = tier.openWrite('https://h/a')!;
      await w.write(bodyOf(1000));
      await w.abort();
      expect(tier.get('https://h/a')).toBeUndefined();
      expect(await w.commit(metaFor('https://h/a', 1000))).toBe(false);
      expect(tier.get('https://h/a')).toBeUndefined();
      expect(tier.stats().entries).toBe(0);
    });

    it('refuses to commit an object that outgrows maxObjectBytes and keeps the previous entry', async () => {
      const tier = await open({ maxBytes: 1024 * 1024, maxObjectBytes: 16_000 });
      const old = bodyOf(500, 2);
      expect(await put(tier, 'https://h/a', old)).toBe(true);

      const w = tier.openWrite('https://h/a')!; // no size hint: the origin sent no Content-Length
      await w.write(bodyOf(10_000));
      await w.write(bodyOf(10_000));
      expect(await w.commit(metaFor('https://h/a', 20_000))).toBe(false);

      const entry = tier.get('https://h/a')!;
      expect(entry.meta.size).toBe(500);
      expect((await readAll(entry.body.stream())).equals(old)).toBe(true);
      expect(tier.stats().entries).toBe(1);
      expect(await put(tier, 'https://h/b', bodyOf(16_000))).toBe(true);
    });

    it('refuses to open a write whose size hint exceeds maxObjectBytes', async () => {
      const tier = await open({ maxBytes: 1024 * 1024, maxObjectBytes: 16_000 });
      expect(tier.maxObjectBytes).toBe(16_000);
      expect(tier.openWrite('https://h/a', 16_001)).toBeUndefined();
      const w = tier.openWrite('https://h/a', 16_000);
      expect(w).toBeDefined();
      await w!.abort();
    });

    it('rejects a commit whose meta names another key, storing nothing', async () => {
      const tier = await open();
      const w = tier.openWrite('https://h/a')!;
      await w.write(bodyOf(100));
      await expect(w.commit(metaFor('https://h/b', 100))).rejects.toMatchObject({ code: 'INTERNAL' });
      expect(tier.get('https://h/a')).toBeUndefined();
      expect(tier.get('https://h/b')).toBeUndefined();
    });

    it('replaces an entry that is written again', async () => {
      const tier = await open();
      expect(await put(tier, 'https://h/a', bodyOf(3000, 1), { tags: ['old'] })).toBe(true);
      const body = bodyOf(5000, 2);
      expect(await put(tier, 'https://h/a', body, { status: 203, tags: ['new'] })).toBe(true);
      const entry = tier.get('https://h/a')!;
      expect(entry.meta.status).toBe(203);
      expect(entry.meta.size).toBe(5000);
      expect((await readAll(entry.body.stream())).equals(body)).toBe(true);
      expect(tier.stats().entries).toBe(1);
      // The tags follow the entry: the old one no longer names it.
      expect(await tier.purge({ kind: 'tags', tags: ['old'] }, false)).toBe(0);
      expect(await tier.purge({ kind: 'tags', tags: ['new'] }, false)).toBe(1);
    });

    it('replaces the meta and keeps the body on updateMeta', async () => {
      const tier = await open();
      const body = bodyOf(4000, 3);
      expect(await put(tier, 'https://h/a', body, { tags: ['a'] })).toBe(true);
      const meta = metaFor('https://h/a', 4000, {
        headers: [['etag', '"v2"']],
        responseTime: 1_800_000_000_000,
        ttlMs: 120_000,
        tags: ['b'],
      });
      expect(await tier.updateMeta('https://h/a', meta)).toBe(true);
      const entry = tier.get('https://h/a')!;
      expect(entry.meta).toEqual(meta);
      expect((await readAll(entry.body.stream())).equals(body)).toBe(true);
      expect(await tier.updateMeta('https://h/missing', metaFor('https://h/missing', 1))).toBe(false);
      expect(await tier.purge({ kind: 'tags', tags: ['a'] }, false)).toBe(0);
      expect(await tier.purge({ kind: 'tags', tags: ['b'] }, false)).toBe(1);
    });

    it('deletes an entry', async () => {
      const tier = await open();
      await put(tier, 'https://h/a', bodyOf(100));
      await put(tier, 'https://h/b', bodyOf(100));
      expect(await tier.delete('https://h/a')).toBe(true);
      expect(tier.get('https://h/a')).toBeUndefined();
      expect(tier.get('https://h/b')).toBeDefined();
      expect(await tier.delete('https://h/a')).toBe(false);
      expect(tier.stats().entries).toBe(1);
    });

    it('purges a key with all its variants but not keys that merely share its prefix', async () => {
      const tier = await open();
      const keys = ['https://h/a', `https://h/a${SEP}gzip`, `https://h/a${SEP}br`, 'https://h/a2', 'https://h/a/b', `https://h/a2${SEP}gzip`];
      for (const key of keys) await put(tier, key, bodyOf(100));
      expect(await tier.purge({ kind: 'key', key: 'https://h/a' }, false)).toBe(3);
      expect(keys.map((k) => tier.get(k) !== undefined)).toEqual([false, false, false, true, true, true]);
      expect(await tier.purge({ kind: 'key', key: 'https://h/nothing' }, false)).toBe(0);
    });

    it('purges variants even when the primary entry is absent', async () => {
      const tier = await open();
      await put(tier, `https://h/a${SEP}gzip`, bodyOf(100));
      expect(await tier.purge({ kind: 'key', key: 'https://h/a' }, false)).toBe(1);
      expect(tier.get(`https://h/a${SEP}gzip`)).toBeUndefined();
    });

    it('purges by prefix', async () => {
      const tier = await open();
      const keys = ['https://h/a/1', 'https://h/a/2', `https://h/a/2${SEP}gzip`, 'https://h/b/1', 'https://g/a/1'];
      for (const key of keys) await put(tier, key, bodyOf(100));
      expect(await tier.purge({ kind: 'prefix', prefix: 'https://h/a/' }, false)).toBe(3);
      expect(keys.map((k) => tier.get(k) !== undefined)).toEqual([false, false, false, true, true]);
    });

    it('purges every entry that carries any of the given tags', async () => {
      const tier = await open();
      await put(tier, 'https://h/1', bodyOf(100), { tags: ['red'] });
      await put(tier, 'https://h/2', bodyOf(100), { tags: ['blue', 'green'] });
      await put(tier, 'https://h/3', bodyOf(100), { tags: ['green'] });
      await put(tier, 'https://h/4', bodyOf(100), { tags: ['yellow'] });
      await put(tier, 'https://h/5', bodyOf(100));
      expect(await tier.purge({ kind: 'tags', tags: ['red', 'green'] }, false)).toBe(3);
      expect([1, 2, 3, 4, 5].map((i) => tier.get(`https://h/${i}`) !== undefined)).toEqual([false, false, false, true, true]);
      expect(await tier.purge({ kind: 'tags', tags: ['purple'] }, false)).toBe(0);
    });

    it('purges everything', async () => {
      const tier = await open();
      for (let i = 0; i < 20; i++) await put(tier, `https://h/${i}`, bodyOf(100 * i), { tags: [`t${i}`] });
      expect(await tier.purge({ kind: 'all' }, false)).toBe(20);
      expect(tier.get('https://h/3')).toBeUndefined();
      expect(tier.stats().entries).toBe(0);
      expect(await tier.purge({ kind: 'tags', tags: ['t3'] }, false)).toBe(0);
    });

    it('marks entries invalidated on a soft purge and keeps their bodies', async () => {
      const tier = await open();
      const body = bodyOf(2000, 5);
      const keys = ['https://h/a', `https://h/a${SEP}gzip`, 'https://h/a2', 'https://h/t', 'https://h/p/1'];
      for (const key of keys) await put(tier, key, body, { tags: key === 'https://h/t' ? ['tag'] : [] });

      const before = Date.now();
      expect(await tier.purge({ kind: 'key', key: 'https://h/a' }, true)).toBe(2);
      expect(await tier.purge({ kind: 'tags', tags: ['tag'] }, true)).toBe(1);
      expect(await tier.purge({ kind: 'prefix', prefix: 'https://h/p/' }, true)).toBe(1);
      const after = Date.now();

      for (const key of keys) {
        const entry = tier.get(key)!;
        expect(entry).toBeDefined();
        if (key === 'https://h/a2') {
          expect(entry.meta.invalidatedAt).toBeUndefined();
        } else {
          expect(entry.meta.invalidatedAt).toBeGreaterThanOrEqual(before);
          expect(entry.meta.invalidatedAt).toBeLessThanOrEqual(after);
        }
        expect(entry.meta.size).toBe(2000);
        expect((await readAll(entry.body.stream())).equals(body)).toBe(true);
      }
      expect(await tier.purge({ kind: 'all' }, true)).toBe(5);
      expect(tier.get('https://h/a2')!.meta.invalidatedAt).toBeGreaterThanOrEqual(before);
      expect(tier.stats().entries).toBe(5);
    });

    it('stores keys with non-ASCII characters and very long keys', async () => {
      const tier = await open();
      const unicode = `https://h/é?q=ü☃${SEP}accept=*`;
      const long = `https://h/${'x'.repeat(3000)}`;
      const longer = `${long}y`;
      await put(tier, unicode, bodyOf(10, 1));
      await put(tier, long, bodyOf(10, 2));
      await put(tier, longer, bodyOf(10, 3));
      await put(tier, `${long}${SEP}gzip`, bodyOf(10, 4));
      expect(tier.get(unicode)!.meta.key).toBe(unicode);
      expect((await readAll(tier.get(long)!.body.stream())).equals(bodyOf(10, 2))).toBe(true);
      expect((await readAll(tier.get(longer)!.body.stream())).equals(bodyOf(10, 3))).toBe(true);
      expect(await tier.purge({ kind: 'key', key: long }, false)).toBe(2);
      expect(tier.get(longer)).toBeDefined();
      expect(await tier.purge({ kind: 'prefix', prefix: long }, false)).toBe(1);
      expect(await tier.purge({ kind: 'prefix', prefix: 'https://h/é' }, false)).toBe(1);
    });

    it('evicts the least recently used entries to stay within maxBytes', async () => {
      const tier = await open({ maxBytes: 100_000, maxObjectBytes: 30_000 });
      for (let i = 0; i < 4; i++) expect(await put(tier, `https://h/${i}`, bodyOf(20_000, i))).toBe(true);
      expect(tier.get('https://h/0')).toBeDefined(); // now more recently used than 1, 2 and 3
      expect(await put(tier, 'https://h/4', bodyOf(20_000, 4))).toBe(true);
      await settle(tier);

      const present = [0, 1, 2, 3, 4].map((i) => tier.get(`https://h/${i}`) !== undefined);
      expect(present).toEqual([true, false, true, true, true]);
      const stats = tier.stats();
      expect(stats.evictions).toBe(1);
      expect(stats.entries).toBe(4);
      expect(stats.bytes).toBeLessThanOrEqual(100_000);
    });

    it('reports entries, bytes and the size bound', async () => {
      const tier = await open();
      expect(tier.stats()).toEqual({ bytes: 0, entries: 0, evictions: 0, maxBytes: DEFAULTS.maxBytes });
      await put(tier, 'https://h/1', bodyOf(1000));
      await put(tier, 'https://h/2', bodyOf(2000));
      await put(tier, 'https://h/3', bodyOf(30_000));
      const full = tier.stats();
      expect(full.entries).toBe(3);
      expect(full.bytes).toBeGreaterThanOrEqual(33_000);
      expect(full.bytes).toBeLessThan(33_000 + 3 * 8192);
      await tier.delete('https://h/3');
      const after = tier.stats();
      expect(after.entries).toBe(2);
      expect(after.bytes).toBeLessThanOrEqual(full.bytes - 30_000);
      expect(after.evictions).toBe(0);
    });

    it('lets a body that is being streamed finish after its entry is deleted', async () => {
      const tier = await open();
      const body = bodyOf(60_000, 6);
      await put(tier, 'https://h/a', body);
      const stream = tier.get('https://h/a')!.body.stream();
      expect(await tier.delete('https://h/a')).toBe(true);
      expect(await put(tier, 'https://h/a', bodyOf(500, 7))).toBe(true);
      expect((await readAll(stream)).equals(body)).toBe(true);
    });

    it('streams the same body to several readers at once', async () => {
      const tier = await open();
      const body = bodyOf(50_000, 8);
      await put(tier, 'https://h/a', body);
      const entry = tier.get('https://h/a')!;
      const [a, b, c] = await Promise.all([
        readAll(entry.body.stream()),
        readAll(entry.body.stream({ start: 10, end: 40_009 })),
        readAll(tier.get('https://h/a')!.body.stream()),
      ]);
      expect(a.equals(body)).toBe(true);
      expect(b.equals(body.subarray(10, 40_010))).toBe(true);
      expect(c.equals(body)).toBe(true);
    });
  });
}
