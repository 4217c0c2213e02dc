// The Redis stores against real servers: the shared Redis on 6379 (a unique prefix per test, its
// keys deleted afterwards), a private redis-server for anything that stops, pauses or MONITORs
// Redis, and a private three-master Redis Cluster.
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisCluster, type RedisCluster } from '../../../test/support/redis-cluster.ts';
import { freePort, redisCli, spawnRedis, startRedisServer, startTcpProxy, stopChild, type RedisServer } from '../../../test/support/redis-server.ts';
import { RedisCuStore, type RedisCuStoreOptions } from './redis.ts';
import { seedVersion } from './records.ts';
import { cuSpec, describeCuStore, eventually, type StoreHandle } from './store-suite.ts';

const SHARED_URL = 'redis://127.0.0.1:6379';

function uniquePrefix(): string {
  return `{outpost-test-${randomBytes(6).toString('hex')}}`;
}

function connect(overrides: Partial<RedisCuStoreOptions> & Pick<RedisCuStoreOptions, 'prefix'>): RedisCuStore {
  return RedisCuStore.connect({ kind: 'redis', url: SHARED_URL, nodes: [], commandTimeoutMs: 1000, seedSet: false, ...overrides });
}

/** Deletes every key under `prefix` on the shared Redis (SCAN, never FLUSH*). */
async function deletePrefix(raw: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  for (let i = 0; i < 10_000; i++) {
    const [next, keys] = await raw.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    if (keys.length) await raw.del(...keys);
    cursor = next;
    if (cursor === '0') return;
  }
}

let cluster: RedisCluster | undefined;
let clusterStarting: Promise<RedisCluster> | undefined;
function theCluster(): Promise<RedisCluster> {
  clusterStarting ??= startRedisCluster().then((c) => (cluster = c));
  return clusterStarting;
}
afterAll(async () => {
  await cluster?.stop();
}, 30_000);

describeCuStore(
  'redis',
  async (): Promise<StoreHandle> => {
    const prefix = uniquePrefix();
    const raw = new Redis(SHARED_URL);
    const stores = [connect({ prefix })];
    return {
      store: stores[0]!,
      recordKey: (id) => `${prefix}:cu:${id}`,
      async writeRaw(id, value) {
        await raw.multi().set(`${prefix}:cu:${id}`, value).sadd(`${prefix}:cus`, id).exec();
      },
      async openPeer() {
        const peer = connect({ prefix });
        stores.push(peer);
        return peer;
      },
      async close() {
        await Promise.all(stores.map((s) => s.close()));
        await deletePrefix(raw, prefix);
        raw.disconnect();
      },
    };
  },
  { shared: true },
);

describeCuStore(
  'redis-cluster',
  async (): Promise<StoreHandle> => {
    const c = await theCluster();
    const prefix = uniquePrefix();
    const open = (): RedisCuStore => RedisCuStore.connect({ kind: 'redis-cluster', url: SHARED_URL, nodes: [...c.nodes], prefix, commandTimeoutMs: 1000, seedSet: false });
    const raw = new Cluster(c.ports.map((port) => ({ host: '127.0.0.1', port })));
    const stores = [open()];
    return {
      store: stores[0]!,
      recordKey: (id) => `${prefix}:cu:${id}`,
      async writeRaw(id, value) {
        await raw.multi().set(`${prefix}:cu:${id}`, value).sadd(`${prefix}:cus`, id).exec();
      },
      async openPeer() {
        const peer = open();
        stores.push(peer);
        return peer;
      },
      async close() {
        await Promise.all(stores.map((s) => s.close()));
        raw.disconnect();
      },
    };
  },
  { shared: true },
);

async function putMany(store: RedisCuStore, n: number): Promise<void> {
  for (let i = 0; i < n; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, n - i) }, (_, j) => store.put(cuSpec({ id: `cu-${String(i + j).padStart(4, '0')}`, code: `exit(${200 + ((i + j) % 300)})` }))));
  }
}

describe('redis store on a private server', () => {
  let server: RedisServer;
  let raw: Redis;
  beforeAll(async () => {
    server = await startRedisServer();
    raw = new Redis(server.url);
  });
  afterAll(async () => {
    raw?.disconnect();
    await server?.destroy();
  });

  it('reads every CU in 2 round trips and 3 commands, whatever their number (MONITOR and a delaying proxy)', async () => {
    const DELAY = 100;
    const proxy = await startTcpProxy(server.port, { delayMs: DELAY });
    const prefix = uniquePrefix();
    const writer = connect({ prefix, url: server.url });
    const reader = connect({ prefix, url: `redis://127.0.0.1:${proxy.port}`, seedSet: 'coding_units', commandTimeoutMs: 5000 });
    const monitor = await raw.monitor();
    const seen: string[][] = [];
    monitor.on('monitor', (_time: string, args: string[]) => seen.push(args));
    try {
      // MONITOR lags: markers before and after the read delimit what the read sent.
      const mark = async (): Promise<number> => {
        const marker = `marker-${randomBytes(4).toString('hex')}`;
        await raw.echo(marker);
        await eventually(() => seen.some((a) => a[1] === marker), 2000, 'the MONITOR marker');
        return seen.findIndex((a) => a[1] === marker);
      };
      const measure = async (): Promise<{ ms: number; commands: string[] }> => {
        const start = await mark();
        const t0 = performance.now();
        await reader.readAll();
        const ms = performance.now() - t0;
        const end = await mark();
        const commands = seen.slice(start + 1, end).map((a) => `${a[0]!.toLowerCase()} ${a.length - 1}`);
        return { ms, commands };
      };
      await putMany(writer, 1);
      await reader.readAll(); // connects through the proxy first
      const one = await measure();
      await putMany(writer, 500);
      const many = await measure();
      expect((await reader.readAll()).cus).toHaveLength(500);

      // SMEMBERS of our set and of the seed set and HGETALL of the document versions (sent
      // together), then one MGET of settings + records (+ documents whose version changed).
      expect(one.commands.sort()).toEqual(['hgetall 1', 'mget 2', 'smembers 1', 'smembers 1']);
      expect(many.commands.sort()).toEqual(['hgetall 1', 'mget 501', 'smembers 1', 'smembers 1']);
      // Each round trip costs 2 × DELAY through the proxy; a third would add another 200 ms.
      for (const { ms } of [one, many]) {
        expect(ms).toBeGreaterThanOrEqual(4 * DELAY - 5);
        expect(ms).toBeLessThan(5.5 * DELAY);
      }
      console.log(`readAll through a ${DELAY} ms-each-way proxy: 1 CU ${one.ms.toFixed(0)} ms, 500 CUs ${many.ms.toFixed(0)} ms (2 round trips = ${4 * DELAY} ms)`);
    } finally {
      monitor.disconnect();
      await reader.close();
      await writer.close();
      await proxy.close();
      await deletePrefix(raw, prefix);
    }
  });

  it('times out a command that Redis does not answer', async () => {
    const prefix = uniquePrefix();
    const store = connect({ prefix, url: server.url, commandTimeoutMs: 200 });
    try {
      await store.command('set', ['k', 'v']);
      await redisCli(server.port, 'client', 'pause', '1500', 'ALL');
      const t0 = performance.now();
      await expect(store.command('get', ['k'])).rejects.toMatchObject({ code: 'STORAGE', message: expect.stringMatching(/redis\.get: .*timed out/i) });
      await expect(store.readAll()).rejects.toMatchObject({ code: 'STORAGE', message: expect.stringMatching(/readAll failed: .*timed out/i) });
      expect(performance.now() - t0).toBeLessThan(1000);
    } finally {
      await redisCli(server.port, 'client', 'unpause');
      await store.close();
      await deletePrefix(raw, prefix);
    }
  });

  it('fails within the command timeout when Redis is not there, and connects when it comes', async () => {
    const port = await freePort();
    const store = connect({ prefix: uniquePrefix(), url: `redis://127.0.0.1:${port}`, commandTimeoutMs: 300 });
    let late: ChildProcess | undefined;
    let dir: string | undefined;
    try {
      const t0 = performance.now();
      await expect(store.readAll()).rejects.toMatchObject({ code: 'STORAGE', message: expect.stringMatching(/unreachable: not connected within 300 ms: .*ECONNREFUSED/) });
      await expect(store.command('incr', ['n'])).rejects.toMatchObject({ code: 'STORAGE' });
      expect(performance.now() - t0).toBeLessThan(1000);
      // ioredis keeps trying in the background (at most 1 s apart): a server that appears is used.
      dir = mkdtempSync(join(tmpdir(), 'outpost-redis-late-'));
      late = await spawnRedis(port, dir, ['--save', '', '--appendonly', 'no']);
      await eventually(
        () =>
          store.command('incr', ['n']).then(
            (n) => n === 1,
            () => false,
          ),
        3000,
        'the store to connect',
      );
    } finally {
      await store.close();
      await stopChild(late);
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('redis store: the seeds layout', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedisServer();
  });
  afterAll(async () => {
    await server?.destroy();
  });

  const AUTH_LUA =
    "access_by_lua_block||local token = ngx.var.arg_token or ngx.var.cookie_superstition \n if token ~= 'token' then \n return ngx.exit(ngx.HTTP_FORBIDDEN) \n else \n ngx.header['Set-Cookie'] = {'superstition=token'} \n end";

  for (const target of ['redis', 'redis-cluster'] as const) {
    it(`reads CUs written as the seeds do (SET id "phase||code", SADD coding_units id) on ${target}`, async () => {
      const c = target === 'redis-cluster' ? await theCluster() : undefined;
      const raw = c ? new Cluster(c.ports.map((port) => ({ host: '127.0.0.1', port }))) : new Redis(server.url);
      const prefix = uniquePrefix();
      const store = c
        ? RedisCuStore.connect({ kind: 'redis-cluster', url: SHARED_URL, nodes: [...c.nodes], prefix, commandTimeoutMs: 1000 })
        : connect({ prefix, url: server.url, seedSet: 'coding_units' });
      const seeds: Record<string, string> = {
        authentication: AUTH_LUA,
        'or-code': 'rewrite||if (req.args.a || req.args.b) exit(403)||30',
        'or-only': 'header_filter||res.headers["x-a"] = a || "b"',
        counter: "log||redis.incr('key')",
        'no-separator': 'just some code',
        'bad-phase': 'content_by_lua_block||ngx.say("hi")',
        'bad-sampling': 'access||exit(403)||250',
      };
      try {
        for (const [id, value] of Object.entries(seeds)) await raw.set(id, value);
        await raw.sadd('coding_units', ...Object.keys(seeds), 'listed-but-missing');
        const native = await store.put(cuSpec({ id: 'counter', phase: 'log', code: 'redis.incr("k")' }));

        const snap = await store.readAll();
        const byId = Object.fromEntries(snap.cus.map((cu) => [cu.id, cu]));
        expect(Object.keys(byId).sort()).toEqual(['authentication', 'counter', 'or-code', 'or-only']);
        // Lua from the seeds is read as is; the runtime reports it as a compile error.
        expect(byId['authentication']).toMatchObject({ phase: 'access', code: AUTH_LUA.slice('access_by_lua_block||'.length), sampling: 100, lang: 'js', version: seedVersion(AUTH_LUA) });
        expect(byId['or-code']).toMatchObject({ phase: 'rewrite', code: 'if (req.args.a || req.args.b) exit(403)', sampling: 30 });
        expect(byId['or-only']).toMatchObject({ phase: 'header_filter', code: 'res.headers["x-a"] = a || "b"', sampling: 100 });
        // Our own record of the same id takes precedence.
        expect(byId['counter']).toEqual(native);
        const errors = Object.fromEntries(snap.invalid.map((i) => [i.id, i.error]));
        expect(Object.keys(errors).sort()).toEqual(['bad-phase', 'bad-sampling', 'no-separator']);
        expect(errors['no-separator']).toMatch(/expected "phase\|\|code"/);
        expect(errors['bad-phase']).toMatch(/seed format: phase: expected one of/);
        expect(errors['bad-sampling']).toMatch(/sampling/);

        // Editing the value is a new version; the same value keeps its version.
        await raw.set('or-only', 'header_filter||res.headers["x-a"] = "c"');
        const again = await store.readAll();
        expect(again.cus.find((cu) => cu.id === 'or-only')!.version).not.toBe(byId['or-only']!.version);
        expect(again.cus.find((cu) => cu.id === 'authentication')!.version).toBe(byId['authentication']!.version);

        // Deleting through the store removes the seed-format CU as well.
        expect(await store.delete('authentication')).toBe(true);
        expect(await raw.sismember('coding_units', 'authentication')).toBe(0);
        expect(await raw.exists('authentication')).toBe(0);
        expect((await store.readAll()).cus.map((cu) => cu.id)).not.toContain('authentication');
      } finally {
        await store.close();
        // One key per DEL: on a cluster the seed keys lie in different slots.
        for (const key of ['coding_units', ...Object.keys(seeds)]) await raw.del(key);
        if (!c) await deletePrefix(raw as Redis, prefix);
        raw.disconnect();
      }
    });
  }
});

describe('redis store: subscription across a Redis restart', () => {
  it('re-subscribes after Redis restarts, tells listeners to re-read, and delivers later changes', async () => {
    const server = await startRedisServer();
    const prefix = uniquePrefix();
    const writer = connect({ prefix, url: server.url, commandTimeoutMs: 300 });
    const reader = connect({ prefix, url: server.url, commandTimeoutMs: 300 });
    try {
      const calls: number[] = [];
      await reader.subscribe(() => calls.push(performance.now()));
      await writer.put(cuSpec({ id: 'before' }));
      await eventually(() => calls.length === 1, 1000, 'the first notification');

      await server.stop();
      await expect(reader.readAll()).rejects.toMatchObject({ code: 'STORAGE' });
      await server.start();
      // Listeners hear once, when both the subscription and the command connection are back.
      await eventually(() => calls.length === 2, 5000, 'the notice after reconnecting');
      await sleep(300);
      expect(calls).toHaveLength(2);

      const n = calls.length;
      await eventually(
        () =>
          writer.put(cuSpec({ id: 'after' })).then(
            () => true,
            () => false,
          ),
        5000,
        'the writer to reconnect',
      );
      const t0 = performance.now();
      await eventually(() => calls.length > n, 1000, 'the notification of a change after the restart');
      expect(calls.at(-1)! - t0).toBeLessThan(1000);
      // The append-only file kept the data across the restart.
      expect((await reader.readAll()).cus.map((c) => c.id)).toEqual(['after', 'before']);
    } finally {
      await reader.close();
      await writer.close();
      await server.destroy();
    }
  });
});

describe('redis store: CU data', () => {
  it('keeps CU data keys under <prefix>:data: on Redis and on Redis Cluster', async () => {
    const c = await theCluster();
    const prefix = uniquePrefix();
    const raws = [new Redis(SHARED_URL), new Cluster(c.ports.map((port) => ({ host: '127.0.0.1', port })))] as const;
    const stores = [connect({ prefix }), RedisCuStore.connect({ kind: 'redis-cluster', url: SHARED_URL, nodes: [...c.nodes], prefix, commandTimeoutMs: 1000 })];
    try {
      for (const [i, store] of stores.entries()) {
        const raw = raws[i]!;
        expect(await store.command('set', ['k', 'v'])).toBe('OK');
        expect(await store.command('hincrby', ['per-ip', '10.0.0.1', 3])).toBe(3);
        expect(await raw.get(`${prefix}:data:k`)).toBe('v');
        expect(await raw.hget(`${prefix}:data:per-ip`, '10.0.0.1')).toBe('3');
        expect(await raw.exists('k')).toBe(0);
      }
    } finally {
      await Promise.all(stores.map((s) => s.close()));
      await deletePrefix(raws[0], prefix);
      for (const r of raws) r.disconnect();
    }
  });

  it('refuses a bad configuration with the setting named', () => {
    expect(() => connect({ prefix: 'outpost' })).toThrow(/compute\.store\.prefix: expected a Redis hash tag/);
    expect(() => connect({ prefix: '{o}', url: 'http://x' })).toThrow(/compute\.store\.url: expected a redis:\/\//);
    expect(() => connect({ prefix: '{o}', commandTimeoutMs: 0 })).toThrow(/compute\.store\.commandTimeout/);
    expect(() => RedisCuStore.connect({ kind: 'redis-cluster', url: SHARED_URL, nodes: ['127.0.0.1:7000'], prefix: '{o}', commandTimeoutMs: 10 })).toThrow(
      /compute\.store\.nodes: expected a redis:\/\//,
    );
  });
});

describe('redis-cluster store', () => {
  it('reads every CU with 2 SMEMBERS and 1 MGET in the whole cluster, whatever their number (INFO commandstats)', async () => {
    const c = await theCluster();
    const prefix = uniquePrefix();
    const store = RedisCuStore.connect({ kind: 'redis-cluster', url: SHARED_URL, nodes: [...c.nodes], prefix, commandTimeoutMs: 2000 });
    const count = async (): Promise<Record<string, number>> => {
      const totals: Record<string, number> = {};
      for (const port of c.ports) {
        const info = await redisCli(port, 'info', 'commandstats');
        for (const m of info.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)) totals[m[1]!] = (totals[m[1]!] ?? 0) + Number(m[2]);
      }
      return { smembers: totals['smembers'] ?? 0, mget: totals['mget'] ?? 0, get: totals['get'] ?? 0 };
    };
    try {
      for (const n of [1, 300]) {
        await putMany(store, n);
        await store.readAll(); // connections and slot map in place
        await Promise.all(c.ports.map((port) => redisCli(port, 'config', 'resetstat')));
        const snap = await store.readAll();
        expect(snap.cus.length).toBe(n);
        expect(await count()).toEqual({ smembers: 2, mget: 1, get: 0 });
      }
    } finally {
      await store.close();
    }
  });
});
