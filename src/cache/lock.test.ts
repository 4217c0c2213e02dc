import { describe, expect, it } from 'vitest';
import { Collapser, InProcessLock, LockTable, type LockGrant, type RemoteAcquire, type RemoteLock } from './lock.ts';

function collapser(timeoutMs = 1000, table = new LockTable({ maxAgeMs: 10_000 })) {
  return { c: new Collapser(new InProcessLock(table), { timeoutMs }), table };
}

function writer(g: LockGrant): Extract<LockGrant, { role: 'writer' }> {
  if (g.role !== 'writer') throw new Error('expected the writer');
  return g;
}

describe('request collapsing lock', () => {
  it('makes the first request the writer and the others readers', async () => {
    const { c } = collapser();
    const first = await c.acquire('k');
    const others = Array.from({ length: 5 }, () => c.acquire('k'));
    expect(first.role).toBe('writer');
    writer(first).release('stored');
    for (const o of await Promise.all(others)) expect(o).toEqual({ role: 'reader', outcome: 'stored' });
  });

  it('wakes waiters the moment the writer releases, without polling', async () => {
    const { c } = collapser(5000);
    const w = writer(await c.acquire('k'));
    const t0 = performance.now();
    const waiting = c.acquire('k');
    setTimeout(() => w.release('stored'), 20);
    await waiting;
    expect(performance.now() - t0).toBeLessThan(400);
  });

  it('releases every waiter at once when the fill fails or is uncacheable', async () => {
    for (const outcome of ['failed', 'uncacheable'] as const) {
      const { c } = collapser();
      const w = writer(await c.acquire(outcome));
      const waiters = Array.from({ length: 10 }, () => c.acquire(outcome));
      w.release(outcome);
      const results = await Promise.all(waiters);
      expect(results.every((r) => r.role === 'reader' && r.outcome === outcome)).toBe(true);
    }
  });

  it('lets a waiter give up after the lock timeout', async () => {
    const { c } = collapser(50);
    writer(await c.acquire('k'));
    expect(await c.acquire('k')).toEqual({ role: 'reader', outcome: 'timeout' });
  });

  it('collapses across workers: two collapsers share one table, one writer in all', async () => {
    const table = new LockTable({ maxAgeMs: 10_000 });
    const a = new Collapser(new InProcessLock(table), { timeoutMs: 1000 });
    const b = new Collapser(new InProcessLock(table), { timeoutMs: 1000 });
    const grants = await Promise.race([
      Promise.all([a.acquire('k'), b.acquire('k')]),
      new Promise<LockGrant[]>((r) => setTimeout(() => r([]), 50)),
    ]);
    // b waits for a's release, so only a's grant has arrived.
    expect(grants).toEqual([]);
    const wa = writer(await a.acquire('other'));
    wa.release('stored');
  });

  it("wakes the writer's own worker at releaseLocal and the other workers only at release", async () => {
    const table = new LockTable({ maxAgeMs: 10_000 });
    const a = new Collapser(new InProcessLock(table), { timeoutMs: 1000 });
    const b = new Collapser(new InProcessLock(table), { timeoutMs: 1000 });
    const w = writer(await a.acquire('k'));
    const woken: string[] = [];
    const local = a.acquire('k').then((g) => woken.push(`a:${g.role === 'reader' ? g.outcome : g.role}`));
    const remote = b.acquire('k').then((g) => woken.push(`b:${g.role === 'reader' ? g.outcome : g.role}`));
    w.releaseLocal?.();
    await local;
    await new Promise((r) => setTimeout(r, 20));
    expect(woken).toEqual(['a:stored']);
    w.release('stored');
    await remote;
    expect(woken).toEqual(['a:stored', 'b:stored']);
    expect(table.size).toBe(0);
  });

  it("hands a shared fill to the other workers' waiters and keeps the lock for later ones", async () => {
    const table = new LockTable({ maxAgeMs: 10_000 });
    const a = new Collapser(new InProcessLock(table), { timeoutMs: 1000 });
    const b = new Collapser(new InProcessLock(table), { timeoutMs: 1000 });
    const w = writer(await a.acquire('k'));
    const early = Promise.all([b.acquire('k'), b.acquire('k')]);
    await new Promise((r) => setTimeout(r, 10));
    const fill = { meta: { key: 'k' } as never, body: Buffer.from('x') };
    w.share?.(fill);
    for (const g of await early) expect(g).toEqual({ role: 'reader', outcome: 'stored', shared: fill });
    expect(table.size).toBe(1);
    const late = b.acquire('k');
    w.release('stored');
    expect(await late).toEqual({ role: 'reader', outcome: 'stored' });
    expect(table.size).toBe(0);
  });

  it('asks the node-wide table once per worker however many requests wait in it', async () => {
    let asked = 0;
    const table = new LockTable({ maxAgeMs: 10_000 });
    const inner = new InProcessLock(table);
    const counting: RemoteLock = {
      acquire(key): Promise<RemoteAcquire> {
        asked++;
        return inner.acquire(key);
      },
      release: (k, t, o) => inner.release(k, t, o),
    };
    const c = new Collapser(counting, { timeoutMs: 1000 });
    const all = Array.from({ length: 100 }, () => c.acquire('k'));
    const first = writer(await all[0]!);
    first.release('stored');
    await Promise.all(all);
    expect(asked).toBe(1);
  });

  it('hands an abandoned lock to the next request after its maximum age', async () => {
    let now = 0;
    const table = new LockTable({ maxAgeMs: 100, now: () => now });
    const waits: string[] = [];
    expect(table.acquire('k', 'w1', (o) => waits.push(o))).toBeTypeOf('number');
    expect(table.acquire('k', 'w2', (o) => waits.push(o))).toBeUndefined();
    now = 150;
    const token = table.acquire('k', 'w3', () => undefined);
    expect(token).toBeTypeOf('number');
    expect(waits).toEqual(['failed']);
  });

  it('releases the locks of a worker that died, telling its waiters the fill failed', () => {
    const table = new LockTable({ maxAgeMs: 10_000 });
    const told: string[] = [];
    table.acquire('k', 'dead', () => undefined);
    table.acquire('k', 'alive', (o) => told.push(o));
    table.releaseOwner('dead');
    expect(told).toEqual(['failed']);
    expect(table.size).toBe(0);
  });

  it('ignores a release with a stale token', () => {
    const table = new LockTable({ maxAgeMs: 10_000 });
    const t1 = table.acquire('k', 'a', () => undefined)!;
    table.release('k', t1 + 99, 'stored');
    expect(table.size).toBe(1);
    table.release('k', t1, 'stored');
    expect(table.size).toBe(0);
  });

  it('gives the lock back when it is granted after the waiter already gave up', async () => {
    const table = new LockTable({ maxAgeMs: 10_000 });
    const slow: RemoteLock = {
      acquire: (key) => new Promise((r) => setTimeout(() => r({ granted: true, token: table.acquire(key, 'x', () => undefined)! }), 80)),
      release: (k, t, o) => table.release(k, t, o),
    };
    const c = new Collapser(slow, { timeoutMs: 20 });
    expect(await c.acquire('k')).toEqual({ role: 'reader', outcome: 'timeout' });
    await new Promise((r) => setTimeout(r, 120));
    expect(table.size).toBe(0);
  });

  it('collapses within a worker only when asked to, without the node-wide table', async () => {
    let asked = 0;
    const remote: RemoteLock = {
      acquire: () => {
        asked++;
        return new Promise(() => undefined);
      },
      release: () => undefined,
    };
    const c = new Collapser(remote, { timeoutMs: 1000 });
    const first = writer(await c.acquireLocal('k'));
    const others = Array.from({ length: 5 }, () => c.acquireLocal('k'));
    first.release('stored');
    for (const o of await Promise.all(others)) expect(o).toEqual({ role: 'reader', outcome: 'stored' });
    expect(asked).toBe(0);
  });
});
