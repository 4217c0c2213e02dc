// A small in-process CuHostServices: the shared dictionary and the CU Redis subset over Maps.
// Used by the runtime conformance suite, the run benchmark and dry runs; the edge wires the real
// ones (src/compute/store/). Every call is recorded in `calls` so tests can see what a CU asked for.
import type { CuHostServices } from '../runtime.ts';

type Value = string | Map<string, string> | Set<string>;

interface Entry {
  value: Value;
  expiresAt?: number;
}

export class MemoryCuServices implements CuHostServices {
  readonly calls: Array<{ readonly service: 'redis' | 'shared'; readonly op: string; readonly args: readonly unknown[] }> = [];
  /** Delay every answer by this many ms (0: answer on the next microtask). */
  delayMs = 0;
  /** When set, every Redis call fails with this message (a store that is down). */
  redisDown: string | undefined;
  readonly #redis = new Map<string, Entry>();
  readonly #shared = new Map<string, { v: string | number; expiresAt?: number }>();
  readonly #now: () => number;

  constructor(opts: { now?: () => number } = {}) {
    this.#now = opts.now ?? Date.now;
  }

  async redis(command: string, args: readonly (string | number)[]): Promise<unknown> {
    this.calls.push({ service: 'redis', op: command, args: [...args] });
    await this.#delay();
    if (this.redisDown !== undefined) throw new Error(this.redisDown);
    return this.#redisCommand(command.toLowerCase(), args.map(String));
  }

  async shared(op: 'get' | 'set' | 'incr' | 'delete', key: string, value?: string | number, ttlMs?: number): Promise<unknown> {
    this.calls.push({ service: 'shared', op, args: [key, value, ttlMs] });
    await this.#delay();
    const m = this.#shared;
    const live = (): { v: string | number; expiresAt?: number } | undefined => {
      const e = m.get(key);
      if (e?.expiresAt !== undefined && e.expiresAt <= this.#now()) {
        m.delete(key);
        return undefined;
      }
      return e;
    };
    const entry = (v: string | number) => (ttlMs === undefined ? { v } : { v, expiresAt: this.#now() + ttlMs });
    switch (op) {
      case 'get':
        return live()?.v ?? null;
      case 'set':
        m.set(key, entry(value ?? ''));
        return true;
      case 'incr': {
        const e = live();
        const n = (e === undefined ? 0 : Number(e.v)) + (typeof value === 'number' ? value : 1);
        m.set(key, e === undefined ? entry(n) : { ...e, v: n });
        return n;
      }
      case 'delete':
        return m.delete(key);
    }
  }

  #delay(): Promise<void> {
    return this.delayMs > 0 ? new Promise((r) => setTimeout(r, this.delayMs)) : Promise.resolve();
  }

  #entry(value: Value, ttlMs: number | undefined): Entry {
    return ttlMs === undefined ? { value } : { value, expiresAt: this.#now() + ttlMs };
  }

  #live(m: Map<string, Entry>, key: string): Entry | undefined {
    const e = m.get(key);
    if (e?.expiresAt !== undefined && e.expiresAt <= this.#now()) {
      m.delete(key);
      return undefined;
    }
    return e;
  }

  #redisCommand(cmd: string, a: string[]): unknown {
    const m = this.#redis;
    const k = a[0] ?? '';
    const str = (): string | null => {
      const e = this.#live(m, k);
      if (e === undefined) return null;
      if (typeof e.value !== 'string') throw new Error('WRONGTYPE Operation against a key holding the wrong kind of value');
      return e.value;
    };
    const hash = (create: boolean): Map<string, string> | undefined => {
      const e = this.#live(m, k);
      if (e === undefined) {
        if (!create) return undefined;
        const h = new Map<string, string>();
        m.set(k, { value: h });
        return h;
      }
      if (!(e.value instanceof Map)) throw new Error('WRONGTYPE Operation against a key holding the wrong kind of value');
      return e.value;
    };
    const set = (create: boolean): Set<string> | undefined => {
      const e = this.#live(m, k);
      if (e === undefined) {
        if (!create) return undefined;
        const s = new Set<string>();
        m.set(k, { value: s });
        return s;
      }
      if (!(e.value instanceof Set)) throw new Error('WRONGTYPE Operation against a key holding the wrong kind of value');
      return e.value;
    };
    const incrBy = (by: number): number => {
      const n = Number(str() ?? '0') + by;
      if (!Number.isInteger(n)) throw new Error('ERR value is not an integer or out of range');
      const e = this.#live(m, k);
      m.set(k, { value: String(n), ...(e?.expiresAt === undefined ? {} : { expiresAt: e.expiresAt }) });
      return n;
    };
    switch (cmd) {
      case 'get':
        return str();
      case 'set': {
        let ttl: number | undefined;
        for (let i = 2; i < a.length; i++) {
          const opt = a[i]!.toUpperCase();
          if (opt === 'EX') ttl = Number(a[++i]) * 1000;
          else if (opt === 'PX') ttl = Number(a[++i]);
        }
        m.set(k, this.#entry(a[1] ?? '', ttl));
        return 'OK';
      }
      case 'incr':
        return incrBy(1);
      case 'incrby':
        return incrBy(Number(a[1]));
      case 'decr':
        return incrBy(-1);
      case 'expire':
      case 'pexpire': {
        const e = this.#live(m, k);
        if (e === undefined) return 0;
        e.expiresAt = this.#now() + Number(a[1]) * (cmd === 'expire' ? 1000 : 1);
        return 1;
      }
      case 'ttl': {
        const e = this.#live(m, k);
        if (e === undefined) return -2;
        return e.expiresAt === undefined ? -1 : Math.ceil((e.expiresAt - this.#now()) / 1000);
      }
      case 'del':
      case 'exists': {
        let n = 0;
        for (const key of a) {
          if (this.#live(m, key) !== undefined) {
            n++;
            if (cmd === 'del') m.delete(key);
          }
        }
        return n;
      }
      case 'hget':
        return hash(false)?.get(a[1] ?? '') ?? null;
      case 'hset': {
        const h = hash(true)!;
        let added = 0;
        for (let i = 1; i + 1 < a.length; i += 2) {
          if (!h.has(a[i]!)) added++;
          h.set(a[i]!, a[i + 1]!);
        }
        return added;
      }
      case 'hincrby': {
        const h = hash(true)!;
        const n = Number(h.get(a[1] ?? '') ?? '0') + Number(a[2]);
        h.set(a[1] ?? '', String(n));
        return n;
      }
      case 'hgetall':
        return Object.fromEntries(hash(false) ?? []);
      case 'sadd': {
        const s = set(true)!;
        let added = 0;
        for (const v of a.slice(1)) if (!s.has(v)) (s.add(v), added++);
        return added;
      }
      case 'srem': {
        const s = set(false);
        let removed = 0;
        for (const v of a.slice(1)) if (s?.delete(v)) removed++;
        return removed;
      }
      case 'smembers':
        return [...(set(false) ?? [])];
      case 'sismember':
        return set(false)?.has(a[1] ?? '') ? 1 : 0;
      default:
        throw new Error(`ERR unknown command '${cmd}'`);
    }
  }
}
