// A global rate limit shared by two nodes (separate `outpost start` processes) through a Redis the
// test owns: together they let through what the limit allows, within 5 %; with Redis stopped each
// falls back to its own local limit (logged, and visible in outpost_ratelimit_mode), and goes
// back to the shared limit when Redis returns.
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoOrigin, type DemoOrigin } from '../../src/origin/demo-origin.ts';
import { get, tempDir } from '../helpers.ts';
import { startRedisServer, type RedisServer } from '../support/redis-server.ts';
import { hammer } from './hammer.ts';
import { startNodeProcess, type NodeProcess } from './node-process.ts';

const RATE = 200;
const BURST = 100;
const LOCAL_RATE = 100;
const LOCAL_BURST = 50;

let origin: DemoOrigin;
let redis: RedisServer;
const nodes: NodeProcess[] = [];
const dirs: string[] = [];

beforeAll(async () => {
  [origin, redis] = await Promise.all([startDemoOrigin(), startRedisServer()]);
  const prefix = `outpost-test-rl-${randomBytes(4).toString('hex')}`;
  const start = async () => {
    const dir = tempDir();
    dirs.push(dir);
    return startNodeProcess(dir, {
      upstream: { pools: { default: { peers: [origin.url] } } },
      demoOrigin: { enabled: false },
      edge: { workers: 1 },
      cache: { disk: { path: join(dir, 'cache') } },
      compute: { store: { path: join(dir, 'store') } },
      security: {
        rateLimit: { rate: `${RATE}/s`, burst: BURST, global: { url: redis.url, prefix, localRate: `${LOCAL_RATE}/s`, localBurst: LOCAL_BURST } },
      },
    });
  };
  nodes.push(...(await Promise.all([start(), start()])));
}, 30_000);

afterAll(async () => {
  await Promise.all(nodes.map((n) => n.stop()));
  await Promise.all([origin?.close(), redis?.destroy()]);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}, 30_000);

async function mode(n: NodeProcess): Promise<string | undefined> {
  const text = (await get(`${n.admin}/metrics`)).text;
  return /outpost_ratelimit_mode\{limit="default",mode="(global|local)"\} 1/.exec(text)?.[1];
}

async function waitForMode(want: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const modes = await Promise.all(nodes.map(mode));
    if (modes.every((m) => m === want)) return;
    if (Date.now() > deadline) throw new Error(`modes ${modes.join(', ')} after ${ms} ms, expected ${want}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const urls = () => nodes.map((n) => `${n.base}/global?max_age=60`);

describe('a global rate limit across two nodes sharing Redis', () => {
  it('lets through the limit within 5 % across both nodes together', async () => {
    await waitForMode('global', 5000);
    const r = await hammer(urls(), { connections: 24, durationMs: 4000 });
    const expected = BURST + (RATE * r.elapsedMs) / 1000;
    const ok = r.count(200);
    const [a, b] = urls().map((u) => r.count(200, u));
    console.log(`global ${RATE}/s burst ${BURST} over 2 nodes: ${ok} allowed (${a} + ${b}) of ${ok + r.count(429)} in ${r.elapsedMs.toFixed(0)} ms (expected ${expected.toFixed(0)})`);
    expect(r.count(0)).toBe(0);
    expect(a).toBeGreaterThan(expected * 0.2);
    expect(b).toBeGreaterThan(expected * 0.2);
    expect(Math.abs(ok - expected) / expected).toBeLessThan(0.05);
  }, 20_000);

  it('falls back to each node’s local limit while Redis is down, and shares the limit again when it returns', async () => {
    await redis.stop();
    await waitForMode('local', 5000);
    for (const n of nodes) expect(n.output()).toMatch(/rate limit: Redis unreachable; falling back to this node's local limit/);
    const down = await hammer(urls(), { connections: 16, durationMs: 2500 });
    const localExpected = LOCAL_BURST + (LOCAL_RATE * down.elapsedMs) / 1000;
    const perNode = urls().map((u) => down.count(200, u));
    console.log(`Redis down: ${perNode.join(' + ')} allowed in ${down.elapsedMs.toFixed(0)} ms (each expected ${localExpected.toFixed(0)})`);
    for (const n of perNode) expect(Math.abs(n - localExpected) / localExpected).toBeLessThan(0.05);
    expect(down.count(429)).toBeGreaterThan(0);

    await redis.start();
    await waitForMode('global', 5000);
    for (const n of nodes) expect(n.output()).toMatch(/rate limit: Redis reachable again/);
    // The shared bucket refilled while Redis was away.
    await new Promise((r) => setTimeout(r, 500));
    const up = await hammer(urls(), { connections: 16, durationMs: 2500 });
    const expected = BURST + (RATE * up.elapsedMs) / 1000;
    const ok = up.count(200);
    console.log(`Redis back: ${ok} allowed in ${up.elapsedMs.toFixed(0)} ms (expected ${expected.toFixed(0)})`);
    expect(Math.abs(ok - expected) / expected).toBeLessThan(0.05);
  }, 25_000);
});
