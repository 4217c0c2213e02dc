// The embedded store: CUs on local disk in LMDB, no Redis needed (what `npm start` uses). One
// instance per node, owned by the primary, which pushes snapshots to its workers; so change
// notifications are in-process. Records are the same JSON as in Redis (records.ts).
//
// Layout (one LMDB environment at `<path>`, string keys and values):
//   cu:<id>    JSON of the CuSpec plus version and updatedAt
//   seq        the last version given
//   settings   JSON of the CuSettings
//   doc:<name> JSON {name, version, updatedAt, value} of a document (rules, IP lists)
//   docv:<name> the version of that document, so that a read parses only documents that changed
//
// Only synchronous LMDB calls are used: lmdb-js's asynchronous transactions hang on this machine.
// The writes are tiny and this process is the only writer, so a synchronous commit is brief.
//
// The CU data API (command()) lives in memory here (MemoryKv): node-local, not persisted — counters
// start from zero when the primary restarts.
import { mkdirSync } from 'node:fs';
import { open as openLmdb, type RootDatabase } from 'lmdb';
import { OutpostError } from '../../errors.ts';
import type { CuRecord, CuSettings, CuSpec } from '../cu.ts';
import { MemoryKv, normalizeKvReply, parseKvCommand, type KvArg } from './kv-commands.ts';
import { checkDocName, checkSettings, checkSpec, decodeDoc, decodeRecord, decodeSettings, encodeDoc, encodeRecord } from './records.ts';
import type { CuStore, StoreSnapshot, StoredDoc } from './store.ts';

export interface EmbeddedCuStoreOptions {
  readonly path: string;
  /** Most keys the in-memory CU data API holds (default 1,000,000). */
  readonly maxDataKeys?: number;
}

const CU_KEY = 'cu:';
/** The first key after every `cu:` key (';' follows ':'). */
const CU_END = 'cu;';
const DOC_KEY = 'doc:';
const DOCV_KEY = 'docv:';
const DOCV_END = 'docv;';
const SWEEP_INTERVAL_MS = 1000;
const SWEEP_BATCH = 10_000;

export class EmbeddedCuStore implements CuStore {
  readonly kind = 'embedded' as const;
  readonly path: string;
  readonly #db: RootDatabase<string, string>;
  readonly #listeners = new Set<() => void>();
  readonly #kv: MemoryKv;
  readonly #sweeper: NodeJS.Timeout;
  /** Parsed documents by name: a read re-parses only those whose version changed. */
  readonly #docs = new Map<string, StoredDoc>();
  #closed = false;

  /** Opens (creating if needed) the store in the directory `opts.path`. Synchronous: LMDB opens synchronously. */
  static open(opts: EmbeddedCuStoreOptions): EmbeddedCuStore {
    return new EmbeddedCuStore(opts);
  }

  private constructor(opts: EmbeddedCuStoreOptions) {
    if (typeof opts.path !== 'string' || opts.path === '') {
      throw new OutpostError('CONFIG_INVALID', `compute.store.path: expected a directory path, got ${JSON.stringify(opts.path)}`);
    }
    this.path = opts.path;
    try {
      mkdirSync(opts.path, { recursive: true });
      this.#db = openLmdb<string, string>({ path: opts.path, encoding: 'string' });
    } catch (err) {
      throw new OutpostError('STORAGE', `CU store (embedded): cannot open ${opts.path}: ${(err as Error).message}`, { cause: err });
    }
    this.#kv = new MemoryKv(opts.maxDataKeys === undefined ? {} : { maxKeys: opts.maxDataKeys });
    this.#sweeper = setInterval(() => this.#kv.sweep(SWEEP_BATCH), SWEEP_INTERVAL_MS);
    this.#sweeper.unref();
  }

  #open(): void {
    if (this.#closed) throw new OutpostError('STORAGE', 'CU store (embedded): closed');
  }

  /** Tells subscribers after the write committed; a listener that throws cannot undo or fail the write. */
  #notify(): void {
    for (const l of [...this.#listeners]) {
      try {
        l();
      } catch {
        // see above
      }
    }
  }

  async readAll(): Promise<StoreSnapshot> {
    this.#open();
    const cus: CuRecord[] = [];
    const invalid: { id: string; error: string }[] = [];
    const settings = decodeSettings(this.#db.get('settings'));
    if (!settings.ok) invalid.push({ id: 'settings', error: settings.error });
    for (const { key, value } of this.#db.getRange({ start: CU_KEY, end: CU_END })) {
      const id = key.slice(CU_KEY.length);
      const rec = decodeRecord(id, value);
      if (rec.ok) cus.push(rec.value);
      else invalid.push({ id, error: rec.error });
    }
    const docs: StoredDoc[] = [];
    const names = new Set<string>();
    for (const { key, value } of this.#db.getRange({ start: DOCV_KEY, end: DOCV_END })) {
      const name = key.slice(DOCV_KEY.length);
      names.add(name);
      const cached = this.#docs.get(name);
      if (cached && cached.version === Number(value)) {
        docs.push(cached);
        continue;
      }
      const raw = this.#db.get(DOC_KEY + name);
      const doc = raw === undefined ? { error: 'missing' } : decodeDoc(name, raw);
      if ('error' in doc) {
        invalid.push({ id: DOC_KEY + name, error: doc.error });
        continue;
      }
      this.#docs.set(name, doc);
      docs.push(doc);
    }
    for (const name of this.#docs.keys()) if (!names.has(name)) this.#docs.delete(name);
    docs.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { cus, docs, settings: settings.ok ? settings.value : { enabled: true, skipHosts: [] }, invalid };
  }

  async putDoc(name: string, value: unknown): Promise<StoredDoc> {
    this.#open();
    checkDocName(name);
    const doc = this.#db.transactionSync(() => {
      const version = Number(this.#db.get('seq') ?? 0) + 1;
      const d: StoredDoc = { name, version, updatedAt: new Date().toISOString(), value };
      const text = encodeDoc(d);
      this.#db.putSync('seq', String(version));
      this.#db.putSync(DOC_KEY + name, text);
      this.#db.putSync(DOCV_KEY + name, String(version));
      return d;
    });
    this.#notify();
    return doc;
  }

  async deleteDoc(name: string): Promise<boolean> {
    this.#open();
    checkDocName(name);
    const removed = this.#db.transactionSync(() => {
      const had = this.#db.removeSync(DOCV_KEY + name);
      this.#db.removeSync(DOC_KEY + name);
      return had;
    });
    if (removed) this.#notify();
    return removed;
  }

  async put(spec: CuSpec): Promise<CuRecord> {
    this.#open();
    const checked = checkSpec(spec);
    const record = this.#db.transactionSync(() => {
      const version = Number(this.#db.get('seq') ?? 0) + 1;
      const rec: CuRecord = { ...checked, version, updatedAt: new Date().toISOString() };
      this.#db.putSync('seq', String(version));
      this.#db.putSync(CU_KEY + checked.id, encodeRecord(rec));
      return rec;
    });
    this.#notify();
    return record;
  }

  async delete(id: string): Promise<boolean> {
    this.#open();
    const removed = this.#db.removeSync(CU_KEY + id);
    if (removed) this.#notify();
    return removed;
  }

  async putSettings(settings: CuSettings): Promise<void> {
    this.#open();
    this.#db.putSync('settings', JSON.stringify(checkSettings(settings)));
    this.#notify();
  }

  async subscribe(onChange: () => void): Promise<() => void> {
    this.#open();
    const listener = (): void => onChange();
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  async command(name: string, args: readonly KvArg[]): Promise<unknown> {
    this.#open();
    const cmd = parseKvCommand(name, args);
    return normalizeKvReply(cmd.name, this.#kv.run(cmd));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweeper);
    this.#listeners.clear();
    this.#kv.clear();
    await this.#db.close();
  }
}
