import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { parseOriginArgs } from './main.ts';
import { SEED_LATENCY } from './demo-origin.ts';

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));
const children: ChildProcess[] = [];

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function startMain(args: string[]): { child: ChildProcess; ready: Promise<string>; exit: Promise<Exit> } {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stdout = '';
  let stderr = '';
  const ready = new Promise<string>((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (stdout.includes('\n')) resolve(stdout);
    });
    child.once('exit', () => reject(new Error(`exited before listening: ${stderr}`)));
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exit = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  ready.catch(() => {});
  return { child, ready, exit };
}

afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

describe('origin command', () => {
  it('prints exactly one "origin listening" line, serves, and exits 0 promptly on SIGTERM', async () => {
    const { child, ready, exit } = startMain(['--port', '0', '--host', '127.0.0.1', '--latency', 'off']);
    const line = await ready;
    const match = /^origin listening on (http:\/\/127\.0\.0\.1:(\d+))\n$/.exec(line);
    expect(match).not.toBeNull();
    const url = match?.[1] ?? '';
    const res = await request(`${url}/hello`);
    expect(await res.body.text()).toBe('{"service":"api","value":42,"request":"/hello"}');
    // undici keeps that connection open and idle: shutdown must not wait for it.
    const started = Date.now();
    child.kill('SIGTERM');
    const result = await exit;
    expect(result.code).toBe(0);
    expect(Date.now() - started).toBeLessThan(900);
    expect(result.stdout).toBe(line);
    expect(result.stderr).toBe('');
  });

  it('on SIGINT cuts a hung request after the short grace period and exits 0', async () => {
    const { child, ready, exit } = startMain(['--port=0', '--latency=seed']);
    const url = (await ready).trim().replace('origin listening on ', '');
    const hung = request(`${url}/stuck?hang=1`).catch((err: unknown) => err);
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    child.kill('SIGINT');
    const result = await exit;
    expect(result.code).toBe(0);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(await hung).toBeInstanceOf(Error);
  });

  it('exits 1 with a message naming the bad setting', async () => {
    const bad = await startMain(['--port', '0', '--latency', 'fast']).exit;
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('latency');
    const unknown = await startMain(['--colour', 'blue']).exit;
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('--colour');
  });

  it('parses its arguments with defaults of port 9000, 127.0.0.1 and no latency', () => {
    expect(parseOriginArgs([])).toEqual({ port: 9000, host: '127.0.0.1', latency: false });
    expect(parseOriginArgs(['--port', '8080', '--host', '::1', '--latency', 'seed'])).toEqual({ port: 8080, host: '::1', latency: SEED_LATENCY });
    expect(() => parseOriginArgs(['--port', 'http'])).toThrow(/--port/);
    expect(() => parseOriginArgs(['--port', '70000'])).toThrow(/--port/);
  });
});
