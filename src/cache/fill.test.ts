import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { fillFromOrigin } from './fill.ts';
import type { StoredMeta, WriteHandle } from './storage/tier.ts';

/** A tier's write handle whose commit resolves when the test says so. */
function handle(): WriteHandle & { chunks: Buffer[]; finishCommit(ok: boolean): void; committing: boolean } {
  let finish: (ok: boolean) => void = () => undefined;
  const h = {
    chunks: [] as Buffer[],
    committing: false,
    write: async (c: Buffer) => {
      h.chunks.push(c);
    },
    commit: (_meta: StoredMeta) => {
      h.committing = true;
      return new Promise<boolean>((resolve) => {
        finish = resolve;
      });
    },
    abort: async () => undefined,
    finishCommit: (ok: boolean) => finish(ok),
  };
  return h;
}

const meta = (size: number) => ({ key: 'k', size }) as unknown as StoredMeta;
const tick = () => new Promise((r) => setImmediate(r));

describe('filling the cache from the origin', () => {
  it('tells the fastest tier is ready, and ends the client, before the slower tier has committed', async () => {
    const [ram, disk] = [handle(), handle()];
    const client = new PassThrough();
    const received: Buffer[] = [];
    client.on('data', (c: Buffer) => received.push(c));
    let ended = false;
    client.on('end', () => (ended = true));
    let ready = 0;
    const done = fillFromOrigin(Readable.from([Buffer.from('ab'), Buffer.from('c')]), [ram, disk], client, meta, () => ready++);
    await tick();
    expect(ram.committing && disk.committing).toBe(true);
    expect([ready, ended]).toEqual([0, false]);
    ram.finishCommit(true);
    await tick();
    expect([ready, ended]).toEqual([1, true]);
    expect(Buffer.concat(received).toString()).toBe('abc');
    let settled = false;
    void done.then(() => (settled = true));
    await tick();
    expect(settled).toBe(false);
    disk.finishCommit(true);
    expect(await done).toEqual({ stored: true, bytes: 3 });
  });

  it("commits the fastest tier without waiting for a slower tier's writes, which that tier's commit waits for", async () => {
    const ram = handle();
    let wrote: () => void = () => undefined;
    const disk = handle();
    const diskWrites: string[] = [];
    disk.write = (c: Buffer) =>
      new Promise<void>((resolve) => {
        wrote = () => {
          diskWrites.push(c.toString());
          resolve();
        };
      });
    let committedDisk = false;
    disk.commit = async () => {
      committedDisk = true;
      return true;
    };
    let ready = 0;
    const done = fillFromOrigin(Readable.from([Buffer.from('ab')]), [ram, disk], null, meta, () => ready++);
    await tick();
    ram.finishCommit(true);
    await tick();
    expect([ready, committedDisk, diskWrites]).toEqual([1, false, []]);
    wrote();
    expect(await done).toEqual({ stored: true, bytes: 2 });
    expect([committedDisk, diskWrites]).toEqual([true, ['ab']]);
  });

  it('loses only the slower copy when a slower tier fails after the fastest committed', async () => {
    const ram = handle();
    const disk = handle();
    let aborted = false;
    disk.write = () => Promise.reject(new Error('disk full'));
    disk.abort = async () => {
      aborted = true;
    };
    const done = fillFromOrigin(Readable.from([Buffer.from('ab')]), [ram, disk], null, meta);
    await tick();
    ram.finishCommit(true);
    expect(await done).toEqual({ stored: true, bytes: 2 });
    expect([aborted, disk.committing]).toEqual([true, false]);
  });

  it('does not say a tier is ready when the fastest one refused the object', async () => {
    const [ram, disk] = [handle(), handle()];
    let ready = 0;
    const done = fillFromOrigin(Readable.from([Buffer.from('x')]), [ram, disk], null, meta, () => ready++);
    await tick();
    ram.finishCommit(false);
    disk.finishCommit(true);
    expect(await done).toEqual({ stored: true, bytes: 1 });
    expect(ready).toBe(0);
  });
});
