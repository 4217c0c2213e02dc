// CUs in Redis or Redis Cluster (ioredis). docs/cu-store.md documents the layout for operators.
//
//   <prefix>:cu:<id>       JSON of the CuSpec plus version and updatedAt
//   <prefix>:cus           set of ids
//   <prefix>:cu-settings   JSON of the CuSettings
//   <prefix>:cu-seq        counter that gives versions
//   <prefix>:cu-changes    channel, one message after every write
//   <prefix>:doc:<name>    a document (rules, IP lists): JSON {name, version, updatedAt, value}
//   <prefix>:docs          hash: document name → version (what a read compares before fetching)
//   <prefix>:data:<key>    what CU code stores through the CU data API (kv-commands.ts)
//   coding_units + <id>    the seeds' layout (value "phase||code[||sampling]"), read as well
//
// The prefix is a hash tag ("{outpost}"), so every key of ours lies in one cluster slot: readAll is
// SMEMBERS then one MGET (settings included) — two round trips whatever the number of CUs, on a
// single Redis and on a cluster alike — and put (one Lua script) and delete (MULTI) are atomic.
//
// Failure behaviour: commands are never queued while disconnected (an outage would otherwise pile
// up every CU's data commands in memory, and run them late); a command waits at most
// commandTimeoutMs for the connection, then at most commandTimeoutMs for its reply, and fails with
// STORAGE. ioredis reconnects in the background, backing off to at most 1 s between attempts.
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { OutpostError } from '../../errors.ts';
import type { CuRecord, CuSettings, CuSpec } from '../cu.ts';
import { dataPrefix, normalizeKvReply, parseKvCommand, type KvArg } from './kv-commands.ts';
import { checkDocName, checkSettings, checkSpec, decodeDoc, decodeRecord, decodeSeedValue, decodeSettings } from './records.ts';
import type { CuStore, StoreSnapshot, StoredDoc } from './store.ts';

export interface RedisCuStoreOptions {
  readonly kind: 'redis' | 'redis-cluster';
  /** redis: the server; redis-cluster: used as the seed node when `nodes` is empty. */
  readonly url: string;
  /** redis-cluster: seed nodes. */
  readonly nodes: readonly string[];
  /** A hash tag such as "{outpost}". */
  readonly prefix: string;
  readonly commandTimeoutMs: number;
  /** The seeds' set of CU ids to read as well (default "coding_units"); false: do not read the seed layout. */
  readonly seedSet?: string | false;
}

/** The seeds' set of CU ids (no prefix: the seeds wrote it with redis-cli as is). */
export const SEED_SET_KEY = 'coding_units';

export type Client = Redis | Cluster;

/** What one change message says; informative only, since any message makes nodes re-read. */
export interface ChangeMessage {
  readonly op: 'put' | 'delete' | 'settings' | 'doc' | 'doc-delete';
  readonly id?: string;
  readonly version?: number;
}

/**
 * put() in one atomic step: take the next version, write the record with it, list the id, announce.
 * Separate commands could let two concurrent writers of one id store the older version last, so
 * a CU's stored version could go backwards; in a script, versions follow the order of the writes.
 * KEYS: seq, record, ids. ARGV: record JSON without its closing brace, id, channel, message likewise.
 */
const PUT_SCRIPT = `
local v = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1] .. ',"version":' .. v .. '}')
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4] .. ',"version":' .. v .. '}')
return v
`;

/**
 * putDoc() likewise: next version, the document, its entry in the version hash, announce.
 * KEYS: seq, doc, docs hash. ARGV: the document JSON without its closing brace, name, channel, message.
 */
const PUT_DOC_SCRIPT = `
local v = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1] .. ',"version":' .. v .. '}')
redis.call('HSET', KEYS[3], ARGV[2], v)
redis.call('PUBLISH', ARGV[3], ARGV[4] .. ',"version":' .. v .. '}')
return v
`;

const PREFIX_RE = /^\{[^{}]+\}$/;
const MAX_RECONNECT_DELAY_MS = 1000;

function reconnectDelay(times: number): number {
  return Math.min(50 * 2 ** Math.min(times, 5), MAX_RECONNECT_DELAY_MS);
}

function clusterNode(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port ? Number(u.port) : 6379 };
}

/** Credentials and TLS of a redis:// or rediss:// URL, for the cluster's node connections. */
function urlOptions(url: string): Pick<RedisOptions, 'username' | 'password' | 'tls'> {
  const u = new URL(url);
  return {
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

function isReplyError(err: unknown): boolean {
  return err instanceof Error && err.name === 'ReplyError';
}

/**
 * A command connection as Outpost uses them: no offline queue (a command fails fast while Redis is
 * away instead of piling up), a timeout per command, reconnection backing off to 1 s.
 */
export function redisClient(o: { kind: 'redis' | 'redis-cluster'; urls: readonly string[]; commandTimeoutMs: number; name: string }): Client {
  const common: RedisOptions = {
    commandTimeout: o.commandTimeoutMs,
    connectTimeout: Math.max(o.commandTimeoutMs, 1000),
    connectionName: o.name,
    maxRetriesPerRequest: 0,
  };
  if (o.kind === 'redis') return new Redis(o.urls[0]!, { ...common, enableOfflineQueue: false, retryStrategy: reconnectDelay });
  const clusterOpts: ClusterOptions = {
    enableOfflineQueue: false,
    clusterRetryStrategy: reconnectDelay,
    slotsRefreshTimeout: Math.max(o.commandTimeoutMs, 1000),
    redisOptions: { ...common, ...urlOptions(o.urls[0]!) },
  };
  return new Cluster(o.urls.map(clusterNode), clusterOpts);
}

export class RedisCuStore implements CuStore {
  readonly kind: 'redis' | 'redis-cluster';
  readonly prefix: string;
  readonly commandTimeoutMs: number;
  readonly keys: {
    readonly ids: string;
    readonly settings: string;
    readonly seq: string;
    readonly channel: string;
    readonly data: string;
    readonly docs: string;
  };
  /** The seed-format set read besides our own records, if any. */
  readonly seedSet: string | undefined;
  readonly #client: Client;
  #subscriber: Client | undefined;
  #subscribed: Promise<unknown> | undefined;
  /** The subscriber connection is up and subscribed (false between a disconnection and its resubscription). */
  #listening = false;
  readonly #listeners = new Set<() => void>();
  /** Parsed documents by name: a read fetches only those whose version changed. */
  readonly #docs = new Map<string, StoredDoc>();
  #lastError: Error | undefined;
  #waitReady: Promise<void> | undefined;
  #closed = false;

  static connect(opts: RedisCuStoreOptions): RedisCuStore {
    return new RedisCuStore(opts);
  }

  private constructor(opts: RedisCuStoreOptions) {
    if (opts.kind !== 'redis' && opts.kind !== 'redis-cluster') {
      throw new OutpostError('CONFIG_INVALID', `compute.store.kind: expected redis or redis-cluster, got ${JSON.stringify(opts.kind)}`);
    }
    if (typeof opts.prefix !== 'string' || !PREFIX_RE.test(opts.prefix)) {
      throw new OutpostError('CONFIG_INVALID', `compute.store.prefix: expected a Redis hash tag such as "{outpost}", got ${JSON.stringify(opts.prefix)}`);
    }
    if (!Number.isFinite(opts.commandTimeoutMs) || opts.commandTimeoutMs <= 0) {
      throw new OutpostError('CONFIG_INVALID', `compute.store.commandTimeout: expected a positive duration, got ${String(opts.commandTimeoutMs)} ms`);
    }
    const urls = opts.kind === 'redis' ? [opts.url] : opts.nodes.length > 0 ? opts.nodes : [opts.url];
    for (const u of urls) {
      if (typeof u !== 'string' || !/^rediss?:\/\/[^/]/.test(u)) {
        throw new OutpostError('CONFIG_INVALID', `compute.store.${opts.kind === 'redis' ? 'url' : 'nodes'}: expected a redis:// or rediss:// URL, got ${JSON.stringify(u)}`);
      }
    }
    this.kind = opts.kind;
    this.prefix = opts.prefix;
    this.commandTimeoutMs = opts.commandTimeoutMs;
    this.seedSet = opts.seedSet === false ? undefined : (opts.seedSet ?? SEED_SET_KEY);
    const p = opts.prefix;
    this.keys = { ids: `${p}:cus`, settings: `${p}:cu-settings`, seq: `${p}:cu-seq`, channel: `${p}:cu-changes`, data: dataPrefix(p), docs: `${p}:docs` };

    this.#client = redisClient({ kind: opts.kind, urls, commandTimeoutMs: opts.commandTimeoutMs, name: 'outpost-cu-store' });
    this.#client.on('error', (err: Error) => {
      this.#lastError = err;
    });
    // Back after a disconnection: changes announced meanwhile were missed, so listeners re-read,
    // once both connections are back: here if the subscriber is (or there is none), else when it
    // has subscribed again (#startSubscriber). So a read never runs on a connection still down.
    let connectedBefore = false;
    this.#client.on('ready', () => {
      if (connectedBefore && (this.#subscriber === undefined || this.#listening)) this.#fire();
      connectedBefore = true;
    });
  }

  /** Calls every change listener; one that throws cannot keep the others from hearing. */
  #fire(): void {
    for (const l of [...this.#listeners]) {
      try {
        l();
      } catch {
        // see above
      }
    }
  }

  #cuKey(id: string): string {
    return `${this.prefix}:cu:${id}`;
  }

  /** Waits (at most commandTimeoutMs) for the connection, since nothing is queued while disconnected. */
  async #ready(): Promise<void> {
    if (this.#closed) throw new OutpostError('STORAGE', `CU store (${this.kind}): closed`);
    if (this.#client.status === 'ready') return;
    this.#waitReady ??= new Promise<void>((resolve) => {
      this.#client.once('ready', () => {
        this.#waitReady = undefined;
        resolve();
      });
    });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.commandTimeoutMs);
    });
    try {
      const outcome = await Promise.race([this.#waitReady, timedOut]);
      if (outcome === 'timeout') {
        const why = this.#lastError ? `: ${this.#lastError.message}` : '';
        throw new OutpostError('STORAGE', `CU store (${this.kind}) unreachable: not connected within ${this.commandTimeoutMs} ms${why}`);
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** Runs store commands; anything that goes wrong becomes a STORAGE error naming the operation. */
  async #run<T>(what: string, fn: (client: Client) => Promise<T>): Promise<T> {
    await this.#ready();
    try {
      return await fn(this.#client);
    } catch (err) {
      if (err instanceof OutpostError) throw err;
      throw new OutpostError('STORAGE', `CU store (${this.kind}): ${what} failed: ${(err as Error).message}`, { cause: err });
    }
  }

  async readAll(): Promise<StoreSnapshot> {
    return this.#run('readAll', async (c) => {
      const seedSet = this.seedSet;
      const [ids, seedIds, docVersions] = await Promise.all([c.smembers(this.keys.ids), seedSet === undefined ? [] : c.smembers(seedSet), c.hgetall(this.keys.docs)]);
      ids.sort();
      const docNames = Object.keys(docVersions).sort();
      const stale = docNames.filter((n) => this.#docs.get(n)?.version !== Number(docVersions[n]));
      // Seed keys carry no hash tag, so they may live on any node: fetched in parallel, one GET each.
      const [values, seedValues] = await Promise.all([
        c.mget(this.keys.settings, ...ids.map((id) => this.#cuKey(id)), ...stale.map((n) => this.#docKey(n))),
        Promise.all(seedIds.map((id) => c.get(id))),
      ]);
      const cus: CuRecord[] = [];
      const invalid: { id: string; error: string }[] = [];
      const settings = decodeSettings(values[0]);
      if (!settings.ok) invalid.push({ id: this.keys.settings, error: settings.error });
      const seen = new Set<string>();
      ids.forEach((id, i) => {
        const raw = values[i + 1];
        // Deleted between SMEMBERS and MGET, or an id added by hand before its record: not a CU (yet).
        if (raw === null || raw === undefined) return;
        seen.add(id);
        const rec = decodeRecord(id, raw);
        if (rec.ok) cus.push(rec.value);
        else invalid.push({ id, error: rec.error });
      });
      seedIds.forEach((id, i) => {
        const raw = seedValues[i];
        // A record in our own layout takes precedence over a seed-format one of the same id.
        if (raw === null || raw === undefined || seen.has(id)) return;
        const rec = decodeSeedValue(id, raw);
        if (rec.ok) cus.push(rec.value);
        else invalid.push({ id, error: rec.error });
      });
      cus.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      stale.forEach((name, i) => {
        const raw = values[1 + ids.length + i];
        const doc = raw === null || raw === undefined ? { error: 'missing' } : decodeDoc(name, raw);
        if ('error' in doc) invalid.push({ id: this.#docKey(name), error: doc.error });
        else this.#docs.set(name, doc);
      });
      for (const name of this.#docs.keys()) if (!(name in docVersions)) this.#docs.delete(name);
      const docs = docNames.flatMap((n) => this.#docs.get(n) ?? []);
      return { cus, docs, settings: settings.ok ? settings.value : { enabled: true, skipHosts: [] }, invalid };
    });
  }

  async put(spec: CuSpec): Promise<CuRecord> {
    const checked = checkSpec(spec);
    const updatedAt = new Date().toISOString();
    // The record's JSON without its closing brace: the script appends the version it takes.
    const head = JSON.stringify({ ...checked, updatedAt }).slice(0, -1);
    const announce = JSON.stringify({ op: 'put', id: checked.id } satisfies ChangeMessage).slice(0, -1);
    const version = await this.#run(`put ${checked.id}`, (c) =>
      c.eval(PUT_SCRIPT, 3, this.keys.seq, this.#cuKey(checked.id), this.keys.ids, head, checked.id, this.keys.channel, announce),
    );
    if (typeof version !== 'number') throw new OutpostError('STORAGE', `CU store (${this.kind}): put ${checked.id}: unexpected reply ${String(version)}`);
    return { ...checked, version, updatedAt };
  }

  #docKey(name: string): string {
    return `${this.prefix}:doc:${name}`;
  }

  async putDoc(name: string, value: unknown): Promise<StoredDoc> {
    checkDocName(name);
    const updatedAt = new Date().toISOString();
    const text = JSON.stringify({ name, updatedAt, value });
    if (text === undefined || !text.endsWith('}')) throw new OutpostError('BAD_REQUEST', `document ${name}: the value is not JSON`);
    const announce = JSON.stringify({ op: 'doc', id: name } satisfies ChangeMessage).slice(0, -1);
    const version = await this.#run(`putDoc ${name}`, (c) =>
      c.eval(PUT_DOC_SCRIPT, 3, this.keys.seq, this.#docKey(name), this.keys.docs, text.slice(0, -1), name, this.keys.channel, announce),
    );
    if (typeof version !== 'number') throw new OutpostError('STORAGE', `CU store (${this.kind}): putDoc ${name}: unexpected reply ${String(version)}`);
    return { name, version, updatedAt, value };
  }

  async deleteDoc(name: string): Promise<boolean> {
    checkDocName(name);
    const removed = await this.#run(`deleteDoc ${name}`, async (c) => {
      const results = await c.multi().hdel(this.keys.docs, name).del(this.#docKey(name)).exec();
      const failed = results?.find(([err]) => err);
      if (!results || failed) throw failed?.[0] ?? new Error('the transaction was aborted');
      return results[0]![1] === 1;
    });
    if (removed) await this.#publish({ op: 'doc-delete', id: name });
    return removed;
  }

  async delete(id: string): Promise<boolean> {
    const removed = await this.#run(`delete ${id}`, async (c) => {
      const results = await c.multi().del(this.#cuKey(id)).srem(this.keys.ids, id).exec();
      const failed = results?.find(([err]) => err);
      if (!results || failed) throw failed?.[0] ?? new Error('the transaction was aborted');
      let any = results.some(([, n]) => n === 1);
      // A seed-format CU of this id goes too: the control plane lists it, so it must be able to remove it.
      if (this.seedSet !== undefined && (await c.srem(this.seedSet, id)) === 1) {
        await c.del(id);
        any = true;
      }
      return any;
    });
    if (removed) await this.#publish({ op: 'delete', id });
    return removed;
  }

  async putSettings(settings: CuSettings): Promise<void> {
    const checked = checkSettings(settings);
    await this.#run('putSettings', (c) => c.set(this.keys.settings, JSON.stringify(checked)));
    await this.#publish({ op: 'settings' });
  }

  /** The write is done when this runs; if the announcement fails, the nodes' polling finds the change. */
  async #publish(msg: ChangeMessage): Promise<void> {
    try {
      await this.#client.publish(this.keys.channel, JSON.stringify(msg));
    } catch {
      // see above
    }
  }

  async subscribe(onChange: () => void): Promise<() => void> {
    if (this.#closed) throw new OutpostError('STORAGE', `CU store (${this.kind}): closed`);
    this.#listeners.add(onChange);
    const sub = this.#subscriber ?? this.#startSubscriber();
    // Resolves once subscribed, or after commandTimeoutMs while Redis is away: the SUBSCRIBE stays
    // queued on the subscriber connection (its only command) and takes effect when Redis returns.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.#subscribed!.catch(() => undefined),
      new Promise((resolve) => {
        timer = setTimeout(resolve, this.commandTimeoutMs);
      }),
    ]);
    clearTimeout(timer);
    return () => {
      this.#listeners.delete(onChange);
      if (this.#listeners.size === 0 && this.#subscriber === sub) {
        this.#subscriber = undefined;
        this.#subscribed = undefined;
        this.#listening = false;
        sub.disconnect();
      }
    };
  }

  #startSubscriber(): Client {
    const fire = (): void => this.#fire();
    // A separate connection: a subscribed connection cannot run commands. It may queue (it only
    // ever sends SUBSCRIBE) and has no command timeout, so a SUBSCRIBE sent while Redis is away
    // waits for it instead of being lost.
    const sub: Client =
      this.#client instanceof Cluster
        ? this.#client.duplicate(undefined, { enableOfflineQueue: true, redisOptions: { ...this.#client.options.redisOptions, commandTimeout: undefined, connectionName: 'outpost-cu-changes' } })
        : this.#client.duplicate({ enableOfflineQueue: true, commandTimeout: undefined, maxRetriesPerRequest: null, connectionName: 'outpost-cu-changes' });
    sub.on('error', (err: Error) => {
      this.#lastError = err;
    });
    sub.on('message', (channel: string) => {
      if (channel === this.keys.channel) fire();
    });
    let connectedBefore = false;
    sub.on('ready', () => {
      if (!connectedBefore) {
        connectedBefore = true;
        return;
      }
      // Back after a disconnection: once subscribed again (this SUBSCRIBE's reply comes after
      // ioredis's own resubscription), listeners re-read if the command connection is back too.
      sub.subscribe(this.keys.channel).then(() => {
        this.#listening = true;
        if (this.#client.status === 'ready') fire();
      }, () => undefined);
    });
    sub.on('close', () => {
      this.#listening = false;
    });
    this.#subscriber = sub;
    this.#subscribed = sub.subscribe(this.keys.channel);
    this.#subscribed.then(() => {
      this.#listening = true;
    }, () => undefined);
    return sub;
  }

  async command(name: string, args: readonly KvArg[]): Promise<unknown> {
    const cmd = parseKvCommand(name, args);
    await this.#ready();
    const argv = [...cmd.keys.map((k) => this.keys.data + k), ...cmd.args];
    try {
      return normalizeKvReply(cmd.name, await this.#client.call(cmd.name, ...argv));
    } catch (err) {
      // The server refusing the command (WRONGTYPE, not an integer) is the CU's doing; anything else is the store's.
      if (isReplyError(err)) throw new OutpostError('BAD_REQUEST', `redis.${cmd.name}: ${(err as Error).message}`, { cause: err });
      throw new OutpostError('STORAGE', `redis.${cmd.name}: ${(err as Error).message}`, { cause: err });
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    this.#subscriber?.disconnect();
    this.#subscriber = undefined;
    const c = this.#client;
    if (c.status === 'ready') {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        c.quit().catch(() => undefined),
        new Promise((resolve) => {
          timer = setTimeout(resolve, this.commandTimeoutMs);
        }),
      ]);
      clearTimeout(timer);
    }
    c.disconnect();
  }
}
