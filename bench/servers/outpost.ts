// Outpost started from its own CLI with a config like the one users write: RAM cache in front of the
// shared disk tier (nginx's proxy_cache is a disk cache too), cache lock on, no access log, same
// origin as the others.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, httpGet, startProcess, waitUntil } from '../proc.ts';
import { treePids } from '../machine.ts';
import type { RunningServer, StartOptions } from './types.ts';

export interface OutpostOptions extends StartOptions {
  /** The project root, where src/cli.ts lives. */
  readonly root: string;
  /** Server id in the results (default `outpost`). */
  readonly id?: 'outpost' | 'outpost-secure';
  /** Top-level config sections added to the bench's config (e.g. `security`). */
  readonly extra?: Readonly<Record<string, unknown>>;
}

export function outpostConfig(p: { port: number; tlsPort: number; adminPort: number; originPort: number; workers: number; dir: string }): object {
  return {
    edge: { host: '127.0.0.1', port: p.port, tlsPort: p.tlsPort, workers: p.workers },
    upstream: { pools: { default: { peers: [`http://127.0.0.1:${p.originPort}`] } } },
    demoOrigin: { enabled: false },
    cache: { ram: { maxBytes: '512m' }, disk: { enabled: true, path: join(p.dir, 'cache'), maxBytes: '1g' }, lock: { enabled: true } },
    // Edge computing stays on, as by default, with no CU deployed; its store lives in the scratch folder.
    compute: { store: { kind: 'embedded', path: join(p.dir, 'store') } },
    admin: { host: '127.0.0.1', port: p.adminPort },
    log: { access: false, level: 'warn' },
  };
}

export function outpostAvailable(root: string): boolean {
  return existsSync(join(root, 'src/cli.ts'));
}

export async function start(originPort: number, workers: number, opts: OutpostOptions): Promise<RunningServer & { adminPort: number }> {
  const port = await freePort();
  const tlsPort = opts.tls === true ? await freePort() : 0;
  const adminPort = await freePort();
  const file = join(opts.dir, 'outpost.json');
  writeFileSync(file, JSON.stringify({ ...outpostConfig({ port, tlsPort, adminPort, originPort, workers, dir: opts.dir }), ...opts.extra }, null, 2));
  const proc = startProcess(opts.bin, [join(opts.root, 'src/cli.ts'), 'start', '--config', file], { cpus: opts.cpus, cwd: opts.root });
  await waitUntil('outpost', proc, 45_000, async () => (await httpGet(port, '/health', { timeoutMs: 1_000 })).status === 200);
  return {
    id: opts.id ?? 'outpost',
    port,
    tlsPort: tlsPort === 0 ? undefined : tlsPort,
    adminPort,
    pid: proc.pid,
    pids: () => treePids(proc.pid),
    stop: () => proc.stop(),
  };
}
