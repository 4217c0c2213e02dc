// Running the shipped deployment files on loopback: the compose file and the role configs as parsed
// data, an Outpost node started from a role config rewritten for this machine (free ports, temp
// dirs, compose service names mapped to local URLs), and a real Prometheus when one is installed.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { parse as parseYaml } from 'yaml';
import { freePort, stopChild, trackChild } from '../support/redis-server.ts';

export const ROOT = join(import.meta.dirname, '../..');

type Raw = Record<string, unknown>;

export function readYaml(relPath: string): Raw {
  // merge: compose files share settings through `<<: *anchor`.
  return parseYaml(readFileSync(join(ROOT, relPath), 'utf8'), { merge: true }) as Raw;
}

export function readJson(relPath: string): Raw {
  return JSON.parse(readFileSync(join(ROOT, relPath), 'utf8')) as Raw;
}

export interface ComposeService {
  image?: string;
  build?: string | { context: string };
  command?: string | string[];
  entrypoint?: string | string[];
  environment?: Record<string, string> | string[];
  ports?: string[];
  volumes?: string[];
  configs?: Array<{ source: string; target: string }>;
  depends_on?: string[] | Record<string, { condition: string }>;
  healthcheck?: { test: string[] | string };
}

export interface Compose {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
  configs?: Record<string, { content?: string; file?: string }>;
}

export function loadCompose(): Compose {
  return readYaml('docker-compose.yml') as unknown as Compose;
}

/** The value compose gives `${NAME:-default}` when NAME is not set. */
export function composeDefault(text: string): string {
  const m = text.match(/^\$\{[A-Z_]+:-(.*)\}$/);
  return m ? m[1]! : text;
}

export function dependsOn(s: ComposeService): Record<string, string> {
  const d = s.depends_on ?? {};
  return Array.isArray(d) ? Object.fromEntries(d.map((n) => [n, 'service_started'])) : Object.fromEntries(Object.entries(d).map(([k, v]) => [k, v.condition]));
}

/** The host file a compose bind mount names, and where it appears in the container. */
export function bindMounts(s: ComposeService): Array<{ host: string; container: string }> {
  return (s.volumes ?? [])
    .map((v) => v.split(':'))
    .filter(([src]) => src!.startsWith('./'))
    .map(([src, dst]) => ({ host: src!.slice(2), container: dst! }));
}

/** The role config (deploy/outpost/*.yaml) a compose service runs, from its --config and its mounts. */
export function roleConfigOf(s: ComposeService): string | undefined {
  const cmd = Array.isArray(s.command) ? s.command : [];
  const i = cmd.indexOf('--config');
  if (i < 0) return undefined;
  return bindMounts(s).find((m) => m.container === cmd[i + 1])?.host;
}

/**
 * A deploy config rewritten for loopback: its peers' compose service URLs replaced through `peers`
 * (e.g. "http://shield:8080" → the local shield), its listeners on 127.0.0.1, its files in `dir`.
 */
export function localize(raw: Raw, dir: string, opts: { peers: Readonly<Record<string, string>>; storeNodes?: readonly string[]; edgePort: number; adminPort: number }): Raw {
  const c = structuredClone(raw) as {
    edge: Raw;
    admin: Raw;
    upstream?: { pools?: Record<string, { peers: string[] }> };
    cache?: { disk?: Raw };
    compute?: { store?: Raw };
    log?: Raw;
  };
  c.edge = { ...c.edge, host: '127.0.0.1', port: opts.edgePort, workers: 1, tls: { dir: join(dir, 'tls') } };
  c.admin = { ...c.admin, host: '127.0.0.1', port: opts.adminPort };
  for (const pool of Object.values(c.upstream?.pools ?? {})) {
    pool.peers = pool.peers.map((p) => {
      const local = opts.peers[p];
      if (!local) throw new Error(`no local stand-in for peer ${p}`);
      return local;
    });
  }
  c.cache = { ...c.cache, disk: { ...c.cache?.disk, path: join(dir, 'cache') } };
  const store = { ...c.compute?.store, path: join(dir, 'store') } as Raw;
  if (store.kind === 'redis-cluster') {
    if (!opts.storeNodes) throw new Error('this config needs a Redis Cluster');
    store.nodes = [...opts.storeNodes];
  }
  c.compute = { ...c.compute, store };
  c.log = { level: 'warn', access: false };
  return c as Raw;
}

export interface OutpostProcess {
  readonly base: string;
  readonly admin: string;
  readonly adminPort: number;
  output(): string;
  stop(): Promise<void>;
}

async function healthy(url: string): Promise<boolean> {
  try {
    const r = await request(url, { headersTimeout: 1000, bodyTimeout: 1000 });
    await r.body.dump();
    return r.statusCode === 200;
  } catch {
    return false;
  }
}

/** `outpost start` as a real child process (primary and workers) on a config rewritten by localize(). */
export async function startOutpost(dir: string, name: string, build: (ports: { edgePort: number; adminPort: number }) => Raw, env: NodeJS.ProcessEnv = {}): Promise<OutpostProcess> {
  const edgePort = await freePort();
  const adminPort = await freePort();
  mkdirSync(join(dir, name), { recursive: true });
  const file = join(dir, name, 'outpost.json');
  writeFileSync(file, JSON.stringify(build({ edgePort, adminPort })));
  return startCli(name, ['start', '--config', file], edgePort, adminPort, env);
}

/** Any `outpost` command that serves HTTP on `port` and an admin API on `adminPort`, both with /health. */
export async function startCli(name: string, args: readonly string[], port: number, adminPort: number, env: NodeJS.ProcessEnv = {}): Promise<OutpostProcess> {
  const child = spawn(process.execPath, ['--no-node-snapshot', 'src/cli.ts', ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  trackChild(child);
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const base = `http://127.0.0.1:${port}`;
  const admin = `http://127.0.0.1:${adminPort}`;
  const deadline = Date.now() + 20_000;
  while (!((await healthy(`${base}/health`)) && (await healthy(`${admin}/health`)))) {
    if (child.exitCode !== null) throw new Error(`${name} exited early:\n${out}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${name} did not become ready:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { base, admin, adminPort, output: () => out, stop: () => stopChild(child) };
}

/** A binary's path if it is installed (Debian's prometheus package puts both in /usr/bin). */
export function which(bin: string): string | undefined {
  try {
    const p = execFileSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' }).trim();
    return p && existsSync(p) ? p : undefined;
  } catch {
    return undefined;
  }
}

export interface Prometheus {
  readonly url: string;
  output(): string;
  stop(): Promise<void>;
}

/** A real Prometheus on 127.0.0.1, storing in `dir`, with the given configuration file. */
export async function startPrometheus(bin: string, configFile: string, dir: string): Promise<Prometheus> {
  const port = await freePort();
  const child: ChildProcess = spawn(
    bin,
    [`--config.file=${configFile}`, `--storage.tsdb.path=${join(dir, 'tsdb')}`, `--web.listen-address=127.0.0.1:${port}`, '--storage.tsdb.retention.time=1h', '--log.level=warn'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  trackChild(child);
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  while (!(await healthy(`${url}/-/ready`))) {
    if (child.exitCode !== null) throw new Error(`prometheus exited early:\n${out}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`prometheus did not become ready:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url, output: () => out, stop: () => stopChild(child) };
}

export interface PromResult {
  readonly status: string;
  readonly error?: string;
  readonly data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> };
}

/** An instant query through Prometheus's HTTP API. */
export async function promQuery(url: string, expr: string): Promise<PromResult> {
  const r = await request(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`, { headersTimeout: 5000, bodyTimeout: 5000 });
  return (await r.body.json()) as PromResult;
}
