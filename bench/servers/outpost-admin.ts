// Small clients for what the issue 5 scenarios ask of a running Outpost: its admin API (JSON), its
// merged Prometheus metrics, and plain requests sent from a chosen loopback address.
import { request } from 'node:http';
import { OutpostError } from '../../src/errors.ts';
import type { HttpReply } from '../proc.ts';
import type { RunningServer } from './types.ts';

export type OutpostServer = RunningServer & { readonly adminPort: number };

export function adminPortOf(server: RunningServer): number {
  const p = (server as Partial<OutpostServer>).adminPort;
  if (p === undefined) throw new OutpostError('INTERNAL', `${server.id}: this scenario needs an Outpost server with an admin port`);
  return p;
}

/**
 * One HTTP/1.1 request to 127.0.0.1, bounded in time. `localAddress` binds the client side to another
 * loopback address (all of 127.0.0.0/8 is local on Linux), which is how a denied client is played.
 */
export function httpCall(
  port: number,
  path: string,
  opts: { method?: string; body?: string; headers?: Record<string, string>; localAddress?: string; timeoutMs?: number } = {},
): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.body !== undefined) {
      headers['content-type'] ??= 'application/json';
      headers['content-length'] = String(Buffer.byteLength(opts.body));
    }
    const req = request(
      { host: '127.0.0.1', port, path, method: opts.method ?? 'GET', headers, agent: false, timeout: opts.timeoutMs ?? 10_000, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new OutpostError('INTERNAL', `${opts.method ?? 'GET'} ${path} on port ${port} timed out`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** An admin API call that must succeed; returns the parsed JSON answer. */
export async function adminJson(adminPort: number, method: 'GET' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<unknown> {
  const r = await httpCall(adminPort, path, { method, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  if (r.status >= 400) throw new OutpostError('INTERNAL', `admin ${method} ${path}: ${r.status} ${r.body.slice(0, 300)}`);
  return r.body ? (JSON.parse(r.body) as unknown) : undefined;
}

/** The node's metrics (the admin port merges every worker's). */
export async function adminMetrics(adminPort: number): Promise<string> {
  const r = await httpCall(adminPort, '/metrics');
  if (r.status !== 200) throw new OutpostError('INTERNAL', `admin GET /metrics: ${r.status}`);
  return r.body;
}

/** Sum of every series of `name` whose labels include all of `labels` (0 when there is none). */
export function metricSum(exposition: string, name: string, labels: Readonly<Record<string, string>> = {}): number {
  let sum = 0;
  for (const line of exposition.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? ([^ ]+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = new Map([...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) sum += Number(m[3]);
  }
  return sum;
}
