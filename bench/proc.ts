// Child-process plumbing shared by the servers and load generators: every process the bench starts
// gets its own process group, is tracked until stopped, and every wait is bounded in time.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { request } from 'node:http';
import { OutpostError } from '../src/errors.ts';

export interface Started {
  readonly child: ChildProcess;
  readonly pid: number;
  /** stdout and stderr so far, trimmed to the last 64 KB, for error messages. */
  output(): string;
  /** Resolves with the exit code (or signal name) once the process is gone. */
  readonly exited: Promise<string>;
  stop(timeoutMs?: number): Promise<void>;
}

const live = new Set<Started>();

/** Starts a long-running process in its own process group, so stop() ends its workers too. */
export function startProcess(cmd: string, args: readonly string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; cpus?: string } = {}): Started {
  const [file, argv] = opts.cpus === undefined ? [cmd, args] : ['taskset', ['-c', opts.cpus, cmd, ...args]];
  const child = spawn(file, argv, { cwd: opts.cwd, env: opts.env ?? process.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (chunk: Buffer): void => {
    out += chunk.toString('utf8');
    if (out.length > 65_536) out = out.slice(-65_536);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => resolve(signal ?? String(code)));
    child.once('error', (err) => {
      keep(Buffer.from(String(err)));
      resolve('error');
    });
  });
  if (child.pid === undefined) throw new OutpostError('INTERNAL', `could not start ${cmd}`);
  const pid = child.pid;
  let stopping: Promise<void> | undefined;
  const started: Started = {
    child,
    pid,
    output: () => out,
    exited,
    stop(timeoutMs = 5_000) {
      stopping ??= (async () => {
        signalGroup(pid, 'SIGTERM');
        const gone = await Promise.race([exited.then(() => true), sleep(timeoutMs).then(() => false)]);
        // The group may keep workers after the leader exits, so kill the whole group in any case.
        signalGroup(pid, 'SIGKILL');
        if (!gone) await Promise.race([exited, sleep(2_000)]);
        live.delete(started);
      })();
      return stopping;
    },
  };
  live.add(started);
  return started;
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/** Stops every process this bench started; used on exit and on interrupt. */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((p) => p.stop(3_000)));
}

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

/** Runs a command to completion, killed after timeoutMs. */
export function runCommand(cmd: string, args: readonly string[], opts: { timeoutMs: number; cpus?: string; env?: NodeJS.ProcessEnv; cwd?: string }): Promise<RunResult> {
  const [file, argv] = opts.cpus === undefined ? [cmd, args] : ['taskset', ['-c', opts.cpus, cmd, ...args]];
  return new Promise((resolve) => {
    execFile(
      file,
      argv,
      { timeout: opts.timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024, env: opts.env ?? process.env, cwd: opts.cwd },
      (err, stdout, stderr) => {
        const e = err as (NodeJS.ErrnoException & { killed?: boolean; code?: unknown }) | null;
        const code = e === null ? 0 : typeof e.code === 'number' ? e.code : null;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) + (e && code === null ? String(e.message) : ''), timedOut: e?.killed === true });
      },
    );
  });
}

/** Whether a command can be found on PATH (or the usual sbin folders, where Debian puts nginx and varnishd). */
export async function which(cmd: string): Promise<string | undefined> {
  const path = `${process.env['PATH'] ?? ''}:/usr/sbin:/sbin:/usr/local/sbin`;
  const r = await runCommand('sh', ['-c', `command -v ${cmd}`], { timeoutMs: 5_000, env: { ...process.env, PATH: path } });
  const found = r.stdout.trim();
  return r.code === 0 && found !== '' ? found : undefined;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface HttpReply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** One small HTTP request to 127.0.0.1, bounded in time. */
export function httpGet(port: number, path: string, opts: { method?: string; timeoutMs?: number } = {}): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: opts.method ?? 'GET', agent: false, timeout: opts.timeoutMs ?? 5_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new OutpostError('INTERNAL', `GET ${path} on port ${port} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** Polls until `ready` answers true, the process exits, or the deadline passes. */
export async function waitUntil(what: string, proc: Started | undefined, timeoutMs: number, ready: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void proc?.exited.then(() => {
    exited = true;
  });
  while (Date.now() < deadline) {
    if (exited) throw new OutpostError('INTERNAL', `${what} exited during start-up:\n${proc?.output().slice(-2_000) ?? ''}`);
    if (await ready().catch(() => false)) return;
    await sleep(100);
  }
  throw new OutpostError('INTERNAL', `${what} was not ready within ${timeoutMs} ms:\n${proc?.output().slice(-2_000) ?? ''}`);
}

/** Changes the CPU affinity of a running process and all its threads. */
export async function setAffinity(pid: number, cpus: string): Promise<void> {
  await runCommand('taskset', ['-a', '-p', '-c', cpus, String(pid)], { timeoutMs: 5_000 });
}
