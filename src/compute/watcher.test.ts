import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { startRedisCluster, type RedisCluster } from '../../test/support/redis-cluster.ts';
import { startRedisServer, startTcpProxy } from '../../test/support/redis-server.ts';
import { createLogger } from '../log/logger.ts';
import type { CuRecord, CuSettings, CuSpec } from './cu.ts';
import { EmbeddedCuStore } from './store/embedded.ts';
import { RedisCuStore } from './store/redis.ts';
import { cuSpec, eventually } from './store/store-suite.ts';
import type { CuStore, StoreSnapshot, StoredDoc } from './store/store.ts';
import { CuWatcher, type CuStoreStatus } from './watcher.ts';

const log = createLogger('silent');
const dirs: string[] = [];
const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}, 30_000);

function embedded(): EmbeddedCuStore {
  const dir = mkdtempSync(join(tmpdir(), 'outpost-cu-watch-'));
  dirs.push(dir);
  const store = EmbeddedCuStore.open({ path: dir });
  cleanups.push(() => store.close());
  return store;
}

function uniquePrefix(): string {
  return `{outpost-test-${randomBytes(6).toString('hex')}}`;
}

/** A real store whose reads are counted and can be slowed down, to watch the watcher's scheduling. */
class CountingStore implements CuStore {
  readonly kind: CuStore['kind'];
  readonly inner: CuStore;
  reads: number[] = [];
  inFlight = 0;
  maxInFlight = 0;
  readDelayMs = 0;
  constructor(inner: CuStore) {
    this.inner = inner;
    this.kind = inner.kind;
  }
  async readAll(): Promise<StoreSnapshot> {
    this.reads.push(performance.now());
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.readDelayMs) await sleep(this.readDelayMs);
      return await this.inner.readAll();
    } finally {
      this.inFlight--;
    }
  }
  put(spec: CuSpec): Promise<CuRecord> {
    return this.inner.put(spec);
  }
  delete(id: string): Promise<boolean> {
    return this.inner.delete(id);
  }
  putSettings(settings: CuSettings): Promise<void> {
    return this.inner.putSettings(settings);
  }
  putDoc(name: string, value: unknown): Promise<StoredDoc> {
    return this.inner.putDoc(name, value);
  }
  deleteDoc(name: string): Promise<boolean> {
    return this.inner.deleteDoc(name);
  }
  subscribe(onChange: () => void): Promise<() => void> {
    return this.inner.subscribe(onChange);
  }
  command(name: string, args: readonly (string | number)[]): Promise<unknown> {
    return this.inner.command(name, args);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

function watch(store: CuStore, pollIntervalMs: number): { watcher: CuWatcher; snapshots: StoreSnapshot[]; statuses: Array<[CuStoreStatus, string | undefined]> } {
  const snapshots: StoreSnapshot[] = [];
  const statuses: Array<[CuStoreStatus, string | undefined]> = [];
  const watcher = new CuWatcher(store, {
    pollIntervalMs,
    log,
    onSnapshot: (s) => snapshots.push(s),
    onStatus: (status, err) => statuses.push([status, err?.message]),
  });
  cleanups.push(() => watcher.stop());
  return { watcher, snapshots, statuses };
}

const ids = (s: StoreSnapshot | undefined): string[] => (s?.cus ?? []).map((c) => c.id).sort();

describe('CU watcher', () => {
  it('delivers the CUs at start, then each change the store pushes', async () => {
    const store = embedded();
    await store.put(cuSpec({ id: 'a' }));
    const { watcher, snapshots, statuses } = watch(store, 60_000);
    await watcher.start();
    expect(snapshots.map(ids)).toEqual([['a']]);
    expect(statuses).toEqual([['ok', undefined]]);
    await store.put(cuSpec({ id: 'b' }));
    await eventually(() => snapshots.length === 2, 1000, 'the pushed change');
    expect(ids(watcher.current())).toEqual(['a', 'b']);
    await store.delete('a');
    await eventually(() => snapshots.length === 3, 1000, 'the pushed delete');
    expect(ids(snapshots[2])).toEqual(['b']);
  });

  it('delivers only when ids, versions, settings or invalid records change', async () => {
    const store = embedded();
    const { watcher, snapshots } = watch(store, 60_000);
    await watcher.start();
    await store.put(cuSpec({ id: 'a' }));
    await watcher.refresh();
    expect(snapshots).toHaveLength(2);
    await watcher.refresh();
    await store.putSettings({ enabled: true, skipHosts: [] }); // same as the defaults
    await watcher.refresh();
    expect(snapshots).toHaveLength(2);
    await store.putSettings({ enabled: true, skipHosts: ['*.internal'] });
    await watcher.refresh();
    expect(snapshots).toHaveLength(3);
    const v1 = snapshots[2]!.cus[0]!.version;
    await store.put(cuSpec({ id: 'a' })); // same spec, new version: workers recompile
    await watcher.refresh();
    expect(snapshots).toHaveLength(4);
    expect(snapshots[3]!.cus[0]!.version).toBeGreaterThan(v1);
  });

  it('coalesces a burst of notifications: one read in flight, one more after it', async () => {
    const store = new CountingStore(embedded());
    const { watcher, snapshots } = watch(store, 60_000);
    await watcher.start();
    expect(store.reads).toHaveLength(1);
    store.readDelayMs = 50;
    // Twenty writes, twenty notifications, while the read they start is in flight.
    await Promise.all(Array.from({ length: 20 }, (_, i) => store.put(cuSpec({ id: `cu-${i}` }))));
    await eventually(() => ids(watcher.current()).length === 20, 2000, 'all twenty CUs');
    await sleep(120);
    expect(store.reads).toHaveLength(3);
    expect(store.maxInFlight).toBe(1);
    expect(snapshots.at(-1)!.cus).toHaveLength(20);
  });

  it('polls every pollInterval ± 20 %, so that nodes do not read in step', async () => {
    const store = new CountingStore(embedded());
    const { watcher } = watch(store, 100);
    await watcher.start();
    await eventually(() => store.reads.length >= 13, 3000, 'twelve polls');
    await watcher.stop();
    const gaps = store.reads.slice(1).map((t, i) => t - store.reads[i]!);
    for (const gap of gaps) {
      expect(gap).toBeGreaterThanOrEqual(79);
      // 120 ms at most, plus what a busy machine adds to a timer.
      expect(gap).toBeLessThan(180);
    }
    expect(Math.max(...gaps) - Math.min(...gaps)).toBeGreaterThan(5);
  });

  it('picks up by polling a change written by hand without a notification', async () => {
    const prefix = uniquePrefix();
    const raw = new Redis('redis://127.0.0.1:6379');
    const store = RedisCuStore.connect({ kind: 'redis', url: 'redis://127.0.0.1:6379', nodes: [], prefix, commandTimeoutMs: 1000, seedSet: false });
    const { watcher, snapshots } = watch(store, 200);
    try {
      await watcher.start();
      const record = { ...cuSpec({ id: 'by-hand' }), version: 1, updatedAt: new Date().toISOString() };
      await raw.multi().set(`${prefix}:cu:by-hand`, JSON.stringify(record)).sadd(`${prefix}:cus`, 'by-hand').exec();
      const t0 = performance.now();
      await eventually(() => snapshots.length === 2, 1000, 'the next poll');
      // Within one poll interval (at most 240 ms), give or take a busy machine.
      expect(performance.now() - t0).toBeLessThan(450);
      expect(ids(watcher.current())).toEqual(['by-hand']);
    } finally {
      await watcher.stop();
      await store.close();
      await raw.del(`${prefix}:cu:by-hand`, `${prefix}:cus`);
      raw.disconnect();
    }
  });

  it('keeps the last good CUs while Redis is down, reports it once, and resumes when Redis returns', async () => {
    const server = await startRedisServer();
    cleanups.push(() => server.destroy());
    const prefix = uniquePrefix();
    const writer = RedisCuStore.connect({ kind: 'redis', url: server.url, nodes: [], prefix, commandTimeoutMs: 200 });
    const store = new CountingStore(RedisCuStore.connect({ kind: 'redis', url: server.url, nodes: [], prefix, commandTimeoutMs: 200 }));
    cleanups.push(() => writer.close(), () => store.close());
    await writer.put(cuSpec({ id: 'a' }));
    const { watcher, snapshots, statuses } = watch(store, 300);
    await watcher.start();
    expect(ids(watcher.current())).toEqual(['a']);

    await server.stop();
    await eventually(() => statuses.length === 2, 2000, 'unreachable');
    const readsBefore = store.reads.length;
    await sleep(1500);
    // Still retrying at the poll interval, reported once, CUs kept, nothing delivered.
    expect(store.reads.length - readsBefore).toBeGreaterThanOrEqual(3);
    expect(statuses).toEqual([
      ['ok', undefined],
      ['unreachable', expect.stringMatching(/CU store \(redis\)/)],
    ]);
    expect(snapshots).toHaveLength(1);
    expect(ids(watcher.current())).toEqual(['a']);

    await server.start();
    await eventually(
      () =>
        writer.put(cuSpec({ id: 'b' })).then(
          () => true,
          () => false,
        ),
      5000,
      'the writer to reconnect',
    );
    await eventually(() => ids(watcher.current()).includes('b'), 3000, 'the change after the restart');
    expect(statuses.map((s) => s[0])).toEqual(['ok', 'unreachable', 'ok']);
  });

  it('picks up a change made while its own connection was down (missed notification)', async () => {
    const server = await startRedisServer();
    cleanups.push(() => server.destroy());
    const proxy = await startTcpProxy(server.port);
    cleanups.push(() => proxy.close());
    const prefix = uniquePrefix();
    const writer = RedisCuStore.connect({ kind: 'redis', url: server.url, nodes: [], prefix, commandTimeoutMs: 200 });
    // Only the watcher's node goes through the proxy; a long poll interval leaves the recovery to the re-subscription.
    const store = RedisCuStore.connect({ kind: 'redis', url: `redis://127.0.0.1:${proxy.port}`, nodes: [], prefix, commandTimeoutMs: 200 });
    cleanups.push(() => writer.close(), () => store.close());
    await writer.put(cuSpec({ id: 'a' }));
    const { watcher, statuses } = watch(store, 60_000);
    await watcher.start();

    await proxy.cut();
    await writer.put(cuSpec({ id: 'while-away', code: 'exit(451)' })); // published: nobody on the other side hears it
    await writer.delete('a');
    await sleep(300);
    expect(ids(watcher.current())).toEqual(['a']);
    await proxy.restore();
    await eventually(() => ids(watcher.current()).join() === 'while-away', 3000, 'the change made while away');
    // The read that found it came from the re-subscription, not from a poll 60 s away.
    expect(statuses.map((s) => s[0])).toEqual(['ok']);
  });

  it('stops polling and listening when stopped', async () => {
    const store = new CountingStore(embedded());
    const { watcher, snapshots } = watch(store, 50);
    await watcher.start();
    await watcher.stop();
    const reads = store.reads.length;
    await store.put(cuSpec({ id: 'late' }));
    await sleep(150);
    expect(store.reads.length).toBe(reads);
    expect(snapshots).toHaveLength(1);
  });
});

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** put() on one instance → onSnapshot of a watcher on another instance, `n` times. */
async function measurePropagation(open: () => RedisCuStore, n: number): Promise<{ p50: number; p99: number; max: number }> {
  const writer = open();
  const reader = open();
  let waiting: { version: number; resolve: (t: number) => void } | undefined;
  const watcher = new CuWatcher(reader, {
    pollIntervalMs: 60_000, // push only: the poll must not help
    log,
    onSnapshot: (s) => {
      const v = s.cus.find((c) => c.id === 'probe')?.version;
      if (waiting && v !== undefined && v >= waiting.version) waiting.resolve(performance.now());
    },
    onStatus: () => undefined,
  });
  try {
    await watcher.start();
    const times: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      let resolve!: (t: number) => void;
      const seen = new Promise<number>((r) => (resolve = r));
      const rec = await writer.put(cuSpec({ id: 'probe', code: `exit(${200 + i})` }));
      waiting = { version: rec.version, resolve };
      // The snapshot may already have arrived while put() was returning.
      if ((watcher.current()?.cus.find((c) => c.id === 'probe')?.version ?? 0) >= rec.version) resolve(performance.now());
      const t1 = await Promise.race([seen, sleep(2000).then(() => Number.NaN)]);
      expect(t1, `change ${i} was not delivered within 2 s`).not.toBeNaN();
      times.push(t1 - t0);
    }
    times.sort((a, b) => a - b);
    return { p50: percentile(times, 50), p99: percentile(times, 99), max: times.at(-1)! };
  } finally {
    await watcher.stop();
    await writer.close();
    await reader.close();
  }
}

describe('propagation from put() on one instance to a watcher on another', () => {
  let cluster: RedisCluster | undefined;
  afterAll(async () => {
    await cluster?.stop();
  }, 30_000);

  it('takes well under 1 s on Redis (50 changes)', async () => {
    const prefix = uniquePrefix();
    const raw = new Redis('redis://127.0.0.1:6379');
    try {
      const r = await measurePropagation(() => RedisCuStore.connect({ kind: 'redis', url: 'redis://127.0.0.1:6379', nodes: [], prefix, commandTimeoutMs: 1000, seedSet: false }), 50);
      console.log(`propagation on Redis: p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, max ${r.max.toFixed(2)} ms (50 changes)`);
      expect(r.p99).toBeLessThan(1000);
    } finally {
      await raw.del(`${prefix}:cu:probe`, `${prefix}:cus`, `${prefix}:cu-seq`);
      raw.disconnect();
    }
  });

  it('takes well under 1 s on Redis Cluster (50 changes)', async () => {
    cluster = await startRedisCluster();
    const nodes = [...cluster.nodes];
    const prefix = uniquePrefix();
    const r = await measurePropagation(() => RedisCuStore.connect({ kind: 'redis-cluster', url: 'redis://127.0.0.1:6379', nodes, prefix, commandTimeoutMs: 1000 }), 50);
    console.log(`propagation on Redis Cluster: p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, max ${r.max.toFixed(2)} ms (50 changes)`);
    expect(r.p99).toBeLessThan(1000);
  });
});
