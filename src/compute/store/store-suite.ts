// The CuStore contract as one vitest suite, run against every store kind (embedded.test.ts,
// redis.test.ts for Redis and Redis Cluster): the same records, versions, errors and CU data API
// replies whichever store a node uses.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { OutpostError } from '../../errors.ts';
import { CuInputSchema, type CuInput, type CuSpec } from '../cu.ts';
import type { CuStore } from './store.ts';

export interface StoreHandle {
  readonly store: CuStore;
  /** Where the record of `id` lives (key as redis-cli would name it). */
  recordKey(id: string): string;
  /** Writes a raw record under `id`, bypassing validation, as redis-cli or an older version might. */
  writeRaw(id: string, raw: string): Promise<void>;
  /** A second instance on the same data, for stores shared between nodes. */
  openPeer?(): Promise<CuStore>;
  /** Closes the store (and peers) and removes what the test wrote. */
  close(): Promise<void>;
}

export function cuSpec(input: Partial<CuInput> & { id: string }): CuSpec {
  return CuInputSchema.parse({ phase: 'access', code: 'exit(403)', ...input });
}

/** Resolves when `predicate` holds, polling every 5 ms; rejects after `ms`. */
export async function eventually(predicate: () => boolean | Promise<boolean>, ms = 2000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}

async function rejection(p: Promise<unknown>): Promise<OutpostError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(OutpostError);
    return err as OutpostError;
  }
  throw new Error('expected a rejection');
}

/** `shared`: several instances (nodes) use the same data, and `openPeer` opens another. */
export function describeCuStore(name: string, open: () => Promise<StoreHandle>, opts: { shared: boolean }): void {
  describe(`${name} store: CuStore contract`, () => {
    const handles: StoreHandle[] = [];
    const make = async (): Promise<StoreHandle> => {
      const h = await open();
      handles.push(h);
      return h;
    };
    afterEach(async () => {
      await Promise.all(handles.splice(0).map((h) => h.close()));
    });

    it('returns the CUs that were put, each write with a higher version', async () => {
      const { store } = await make();
      const a1 = await store.put(cuSpec({ id: 'auth', phase: 'access_by_lua_block', hosts: ['*.example.com'], sampling: 30, priority: 5, failure: 'closed' }));
      const b = await store.put(cuSpec({ id: 'banner', phase: 'body_filter', code: 'body = body + "x"', lang: 'ts' }));
      const a2 = await store.put(cuSpec({ id: 'auth', code: 'exit(401)' }));
      expect(b.version).toBeGreaterThan(a1.version);
      expect(a2.version).toBeGreaterThan(b.version);
      expect(Number.isNaN(Date.parse(a2.updatedAt))).toBe(false);
      expect(a1).toMatchObject({ phase: 'access', hosts: ['*.example.com'], sampling: 30, priority: 5, failure: 'closed' });

      const snap = await store.readAll();
      expect(snap.invalid).toEqual([]);
      expect(snap.cus.map((c) => c.id).sort()).toEqual(['auth', 'banner']);
      expect(snap.cus.find((c) => c.id === 'auth')).toEqual(a2);
      expect(snap.cus.find((c) => c.id === 'banner')).toEqual(b);
    });

    it('keeps the record of the last write when one CU is written concurrently, versions never going back', async () => {
      const h = await make();
      const writers = opts.shared ? [h.store, await h.openPeer!()] : [h.store];
      const results = await Promise.all(Array.from({ length: 40 }, (_, i) => writers[i % writers.length]!.put(cuSpec({ id: 'contended', code: `exit(${200 + i})` }))));
      const versions = results.map((r) => r.version);
      expect(new Set(versions).size).toBe(40);
      const last = results.find((r) => r.version === Math.max(...versions))!;
      expect((await h.store.readAll()).cus).toEqual([last]);
    });

    it('deletes a CU and tells whether it existed', async () => {
      const { store } = await make();
      await store.put(cuSpec({ id: 'a' }));
      await store.put(cuSpec({ id: 'b' }));
      expect(await store.delete('a')).toBe(true);
      expect(await store.delete('a')).toBe(false);
      expect((await store.readAll()).cus.map((c) => c.id)).toEqual(['b']);
    });

    it('keeps the global settings, with defaults until they are written', async () => {
      const { store } = await make();
      expect((await store.readAll()).settings).toEqual({ enabled: true, skipHosts: [] });
      await store.putSettings({ enabled: false, skipHosts: ['*.internal', 'static.example.com'] });
      expect((await store.readAll()).settings).toEqual({ enabled: false, skipHosts: ['*.internal', 'static.example.com'] });
    });

    it('refuses to store an invalid CU or invalid settings', async () => {
      const { store } = await make();
      const err = await rejection(store.put({ ...cuSpec({ id: 'x' }), sampling: 200 }));
      expect(err.code).toBe('CU_INVALID');
      expect(err.message).toMatch(/sampling/);
      expect((await rejection(store.putSettings({ enabled: true, skipHosts: ['/(/'] }))).code).toBe('CU_INVALID');
      expect((await store.readAll()).cus).toEqual([]);
    });

    it('skips invalid records with their errors and returns the others', async () => {
      const h = await make();
      const good = await h.store.put(cuSpec({ id: 'good' }));
      const base = { ...cuSpec({ id: 'x' }), version: 7, updatedAt: new Date().toISOString() };
      await h.writeRaw('not-json', '{"id": "not-json",');
      await h.writeRaw('bad-phase', JSON.stringify({ ...base, id: 'bad-phase', phase: 'content' }));
      await h.writeRaw('no-version', JSON.stringify({ ...base, id: 'no-version', version: undefined }));
      await h.writeRaw('elsewhere', JSON.stringify({ ...base, id: 'other' }));
      await h.writeRaw('unknown-field', JSON.stringify({ ...base, id: 'unknown-field', cpu: 3 }));
      await h.writeRaw('nginx-name', JSON.stringify({ ...base, id: 'nginx-name', phase: 'header_filter_by_lua_block' }));

      const snap = await h.store.readAll();
      expect(snap.cus.map((c) => c.id).sort()).toEqual(['good', 'nginx-name']);
      expect(snap.cus.find((c) => c.id === 'good')).toEqual(good);
      expect(snap.cus.find((c) => c.id === 'nginx-name')).toMatchObject({ phase: 'header_filter', version: 7 });
      const errors = Object.fromEntries(snap.invalid.map((i) => [i.id, i.error]));
      expect(Object.keys(errors).sort()).toEqual(['bad-phase', 'elsewhere', 'no-version', 'not-json', 'unknown-field']);
      expect(errors['not-json']).toMatch(/^not JSON/);
      expect(errors['bad-phase']).toMatch(/phase: expected one of rewrite, access/);
      expect(errors['no-version']).toMatch(/version: expected a positive integer/);
      expect(errors['elsewhere']).toMatch(/the record says "other"/);
      expect(errors['unknown-field']).toMatch(/cpu/);
    });

    it('notifies subscribers of every write until they unsubscribe', async () => {
      const { store } = await make();
      let calls = 0;
      const unsubscribe = await store.subscribe(() => calls++);
      await store.put(cuSpec({ id: 'a' }));
      await eventually(() => calls >= 1, 1000, 'the put');
      await store.putSettings({ enabled: false, skipHosts: [] });
      await eventually(() => calls >= 2, 1000, 'the settings');
      await store.delete('a');
      await eventually(() => calls >= 3, 1000, 'the delete');
      unsubscribe();
      const before = calls;
      await store.put(cuSpec({ id: 'b' }));
      await sleep(100);
      expect(calls).toBe(before);
    });

    it('keeps documents beside the CUs, each write with a new version from the same counter', async () => {
      const { store } = await make();
      const cu = await store.put(cuSpec({ id: 'a' }));
      const d1 = await store.putDoc('rules', { rules: [{ id: 'r1' }] });
      const d2 = await store.putDoc('iplist:blocked', { entries: ['10.0.0.0/8', '2001:db8::/32'] });
      expect(d1.version).toBeGreaterThan(cu.version);
      expect(d2.version).toBeGreaterThan(d1.version);
      let snap = await store.readAll();
      expect(snap.docs.map((d) => [d.name, d.version])).toEqual([
        ['iplist:blocked', d2.version],
        ['rules', d1.version],
      ]);
      expect(snap.docs[0]!.value).toEqual({ entries: ['10.0.0.0/8', '2001:db8::/32'] });
      const d3 = await store.putDoc('rules', { rules: [] });
      expect(d3.version).toBeGreaterThan(d2.version);
      snap = await store.readAll();
      expect(snap.docs.find((d) => d.name === 'rules')).toMatchObject({ version: d3.version, value: { rules: [] } });
      expect(await store.deleteDoc('rules')).toBe(true);
      expect(await store.deleteDoc('rules')).toBe(false);
      snap = await store.readAll();
      expect(snap.docs.map((d) => d.name)).toEqual(['iplist:blocked']);
      expect(snap.cus.map((c) => c.id)).toEqual(['a']);
    });

    it('refuses a document with a bad name, and notifies subscribers of document writes', async () => {
      const { store } = await make();
      await expect(store.putDoc('Bad Name', {})).rejects.toMatchObject({ code: 'BAD_REQUEST' });
      let calls = 0;
      const unsubscribe = await store.subscribe(() => calls++);
      await store.putDoc('rules', { rules: [] });
      await eventually(() => calls >= 1, 1000, 'the document write');
      await store.deleteDoc('rules');
      await eventually(() => calls >= 2, 1000, 'the document delete');
      unsubscribe();
    });

    if (opts.shared) {
      it('notifies another instance of a change within 1 s', async () => {
        const h = await make();
        const peer = await h.openPeer!();
        let seenAt = 0;
        await peer.subscribe(() => (seenAt ||= performance.now()));
        const t0 = performance.now();
        const rec = await h.store.put(cuSpec({ id: 'pushed' }));
        await eventually(() => seenAt > 0, 1000, 'the peer notification');
        expect(seenAt - t0).toBeLessThan(1000);
        expect((await peer.readAll()).cus.find((c) => c.id === 'pushed')?.version).toBe(rec.version);
      });
    }

    describe('CU data API', () => {
      it('answers like Redis: strings, counters, hashes, sets', async () => {
        const { store: s } = await make();
        expect(await s.command('get', ['k'])).toBeNull();
        expect(await s.command('set', ['k', 'v'])).toBe('OK');
        expect(await s.command('GET', ['k'])).toBe('v');
        expect(await s.command('set', ['n', 41])).toBe('OK');
        expect(await s.command('incr', ['n'])).toBe(42);
        expect(await s.command('incrby', ['n', -2])).toBe(40);
        expect(await s.command('decr', ['n'])).toBe(39);
        expect(await s.command('incr', ['fresh'])).toBe(1);
        expect((await rejection(s.command('incr', ['k']))).message).toMatch(/not an integer/);
        expect(await s.command('hset', ['h', 'a', '1', 'b', 2])).toBe(2);
        expect(await s.command('hset', ['h', 'a', 'x'])).toBe(0);
        expect(await s.command('hget', ['h', 'a'])).toBe('x');
        expect(await s.command('hget', ['h', 'zz'])).toBeNull();
        expect(await s.command('hincrby', ['h', 'b', 5])).toBe(7);
        expect(await s.command('hgetall', ['h'])).toEqual({ a: 'x', b: '7' });
        expect(await s.command('hgetall', ['none'])).toEqual({});
        expect(await s.command('sadd', ['s', 'x', 'y', 'x'])).toBe(2);
        expect(await s.command('srem', ['s', 'y', 'z'])).toBe(1);
        expect(await s.command('smembers', ['s'])).toEqual(['x']);
        expect(await s.command('sismember', ['s', 'x'])).toBe(1);
        expect(await s.command('sismember', ['s', 'y'])).toBe(0);
        expect(await s.command('exists', ['k', 'h', 'missing'])).toBe(2);
        expect(await s.command('del', ['k', 'h', 'missing'])).toBe(2);
        expect(await s.command('exists', ['k'])).toBe(0);
        expect((await rejection(s.command('hget', ['s', 'x']))).message).toMatch(/WRONGTYPE/);
      });

      it('expires keys: set EX/PX, expire, pexpire, ttl', async () => {
        const { store: s } = await make();
        expect(await s.command('ttl', ['nokey'])).toBe(-2);
        await s.command('set', ['plain', 'v']);
        expect(await s.command('ttl', ['plain'])).toBe(-1);
        await s.command('set', ['ex', 'v', 'EX', 100]);
        expect(await s.command('ttl', ['ex'])).toBe(100);
        await s.command('set', ['px', 'v', 'px', 80]);
        await s.command('incr', ['counter']);
        expect(await s.command('pexpire', ['counter', 80])).toBe(1);
        expect(await s.command('expire', ['nokey', 10])).toBe(0);
        expect(await s.command('incr', ['counter'])).toBe(2);
        await sleep(150);
        expect(await s.command('get', ['px'])).toBeNull();
        expect(await s.command('get', ['counter'])).toBeNull();
        expect(await s.command('get', ['ex'])).toBe('v');
        expect(await s.command('expire', ['ex', 0])).toBe(1);
        expect(await s.command('exists', ['ex'])).toBe(0);
      });

      it('refuses commands outside the allow-list and malformed arguments', async () => {
        const { store: s } = await make();
        for (const cmd of ['keys', 'eval', 'flushall', 'config', 'subscribe', 'blpop', 'mget', '']) {
          const err = await rejection(s.command(cmd, ['*']));
          expect(err.code).toBe('BAD_REQUEST');
          expect(err.message).toMatch(/unknown or disallowed command .*allowed: get, set, incr/);
        }
        const bad: Array<[string, Array<string | number>, RegExp]> = [
          ['get', [], /redis\.get: expected \(key\), got 0 arguments/],
          ['get', [''], /expected a key/],
          ['get', [42], /expected a key/],
          ['set', ['k'], /redis\.set: expected \(key, value\)/],
          ['set', ['k', 'v', 'KEEPTTL'], /expected 'EX' or 'PX'/],
          ['set', ['k', 'v', 'EX', 0], /positive EX time/],
          ['incrby', ['k', 1.5], /expected an integer as increment/],
          ['expire', ['k', 'soon'], /expected an integer as seconds/],
          ['hset', ['h', 'f'], /redis\.hset: expected \(key, field, value/],
          ['set', ['k', 'x'.repeat(600 * 1024)], /at most 524288 bytes/],
          ['set', ['k', Number.NaN], /finite number/],
        ];
        for (const [cmd, args, message] of bad) {
          const err = await rejection(s.command(cmd, args));
          expect(err.code).toBe('BAD_REQUEST');
          expect(err.message).toMatch(message);
        }
      });

      it('cannot reach CU records, settings or the version counter', async () => {
        const h = await make();
        await h.store.put(cuSpec({ id: 'a' }));
        const key = h.recordKey('a');
        expect(await h.store.command('get', [key])).toBeNull();
        expect(await h.store.command('del', [key, 'cu:a', 'a'])).toBe(0);
        await h.store.command('set', [key, 'overwritten']);
        const snap = await h.store.readAll();
        expect(snap.cus.map((c) => c.id)).toEqual(['a']);
        expect(snap.invalid).toEqual([]);
      });
    });
  });
}
