// Shared test scaffolding: a real demo origin, a real edge in this process, and small HTTP helpers.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { resolveConfig, type OutpostConfig } from '../src/config/load.ts';
import type { EdgeHooks } from '../src/edge/phases.ts';
import { createLogger } from '../src/log/logger.ts';
import { startInProcessNode, type InProcessNode } from '../src/node/in-process.ts';
import { startDemoOrigin, type DemoOrigin } from '../src/origin/demo-origin.ts';

type Raw = Record<string, unknown>;

function merge(a: Raw, b: Raw): Raw {
  const out: Raw = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] = prev && typeof prev === 'object' && !Array.isArray(prev) && v && typeof v === 'object' && !Array.isArray(v) ? merge(prev as Raw, v as Raw) : v;
  }
  return out;
}

export function tempDir(prefix = 'outpost-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A config for tests: ephemeral ports, a private disk cache, quiet logs. */
export function testConfig(originUrl: string, overrides: Raw = {}, cacheDir = tempDir()): OutpostConfig {
  const base: Raw = {
    edge: { host: '127.0.0.1', port: 0, tlsPort: 0, workers: 1, tls: { dir: join(cacheDir, 'tls') } },
    admin: { host: '127.0.0.1', port: 0 },
    upstream: { pools: { default: { peers: [originUrl], readTimeout: '5s' } } },
    demoOrigin: { enabled: false },
    cache: { disk: { path: join(cacheDir, 'cache'), enabled: process.env.OUTPOST_TEST_DISK !== '0' } },
    compute: { store: { path: join(cacheDir, 'store') }, pollInterval: '1s' },
    log: { level: 'silent', access: false },
  };
  return resolveConfig(merge(base, overrides));
}

export interface Stack {
  readonly origin: DemoOrigin;
  readonly node: InProcessNode;
  readonly base: string;
  readonly admin: string;
  readonly dir: string;
  close(): Promise<void>;
}

/** Starts a demo origin and an in-process edge; overrides may depend on the origin's URL. */
export async function startStack(overrides: Raw | ((originUrl: string) => Raw) = {}, opts: { hooks?: readonly EdgeHooks[]; originPort?: number } = {}): Promise<Stack> {
  const origin = await startDemoOrigin({ port: opts.originPort ?? 0 });
  const dir = tempDir();
  const config = testConfig(origin.url, typeof overrides === 'function' ? overrides(origin.url) : overrides, dir);
  const node = await startInProcessNode(config, { log: createLogger('silent'), ...(opts.hooks ? { hooks: opts.hooks } : {}) });
  return {
    origin,
    node,
    dir,
    base: `http://127.0.0.1:${node.edge.port}`,
    admin: `http://127.0.0.1:${node.adminPort}`,
    async close() {
      await node.close();
      await origin.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Got {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
  readonly body: Buffer;
  header(name: string): string | undefined;
}

export async function get(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Got> {
  const res = await request(url, { method: (opts.method ?? 'GET') as 'GET', headers: opts.headers ?? {}, body: opts.body ?? null });
  const body = Buffer.from(await res.body.arrayBuffer());
  return {
    status: res.statusCode,
    headers: res.headers,
    body,
    text: body.toString('utf8'),
    header(name: string) {
      const v = res.headers[name.toLowerCase()];
      return Array.isArray(v) ? v.join(', ') : v;
    },
  };
}

/** Polls `check` every 10 ms until it holds; resolves to the ms it took, throws naming `what` after `ms`. */
export async function until(what: string, check: () => Promise<boolean>, ms = 3000): Promise<number> {
  const t0 = performance.now();
  while (!(await check())) {
    if (performance.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
  return performance.now() - t0;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Requests to the origin for one path+query, as the origin counted them. */
export function originHits(origin: DemoOrigin, pathAndQuery: string): number {
  return origin.stats().byPath[pathAndQuery] ?? 0;
}
