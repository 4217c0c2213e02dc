// The per-worker RAM tier: an LRU bounded by bytes (lru-cache). Bodies are Buffers, so a hit is a
// map lookup and one write; no streams, no event-loop turn.
import { Readable } from 'node:stream';
import { LRUCache } from 'lru-cache';
import { VARIANT_SEPARATOR, type PurgeSpec, type StorageTier, type StoredBody, type StoredEntry, type StoredMeta, type TierStats, type WriteHandle } from './tier.ts';

/** Rough per-entry overhead (key, meta object, headers) counted against maxBytes. */
function metaBytes(meta: StoredMeta): number {
  let n = 256 + meta.key.length * 2;
  for (const [k, v] of meta.headers) n += (k.length + v.length) * 2 + 32;
  return n;
}

class BufferBody implements StoredBody {
  readonly buffer: Buffer;
  readonly size: number;
  constructor(buffer: Buffer) {
    this.buffer = buffer;
    this.size = buffer.length;
  }
  stream(range?: { start: number; end: number }): Readable {
    return Readable.from([range ? this.buffer.subarray(range.start, range.end + 1) : this.buffer], { objectMode: false });
  }
}

export class RamTier implements StorageTier {
  readonly name = 'ram' as const;
  readonly maxObjectBytes: number;
  private readonly maxBytes: number;
  private readonly lru: LRUCache<string, StoredEntry>;
  private evictions = 0;

  constructor(opts: { maxBytes: number; maxObjectBytes: number }) {
    this.maxBytes = opts.maxBytes;
    this.maxObjectBytes = opts.maxObjectBytes;
    this.lru = new LRUCache<string, StoredEntry>({
      maxSize: Math.max(opts.maxBytes, 1),
      sizeCalculation: (e) => Math.max(1, e.body.size + metaBytes(e.meta)),
      dispose: (_v, _k, reason) => {
        if (reason === 'evict') this.evictions++;
      },
    });
  }

  get(key: string): StoredEntry | undefined {
    return this.lru.get(key);
  }

  openWrite(key: string, sizeHint?: number): WriteHandle | undefined {
    if (sizeHint !== undefined && sizeHint > this.maxObjectBytes) return undefined;
    const chunks: Buffer[] = [];
    let size = 0;
    let state: 'open' | 'done' = 'open';
    const max = this.maxObjectBytes;
    return {
      write: async (chunk) => {
        if (state !== 'open') return;
        size += chunk.length;
        if (size > max) {
          chunks.length = 0;
          return;
        }
        chunks.push(chunk);
      },
      commit: async (meta) => {
        if (state !== 'open') return false;
        state = 'done';
        if (size > max) return false;
        const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
        this.lru.set(key, { meta: { ...meta, key, size: body.length }, body: new BufferBody(body) });
        return this.lru.has(key);
      },
      abort: async () => {
        state = 'done';
        chunks.length = 0;
      },
    };
  }

  async updateMeta(key: string, meta: StoredMeta): Promise<boolean> {
    const e = this.lru.peek(key);
    if (!e) return false;
    this.lru.set(key, { meta: { ...meta, key, size: e.body.size }, body: e.body });
    return true;
  }

  async delete(key: string): Promise<boolean> {
    return this.lru.delete(key);
  }

  async purge(spec: PurgeSpec, soft: boolean): Promise<number> {
    const match = matcher(spec);
    const now = Date.now();
    let n = 0;
    for (const [key, e] of this.lru.entries()) {
      if (!match(key, e.meta)) continue;
      n++;
      if (soft) this.lru.set(key, { meta: { ...e.meta, invalidatedAt: now }, body: e.body }, { noUpdateTTL: true });
      else this.lru.delete(key);
    }
    return n;
  }

  stats(): TierStats {
    return { bytes: this.lru.calculatedSize, entries: this.lru.size, evictions: this.evictions, maxBytes: this.maxBytes };
  }

  async close(): Promise<void> {
    this.lru.clear();
  }
}

/** Which entries a purge names; shared by tiers that scan their keys. */
export function matcher(spec: PurgeSpec): (key: string, meta: StoredMeta) => boolean {
  switch (spec.kind) {
    case 'key': {
      const variantPrefix = spec.key + VARIANT_SEPARATOR;
      return (key) => key === spec.key || key.startsWith(variantPrefix);
    }
    case 'prefix':
      return (key) => key.startsWith(spec.prefix);
    case 'tags': {
      const tags = new Set(spec.tags);
      return (_key, meta) => meta.tags.some((t) => tags.has(t));
    }
    case 'all':
      return () => true;
  }
}
