// Runs `outpost start` as a real child process (primary + workers) for multi-process tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { request } from 'undici';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface NodeProcess {
  readonly child: ChildProcess;
  readonly port: number;
  readonly adminPort: number;
  readonly base: string;
  readonly admin: string;
  output(): string;
  /** Sends SIGTERM and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startNodeProcess(dir: string, config: Record<string, unknown>): Promise<NodeProcess> {
  const port = await freePort();
  const adminPort = await freePort();
  const full = {
    ...config,
    edge: { host: '127.0.0.1', port, tlsPort: 0, workers: 2, tls: { dir: join(dir, 'tls') }, ...(config.edge as object) },
    admin: { host: '127.0.0.1', port: adminPort },
    log: { level: 'info', access: false, ...(config.log as object) },
  };
  const file = join(dir, 'outpost.json');
  writeFileSync(file, JSON.stringify(full));
  const child = spawn(process.execPath, ['src/cli.ts', 'start', '--config', file], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`outpost exited early:\n${out}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`outpost did not become ready:\n${out}`);
    }
    if (out.includes('outpost ready') || (await ready(port, adminPort))) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    child,
    port,
    adminPort,
    base: `http://127.0.0.1:${port}`,
    admin: `http://127.0.0.1:${adminPort}`,
    output: () => out,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null) child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Both the edge and the admin API answer /health (works whatever the log level). */
async function ready(port: number, adminPort: number): Promise<boolean> {
  try {
    for (const p of [port, adminPort]) {
      const r = await request(`http://127.0.0.1:${p}/health`, { headersTimeout: 1000 });
      await r.body.dump();
      if (r.statusCode !== 200) return false;
    }
    return true;
  } catch {
    return false;
  }
}

export async function workerPids(admin: string): Promise<number[]> {
  const res = await request(`${admin}/status`);
  const status = (await res.body.json()) as { workers: Array<{ pid: number; ready: boolean }> };
  return status.workers.filter((w) => w.ready).map((w) => w.pid);
}
