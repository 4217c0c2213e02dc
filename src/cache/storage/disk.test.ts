import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, truncateSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { DiskTier } from './disk.ts';
import { sha256 } from './fixtures/bodies.ts';
import type { PurgeSpec, StoredMeta } from './tier.ts';
import { bodyOf, describeStorageTier, metaFor, put, readAll } from './tier-suite.ts';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'outpost-disk-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

// touchIntervalMs 0: every hit records its access, so the LRU test sees a get() made a moment ago.
describeStorageTier('disk', async (opts) => DiskTier.open({ path: tempDir(), ...opts, touchIntervalMs: 0 }));

const FIXTURE = join(import.meta.dirname, 'fixtures', 'disk-child.ts');
const OPTS = { maxBytes: 64 * 1024 * 1024, maxObjectBytes: 32 * 1024 * 1024 };

function objectFiles(dir: string): string[] {
  return readdirSync(join(dir, 'objects')).flatMap((sub) => readdirSync(join(dir, 'objects', sub)));
}

/** A DiskTier in a child process, answering one JSON command at a time. */
class Child {
  readonly process: ChildProcess;
  readonly #lines: AsyncIterator<string>;
  #id = 0;

  constructor(dir: string, mode: 'serve' | 'crash') {
    this.process = spawn(process.execPath, [FIXTURE, dir, mode], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.#lines = createInterface({ input: this.process.stdout! })[Symbol.asyncIterator]();
  }

  async line(): Promise<unknown> {
    for (let i = 0; i < 100; i++) {
      const next = await this.#lines.next();
      if (next.done) throw new Error('the child process ended');
      if (next.value.startsWith('{') || next.value.startsWith('"')) return JSON.parse(next.value);
    }
    throw new Error('no answer from the child process');
  }

  async call<T>(command: Record<string, unknown>): Promise<T> {
    const id = ++this.#id;
    this.process.stdin!.write(`${JSON.stringify({ id, ...command })}\n`);
    return (await this.line()) as T;
  }

  exited(): Promise<unknown> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => this.process.once('exit', resolve));
  }
}

describe('disk tier', () => {
  const tiers: DiskTier[] = [];
  const children: Child[] = [];
  const open = (dir: string, opts: Partial<Parameters<typeof DiskTier.open>[0]> = {}): DiskTier => {
    const tier = DiskTier.open({ path: dir, ...OPTS, ...opts });
    tiers.push(tier);
    return tier;
  };
  afterEach(async () => {
    for (const child of children.splice(0)) {
      child.process.kill('SIGKILL');
      await child.exited();
    }
    await Promise.all(tiers.splice(0).map((t) => t.close()));
  });

  it('keeps committed entries across close and reopen', async () => {
    const dir = tempDir();
    const first = open(dir);
    const body = bodyOf(100_000, 1);
    await put(first, 'https://h/a', body, { tags: ['news'] });
    await put(first, 'https://h/b', bodyOf(10, 2));
    await put(first, 'https://h/empty', Buffer.alloc(0));
    await first.close();

    const second = open(dir);
    const entry = second.get('https://h/a')!;
    expect(entry.meta).toEqual(metaFor('https://h/a', 100_000, { tags: ['news'] }));
    expect((await readAll(entry.body.stream())).equals(body)).toBe(true);
    expect(second.get('https://h/empty')!.meta.size).toBe(0);
    expect(await second.purge({ kind: 'tags', tags: ['news'] }, false)).toBe(1);
    const stats = second.stats();
    expect(stats.entries).toBe(2);
    expect(stats.bytes).toBe(4096); // the first scan after opening counted what was already there
  });

  it('shares entries with a DiskTier in another process', async () => {
    const dir = tempDir();
    const child = new Child(dir, 'serve');
    children.push(child);
    expect(await child.line()).toBe('ready');
    const tier = open(dir);

    expect(await child.call({ op: 'put', key: 'https://h/from-child', size: 300_000, seed: 3, tags: ['c'] })).toMatchObject({ ok: true });
    const entry = tier.get('https://h/from-child')!;
    expect(entry.meta.headers).toEqual([['x-from', String(child.process.pid)]]);
    expect(sha256(await readAll(entry.body.stream()))).toBe(sha256(bodyOf(300_000, 3)));

    await put(tier, 'https://h/from-parent', bodyOf(5000, 4), { tags: ['p'] });
    type Got = { found: boolean; meta?: StoredMeta; sha?: string };
    const got = await child.call<Got>({ op: 'get', key: 'https://h/from-parent' });
    expect(got).toMatchObject({ found: true, sha: sha256(bodyOf(5000, 4)) });

    // A purge in one process is seen by the other, and a refill replaces the body for both.
    const purge: PurgeSpec = { kind: 'tags', tags: ['p'] };
    expect(await child.call({ op: 'purge', spec: purge, soft: false })).toMatchObject({ count: 1 });
    expect(tier.get('https://h/from-parent')).toBeUndefined();
    expect(await child.call({ op: 'put', key: 'https://h/from-child', size: 1000, seed: 5 })).toMatchObject({ ok: true });
    expect(sha256(await readAll(tier.get('https://h/from-child')!.body.stream()))).toBe(sha256(bodyOf(1000, 5)));

    // Both processes filling the same key at once: one complete body wins, nothing is left over.
    await Promise.all([
      ...Array.from({ length: 10 }, (_, i) => child.call({ op: 'put', key: 'https://h/race', size: 20_000 + i, seed: i })),
      ...Array.from({ length: 10 }, (_, i) => put(tier, 'https://h/race', bodyOf(30_000 + i, 100 + i))),
    ]);
    const raced = tier.get('https://h/race')!;
    const size = raced.meta.size;
    const seed = size >= 30_000 ? 100 + (size - 30_000) : size - 20_000;
    expect(sha256(await readAll(raced.body.stream()))).toBe(sha256(bodyOf(size, seed)));
    expect(await child.call<Got>({ op: 'get', key: 'https://h/race' })).toMatchObject({ found: true, sha: sha256(bodyOf(size, seed)) });
    expect(objectFiles(dir)).toHaveLength(2); // from-child and race: every replaced body was unlinked

    expect(await child.call({ op: 'close' })).toMatchObject({ ok: true });
    await child.exited();
    expect(child.process.exitCode).toBe(0);
  });

  it('never exposes a body whose writer was killed mid-write, and sweeps what it left', async () => {
    const dir = tempDir();
    const child = new Child(dir, 'crash');
    children.push(child);
    expect(await child.line()).toBe('halfway');
    child.process.kill('SIGKILL');
    await child.exited();
    expect(child.process.signalCode).toBe('SIGKILL');

    const leftovers = readdirSync(join(dir, 'tmp'));
    expect(leftovers).toHaveLength(1);
    expect(leftovers[0]!.startsWith(`${child.process.pid}-`)).toBe(true);

    const tier = open(dir);
    expect(tier.get('https://h/big')).toBeUndefined();
    expect(sha256(await readAll(tier.get('https://h/small')!.body.stream()))).toBe(sha256(bodyOf(1000, 1)));
    const result = await tier.maintain();
    expect(result.orphansRemoved).toBe(1);
    expect(readdirSync(join(dir, 'tmp'))).toEqual([]);
    expect(objectFiles(dir)).toHaveLength(1);
    expect(tier.stats().entries).toBe(1);
  });

  it('removes leftovers of dead or stalled writers and bodies no entry points to', async () => {
    const dir = tempDir();
    const tier = open(dir);
    await put(tier, 'https://h/a', bodyOf(5000, 1));
    const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
    const fake = (path: string, old: boolean) => {
      writeFileSync(path, 'x');
      if (old) utimesSync(path, twoHoursAgo, twoHoursAgo);
    };
    mkdirSync(join(dir, 'objects', 'ab'), { recursive: true });
    fake(join(dir, 'objects', 'ab', 'ab00000000000000000000000000000001'), true); // orphan: removed
    fake(join(dir, 'objects', 'ab', 'ab00000000000000000000000000000002'), false); // may be mid-commit: kept
    fake(join(dir, 'tmp', '999999999-dead'), false); // its writer is gone: removed
    fake(join(dir, 'tmp', `${process.ppid}-live`), false); // a live writer's: kept
    fake(join(dir, 'tmp', `${process.ppid}-stalled`), true); // untouched for 2 h: removed

    const result = await tier.maintain();
    expect(result).toMatchObject({ evicted: 0, orphansRemoved: 3 });
    expect(readdirSync(join(dir, 'tmp'))).toEqual([`${process.ppid}-live`]);
    expect(objectFiles(dir)).toContain('ab00000000000000000000000000000002');
    expect(objectFiles(dir)).not.toContain('ab00000000000000000000000000000001');
    expect(sha256(await readAll(tier.get('https://h/a')!.body.stream()))).toBe(sha256(bodyOf(5000, 1)));
  });

  it('forgets an entry whose body file disappeared or was truncated', async () => {
    const dir = tempDir();
    const tier = open(dir);
    const bodyFile = async (key: string, seed: number): Promise<string> => {
      const before = new Set(objectFiles(dir));
      await put(tier, key, bodyOf(5000, seed));
      const file = objectFiles(dir).find((f) => !before.has(f))!;
      return join(dir, 'objects', file.slice(0, 2), file);
    };
    const gone = await bodyFile('https://h/gone', 1);
    const short = await bodyFile('https://h/short', 2);
    const late = await bodyFile('https://h/late', 3);

    const found = tier.get('https://h/late')!; // found while its body was still there
    unlinkSync(gone);
    truncateSync(short, 100);
    unlinkSync(late);

    expect(tier.get('https://h/gone')).toBeUndefined();
    expect(tier.get('https://h/short')).toBeUndefined();
    await expect(readAll(found.body.stream())).rejects.toMatchObject({ code: 'STORAGE' });
    for (let i = 0; i < 300 && tier.stats().entries > 0; i++) await sleep(10);
    expect(tier.stats().entries).toBe(0);
  });

  it('does not leak file descriptors, whether or not bodies are streamed', async () => {
    const tier = open(tempDir());
    const body = bodyOf(100_000, 1);
    await put(tier, 'https://h/a', body);
    await put(tier, 'https://h/e', Buffer.alloc(0));
    // Regular files, sockets and pipes; not the epoll/eventfd handles libuv creates as it goes.
    const fds = () => readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return !readlinkSync(`/proc/self/fd/${fd}`).startsWith('anon_inode:');
      } catch {
        return false; // the fd readdir itself used, already closed
      }
    }).length;
    tier.get('https://h/a');
    const before = fds();

    for (let i = 0; i < 1000; i++) expect(tier.get('https://h/a')!.meta.size).toBe(100_000); // meta only: 304, HEAD
    for (let i = 0; i < 1000; i++) expect(tier.get('https://h/missing')).toBeUndefined();
    expect(fds()).toBe(before);

    for (let i = 0; i < 1000; i++) {
      const entry = tier.get('https://h/a')!;
      const range = i % 2 === 0 ? undefined : { start: i, end: i + 999 };
      expect((await readAll(entry.body.stream(range))).length).toBe(range ? 1000 : 100_000);
      await readAll(tier.get('https://h/e')!.body.stream());
    }
    for (let i = 0; i < 200; i++) {
      const stream = tier.get('https://h/a')!.body.stream();
      await new Promise((resolve) => stream.once('data', resolve));
      stream.destroy(); // a client that went away mid-body
    }
    for (let i = 0; i < 100 && fds() !== before; i++) await sleep(10);
    expect(fds()).toBe(before);
  });

  it('trims itself when its own commits take it over maxBytes', async () => {
    const tier = open(tempDir(), { maxBytes: 100_000, maxObjectBytes: 50_000 });
    for (let i = 0; i < 6; i++) await put(tier, `https://h/${i}`, bodyOf(20_000, i));
    for (let i = 0; i < 300 && tier.stats().evictions < 2; i++) await sleep(10);
    expect(tier.stats().evictions).toBe(2);
    expect(tier.get('https://h/0')).toBeUndefined();
    expect(tier.get('https://h/5')).toBeDefined();
  });

  it('records a hit in lastAccess at most once per touchIntervalMs', async () => {
    const tier = open(tempDir(), { maxBytes: 100_000, maxObjectBytes: 50_000 }); // default: 30 s
    for (let i = 0; i < 4; i++) await put(tier, `https://h/${i}`, bodyOf(20_000, i));
    expect(tier.get('https://h/0')).toBeDefined(); // within 30 s of its commit: not recorded
    await put(tier, 'https://h/4', bodyOf(20_000, 4));
    await tier.maintain();
    expect([0, 1, 2, 3, 4].map((i) => tier.get(`https://h/${i}`) !== undefined)).toEqual([false, true, true, true, true]);
  });

  it('aborts the writes still open when it closes, leaving no tmp file', async () => {
    const dir = tempDir();
    const tier = open(dir);
    const w = tier.openWrite('https://h/a')!;
    await w.write(bodyOf(10_000));
    expect(readdirSync(join(dir, 'tmp'))).toHaveLength(1);
    await tier.close();
    expect(await w.commit(metaFor('https://h/a', 10_000))).toBe(false);
    expect(readdirSync(join(dir, 'tmp'))).toEqual([]);
    expect(tier.openWrite('https://h/b')).toBeUndefined();
    expect(tier.get('https://h/a')).toBeUndefined();
  });

  it('reports a failed body write at commit and stores nothing', async () => {
    const dir = tempDir();
    const tier = open(dir);
    const w = tier.openWrite('https://h/a')!;
    mkdirSync((w as unknown as { tmp: string }).tmp); // the tmp file cannot be created now
    await w.write(bodyOf(1000)); // does not throw: the caller's client is still being served
    await w.write(bodyOf(1000));
    await expect(w.commit(metaFor('https://h/a', 2000))).rejects.toMatchObject({ code: 'STORAGE' });
    expect(tier.get('https://h/a')).toBeUndefined();
    expect(objectFiles(dir)).toEqual([]);
  });

  it('recreates its working directories when they were removed', async () => {
    const dir = tempDir();
    const tier = open(dir);
    rmSync(join(dir, 'tmp'), { recursive: true });
    rmSync(join(dir, 'objects'), { recursive: true });
    expect(await put(tier, 'https://h/a', bodyOf(1000, 1))).toBe(true);
    expect(sha256(await readAll(tier.get('https://h/a')!.body.stream()))).toBe(sha256(bodyOf(1000, 1)));
  });

  it('refuses options that cannot work, naming the setting', () => {
    expect(() => DiskTier.open({ path: tempDir(), maxBytes: -1, maxObjectBytes: 1 })).toThrow(/disk tier: maxBytes: expected a positive integer, got -1/);
    expect(() => DiskTier.open({ path: '', maxBytes: 10, maxObjectBytes: 1 })).toThrow(/disk tier: path/);
  });
});
