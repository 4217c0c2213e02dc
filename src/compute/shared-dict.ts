// The node-local shared dictionary CUs use (like OpenResty's lua_shared_dict). It lives in the
// node's primary process; workers reach it over IPC, so all workers of a node see the same values.

interface Item {
  value: string | number;
  expiresAt: number;
}

export class SharedDict {
  private readonly items = new Map<string, Item>();
  private readonly maxKeys: number;

  constructor(opts: { maxKeys?: number } = {}) {
    this.maxKeys = opts.maxKeys ?? 100_000;
  }

  get(key: string, now = Date.now()): string | number | null {
    const it = this.items.get(key);
    if (!it) return null;
    if (it.expiresAt && it.expiresAt <= now) {
      this.items.delete(key);
      return null;
    }
    return it.value;
  }

  set(key: string, value: string | number, ttlMs?: number, now = Date.now()): true {
    if (!this.items.has(key) && this.items.size >= this.maxKeys) this.evictOne(now);
    this.items.set(key, { value, expiresAt: ttlMs ? now + ttlMs : 0 });
    return true;
  }

  /** Adds `by` to a number (missing counts as 0) and returns the new value; ttlMs applies when the key is new. */
  incr(key: string, by = 1, ttlMs?: number, now = Date.now()): number {
    const current = this.get(key, now);
    const base = typeof current === 'number' ? current : current === null ? 0 : Number(current);
    if (!Number.isFinite(base)) throw new Error(`shared.incr: value of ${key} is not a number`);
    const it = this.items.get(key);
    const value = base + by;
    this.items.set(key, { value, expiresAt: it ? it.expiresAt : ttlMs ? now + ttlMs : 0 });
    return value;
  }

  delete(key: string): boolean {
    return this.items.delete(key);
  }

  get size(): number {
    return this.items.size;
  }

  /** Expired entries go first; otherwise the oldest inserted (Map order). */
  private evictOne(now: number): void {
    for (const [k, it] of this.items) {
      if (it.expiresAt && it.expiresAt <= now) {
        this.items.delete(k);
        return;
      }
    }
    const first = this.items.keys().next();
    if (!first.done) this.items.delete(first.value);
  }

  /** Applies one operation, as CU code calls it. */
  apply(op: 'get' | 'set' | 'incr' | 'delete', key: string, value?: string | number, ttlMs?: number): unknown {
    if (typeof key !== 'string' || key.length === 0 || key.length > 1024) throw new Error('shared: expected a key of 1 to 1024 characters');
    switch (op) {
      case 'get':
        return this.get(key);
      case 'set':
        if (typeof value !== 'string' && typeof value !== 'number') throw new Error('shared.set: expected a string or number value');
        return this.set(key, value, ttlMs);
      case 'incr':
        return this.incr(key, typeof value === 'number' ? value : 1, ttlMs);
      case 'delete':
        return this.delete(key);
    }
  }
}
