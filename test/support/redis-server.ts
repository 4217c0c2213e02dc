// A private redis-server for tests that stop, pause or watch Redis (outages, MONITOR): never the
// shared one on 6379. Runs in a temp dir with an append-only file, so a stop/start keeps the data.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  /** The server's pid while it runs. */
  pid(): number | undefined;
  /** Stops the server (SIGTERM; the append-only file keeps the data). Resolves when it has exited. */
  stop(): Promise<void>;
  /** Starts it again, same port, same data. */
  start(): Promise<void>;
  /** Stops it and removes its directory. */
  destroy(): Promise<void>;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Last resort if a test run dies without its afterAll: no redis-server outlives the test process. */
export function trackChild(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
}

/** A port that was free a moment ago (the OS picks it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Whether `port` can be bound on 127.0.0.1 right now. */
export async function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

export async function redisCli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 10_000 });
  return stdout;
}

/**
 * Spawns redis-server with `args` and waits until it answers PING. Rejects (and kills it) if it
 * exits first — typically because the port was taken meanwhile — or does not answer in 10 s.
 */
export async function spawnRedis(port: number, dir: string, args: readonly string[]): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--daemonize', 'no', '--loglevel', 'warning', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  trackChild(child);
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`redis-server on port ${port} exited: ${output.trim()}`);
    try {
      if ((await redisCli(port, 'ping')).trim() === 'PONG') return child;
    } catch {
      // not up yet
    }
    await Promise.race([sleep(50), exited]);
  }
  child.kill('SIGKILL');
  throw new Error(`redis-server on port ${port} did not answer within 10 s: ${output.trim()}`);
}

export async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/** Starts a standalone redis-server on a free port in a fresh temp dir. */
export async function startRedisServer(extraArgs: readonly string[] = []): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'outpost-redis-'));
  const args = ['--save', '', '--appendonly', 'yes', '--appendfsync', 'always', ...extraArgs];
  let child: ChildProcess | undefined;
  let port = 0;
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      child = await spawnRedis(port, dir, args);
      break;
    } catch (err) {
      if (attempt >= 5) {
        rmSync(dir, { recursive: true, force: true });
        throw err;
      }
    }
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    pid: () => (child && child.exitCode === null && child.signalCode === null ? child.pid : undefined),
    async stop() {
      await stopChild(child);
    },
    async start() {
      if (child && child.exitCode === null && child.signalCode === null) return;
      child = await spawnRedis(port, dir, args);
    },
    async destroy() {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface TcpProxy {
  readonly port: number;
  /** Closes every connection and stops listening: a network outage between a client and Redis. */
  cut(): Promise<void>;
  /** Listens again on the same port. */
  restore(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A TCP proxy to 127.0.0.1:`targetPort`. `delayMs` holds every chunk that long in each direction,
 * so that round trips show in elapsed time; cut()/restore() simulate an outage of one client only.
 */
export async function startTcpProxy(targetPort: number, opts: { delayMs?: number } = {}): Promise<TcpProxy> {
  const delay = opts.delayMs ?? 0;
  const sockets = new Set<Socket>();
  const forward = (from: Socket, to: Socket): void => {
    from.on('data', (d: Buffer) => {
      if (delay > 0) setTimeout(() => to.write(d), delay);
      else to.write(d);
    });
  };
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    forward(client, upstream);
    forward(upstream, client);
  });
  const listen = (port: number): Promise<void> =>
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  const stop = (): Promise<void> =>
    new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      if (!server.listening) resolve();
      else server.close(() => resolve());
    });
  await listen(0);
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return { port, cut: stop, restore: () => listen(port), close: stop };
}
