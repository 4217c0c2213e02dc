// CUs on real multi-worker nodes with a real Redis and a real Redis Cluster: propagation to every
// worker, a store outage, and a broken record written straight into Redis.
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Agent, request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startDemoOrigin, type DemoOrigin } from '../../src/origin/demo-origin.ts';
import { startNodeProcess, type NodeProcess } from '../cluster/node-process.ts';
import { get, sleep, tempDir } from '../helpers.ts';
import { startRedisCluster, type RedisCluster } from '../support/redis-cluster.ts';
import { startRedisServer, type RedisServer } from '../support/redis-server.ts';

let origin: DemoOrigin;
let node: NodeProcess | undefined;
let dir: string | undefined;
beforeAll(async () => {
  origin = await startDemoOrigin();
});
afterAll(() => origin.close());
afterEach(async () => {
  await node?.stop();
  node = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function start(store: Record<string, unknown>): Promise<NodeProcess> {
  dir = tempDir();
  node = await startNodeProcess(dir, {
    upstream: { pools: { default: { peers: [origin.url] } } },
    demoOrigin: { enabled: false },
    cache: { disk: { path: join(dir, 'cache') } },
    compute: { store, pollInterval: '1s' },
    log: { level: 'warn' },
  });
  return node;
}

async function admin(n: NodeProcess, method: string, path: string, body?: unknown) {
  return get(`${n.admin}${path}`, { method, headers: { 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
}

interface StatusBody {
  store: { healthy: boolean };
  workers: Array<{ worker: number; cus: Array<{ id: string; running?: number; error?: { kind: string } }> }>;
}

/** Resolves once every worker runs `version` of `id`; returns the ms it took. */
async function untilAllRun(n: NodeProcess, id: string, version: number, workers = 2, timeoutMs = 10_000): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < timeoutMs) {
    const st = JSON.parse((await admin(n, 'GET', '/cus/status')).text) as StatusBody;
    if (st.workers.length === workers && st.workers.every((w) => w.cus.some((c) => c.id === id && c.running === version))) return performance.now() - t0;
    await sleep(5);
  }
  throw new Error(`not every worker runs ${id} v${version} within ${timeoutMs} ms`);
}

/** Asks over many connections, so both workers answer. */
async function headersFromManyConnections(n: NodeProcess, path: string, count = 40): Promise<Array<string | undefined>> {
  const agent = new Agent({ connections: count, pipelining: 0 });
  try {
    return await Promise.all(
      Array.from({ length: count }, async () => {
        const r = await request(n.base + path, { dispatcher: agent, reset: true });
        await r.body.dump();
        const v = r.headers['x-cu'];
        return typeof v === 'string' ? v : undefined;
      }),
    );
  } finally {
    await agent.close();
  }
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

describe('CUs on a two-worker node with Redis', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedisServer();
  });
  afterAll(() => redis.destroy());

  it('reaches both workers after an API write, and measures the propagation time', async () => {
    const prefix = `{outpost-t-${randomBytes(4).toString('hex')}}`;
    const n = await start({ kind: 'redis', url: redis.url, prefix });
    const times: number[] = [];
    for (let i = 1; i <= 20; i++) {
      const t0 = performance.now();
      const r = await admin(n, 'PUT', '/cus/tag', { phase: 'access', code: `res.headers['x-cu'] = 'v${i}';` });
      expect(r.status, r.text).toBe(200);
      await untilAllRun(n, 'tag', JSON.parse(r.text).version);
      times.push(performance.now() - t0);
    }
    console.log(`propagation API write → both workers running (Redis, 20 writes): p50 ${percentile(times, 50).toFixed(1)} ms, p99 ${percentile(times, 99).toFixed(1)} ms`);
    expect((await headersFromManyConnections(n, '/p')).every((h) => h === 'v20')).toBe(true);
  });

  it('keeps running its CUs while Redis is down, and takes changes again once it is back', async () => {
    const prefix = `{outpost-t-${randomBytes(4).toString('hex')}}`;
    const n = await start({ kind: 'redis', url: redis.url, prefix, commandTimeout: '300ms' });
    const r = await admin(n, 'PUT', '/cus/keep', { phase: 'access', code: `res.headers['x-cu'] = 'before';` });
    await untilAllRun(n, 'keep', JSON.parse(r.text).version);
    await redis.stop();
    await sleep(2500);
    expect((await headersFromManyConnections(n, '/down')).every((h) => h === 'before')).toBe(true);
    const st = JSON.parse((await admin(n, 'GET', '/cus/status')).text) as StatusBody;
    expect(st.store.healthy).toBe(false);
    await redis.start();
    // A change written while this node was cut off from its own view of the store.
    const other = new Redis(redis.url);
    await other.set(`${prefix}:cu:keep`, JSON.stringify({ id: 'keep', phase: 'access', code: `res.headers['x-cu'] = 'after';`, version: 999_999, updatedAt: new Date().toISOString() }));
    await other.publish(`${prefix}:cu-changes`, 'keep');
    other.disconnect();
    await untilAllRun(n, 'keep', 999_999, 2, 15_000);
    expect((await headersFromManyConnections(n, '/up')).every((h) => h === 'after')).toBe(true);
  });

  it('skips a broken CU written straight into Redis while the others run', async () => {
    const prefix = `{outpost-t-${randomBytes(4).toString('hex')}}`;
    const n = await start({ kind: 'redis', url: redis.url, prefix });
    const good = await admin(n, 'PUT', '/cus/good', { phase: 'access', code: `res.headers['x-cu'] = 'good';` });
    await untilAllRun(n, 'good', JSON.parse(good.text).version);
    const direct = new Redis(redis.url);
    await direct.set(`${prefix}:cu:bad`, JSON.stringify({ id: 'bad', phase: 'access', code: 'if (', version: 1, updatedAt: new Date().toISOString() }));
    await direct.sadd(`${prefix}:cus`, 'bad');
    await direct.set(`${prefix}:cu:garbage`, '{not json');
    await direct.sadd(`${prefix}:cus`, 'garbage');
    await direct.publish(`${prefix}:cu-changes`, 'bad');
    direct.disconnect();
    let st: StatusBody | undefined;
    for (let i = 0; i < 100; i++) {
      st = JSON.parse((await admin(n, 'GET', '/cus/status')).text) as StatusBody;
      if (st.workers.every((w) => w.cus.find((c) => c.id === 'bad')?.error?.kind === 'compile')) break;
      await sleep(50);
    }
    for (const w of st!.workers) {
      expect(w.cus.find((c) => c.id === 'bad')?.error?.kind).toBe('compile');
      expect(w.cus.find((c) => c.id === 'garbage')?.error?.kind).toBe('invalid');
    }
    expect((await headersFromManyConnections(n, '/g')).every((h) => h === 'good')).toBe(true);
  });
});

describe('CUs on a two-worker node with Redis Cluster', () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await startRedisCluster(3);
  }, 60_000);
  afterAll(() => cluster.stop());

  it('stores CUs in the cluster and runs them on both workers', async () => {
    const n = await start({ kind: 'redis-cluster', nodes: [...cluster.nodes], prefix: '{outpost}' });
    const times: number[] = [];
    for (let i = 1; i <= 10; i++) {
      const t0 = performance.now();
      const r = await admin(n, 'PUT', '/cus/counter', { phase: 'access', code: `const c = await redis.incr('hits'); res.headers['x-cu'] = 'c' + (c > 0 ? 'ok' : 'bad') + '${i}';` });
      expect(r.status, r.text).toBe(200);
      await untilAllRun(n, 'counter', JSON.parse(r.text).version);
      times.push(performance.now() - t0);
    }
    console.log(`propagation API write → both workers running (Redis Cluster, 10 writes): p50 ${percentile(times, 50).toFixed(1)} ms, p99 ${percentile(times, 99).toFixed(1)} ms`);
    expect((await headersFromManyConnections(n, '/rc')).every((h) => h === 'cok10')).toBe(true);
  });
});
