// `outpost cu …` run as a real process against a running node.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, sleep, startStack, tempDir, type Stack } from '../helpers.ts';

const run = promisify(execFile);

async function outpost(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run('bin/outpost', args, { timeout: 20_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

let s: Stack;
let dir: string;
beforeAll(async () => {
  s = await startStack();
  dir = tempDir();
});
afterAll(() => s.close());

async function until(check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await sleep(10);
  }
  throw new Error('condition not met in time');
}

describe('outpost cu', () => {
  it('adds a CU from a file, lists it, runs it at the edge, disables and removes it', async () => {
    const file = join(dir, 'greet.js');
    writeFileSync(file, "res.headers['x-greet'] = 'hi';\n");
    const add = await outpost(['cu', 'add', file, '--phase', 'access', '--hosts', 'cli.test', '--priority', '7', '--admin', s.admin]);
    expect(add.code, add.stderr).toBe(0);
    expect(add.stdout).toMatch(/saved greet \(version \d+, phase access\)/);
    const list = await outpost(['cu', 'list', '--admin', s.admin]);
    expect(list.stdout).toMatch(/greet\s+access\s+\d+\s+yes\s+100%\s+7\s+open\s+cli\.test/);
    await until(async () => (await get(`${s.base}/g`, { headers: { host: 'cli.test' } })).header('x-greet') === 'hi');
    expect((await outpost(['cu', 'disable', 'greet', '--admin', s.admin])).code).toBe(0);
    await until(async () => (await get(`${s.base}/g`, { headers: { host: 'cli.test' } })).header('x-greet') === undefined);
    const status = await outpost(['cu', 'status', '--admin', s.admin]);
    expect(status.stdout).toContain('store: embedded (reachable)');
    expect((await outpost(['cu', 'rm', 'greet', '--admin', s.admin])).code).toBe(0);
    expect((await outpost(['cu', 'get', 'greet', '--admin', s.admin])).code).toBe(1);
  });

  it('refuses code that does not compile, printing line and column', async () => {
    const file = join(dir, 'bad.js');
    writeFileSync(file, 'const ok = 1;\nconst = 2;\n');
    const r = await outpost(['cu', 'add', file, '--phase', 'access', '--admin', s.admin]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/CU_INVALID: code does not compile at line 2/);
  });

  it('dry-runs a CU file against a described request', async () => {
    const file = join(dir, 'gate.ts');
    writeFileSync(file, "const t: string | undefined = req.args.t;\nif (t !== 'ok') return exit(401, 'no');\n");
    const denied = await outpost(['cu', 'test', file, '--url', 'http://localhost/x', '--admin', s.admin]);
    expect(JSON.parse(denied.stdout).output.exit.status).toBe(401);
    const allowed = await outpost(['cu', 'test', file, '--url', 'http://localhost/x?t=ok', '-H', 'X-Test: 1', '--admin', s.admin]);
    expect(JSON.parse(allowed.stdout).output.exit).toBeUndefined();
  });
});
