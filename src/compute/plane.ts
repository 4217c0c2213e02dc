// The control side of edge computing, one per node (in the primary, or in-process): it owns the
// store connection and the watcher, checks CUs when they are saved (compiling them, so bad code is
// refused with line and column), runs dry runs, and serves the node-local shared dictionary.
import type { Logger } from 'pino';
import type { OutpostConfig } from '../config/load.ts';
import { OutpostError } from '../errors.ts';
import { CuInputSchema, CuSettingsSchema, type CuInput, type CuRecord, type CuSettings, type CuSpec } from './cu.ts';
import { requestView } from './hooks.ts';
import { CuError, type CuHostServices, type CuRunInput, type CuRunOutput, type CuRuntime } from './runtime.ts';
import { SharedDict } from './shared-dict.ts';
import { IsolateRuntime } from './sandbox/isolate-runtime.ts';
import { MemoryCuServices } from './sandbox/memory-services.ts';
import { EmbeddedCuStore } from './store/embedded.ts';
import { RedisCuStore } from './store/redis.ts';
import type { CuStore, StoreSnapshot } from './store/store.ts';
import { CuWatcher } from './watcher.ts';
import { newContext } from '../edge/request.ts';

export function openStore(config: OutpostConfig['compute']): CuStore {
  const s = config.store;
  if (s.kind === 'embedded') return EmbeddedCuStore.open({ path: s.path });
  return RedisCuStore.connect({ kind: s.kind, url: s.url, nodes: s.nodes, prefix: s.prefix, commandTimeoutMs: s.commandTimeout });
}

/** What a dry run is asked to run against. */
export interface DryRunRequest {
  readonly method?: string;
  readonly url: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly ip?: string;
  /** For header_filter/body_filter/log CUs: the response as it stands. */
  readonly response?: { readonly status?: number; readonly headers?: Readonly<Record<string, string>>; readonly body?: string };
}

export interface DryRunResult {
  readonly output?: CuRunOutput;
  readonly error?: { readonly kind: string; readonly message: string; readonly line?: number; readonly column?: number };
  readonly ms: number;
}

function invalid(err: unknown): OutpostError {
  if (err instanceof CuError) {
    const where = err.line !== undefined ? ` at line ${err.line}${err.column !== undefined ? `, column ${err.column}` : ''}` : '';
    const e = new OutpostError('CU_INVALID', `code does not compile${where}: ${err.message}`);
    return Object.assign(e, { line: err.line, column: err.column });
  }
  return new OutpostError('CU_INVALID', (err as Error).message);
}

export class ComputePlane {
  readonly store: CuStore;
  readonly shared = new SharedDict();
  private readonly watcher: CuWatcher;
  private readonly checker: CuRuntime;
  private readonly log: Logger;
  private storeUp = true;
  private readonly ownsStore: boolean;

  private constructor(store: CuStore, watcher: CuWatcher, log: Logger, ownsStore: boolean) {
    this.store = store;
    this.ownsStore = ownsStore;
    this.watcher = watcher;
    this.log = log;
    // Dry runs and compile checks get scratch services: they behave like the real ones but touch no shared data.
    this.checker = new IsolateRuntime({ services: new MemoryCuServices() });
  }

  /**
   * Opens the store (or uses `shared`, a store several in-process nodes use, which it then does not
   * close) and starts watching it; `onSnapshot` receives every new set of CUs.
   */
  static async start(config: OutpostConfig, log: Logger, onSnapshot: (s: StoreSnapshot) => void, shared?: CuStore): Promise<ComputePlane> {
    const store = shared ?? openStore(config.compute);
    let plane: ComputePlane | undefined;
    const watcher = new CuWatcher(store, {
      pollIntervalMs: config.compute.pollInterval,
      log,
      onSnapshot,
      onStatus: (status, error) => {
        if (plane) plane.storeUp = status === 'ok';
        if (status === 'ok') log.info({ event: 'store reachable', store: store.kind }, 'CU store reachable again');
        else log.error({ event: 'store unreachable', store: store.kind, err: error?.message }, 'CU store unreachable; keeping the last good set of CUs');
      },
    });
    plane = new ComputePlane(store, watcher, log, shared === undefined);
    await watcher.start();
    return plane;
  }

  get healthy(): boolean {
    return this.storeUp;
  }

  current(): StoreSnapshot | undefined {
    return this.watcher.current();
  }

  /** Validates fields and compiles the code; throws CU_INVALID naming the problem. */
  check(input: unknown): CuSpec {
    const r = CuInputSchema.safeParse(input);
    if (!r.success) {
      const i = r.error.issues[0]!;
      throw new OutpostError('CU_INVALID', `${i.path.join('.') || 'cu'}: ${i.message}`);
    }
    try {
      this.checker.load({ ...r.data, version: 0, updatedAt: '' }).dispose();
    } catch (err) {
      throw invalid(err);
    }
    return r.data;
  }

  async list(): Promise<StoreSnapshot> {
    return this.store.readAll();
  }

  async get(id: string): Promise<CuRecord> {
    const snap = await this.store.readAll();
    const cu = snap.cus.find((c) => c.id === id);
    if (!cu) throw new OutpostError('CU_NOT_FOUND', `no computing unit "${id}"`);
    return cu;
  }

  async put(input: unknown): Promise<CuRecord> {
    const spec = this.check(input);
    const rec = await this.store.put(spec);
    this.log.info({ cu: rec.id, version: rec.version, event: 'saved' }, `CU ${rec.id} saved (version ${rec.version})`);
    return rec;
  }

  async setEnabled(id: string, enabled: boolean): Promise<CuRecord> {
    const { version: _v, updatedAt: _u, ...spec } = await this.get(id);
    return this.store.put({ ...spec, enabled });
  }

  async delete(id: string): Promise<void> {
    if (!(await this.store.delete(id))) throw new OutpostError('CU_NOT_FOUND', `no computing unit "${id}"`);
    this.log.info({ cu: id, event: 'deleted' }, `CU ${id} deleted`);
  }

  async settings(): Promise<CuSettings> {
    return (await this.store.readAll()).settings;
  }

  async putSettings(input: unknown): Promise<CuSettings> {
    const r = CuSettingsSchema.safeParse(input);
    if (!r.success) {
      const i = r.error.issues[0]!;
      throw new OutpostError('BAD_REQUEST', `${i.path.join('.') || 'settings'}: ${i.message}`);
    }
    await this.store.putSettings(r.data);
    return r.data;
  }

  /** Runs a CU once against a described request, with scratch services, and says what it did. */
  async dryRun(cu: CuInput | CuRecord, req: DryRunRequest): Promise<DryRunResult> {
    const spec = this.check(cu);
    const runtime = new IsolateRuntime({ services: new MemoryCuServices() });
    const t0 = performance.now();
    try {
      const loaded = runtime.load({ ...spec, version: 0, updatedAt: '' });
      let url: URL;
      try {
        url = new URL(req.url);
      } catch {
        throw new OutpostError('BAD_REQUEST', `request.url: ${JSON.stringify(req.url)} is not an absolute URL`);
      }
      const headers: Record<string, string> = { host: url.host };
      for (const [k, v] of Object.entries(req.headers ?? {})) headers[k.toLowerCase()] = v;
      const ctx = newContext({
        method: (req.method ?? 'GET').toUpperCase(),
        scheme: url.protocol === 'https:' ? 'https' : 'http',
        httpVersion: '1.1',
        clientIp: req.ip ?? '127.0.0.1',
        host: url.host.toLowerCase(),
        path: url.pathname,
        query: url.search.slice(1),
        headers,
      });
      const input: CuRunInput = {
        phase: spec.phase,
        request: requestView(ctx),
        ...(spec.phase === 'rewrite' || spec.phase === 'access' ? {} : { response: { status: req.response?.status ?? 200, headers: { ...(req.response?.headers ?? {}) } } }),
        ...(spec.phase === 'body_filter' ? { body: req.response?.body ?? '' } : {}),
        vars: {},
        timings: { requestMs: 0 },
      };
      const output = await loaded.run(input);
      loaded.dispose();
      return { output, ms: performance.now() - t0 };
    } catch (err) {
      if (err instanceof OutpostError) throw err;
      const e = err instanceof CuError ? err : new CuError('runtime', spec.id, (err as Error).message);
      return { error: { kind: e.kind, message: e.message, ...(e.line !== undefined ? { line: e.line } : {}), ...(e.column !== undefined ? { column: e.column } : {}) }, ms: performance.now() - t0 };
    } finally {
      runtime.dispose();
    }
  }

  /** Services for CU code running in this process (in-process node) or forwarded here by workers. */
  services(): CuHostServices {
    return {
      redis: (name, args) => this.store.command(name, args),
      shared: async (op, key, value, ttlMs) => this.shared.apply(op, key, value, ttlMs),
    };
  }

  async close(): Promise<void> {
    this.watcher.stop();
    this.checker.dispose();
    if (this.ownsStore) await this.store.close();
  }
}
