// The CU data API: the small, safe subset of Redis that CU code may call (`redis.get(...)` etc.).
// Both stores share this file: the Redis stores send the validated command to Redis with every key
// moved under `<prefix>:data:`; the embedded store runs it on MemoryKv below, with Redis's replies
// and error messages, so a CU behaves the same on either. Nothing here can name a key outside the
// data namespace (CU records, settings and the version counter are out of reach), run a script, or
// block the server.
import { OutpostError } from '../../errors.ts';

export const KV_COMMANDS = [
  'get',
  'set',
  'incr',
  'incrby',
  'decr',
  'expire',
  'pexpire',
  'ttl',
  'del',
  'exists',
  'hget',
  'hset',
  'hincrby',
  'hgetall',
  'sadd',
  'srem',
  'smembers',
  'sismember',
] as const;
export type KvCommandName = (typeof KV_COMMANDS)[number];

export const MAX_KEY_BYTES = 1024;
export const MAX_VALUE_BYTES = 512 * 1024;
/** Most keys in one del/exists, fields in one hset, members in one sadd/srem. */
export const MAX_ITEMS = 1000;

/** A validated command: keys as the CU wrote them (not yet namespaced), then the other arguments as strings. */
export interface KvCommand {
  readonly name: KvCommandName;
  readonly keys: readonly string[];
  readonly args: readonly string[];
}

export type KvArg = string | number;

function fail(name: string, message: string): never {
  throw new OutpostError('BAD_REQUEST', `redis.${name}: ${message}`);
}

function show(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v) : String(v);
}

function key(name: string, v: KvArg | undefined): string {
  if (typeof v !== 'string' || v === '') fail(name, `expected a key (a non-empty string), got ${show(v)}`);
  if (Buffer.byteLength(v) > MAX_KEY_BYTES) fail(name, `expected a key of at most ${MAX_KEY_BYTES} bytes`);
  return v;
}

function value(name: string, v: KvArg | undefined, what = 'value'): string {
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) fail(name, `expected a finite number as ${what}, got ${show(v)}`);
    return String(v);
  }
  if (typeof v !== 'string') fail(name, `expected a string or number as ${what}, got ${show(v)}`);
  if (Buffer.byteLength(v) > MAX_VALUE_BYTES) fail(name, `expected a ${what} of at most ${MAX_VALUE_BYTES} bytes`);
  return v;
}

function integer(name: string, v: KvArg | undefined, what: string): string {
  const n = typeof v === 'string' && /^-?\d{1,16}$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n)) fail(name, `expected an integer as ${what}, got ${show(v)}`);
  return String(n);
}

function arity(name: string, args: readonly KvArg[], min: number, max: number, shape: string): void {
  if (args.length < min || args.length > max) fail(name, `expected ${shape}, got ${args.length} argument${args.length === 1 ? '' : 's'}`);
}

/** Validates one call of the CU data API. Throws OutpostError BAD_REQUEST with a message naming the command. */
export function parseKvCommand(rawName: string, args: readonly KvArg[]): KvCommand {
  const name = typeof rawName === 'string' ? rawName.toLowerCase() : '';
  if (!(KV_COMMANDS as readonly string[]).includes(name)) {
    throw new OutpostError('BAD_REQUEST', `redis: unknown or disallowed command ${show(rawName)}; allowed: ${KV_COMMANDS.join(', ')}`);
  }
  if (!Array.isArray(args)) fail(name, 'expected an array of arguments');
  const n = name as KvCommandName;
  switch (n) {
    case 'get':
    case 'incr':
    case 'decr':
    case 'ttl':
    case 'hgetall':
    case 'smembers':
      arity(n, args, 1, 1, '(key)');
      return { name: n, keys: [key(n, args[0])], args: [] };
    case 'set': {
      arity(n, args, 2, 4, "(key, value) or (key, value, 'EX' | 'PX', n)");
      const out = [value(n, args[1])];
      if (args.length > 2) {
        const unit = typeof args[2] === 'string' ? args[2].toUpperCase() : '';
        if (unit !== 'EX' && unit !== 'PX') fail(n, `expected 'EX' or 'PX' as third argument, got ${show(args[2])}`);
        if (args.length !== 4) fail(n, `expected a time after '${unit}'`);
        const t = integer(n, args[3], `the ${unit} time`);
        if (Number(t) <= 0) fail(n, `expected a positive ${unit} time, got ${t}`);
        out.push(unit, t);
      }
      return { name: n, keys: [key(n, args[0])], args: out };
    }
    case 'incrby':
      arity(n, args, 2, 2, '(key, increment)');
      return { name: n, keys: [key(n, args[0])], args: [integer(n, args[1], 'increment')] };
    case 'expire':
    case 'pexpire':
      arity(n, args, 2, 2, n === 'expire' ? '(key, seconds)' : '(key, milliseconds)');
      return { name: n, keys: [key(n, args[0])], args: [integer(n, args[1], n === 'expire' ? 'seconds' : 'milliseconds')] };
    case 'del':
    case 'exists':
      arity(n, args, 1, MAX_ITEMS, `1 to ${MAX_ITEMS} keys`);
      return { name: n, keys: args.map((k) => key(n, k)), args: [] };
    case 'hget':
      arity(n, args, 2, 2, '(key, field)');
      return { name: n, keys: [key(n, args[0])], args: [value(n, args[1], 'field')] };
    case 'hset': {
      if (args.length < 3 || args.length % 2 === 0 || args.length > 1 + 2 * MAX_ITEMS) {
        fail(n, `expected (key, field, value, [field, value …]) with at most ${MAX_ITEMS} fields, got ${args.length} arguments`);
      }
      const out = args.slice(1).map((v, i) => value(n, v, i % 2 === 0 ? 'field' : 'value'));
      return { name: n, keys: [key(n, args[0])], args: out };
    }
    case 'hincrby':
      arity(n, args, 3, 3, '(key, field, increment)');
      return { name: n, keys: [key(n, args[0])], args: [value(n, args[1], 'field'), integer(n, args[2], 'increment')] };
    case 'sadd':
    case 'srem':
      arity(n, args, 2, 1 + MAX_ITEMS, `(key, member, …) with at most ${MAX_ITEMS} members`);
      return { name: n, keys: [key(n, args[0])], args: args.slice(1).map((v) => value(n, v, 'member')) };
    case 'sismember':
      arity(n, args, 2, 2, '(key, member)');
      return { name: n, keys: [key(n, args[0])], args: [value(n, args[1], 'member')] };
  }
}

/** The key prefix under which CU data lives: `<prefix>:data:`. */
export function dataPrefix(prefix: string): string {
  return `${prefix}:data:`;
}

/** Gives a reply the same shape whichever store answered (hgetall as an object). */
export function normalizeKvReply(name: KvCommandName, reply: unknown): unknown {
  if (name === 'hgetall' && Array.isArray(reply)) {
    const out: Record<string, string> = {};
    for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1]);
    return out;
  }
  return reply;
}

type Entry =
  | { type: 'string'; value: string; expiresAt: number }
  | { type: 'hash'; value: Map<string, string>; expiresAt: number }
  | { type: 'set'; value: Set<string>; expiresAt: number };

const WRONGTYPE = 'WRONGTYPE Operation against a key holding the wrong kind of value';
const NOT_INTEGER = 'ERR value is not an integer or out of range';
const OVERFLOW = 'ERR increment or decrement would overflow';
const INT_RE = /^(0|-?[1-9]\d*)$/;

function replyError(message: string): never {
  throw new OutpostError('BAD_REQUEST', message);
}

/**
 * The CU data API in memory, for the embedded store: Redis semantics (replies, TTLs, WRONGTYPE),
 * integers limited to JavaScript's safe range. Expired keys are dropped when touched and by sweep().
 */
export class MemoryKv {
  readonly maxKeys: number;
  readonly #map = new Map<string, Entry>();
  readonly #now: () => number;
  #cursor: MapIterator<[string, Entry]> | undefined;

  constructor(opts: { maxKeys?: number; now?: () => number } = {}) {
    this.maxKeys = opts.maxKeys ?? 1_000_000;
    this.#now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.#map.size;
  }

  /**
   * Drops expired keys; returns how many. With a limit, looks at that many keys, resuming where the
   * previous call stopped, so that a periodic sweep never blocks the event loop for long.
   */
  sweep(limit = Infinity): number {
    const now = this.#now();
    let dropped = 0;
    if (limit === Infinity) this.#cursor = undefined;
    const it = (this.#cursor ??= this.#map.entries());
    for (let seen = 0; seen < limit; seen++) {
      const next = it.next();
      if (next.done) {
        this.#cursor = undefined;
        break;
      }
      const [k, e] = next.value;
      if (e.expiresAt !== 0 && e.expiresAt <= now) {
        this.#map.delete(k);
        dropped++;
      }
    }
    return dropped;
  }

  clear(): void {
    this.#map.clear();
  }

  run(cmd: KvCommand): unknown {
    const k = cmd.keys[0]!;
    const a = cmd.args;
    switch (cmd.name) {
      case 'get': {
        const e = this.#typed(k, 'string');
        return e ? e.value : null;
      }
      case 'set': {
        let expiresAt = 0;
        if (a.length === 3) expiresAt = this.#now() + Number(a[2]) * (a[1] === 'EX' ? 1000 : 1);
        this.#insert(k, { type: 'string', value: a[0]!, expiresAt });
        return 'OK';
      }
      case 'incr':
        return this.#incr(k, 1);
      case 'decr':
        return this.#incr(k, -1);
      case 'incrby':
        return this.#incr(k, Number(a[0]));
      case 'expire':
      case 'pexpire': {
        const e = this.#live(k);
        if (!e) return 0;
        const ms = Number(a[0]) * (cmd.name === 'expire' ? 1000 : 1);
        if (ms <= 0) this.#map.delete(k);
        else e.expiresAt = this.#now() + ms;
        return 1;
      }
      case 'ttl': {
        const e = this.#live(k);
        if (!e) return -2;
        if (e.expiresAt === 0) return -1;
        return Math.floor((e.expiresAt - this.#now() + 500) / 1000);
      }
      case 'del': {
        let n = 0;
        for (const key of cmd.keys) if (this.#live(key) && this.#map.delete(key)) n++;
        return n;
      }
      case 'exists': {
        let n = 0;
        for (const key of cmd.keys) if (this.#live(key)) n++;
        return n;
      }
      case 'hget': {
        const e = this.#typed(k, 'hash');
        return e?.value.get(a[0]!) ?? null;
      }
      case 'hset': {
        const e = this.#typed(k, 'hash') ?? this.#insert(k, { type: 'hash', value: new Map(), expiresAt: 0 });
        let added = 0;
        for (let i = 0; i + 1 < a.length; i += 2) {
          if (!e.value.has(a[i]!)) added++;
          e.value.set(a[i]!, a[i + 1]!);
        }
        return added;
      }
      case 'hincrby': {
        const e = this.#typed(k, 'hash');
        const current = e?.value.get(a[0]!);
        if (current !== undefined && !INT_RE.test(current)) replyError('ERR hash value is not an integer');
        const next = Number(current ?? 0) + Number(a[1]);
        if (!Number.isSafeInteger(next)) replyError(OVERFLOW);
        (e ?? this.#insert(k, { type: 'hash', value: new Map(), expiresAt: 0 })).value.set(a[0]!, String(next));
        return next;
      }
      case 'hgetall': {
        const e = this.#typed(k, 'hash');
        return e ? Object.fromEntries(e.value) : {};
      }
      case 'sadd': {
        const e = this.#typed(k, 'set') ?? this.#insert(k, { type: 'set', value: new Set(), expiresAt: 0 });
        let added = 0;
        for (const m of a) {
          if (!e.value.has(m)) {
            e.value.add(m);
            added++;
          }
        }
        return added;
      }
      case 'srem': {
        const e = this.#typed(k, 'set');
        if (!e) return 0;
        let removed = 0;
        for (const m of a) if (e.value.delete(m)) removed++;
        if (e.value.size === 0) this.#map.delete(k);
        return removed;
      }
      case 'smembers': {
        const e = this.#typed(k, 'set');
        return e ? [...e.value] : [];
      }
      case 'sismember':
        return this.#typed(k, 'set')?.value.has(a[0]!) ? 1 : 0;
    }
  }

  #live(k: string): Entry | undefined {
    const e = this.#map.get(k);
    if (e && e.expiresAt !== 0 && e.expiresAt <= this.#now()) {
      this.#map.delete(k);
      return undefined;
    }
    return e;
  }

  #typed<T extends Entry['type']>(k: string, type: T): Extract<Entry, { type: T }> | undefined {
    const e = this.#live(k);
    if (e && e.type !== type) replyError(WRONGTYPE);
    return e as Extract<Entry, { type: T }> | undefined;
  }

  #insert<E extends Entry>(k: string, e: E): E {
    if (!this.#map.has(k) && this.#map.size >= this.maxKeys && (this.sweep() === 0 || this.#map.size >= this.maxKeys)) {
      replyError(`OOM the embedded CU data store holds its maximum of ${this.maxKeys} keys`);
    }
    this.#map.set(k, e);
    return e;
  }

  #incr(k: string, by: number): number {
    const e = this.#typed(k, 'string');
    if (e && !INT_RE.test(e.value)) replyError(NOT_INTEGER);
    const next = Number(e?.value ?? 0) + by;
    if (!Number.isSafeInteger(next)) replyError(OVERFLOW);
    // Like Redis, INCR keeps the key's TTL.
    if (e) e.value = String(next);
    else this.#insert(k, { type: 'string', value: String(next), expiresAt: 0 });
    return next;
  }
}
