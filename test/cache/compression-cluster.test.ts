// Compression in a real two-worker node: each object is compressed once per coding for the whole
// node (the cache lock and the shared disk tier), counted in the aggregated metrics.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoOrigin, type DemoOrigin } from '../../src/origin/demo-origin.ts';
import { startNodeProcess, type NodeProcess } from '../cluster/node-process.ts';
import { get, tempDir } from '../helpers.ts';

let origin: DemoOrigin;
let dir: string;
let node: NodeProcess;

beforeAll(async () => {
  origin = await startDemoOrigin();
  dir = tempDir();
  node = await startNodeProcess(dir, {
    upstream: { pools: { default: { peers: [origin.url] } } },
    demoOrigin: { enabled: false },
    cache: { disk: { path: join(dir, 'cache') } },
    compute: { enabled: false, store: { path: join(dir, 'store') } },
    log: { level: 'warn' },
  });
}, 30_000);
afterAll(async () => {
  await node?.stop();
  await origin?.close();
  rmSync(dir, { recursive: true, force: true });
});

function counted(metrics: string, encoding: string): number {
  const m = new RegExp(`^outpost_compressions_total\\{encoding="${encoding}"\\} (\\d+)`, 'm').exec(metrics);
  return m ? Number(m[1]) : 0;
}

describe('compression in a two-worker node', () => {
  it('compresses every object once per coding, whichever worker serves it', async () => {
    const objects = Array.from({ length: 8 }, (_, i) => `/static/${20 + i}k.html?cluster=1`);
    // Separate connections, so the kernel spreads the requests over both workers.
    const agent = new Agent({ connections: 64, pipelining: 0, keepAliveTimeout: 1 });
    const one = async (path: string, ae: string | undefined) => {
      const res = await request(node.base + path, { dispatcher: agent, headers: ae ? { 'accept-encoding': ae } : {}, reset: true });
      const body = Buffer.from(await res.body.arrayBuffer());
      const ce = res.headers['content-encoding'];
      const plain = ce === 'br' ? brotliDecompressSync(body) : ce === 'gzip' ? gunzipSync(body) : body;
      return { ce, length: plain.length };
    };
    try {
      // The objects first, uncompressed; then waves of clients asking for each coding at once.
      for (const p of objects) await one(p, undefined);
      for (let wave = 0; wave < 3; wave++) {
        const results = await Promise.all(objects.flatMap((p) => Array.from({ length: 6 }, (_, i) => one(p, i % 3 === 0 ? 'br' : i % 3 === 1 ? 'gzip' : undefined))));
        for (const [i, r] of results.entries()) {
          expect(r.ce).toBe(i % 3 === 0 ? 'br' : i % 3 === 1 ? 'gzip' : undefined);
          expect(r.length).toBe((20 + Math.floor(i / 6)) * 1024);
        }
      }
    } finally {
      await agent.close();
    }
    const metrics = (await get(`${node.admin}/metrics`)).text;
    expect(counted(metrics, 'br')).toBe(objects.length);
    expect(counted(metrics, 'gzip')).toBe(objects.length);
  }, 30_000);
});
