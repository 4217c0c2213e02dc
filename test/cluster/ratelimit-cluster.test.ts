// A rate limit on a real node with two worker processes: the node as a whole lets through what
// the limit allows, within 5 %, however the kernel spreads the connections over the workers.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoOrigin, type DemoOrigin } from '../../src/origin/demo-origin.ts';
import { get, tempDir } from '../helpers.ts';
import { hammer } from './hammer.ts';
import { startNodeProcess, type NodeProcess } from './node-process.ts';

let origin: DemoOrigin;
let node: NodeProcess | undefined;
let dir: string;

beforeAll(async () => {
  origin = await startDemoOrigin();
});
afterAll(async () => {
  await node?.stop();
  await origin.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Pids of the workers that answered with `status`, from the access log. */
function pidsAnswering(output: string, status: number): Map<number, number> {
  const pids = new Map<number, number>();
  for (const line of output.split('\n')) {
    if (!line.includes('"type":"access"')) continue;
    try {
      const r = JSON.parse(line) as { pid: number; status: number };
      if (r.status === status) pids.set(r.pid, (pids.get(r.pid) ?? 0) + 1);
    } catch {
      // a partial line
    }
  }
  return pids;
}

describe('rate limiting in a node with two workers', () => {
  it('lets through the limit within 5 % across both workers, refusing the rest with 429', async () => {
    dir = tempDir();
    const RATE = 200;
    const BURST = 100;
    node = await startNodeProcess(dir, {
      upstream: { pools: { default: { peers: [origin.url] } } },
      demoOrigin: { enabled: false },
      cache: { disk: { path: join(dir, 'cache') } },
      compute: { store: { path: join(dir, 'store') } },
      log: { level: 'info', access: true },
      security: { rateLimit: { rate: `${RATE}/s`, burst: BURST } },
    });
    const url = `${node.base}/limited?max_age=60`;
    const r = await hammer([url], { connections: 48, durationMs: 4000 });
    const expected = BURST + (RATE * r.elapsedMs) / 1000;
    const ok = r.count(200);
    console.log(`2 workers, ${RATE}/s burst ${BURST}: ${ok} allowed of ${ok + r.count(429)} in ${r.elapsedMs.toFixed(0)} ms (expected ${expected.toFixed(0)})`);
    expect(r.count(0)).toBe(0);
    expect(r.count(429)).toBeGreaterThan(ok);
    expect(Math.abs(ok - expected) / expected).toBeLessThan(0.05);
    // Both workers served allowed requests and both refused some.
    await new Promise((res) => setTimeout(res, 200));
    const served = pidsAnswering(node.output(), 200);
    const refused = pidsAnswering(node.output(), 429);
    expect(served.size).toBe(2);
    expect(refused.size).toBe(2);
    const metrics = (await get(`${node.admin}/metrics`)).text;
    const counted = Number(/outpost_ratelimit_refused_total\{limit="default"\} (\d+)/.exec(metrics)?.[1]);
    expect(counted).toBe(r.count(429));
  }, 30_000);
});
