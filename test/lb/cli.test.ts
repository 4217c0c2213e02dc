// `outpost lb` as a real process: flags become settings, requests are balanced, SIGTERM drains.
import { execFile, spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../cluster/node-process.ts';
import { get } from '../helpers.ts';
import { until } from './support.ts';

const run = promisify(execFile);
let a: Server;
let b: Server;

const backend = async (name: string): Promise<Server> => {
  const srv = createServer((req, res) => res.writeHead(200, { 'x-backend': name }).end(`${name} ${req.url}`));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  return srv;
};
const url = (s: Server) => `http://127.0.0.1:${(s.address() as AddressInfo).port}`;

beforeAll(async () => {
  [a, b] = await Promise.all([backend('a'), backend('b')]);
});
afterAll(() => {
  for (const s of [a, b]) {
    s.closeAllConnections();
    s.close();
  }
});

describe('outpost lb', () => {
  it('balances across the edges given with --edge and stops cleanly on SIGTERM', async () => {
    const [port, adminPort] = await Promise.all([freePort(), freePort()]);
    const child = spawn(
      'bin/outpost',
      ['lb', '--listen', `127.0.0.1:${port}`, '--admin', `127.0.0.1:${adminPort}`, '--edge', `a=${url(a)}`, '--edge', `b=${url(b)},weight=3`, '--policy', 'rr', '--health-interval', '500ms'],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, OUTPOST_LOG_LEVEL: 'info' } },
    );
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      await until(() => out.includes('outpost lb ready'), 15_000);
      const counts: Record<string, number> = {};
      for (let i = 0; i < 8; i++) {
        const r = await get(`http://127.0.0.1:${port}/p${i}`);
        counts[r.header('x-served-by')!] = (counts[r.header('x-served-by')!] ?? 0) + 1;
      }
      expect(counts).toEqual({ a: 2, b: 6 });
      const members = JSON.parse((await get(`http://127.0.0.1:${adminPort}/members`)).text) as { policy: string; members: Array<{ name: string; weight: number }> };
      expect(members.policy).toBe('rr');
      expect(members.members.map((m) => [m.name, m.weight])).toEqual([
        ['a', 1],
        ['b', 3],
      ]);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });

  it('refuses bad settings, naming them', async () => {
    const bad = async (args: string[]) => {
      try {
        await run('bin/outpost', ['lb', ...args], { timeout: 15_000 });
        return { code: 0, stderr: '' };
      } catch (err) {
        return err as { code: number; stderr: string };
      }
    };
    const [policy, none, edge] = await Promise.all([bad(['--edge', 'a=http://127.0.0.1:1', '--policy', 'random']), bad([]), bad(['--edge', 'a=ftp://x'])]);
    expect(policy.code).toBe(78);
    expect(policy.stderr).toContain('lb.policy: expected one of rr, leastconn, chash, bounded');
    expect(none.code).toBe(78);
    expect(none.stderr).toContain('lb.edges: expected at least one edge');
    expect(edge.code).toBe(78);
    expect(edge.stderr).toContain('lb.edges.0.url');
  });
});
