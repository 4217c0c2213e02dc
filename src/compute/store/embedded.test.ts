import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open as openLmdb } from 'lmdb';
import { afterAll, describe, expect, it } from 'vitest';
import { EmbeddedCuStore } from './embedded.ts';
import { cuSpec, describeCuStore } from './store-suite.ts';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'outpost-cu-store-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describeCuStore(
  'embedded',
  async () => {
    const path = tempDir();
    const store = EmbeddedCuStore.open({ path });
    return {
      store,
      recordKey: (id) => `cu:${id}`,
      // The store's own LMDB environment, as another tool on the node would write it.
      async writeRaw(id, raw) {
        const db = openLmdb<string, string>({ path, encoding: 'string' });
        db.putSync(`cu:${id}`, raw);
      },
      close: () => store.close(),
    };
  },
  { shared: false },
);

describe('embedded store', () => {
  it('keeps CUs, versions and settings across a reopen', async () => {
    const path = tempDir();
    const first = EmbeddedCuStore.open({ path });
    await first.put(cuSpec({ id: 'a' }));
    const b = await first.put(cuSpec({ id: 'b', sampling: 10 }));
    await first.putSettings({ enabled: false, skipHosts: ['*.internal'] });
    await first.close();

    const second = EmbeddedCuStore.open({ path });
    const snap = await second.readAll();
    expect(snap.cus.map((c) => c.id)).toEqual(['a', 'b']);
    expect(snap.cus[1]).toEqual(b);
    expect(snap.settings).toEqual({ enabled: false, skipHosts: ['*.internal'] });
    // Versions keep increasing after a restart, so workers never mistake a new CU for a compiled one.
    expect((await second.put(cuSpec({ id: 'a' }))).version).toBe(b.version + 1);
    await second.close();
  });

  it('notifies its subscribers synchronously with the write, in this process only', async () => {
    const store = EmbeddedCuStore.open({ path: tempDir() });
    const seen: string[] = [];
    await store.subscribe(() => seen.push('first'));
    await store.subscribe(() => {
      throw new Error('a broken listener');
    });
    await store.subscribe(() => seen.push('third'));
    await store.put(cuSpec({ id: 'a' }));
    // A throwing listener neither fails the write nor starves the others.
    expect(seen).toEqual(['first', 'third']);
    await store.delete('nothing-here');
    expect(seen).toHaveLength(2);
    await store.close();
  });

  it('keeps CU data in memory only: it starts empty after a reopen', async () => {
    const path = tempDir();
    const first = EmbeddedCuStore.open({ path });
    expect(await first.command('incr', ['hits'])).toBe(1);
    await first.close();
    const second = EmbeddedCuStore.open({ path });
    expect(await second.command('get', ['hits'])).toBeNull();
    await second.close();
  });

  it('refuses CU data beyond its key limit, reclaiming expired keys first', async () => {
    const store = EmbeddedCuStore.open({ path: tempDir(), maxDataKeys: 3 });
    await store.command('set', ['a', 1, 'PX', 20]);
    await store.command('set', ['b', 1]);
    await store.command('set', ['c', 1]);
    await expect(store.command('set', ['d', 1])).rejects.toThrow(/OOM .*maximum of 3 keys/);
    await new Promise((r) => setTimeout(r, 40));
    expect(await store.command('set', ['d', 1])).toBe('OK');
    expect(await store.command('set', ['b', 2])).toBe('OK');
    await store.close();
  });

  it('refuses a missing path and any use after close', async () => {
    expect(() => EmbeddedCuStore.open({ path: '' })).toThrow(/compute\.store\.path: expected a directory path/);
    const store = EmbeddedCuStore.open({ path: tempDir() });
    await store.close();
    await expect(store.readAll()).rejects.toThrow(/closed/);
  });
});
