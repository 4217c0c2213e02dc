// The thundering herd: many clients ask for the same cold key at the same instant. All connections are
// opened first, then every request is written in one synchronous loop, so the server sees them together.
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { percentile, round } from '../stats.ts';
import { responseReader } from './http1-reader.ts';

export interface HerdLoad {
  readonly port: number;
  readonly path: string;
  readonly clients: number;
  readonly timeoutMs: number;
}

export interface HerdResult {
  readonly clients: number;
  readonly ok: number;
  readonly errors: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Time the write loop took: how "at once" the herd really was. */
  readonly writeSpreadMs: number;
  /** Every answered client's latency, sorted. */
  readonly latenciesMs: readonly number[];
}

function open(port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, noDelay: true });
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error('connect timeout'));
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      resolve(s);
    });
    s.once('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
  });
}

export async function runHerd(load: HerdLoad): Promise<HerdResult> {
  const opened = await Promise.allSettled(Array.from({ length: load.clients }, () => open(load.port, load.timeoutMs)));
  const sockets = opened.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const request = Buffer.from(`GET ${load.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: outpost-bench-herd\r\n\r\n`);
  const clients = sockets.map((socket) => ({ socket, sentAt: 0, latency: -1, ok: false }));
  const done = clients.map(
    (c) =>
      new Promise<void>((resolve) => {
        const reader = responseReader();
        let settled = false;
        const finish = (ok: boolean): void => {
          if (settled) return;
          settled = true;
          c.ok = ok;
          c.latency = performance.now() - c.sentAt;
          resolve();
        };
        c.socket.on('data', (chunk: Buffer) => {
          const status = reader.push(chunk);
          if (status !== undefined) finish(status >= 200 && status < 400);
        });
        c.socket.once('error', () => finish(false));
        c.socket.once('close', () => finish(false));
      }),
  );
  const started = performance.now();
  for (const c of clients) {
    c.sentAt = performance.now();
    c.socket.write(request);
  }
  const writeSpreadMs = performance.now() - started;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, load.timeoutMs);
  });
  await Promise.race([Promise.all(done), timedOut]);
  clearTimeout(timer);
  for (const c of clients) c.socket.destroy();
  const latencies = clients.filter((c) => c.ok).map((c) => c.latency).sort((a, b) => a - b);
  return {
    clients: load.clients,
    ok: latencies.length,
    errors: load.clients - latencies.length,
    p50Ms: round(percentile(latencies, 50)),
    p99Ms: round(percentile(latencies, 99)),
    maxMs: round(percentile(latencies, 100)),
    writeSpreadMs: round(writeSpreadMs),
    latenciesMs: latencies,
  };
}
