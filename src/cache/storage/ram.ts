// The RAM tier: an LRU of whole bodies in Buffers, bounded by bytes (bodies plus an estimate of
// what their meta costs). A hit is one map lookup that hands back a prebuilt entry.
import { LRUCache } from 'lru-cache';
import type { Readable } from 'node:stream';
import { bufferStream, checkMetaKey, checkSizeOptions, clampRange } from './body.ts';
import {
  VARIANT_SEPARATOR,
  type PurgeSpec,
  type StorageTier,
  type StoredBody,
  type StoredEntry,
  type StoredMeta,
  type TierStats,
  type WriteHandle,
} from './tier.ts';

const EMPTY = Buffer.alloc(0);
const DONE = Promise.resolve();

class RamBody implements StoredBody {
  readonly size: number;
  readonly buffer: Buffer;

  constructor(buffer: Buffer) {
    this.buffer = buffer;
    this.size = buffer.length;
  }

  stream(range?: { start: number; end: number }): Readable {
    if (range === undefined) return bufferStream(this.buffer);
    const { start, end } = clampRange(this.size, range);
    return bufferStream(end < start ? EMPTY : this.buffer.subarray(start, end + 1));
  }
}

/** Built once per commit so that get() returns it as is; `cost` is what it counts against maxBytes. */
class RamEntry implements StoredEntry {
  readonly meta: StoredMeta;
  readonly body: RamBody;
  readonly cost: number;

  constructor(meta: StoredMeta, body: RamBody) {
    this.meta = meta;
    this.body = body;
    this.cost = body.size + metaCost(meta);
  }
}

/** Rough heap cost of an entry apart from its body: strings at 2 bytes a char plus object overheads. */
export function metaCost(meta: StoredMeta): number {
  let n = 256 + 2 * meta.key.length;
  for (const [name, value] of meta.headers) n += 32 + 2 * (name.length + value.length);
  for (const tag of meta.tags) n += 16 + 2 * tag.length;
  for (const name of meta.vary) n += 16 + 2 * name.length;
  return n;
}

function primaryOf(key: string): string | undefined {
  const i = key.indexOf(VARIANT_SEPARATOR);
  return i < 0 ? undefined : key.slice(0, i);
}

export class RamTier implements StorageTier {
  readonly name = 'ram';
  readonly maxObjectBytes: number;
  readonly #maxBytes: number;
  readonly #lru: LRUCache<string, RamEntry>;
  /** primary key → its variant keys, so purging a URL does not scan the whole cache. */
  readonly #variants = new Map<string, Set<string>>();
  #evictions = 0;
  #closed = false;

  constructor(opts: { maxBytes: number; maxObjectBytes: number }) {
    checkSizeOptions('ram', opts);
    this.#maxBytes = opts.maxBytes;
    this.maxObjectBytes = opts.maxObjectBytes;
    this.#lru = new LRUCache<string, RamEntry>({
      maxSize: opts.maxBytes,
      sizeCalculation: (entry) => entry.cost,
      dispose: (_entry, key, reason) => {
        // 'set' hands over the old value of a key that stays; every other reason removes the key.
        if (reason === 'set') return;
        if (reason === 'evict') this.#evictions++;
        this.#forgetVariant(key);
      },
    });
  }

  get(key: string): StoredEntry | undefined {
    return this.#lru.get(key);
  }

  openWrite(key: string, sizeHint?: number): WriteHandle | undefined {
    if (this.#closed || (sizeHint !== undefined && sizeHint > this.maxObjectBytes)) return undefined;
    return new RamWrite(key, this.maxObjectBytes, (entry) => this.#install(key, entry));
  }

  async updateMeta(key: string, meta: StoredMeta): Promise<boolean> {
    checkMetaKey('ram', key, meta);
    const current = this.#lru.peek(key);
    if (current === undefined) return false;
    const size = current.body.size;
    return this.#install(key, new RamEntry(meta.size === size ? meta : { ...meta, size }, current.body));
  }

  async delete(key: string): Promise<boolean> {
    return this.#lru.delete(key);
  }

  async purge(spec: PurgeSpec, soft: boolean): Promise<number> {
    if (spec.kind === 'all' && !soft) {
      const count = this.#lru.size;
      this.#lru.clear();
      this.#variants.clear();
      return count;
    }
    const keys = this.#matching(spec);
    const now = Date.now();
    let count = 0;
    for (const key of keys) {
      if (soft) {
        const entry = this.#lru.peek(key);
        if (entry === undefined) continue;
        // set() also makes the entry most recently used; acceptable, it will be revalidated soon.
        this.#lru.set(key, new RamEntry({ ...entry.meta, invalidatedAt: now }, entry.body));
        count++;
      } else if (this.#lru.delete(key)) {
        count++;
      }
    }
    return count;
  }

  stats(): TierStats {
    return {
      bytes: this.#lru.calculatedSize,
      entries: this.#lru.size,
      evictions: this.#evictions,
      maxBytes: this.#maxBytes,
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#lru.clear();
    this.#variants.clear();
  }

  #install(key: string, entry: RamEntry): boolean {
    // lru-cache would refuse it too, but would also drop the entry already under the key.
    if (this.#closed || entry.cost > this.#maxBytes) return false;
    this.#lru.set(key, entry);
    const primary = primaryOf(key);
    if (primary !== undefined) {
      let set = this.#variants.get(primary);
      if (set === undefined) this.#variants.set(primary, (set = new Set()));
      set.add(key);
    }
    return true;
  }

  #forgetVariant(key: string): void {
    const primary = primaryOf(key);
    if (primary === undefined) return;
    const set = this.#variants.get(primary);
    if (set === undefined) return;
    set.delete(key);
    if (set.size === 0) this.#variants.delete(primary);
  }

  /** The keys a purge applies to, collected before anything is removed. */
  #matching(spec: PurgeSpec): string[] {
    switch (spec.kind) {
      case 'key': {
        const keys = this.#lru.has(spec.key) ? [spec.key] : [];
        if (!spec.key.includes(VARIANT_SEPARATOR)) {
          keys.push(...(this.#variants.get(spec.key) ?? []));
          return keys;
        }
        // Purging one variant (and anything nested under it) is rare: a scan will do.
        const nested = spec.key + VARIANT_SEPARATOR;
        for (const key of this.#lru.keys()) if (key.startsWith(nested)) keys.push(key);
        return keys;
      }
      case 'prefix':
        return [...this.#lru.keys()].filter((key) => key.startsWith(spec.prefix));
      case 'tags': {
        const tags = new Set(spec.tags);
        const keys: string[] = [];
        for (const [key, entry] of this.#lru.entries()) {
          if (entry.meta.tags.some((tag) => tags.has(tag))) keys.push(key);
        }
        return keys;
      }
      case 'all':
        return [...this.#lru.keys()];
    }
  }
}

class RamWrite implements WriteHandle {
  readonly #key: string;
  readonly #maxObjectBytes: number;
  readonly #install: (entry: RamEntry) => boolean;
  #chunks: Buffer[] = [];
  #size = 0;
  /** False once the write outgrew the limit, was aborted or committed: nothing more is kept. */
  #open = true;

  constructor(key: string, maxObjectBytes: number, install: (entry: RamEntry) => boolean) {
    this.#key = key;
    this.#maxObjectBytes = maxObjectBytes;
    this.#install = install;
  }

  write(chunk: Buffer): Promise<void> {
    if (!this.#open) return DONE;
    this.#size += chunk.length;
    if (this.#size > this.#maxObjectBytes) this.#close();
    else this.#chunks.push(chunk);
    return DONE;
  }

  async commit(meta: StoredMeta): Promise<boolean> {
    if (!this.#open) return false;
    const chunks = this.#chunks;
    const size = this.#size;
    this.#close();
    checkMetaKey('ram', this.#key, meta);
    // A private, exactly sized copy: pooled or sliced chunks would pin more memory than we count.
    const buffer = Buffer.allocUnsafeSlow(size);
    let offset = 0;
    for (const chunk of chunks) offset += chunk.copy(buffer, offset);
    return this.#install(new RamEntry(meta.size === size ? meta : { ...meta, size }, new RamBody(buffer)));
  }

  async abort(): Promise<void> {
    this.#close();
  }

  #close(): void {
    this.#open = false;
    this.#chunks = [];
  }
}
