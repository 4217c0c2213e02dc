// Nodes sharing a Redis store: a registry with heartbeats, and purges that reach every node —
// including one that was down when the purge was issued.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log/logger.ts';
import { startInProcessNode, type InProcessNode } from '../../src/node/in-process.ts';
import { startDemoOrigin, type DemoOrigin } from '../../src/origin/demo-origin.ts';
import { get, tempDir, originHits, sleep, testConfig, until } from '../helpers.ts';
import { startRedisCluster, type RedisCluster } from '../support/redis-cluster.ts';

let origin: DemoOrigin;
const nodes: InProcessNode[] = [];
const dirs: string[] = [];

beforeAll(async () => {
  origin = await startDemoOrigin();
});
afterAll(async () => {
  await origin.close();
});
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.close()));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const HOST = 'cdn.fleet.test';

type StoreSetting = { kind: 'redis'; url: string } | { kind: 'redis-cluster'; nodes: readonly string[] };
const SHARED_REDIS: StoreSetting = { kind: 'redis', url: 'redis://127.0.0.1:6379' };

async function startNode(prefix: string, name: string, dir = tempDir(), extra: Record<string, unknown> = {}, store: StoreSetting = SHARED_REDIS): Promise<InProcessNode & { dir: string }> {
  if (!dirs.includes(dir)) dirs.push(dir);
  const config = testConfig(origin.url, { compute: { store: { ...store, prefix } }, fleet: { name, heartbeat: '200ms', ...extra } }, dir);
  const n = await startInProcessNode(config, { log: createLogger('silent') });
  nodes.push(n);
  return Object.assign(n, { dir });
}

const edge = (n: InProcessNode, path: string) => get(`http://127.0.0.1:${n.edge.port}${path}`, { headers: { host: HOST } });
const admin = (n: InProcessNode) => `http://127.0.0.1:${n.adminPort}`;
const purge = (n: InProcessNode, body: unknown) =>
  get(`${admin(n)}/purge`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

const uniquePrefix = () => `{outpost-fleet-${randomBytes(5).toString('hex')}}`;

describe('a fleet of nodes sharing Redis', () => {
  it('sends a purge by URL, prefix or tag issued on one node to every node', async () => {
    const prefix = uniquePrefix();
    const [a, b, c] = [await startNode(prefix, 'a'), await startNode(prefix, 'b'), await startNode(prefix, 'c')];
    const run = `${Date.now()}`;
    const paths = { url: `/f/${run}/one?max_age=300`, prefix: `/f/${run}/dir/x?max_age=300`, tag: `/f/${run}/tagged?max_age=300&tags=promo` };
    for (const n of [a, b, c]) for (const p of Object.values(paths)) await edge(n, p);
    for (const n of [a, b, c]) for (const p of Object.values(paths)) expect((await edge(n, p)).header('x-cache-status')).toBe('HIT');

    const r = await purge(a, { urls: [`http://${HOST}${paths.url}`] });
    expect(r.status).toBe(200);
    const lag = await until('b and c to purge the URL', async () => (await edge(b, paths.url)).header('x-cache-status') === 'MISS' && (await edge(c, paths.url)).header('x-cache-status') === 'MISS');
    expect((await edge(b, paths.prefix)).header('x-cache-status')).toBe('HIT');

    await purge(b, { prefixes: [`http://${HOST}/f/${run}/dir/`] });
    await until('a and c to purge the prefix', async () => (await edge(a, paths.prefix)).header('x-cache-status') === 'MISS' && (await edge(c, paths.prefix)).header('x-cache-status') === 'MISS');
    await purge(c, { tags: ['promo'] });
    await until('a and b to purge the tag', async () => (await edge(a, paths.tag)).header('x-cache-status') === 'MISS' && (await edge(b, paths.tag)).header('x-cache-status') === 'MISS');
    console.log(`purge reached two other nodes in ${lag.toFixed(0)} ms (including the test's requests)`);
  });

  it('applies, when a node comes back, a purge issued while it was down — and keeps its cache otherwise', async () => {
    const prefix = uniquePrefix();
    const a = await startNode(prefix, 'a');
    let c = await startNode(prefix, 'c');
    const keep = `/f/${Date.now()}/keep?max_age=300`;
    const gone = `/f/${Date.now()}/gone?max_age=300`;
    await edge(c, keep);
    await edge(c, gone);
    const cDir = c.dir;
    await c.close();
    nodes.splice(nodes.indexOf(c), 1);

    await purge(a, { urls: [`http://${HOST}${gone}`] });
    c = await startNode(prefix, 'c', cDir);
    // The disk tier kept both objects across the restart; only the purged one is gone.
    expect((await edge(c, keep)).header('x-cache-status')).toBe('HIT');
    expect((await edge(c, gone)).header('x-cache-status')).toBe('MISS');
    expect(originHits(origin, gone)).toBe(2);
  });

  it('purges everything on a returning node whose missed purges were trimmed from the log', async () => {
    const prefix = uniquePrefix();
    const a = await startNode(prefix, 'a', tempDir(), { purgeHistory: 100 });
    let c = await startNode(prefix, 'c', tempDir(), { purgeHistory: 100 });
    const p = `/f/${Date.now()}/old?max_age=300`;
    await edge(c, p);
    const cDir = c.dir;
    await c.close();
    nodes.splice(nodes.indexOf(c), 1);
    // Approximate trimming removes whole stream nodes (100 entries each): 400 purges trim some.
    for (let i = 0; i < 400; i++) await purge(a, { urls: [`http://${HOST}/unrelated/${i}`] });
    c = await startNode(prefix, 'c', cDir, { purgeHistory: 100 });
    expect((await edge(c, p)).header('x-cache-status')).toBe('MISS');
  });

  it('lists the nodes with role, version and hit ratio, through the API and `outpost nodes`', async () => {
    const prefix = uniquePrefix();
    const a = await startNode(prefix, 'edge-a');
    await startNode(prefix, 'shield-1', tempDir(), { role: 'shield' });
    const p = `/f/${Date.now()}/ratio?max_age=300`;
    for (let i = 0; i < 4; i++) await edge(a, p);
    let list: Array<{ name: string; role: string; version: string; hitRatio: number; up: boolean; requests: number }> = [];
    await until('both nodes with fresh stats', async () => {
      list = (JSON.parse((await get(`${admin(a)}/nodes`)).text) as { nodes: typeof list }).nodes;
      return list.length === 2 && (list.find((n) => n.name === 'edge-a')?.requests ?? 0) >= 4;
    });
    expect(list.map((n) => [n.name, n.role, n.up])).toEqual([
      ['edge-a', 'edge', true],
      ['shield-1', 'shield', true],
    ]);
    expect(list[0]!.hitRatio).toBeCloseTo(0.75, 2);
    expect(list[0]!.version).toMatch(/^\d+\.\d+\.\d+$/);
    const out = await promisify(execFile)('bin/outpost', ['nodes', '--admin', admin(a)], { timeout: 20_000 });
    expect(out.stdout).toMatch(/edge-a\*?\s+edge\s+up\s+\S+\s+75\.0%/);
    expect(out.stdout).toMatch(/shield-1\s+shield\s+up/);
  });
});

describe('a fleet of nodes sharing a Redis Cluster', () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await startRedisCluster(3);
  }, 30_000);
  afterAll(() => cluster.stop());

  it('lists the nodes and brings every purge to every node, one that was down included', async () => {
    const store: StoreSetting = { kind: 'redis-cluster', nodes: [...cluster.nodes] };
    const prefix = uniquePrefix();
    const a = await startNode(prefix, 'a', tempDir(), {}, store);
    const b = await startNode(prefix, 'b', tempDir(), {}, store);
    let c = await startNode(prefix, 'c', tempDir(), {}, store);
    const run = `${Date.now()}`;
    const live = `/fc/${run}/live?max_age=300&tags=promo`;
    const missed = `/fc/${run}/missed?max_age=300`;
    const keep = `/fc/${run}/keep?max_age=300`;
    for (const n of [a, b, c]) for (const p of [live, missed, keep]) await edge(n, p);

    await until('three nodes in the registry', async () => (JSON.parse((await get(`${admin(a)}/nodes`)).text) as { nodes: unknown[] }).nodes.length === 3);

    await purge(b, { tags: ['promo'] });
    await until('a and c to purge the tag', async () => (await edge(a, live)).header('x-cache-status') === 'MISS' && (await edge(c, live)).header('x-cache-status') === 'MISS');

    const cDir = c.dir;
    await c.close();
    nodes.splice(nodes.indexOf(c), 1);
    await purge(a, { urls: [`http://${HOST}${missed}`] });
    c = await startNode(prefix, 'c', cDir, {}, store);
    expect((await edge(c, missed)).header('x-cache-status')).toBe('MISS');
    expect((await edge(c, keep)).header('x-cache-status')).toBe('HIT');
    await until('b to purge the URL', async () => (await edge(b, missed)).header('x-cache-status') === 'MISS');
  });
});
