// What the nodes of one CDN share through Redis (or Redis Cluster): a registry of nodes with
// heartbeats, and a purge log that every node follows. docs/fleet.md documents the keys.
//
//   <prefix>:nodes          hash: node id → JSON NodeInfo (seenAt updated by every heartbeat)
//   <prefix>:purges         stream: one entry per purge {spec, soft, node, at}, trimmed to ~history
//   <prefix>:purge-events   channel: one message per purge, so followers read at once
//
// A purge is an entry in a stream rather than only a pub/sub message so that a node that was down
// (or cut off) when it was issued applies it when it comes back: each node keeps the id of the last
// entry it applied (its cursor, saved beside its disk cache) and reads everything after it. With
// the embedded store there is one node and no fleet: LocalFleet keeps the registry in memory.
import { Cluster } from 'ioredis';
import type { PurgeSpec } from '../cache/storage/tier.ts';
import { redisClient, type Client } from '../compute/store/redis.ts';
import { OutpostError } from '../errors.ts';

export type NodeRole = 'edge' | 'shield' | 'lb';

export interface NodeInfo {
  readonly id: string;
  readonly name: string;
  readonly role: NodeRole;
  readonly version: string;
  readonly pid: number;
  readonly host: string;
  readonly edge?: string;
  readonly admin?: string;
  readonly startedAt: number;
  readonly seenAt: number;
  readonly requests: number;
  readonly hits: number;
  /** hits ÷ requests since the node started (cache statuses HIT, STALE, UPDATING, REVALIDATED). */
  readonly hitRatio: number;
  readonly healthy: boolean;
}

export interface PurgeRecord {
  readonly spec: PurgeSpec;
  readonly soft: boolean;
  /** Id of the node that issued it. */
  readonly node: string;
  readonly at: number;
}

export interface PurgeEntry {
  readonly id: string;
  readonly rec: PurgeRecord;
}

export interface Fleet {
  /** Whether other nodes can exist (the store is Redis or Redis Cluster). */
  readonly shared: boolean;
  heartbeat(info: NodeInfo): Promise<void>;
  /** Every node that sent a heartbeat within `forgetAfterMs`. */
  nodes(forgetAfterMs: number): Promise<NodeInfo[]>;
  leave(id: string): Promise<void>;
  /** Appends a purge to the log; resolves to its entry id. */
  publishPurge(rec: PurgeRecord): Promise<string>;
  /**
   * Purges logged after `cursor` (oldest first), at most `count`. 'gap' when entries after the
   * cursor were already trimmed away (the caller must assume it missed purges).
   */
  purgesAfter(cursor: string, count: number): Promise<PurgeEntry[] | 'gap'>;
  /** The id of the newest entry ('0-0' when the log is empty). */
  lastPurgeId(): Promise<string>;
  /** Calls `fn` whenever a purge is published by any node. Resolves to an unsubscribe. */
  onPurge(fn: () => void): Promise<() => void>;
  close(): Promise<void>;
}

/** Stream ids "ms-seq" compared as numbers. */
export function compareIds(a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am - bm || as - bs;
}

export class LocalFleet implements Fleet {
  readonly shared = false;
  readonly #nodes = new Map<string, NodeInfo>();

  async heartbeat(info: NodeInfo): Promise<void> {
    this.#nodes.set(info.id, info);
  }
  async nodes(): Promise<NodeInfo[]> {
    return [...this.#nodes.values()];
  }
  async leave(id: string): Promise<void> {
    this.#nodes.delete(id);
  }
  async publishPurge(): Promise<string> {
    return '0-0';
  }
  async purgesAfter(): Promise<PurgeEntry[]> {
    return [];
  }
  async lastPurgeId(): Promise<string> {
    return '0-0';
  }
  async onPurge(): Promise<() => void> {
    return () => undefined;
  }
  async close(): Promise<void> {}
}

export interface RedisFleetOptions {
  readonly kind: 'redis' | 'redis-cluster';
  readonly urls: readonly string[];
  readonly prefix: string;
  readonly commandTimeoutMs: number;
  /** Purge log entries kept (approximately); older ones are trimmed. */
  readonly history: number;
}

function fields(raw: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) out[raw[i]!] = raw[i + 1]!;
  return out;
}

export class RedisFleet implements Fleet {
  readonly shared = true;
  readonly #client: Client;
  #sub: Client | undefined;
  readonly #keys: { nodes: string; purges: string; events: string };
  readonly #history: number;
  readonly #listeners = new Set<() => void>();
  #closed = false;

  constructor(o: RedisFleetOptions) {
    this.#client = redisClient({ kind: o.kind, urls: o.urls, commandTimeoutMs: o.commandTimeoutMs, name: 'outpost-fleet' });
    this.#client.on('error', () => undefined);
    this.#keys = { nodes: `${o.prefix}:nodes`, purges: `${o.prefix}:purges`, events: `${o.prefix}:purge-events` };
    this.#history = o.history;
  }

  async #run<T>(what: string, fn: (c: Client) => Promise<T>): Promise<T> {
    if (this.#closed) throw new OutpostError('STORE_UNAVAILABLE', 'fleet: closed');
    if (this.#client.status !== 'ready') {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new OutpostError('STORE_UNAVAILABLE', `fleet: ${what}: Redis is not connected`)), 1000);
        this.#client.once('ready', () => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    try {
      return await fn(this.#client);
    } catch (err) {
      if (err instanceof OutpostError) throw err;
      throw new OutpostError('STORE_UNAVAILABLE', `fleet: ${what}: ${(err as Error).message}`, { cause: err });
    }
  }

  heartbeat(info: NodeInfo): Promise<void> {
    return this.#run('heartbeat', async (c) => {
      await c.hset(this.#keys.nodes, info.id, JSON.stringify(info));
    });
  }

  nodes(forgetAfterMs: number): Promise<NodeInfo[]> {
    return this.#run('nodes', async (c) => {
      const all = await c.hgetall(this.#keys.nodes);
      const now = Date.now();
      const out: NodeInfo[] = [];
      const gone: string[] = [];
      for (const [id, raw] of Object.entries(all)) {
        try {
          const n = JSON.parse(raw) as NodeInfo;
          if (now - n.seenAt > forgetAfterMs) gone.push(id);
          else out.push(n);
        } catch {
          gone.push(id);
        }
      }
      if (gone.length) await c.hdel(this.#keys.nodes, ...gone);
      return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.id < b.id ? -1 : 1));
    });
  }

  leave(id: string): Promise<void> {
    return this.#run('leave', async (c) => {
      await c.hdel(this.#keys.nodes, id);
    });
  }

  publishPurge(rec: PurgeRecord): Promise<string> {
    return this.#run('publishPurge', async (c) => {
      const id = await c.xadd(this.#keys.purges, 'MAXLEN', '~', String(this.#history), '*', 'p', JSON.stringify(rec));
      await c.publish(this.#keys.events, id ?? '');
      return id ?? '0-0';
    });
  }

  purgesAfter(cursor: string, count: number): Promise<PurgeEntry[] | 'gap'> {
    return this.#run('purgesAfter', async (c) => {
      // Trimming leaves no mark on a cursor: if anything was ever trimmed (entries-added > length)
      // and the cursor is older than the first entry kept, entries after the cursor may be gone.
      // (Exactly at the last trimmed entry this errs on the safe side.)
      const info = (await c.call('XINFO', 'STREAM', this.#keys.purges).catch((err: Error) => {
        if (/no such key/i.test(err.message)) return undefined;
        throw err;
      })) as unknown[] | undefined;
      if (!info) return [];
      const f: Record<string, unknown> = {};
      for (let i = 0; i + 1 < info.length; i += 2) f[String(info[i])] = info[i + 1];
      const first = Array.isArray(f['first-entry']) ? String((f['first-entry'] as unknown[])[0]) : undefined;
      const trimmed = Number(f['entries-added'] ?? 0) > Number(f.length ?? 0);
      if (trimmed && (first === undefined || compareIds(cursor, first) < 0)) return 'gap';
      const rows = (await c.xrange(this.#keys.purges, `(${cursor}`, '+', 'COUNT', count)) as Array<[string, string[]]>;
      const out: PurgeEntry[] = [];
      for (const [id, raw] of rows) {
        try {
          out.push({ id, rec: JSON.parse(fields(raw).p ?? '') as PurgeRecord });
        } catch {
          // An entry not written by Outpost: skipped.
        }
      }
      return out;
    });
  }

  lastPurgeId(): Promise<string> {
    return this.#run('lastPurgeId', async (c) => {
      const rows = (await c.xrevrange(this.#keys.purges, '+', '-', 'COUNT', 1)) as Array<[string, string[]]>;
      return rows[0]?.[0] ?? '0-0';
    });
  }

  async onPurge(fn: () => void): Promise<() => void> {
    this.#listeners.add(fn);
    if (!this.#sub) {
      const c = this.#client;
      // Subscribed connections cannot run commands: a second connection that may queue its SUBSCRIBE.
      const sub: Client =
        c instanceof Cluster
          ? c.duplicate(undefined, { enableOfflineQueue: true, redisOptions: { ...c.options.redisOptions, commandTimeout: undefined, connectionName: 'outpost-fleet-events' } })
          : c.duplicate({ enableOfflineQueue: true, commandTimeout: undefined, maxRetriesPerRequest: null, connectionName: 'outpost-fleet-events' });
      sub.on('error', () => undefined);
      sub.on('message', () => {
        for (const l of [...this.#listeners]) l();
      });
      // Back after a disconnection: purges may have been published meanwhile.
      let first = true;
      sub.on('ready', () => {
        if (first) first = false;
        else for (const l of [...this.#listeners]) l();
      });
      this.#sub = sub;
      await Promise.race([sub.subscribe(this.#keys.events).catch(() => undefined), new Promise((r) => setTimeout(r, 1000))]);
    }
    return () => this.#listeners.delete(fn);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    this.#sub?.disconnect();
    if (this.#client.status === 'ready') await Promise.race([this.#client.quit().catch(() => undefined), new Promise((r) => setTimeout(r, 500))]);
    this.#client.disconnect();
  }
}

/**
 * A fleet in one process, for nodes started together by `outpost up` with the embedded store:
 * the same registry and purge log semantics as Redis, held in memory. Each node gets its own
 * handle (`join()`), closing which does not end the others'.
 */
export class MemoryFleet {
  readonly #nodes = new Map<string, NodeInfo>();
  readonly #log: PurgeEntry[] = [];
  readonly #listeners = new Set<() => void>();
  #seq = 0;

  join(): Fleet {
    const shared = this;
    const mine = new Set<() => void>();
    return {
      shared: true,
      heartbeat: async (info) => void shared.#nodes.set(info.id, info),
      nodes: async (forgetAfterMs) => {
        const now = Date.now();
        return [...shared.#nodes.values()].filter((n) => now - n.seenAt <= forgetAfterMs).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      },
      leave: async (id) => void shared.#nodes.delete(id),
      publishPurge: async (rec) => {
        const id = `${Date.now()}-${shared.#seq++}`;
        shared.#log.push({ id, rec });
        for (const l of [...shared.#listeners]) queueMicrotask(l);
        return id;
      },
      purgesAfter: async (cursor, count) => shared.#log.filter((e) => compareIds(e.id, cursor) > 0).slice(0, count),
      lastPurgeId: async () => shared.#log.at(-1)?.id ?? '0-0',
      onPurge: async (fn) => {
        shared.#listeners.add(fn);
        mine.add(fn);
        return () => {
          shared.#listeners.delete(fn);
          mine.delete(fn);
        };
      },
      close: async () => {
        for (const fn of mine) shared.#listeners.delete(fn);
      },
    };
  }
}
