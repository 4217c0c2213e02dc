// The `outpost` command line, run as a real process against a running node.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, originHits, startStack, tempDir, type Stack } from './helpers.ts';

const run = promisify(execFile);

async function outpost(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run('bin/outpost', args, { env: { ...process.env, ...env }, timeout: 20_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

let s: Stack;
beforeAll(async () => {
  s = await startStack();
});
afterAll(() => s.close());

describe('outpost CLI', () => {
  it('purges URLs through the admin API', async () => {
    await get(`${s.base}/cli-a`);
    const r = await outpost(['purge', `${s.base}/cli-a`, '--admin', s.admin]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/purged [1-9]\d* entries for 1 urls/);
    expect((await get(`${s.base}/cli-a`)).header('x-cache-status')).toBe('MISS');
  });

  it('purges by tag and by prefix', async () => {
    await get(`${s.base}/cli-t?tags=campaign`);
    await get(`${s.base}/cli-dir/x`);
    expect((await outpost(['purge', '--tag', 'campaign', '--admin', s.admin])).code).toBe(0);
    expect((await outpost(['purge', '--prefix', `${s.base}/cli-dir/`, '--admin', s.admin])).code).toBe(0);
    expect((await get(`${s.base}/cli-t?tags=campaign`)).header('x-cache-status')).toBe('MISS');
    expect((await get(`${s.base}/cli-dir/x`)).header('x-cache-status')).toBe('MISS');
  });

  it('prefetches a list of URLs from a file and reports how many loaded', async () => {
    const file = join(tempDir(), 'urls.txt');
    const urls = Array.from({ length: 45 }, (_, i) => `${s.base}/cli-pf-${i}`);
    writeFileSync(file, `# warm-up list\n${urls.join('\n')}\n`);
    const r = await outpost(['prefetch', '--file', file, '--admin', s.admin]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('prefetched 45 of 45 URLs');
    expect((await get(`${s.base}/cli-pf-44`)).header('x-cache-status')).toBe('HIT');
    expect(originHits(s.origin, '/cli-pf-44')).toBe(1);
  });

  it('says clearly when the admin API cannot be reached', async () => {
    const r = await outpost(['purge', '--all', '--admin', 'http://127.0.0.1:9']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('cannot reach the admin API');
  });

  it('refuses a bad configuration naming the setting, with exit code 78', async () => {
    const file = join(tempDir(), 'bad.yaml');
    writeFileSync(file, 'edge:\n  port: eighty\ncache:\n  lock:\n    timeout: soon\n');
    const r = await outpost(['config', '--config', file]);
    expect(r.code).toBe(78);
    expect(r.stderr).toContain('edge.port: expected a port number (got "eighty")');
    expect(r.stderr).toContain('cache.lock.timeout: expected a duration');
  });

  it('prints the resolved configuration with every default', async () => {
    const r = await outpost(['config'], { OUTPOST_PORT: '8181' });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).edge.port).toBe(8181);
  });

  it('prints help, and refuses unknown commands', async () => {
    expect((await outpost(['help'])).stdout).toContain('outpost start');
    expect((await outpost(['frobnicate'])).code).toBe(2);
  });
});
