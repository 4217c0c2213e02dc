import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CuError } from '../runtime.ts';
import { alignedTimeout, IsolateRuntime } from './isolate-runtime.ts';
import { MemoryCuServices } from './memory-services.ts';
import { cuRecord, describeCuRuntime, requestView, runCu, runInput } from './runtime-suite.ts';

describeCuRuntime('isolated-vm', (services, log) => new IsolateRuntime({ services, ...(log ? { log } : {}) }));

describe('isolate runtime', () => {
  let runtime: IsolateRuntime;
  let events: string[];

  beforeEach(() => {
    events = [];
    runtime = new IsolateRuntime({ services: new MemoryCuServices(), log: (id, level, msg) => events.push(`${id} ${level} ${msg}`) });
  });
  afterEach(() => runtime.dispose());

  it('gives each loaded CU its own isolate and frees it when the CU is disposed', () => {
    const a = runtime.load(cuRecord({ code: 'return;' }));
    const b = runtime.load(cuRecord({ code: 'return;' }));
    runtime.load(cuRecord({ code: 'return;' }));
    expect(runtime.stats().isolates).toBe(3);
    a.dispose();
    b.dispose();
    expect(runtime.stats().isolates).toBe(1);
    runtime.dispose();
    expect(runtime.stats().isolates).toBe(0);
  });

  it('leaves no isolate behind for code that does not compile', () => {
    expect(() => runtime.load(cuRecord({ code: 'const = 1;' }))).toThrow(CuError);
    expect(runtime.stats()).toMatchObject({ isolates: 0, isolatesCreated: 1, compiles: 1 });
  });

  it('compiles once per load and never on the run path', async () => {
    const sync = runtime.load(cuRecord({ code: "res.headers['x-n'] = req.args.n ?? '0';" }));
    const async = runtime.load(cuRecord({ code: "res.headers['x-n'] = String(await shared.incr('n'));" }));
    expect(runtime.stats().compiles).toBe(2);
    for (let i = 0; i < 200; i++) {
      await runCu(sync, runInput('access', { request: requestView({ query: `n=${i}` }) }));
      await runCu(async, runInput('access'));
    }
    expect(runtime.stats().compiles).toBe(2);
  });

  it('answers a sync CU synchronously, without a promise', () => {
    const cu = runtime.load(cuRecord({ code: "if (!req.args.token) return exit(403);" }));
    expect(cu.async).toBe(false);
    expect(cu.run(runInput('access'))).toEqual({ exit: { status: 403 } });
  });

  it('compiles a CU as async when it awaits or names redis or shared', () => {
    expect(runtime.load(cuRecord({ code: "await 1;" })).async).toBe(true);
    expect(runtime.load(cuRecord({ code: "redis.incr('x');" })).async).toBe(true);
    expect(runtime.load(cuRecord({ code: "shared.incr('x');" })).async).toBe(true);
    expect(runtime.load(cuRecord({ code: "res.headers['x'] = crypto.randomUUID();" })).async).toBe(false);
  });

  it('replaces the isolate after a memory bomb with one recompile, and other CUs keep their state', async () => {
    const counter = runtime.load(cuRecord({ code: "globalThis.n = (globalThis.n ?? 0) + 1;\nres.headers['x-n'] = String(globalThis.n);" }));
    const bomb = runtime.load(cuRecord({ code: "if (req.args.bomb) { const a = []; for (;;) a.push([Math.random()]); }\nres.headers['x-ok'] = '1';", timeoutMs: 10_000 }));
    expect((await runCu(counter, runInput('access'))).response?.headers).toEqual({ 'x-n': '1' });
    const before = runtime.stats();
    await expect(runCu(bomb, runInput('access', { request: requestView({ query: 'bomb=1' }) }))).rejects.toMatchObject({ kind: 'memory' });
    expect(runtime.stats().memoryDisposals).toBe(before.memoryDisposals + 1);
    expect((await runCu(bomb, runInput('access'))).response?.headers).toEqual({ 'x-ok': '1' });
    expect(runtime.stats()).toMatchObject({ isolates: 2, compiles: before.compiles + 1, isolatesCreated: before.isolatesCreated + 1 });
    expect((await runCu(counter, runInput('access'))).response?.headers).toEqual({ 'x-n': '2' });
    expect(events.some((e) => e.includes('isolate recreated'))).toBe(true);
  });

  it('fails the runs of an async CU in flight when its isolate is disposed by a memory bomb', async () => {
    const services = new MemoryCuServices();
    services.delayMs = 20;
    const rt = new IsolateRuntime({ services });
    try {
      const cu = rt.load(cuRecord({ code: "await redis.get('k');\nif (req.args.bomb) { const a = []; for (;;) a.push([Math.random()]); }\nres.headers['x-ok'] = '1';", timeoutMs: 10_000 }));
      const waiting = runCu(cu, runInput('access'));
      const bombing = runCu(cu, runInput('access', { request: requestView({ query: 'bomb=1' }) }));
      const [w, b] = await Promise.allSettled([waiting, bombing]);
      // The bomb fails with memory; the run that waited alongside it fails too, or finished first.
      expect(b).toMatchObject({ status: 'rejected', reason: { kind: 'memory' } });
      if (w.status === 'rejected') expect(w.reason).toMatchObject({ kind: 'memory' });
      expect((await runCu(cu, runInput('access'))).response?.headers).toEqual({ 'x-ok': '1' });
    } finally {
      rt.dispose();
    }
  });

  it('charges only the CU\'s own running time to its limit, not the wait for Redis', async () => {
    const services = new MemoryCuServices();
    services.delayMs = 40;
    const rt = new IsolateRuntime({ services });
    try {
      const cu = rt.load(cuRecord({ code: "const a = await redis.get('a');\nconst b = await redis.get('b');\nres.headers['x-ok'] = '1';", timeoutMs: 20 }));
      expect((await runCu(cu, runInput('access'))).response?.headers).toEqual({ 'x-ok': '1' });
    } finally {
      rt.dispose();
    }
  });

  it('bounds the Redis calls of one run', async () => {
    const cu = runtime.load(cuRecord({ code: "for (let i = 0; i < 1000; i++) await shared.get('k' + i);" }));
    await expect(runCu(cu, runInput('access'))).rejects.toThrow(/more than 100 redis and shared calls in one run/);
  });

  it('refuses to run a disposed CU', () => {
    const cu = runtime.load(cuRecord({ code: 'return;' }));
    cu.dispose();
    expect(() => cu.run(runInput('access'))).toThrow(/unloaded/);
  });

  it('recovers the log lines of a run stopped at its time limit', async () => {
    const cu = runtime.load(cuRecord({ id: 'spinner', code: "log.info('before the loop');\nwhile (true) {}", timeoutMs: 20 }));
    await expect(runCu(cu, runInput('access'))).rejects.toMatchObject({ kind: 'timeout' });
    expect(events).toContain('spinner info before the loop');
  });

  it('strips TypeScript without printing the experimental warning', () => {
    const source = fileURLToPath(new URL('./source.ts', import.meta.url));
    const script = `import { prepareCu } from ${JSON.stringify(source)};\nconsole.log(prepareCu({ id: 't', code: 'const a: number = 1;', lang: 'ts' }).body);`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(child.stdout.trim()).toBe('const a         = 1;');
    expect(child.stderr).not.toMatch(/ExperimentalWarning/);
  });
});

describe('time limits on a grid', () => {
  it('give each call its limit or up to one grid step and 1 ms more, with deadlines on the grid', () => {
    for (const [limit, grid] of [[50, 10], [200, 10], [10, 2], [3, 1]] as const) {
      for (let i = 0; i < 2000; i++) {
        const before = performance.now();
        const { timeout } = alignedTimeout(limit);
        const after = performance.now();
        expect(timeout).toBeGreaterThanOrEqual(limit);
        expect(timeout).toBeLessThanOrEqual(limit + grid + 1);
        // The deadline (the call's own now + timeout, somewhere in [before, after] + timeout) lies
        // within 1 ms after a grid point: the last grid point before the latest possible deadline is
        // no more than 1 ms before the earliest one.
        const lastGridPoint = Math.floor((after + timeout) / grid) * grid;
        expect(before + timeout - lastGridPoint).toBeLessThan(1.01);
      }
    }
  });

  it('still stop an endless loop, not before its limit', async () => {
    const runtime = new IsolateRuntime({ services: new MemoryCuServices() });
    try {
      const cu = runtime.load(cuRecord({ code: 'while (true) {}', timeoutMs: 20 }));
      const t0 = performance.now();
      await expect(runCu(cu, runInput('access'))).rejects.toMatchObject({ kind: 'timeout' });
      expect(performance.now() - t0).toBeGreaterThanOrEqual(19);
    } finally {
      runtime.dispose();
    }
  });
});
