// Scaffolding for load balancer tests: real Outpost edges in this process in front of one origin,
// a load balancer in front of them, and a load generator that records every request's fate.
import { rmSync } from 'node:fs';
import { Pool } from 'undici';
import { resolveConfig } from '../../src/config/load.ts';
import { startLoadBalancer, type LoadBalancer } from '../../src/lb/lb.ts';
import { createLogger } from '../../src/log/logger.ts';
import { startInProcessNode, type InProcessNode } from '../../src/node/in-process.ts';
import { tempDir, testConfig } from '../helpers.ts';

export interface TestEdge {
  readonly name: string;
  readonly node: InProcessNode;
  readonly url: string;
  close(): Promise<void>;
}

/** `n` in-process edges named edge-1…edge-n, all in front of `originUrl`. */
export async function startEdges(n: number, originUrl: string, overrides: Record<string, unknown> = {}): Promise<TestEdge[]> {
  return Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const dir = tempDir('outpost-lb-edge-');
      const name = `edge-${i + 1}`;
      const config = testConfig(originUrl, { edge: { name }, compute: { enabled: false }, ...overrides }, dir);
      const node = await startInProcessNode(config, { log: createLogger('silent') });
      return {
        name,
        node,
        url: `http://127.0.0.1:${node.edge.port}`,
        async close() {
          await node.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    }),
  );
}

/** A load balancer on ephemeral ports in front of `edges` (name → URL). */
export function startLb(edges: ReadonlyArray<{ name: string; url: string; weight?: number }>, lb: Record<string, unknown> = {}): Promise<LoadBalancer> {
  const config = resolveConfig({
    lb: { host: '127.0.0.1', port: 0, admin: { port: 0 }, edges, ...lb },
    demoOrigin: { enabled: false },
    upstream: { pools: { default: { peers: ['http://127.0.0.1:9'] } } },
  });
  return startLoadBalancer(config, { log: createLogger('silent'), defaultMetrics: false });
}

export interface Outcome {
  readonly path: string;
  readonly startedAt: number;
  readonly endedAt: number;
  readonly status?: number;
  readonly servedBy?: string;
  readonly error?: string;
}

/**
 * Sends requests from `concurrency` keep-alive connections until `durationMs` has passed or `stop`
 * resolves; each body is read to its end, so a response cut off mid-body counts as failed.
 */
export async function drive(
  base: string,
  opts: { concurrency: number; durationMs?: number; stop?: Promise<void>; path: (i: number) => string; servedBy?: string },
): Promise<Outcome[]> {
  const pool = new Pool(base, { connections: opts.concurrency, pipelining: 1 });
  const header = opts.servedBy ?? 'x-served-by';
  const out: Outcome[] = [];
  const end = performance.now() + (opts.durationMs ?? Infinity);
  let stopped = false;
  void opts.stop?.then(() => (stopped = true));
  let i = 0;
  const worker = async (): Promise<void> => {
    while (!stopped && performance.now() < end) {
      const path = opts.path(i++);
      const startedAt = performance.now();
      let status: number | undefined;
      let servedBy: string | undefined;
      try {
        const res = await pool.request({ method: 'GET', path, headersTimeout: 10_000, bodyTimeout: 10_000 });
        status = res.statusCode;
        servedBy = res.headers[header] as string | undefined;
        await res.body.arrayBuffer();
        out.push({ path, startedAt, endedAt: performance.now(), status, ...(servedBy ? { servedBy } : {}) });
      } catch (err) {
        const e = err as { code?: string; message?: string };
        out.push({ path, startedAt, endedAt: performance.now(), ...(status ? { status } : {}), ...(servedBy ? { servedBy } : {}), error: e.code ?? e.message ?? 'error' });
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  await pool.close();
  return out;
}

export async function until(cond: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const t0 = performance.now();
  while (!(await cond())) {
    if (performance.now() - t0 > ms) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
