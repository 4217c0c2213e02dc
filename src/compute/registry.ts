// The CUs one worker runs: compiled once per (id, version), ordered by priority then id, with a
// host filter and a breaker each. Snapshots replace the set; unchanged CUs keep their compiled code.
import type { Logger } from 'pino';
import { Breaker, type BreakerState } from './breaker.ts';
import { compareCus, compileHostMatcher, type CuPhase, type CuRecord, type CuSettings, DEFAULT_CU_SETTINGS } from './cu.ts';
import type { CuMetrics } from './metrics.ts';
import { CuError, type CuRuntime, type LoadedCu } from './runtime.ts';
import type { StoreSnapshot } from './store/store.ts';

export interface CuEntry {
  readonly cu: CuRecord;
  readonly loaded: LoadedCu;
  readonly hosts: (host: string) => boolean;
  readonly breaker: Breaker;
}

export interface CuStatus {
  readonly id: string;
  readonly phase: CuPhase;
  readonly enabled: boolean;
  /** The version in the store. */
  readonly version: number;
  /** The version this worker runs (differs from `version` when the newer one failed to compile). */
  readonly running?: number;
  readonly error?: { readonly kind: string; readonly message: string; readonly line?: number; readonly column?: number };
  readonly breaker: BreakerState;
  readonly consecutiveFailures: number;
}

export interface BreakerOptions {
  readonly failures: number;
  readonly coolDownMs: number;
}

export class CuRegistry {
  private readonly runtime: CuRuntime;
  private readonly log: Logger;
  private readonly metrics: CuMetrics | undefined;
  private readonly breakerOpts: BreakerOptions;
  private entries = new Map<string, CuEntry>();
  private errors = new Map<string, { version: number; error: CuError }>();
  private records = new Map<string, CuRecord>();
  private byPhase = new Map<CuPhase, CuEntry[]>();
  private _settings: CuSettings = DEFAULT_CU_SETTINGS;
  private skipHost: (host: string) => boolean = () => false;
  private invalid: StoreSnapshot['invalid'] = [];

  constructor(runtime: CuRuntime, opts: { log: Logger; metrics?: CuMetrics; breaker: BreakerOptions }) {
    this.runtime = runtime;
    this.log = opts.log;
    this.metrics = opts.metrics;
    this.breakerOpts = opts.breaker;
  }

  get settings(): CuSettings {
    return this._settings;
  }

  /** True when no CU may run for this host (global switch off, or a skip-listed host). */
  skipped(host: string): boolean {
    return !this._settings.enabled || this.skipHost(host);
  }

  /** The enabled, loaded CUs of a phase, in execution order. */
  phase(p: CuPhase): readonly CuEntry[] {
    return this.byPhase.get(p) ?? [];
  }

  apply(snapshot: StoreSnapshot): void {
    const next = new Map<string, CuEntry>();
    const nextErrors = new Map<string, { version: number; error: CuError }>();
    const nextRecords = new Map<string, CuRecord>();
    for (const cu of snapshot.cus) {
      nextRecords.set(cu.id, cu);
      const current = this.entries.get(cu.id);
      if (current && current.cu.version === cu.version) {
        // Same code; settings such as enabled or sampling live on the record.
        next.set(cu.id, current.cu === cu ? current : { ...current, cu, hosts: compileHostMatcher(cu.hosts) });
        const prevErr = this.errors.get(cu.id);
        if (prevErr) nextErrors.set(cu.id, prevErr);
        continue;
      }
      const failedBefore = this.errors.get(cu.id);
      if (failedBefore && failedBefore.version === cu.version) {
        nextErrors.set(cu.id, failedBefore);
        if (current) next.set(cu.id, current);
        continue;
      }
      try {
        const loaded = this.runtime.load(cu);
        const id = cu.id;
        const breaker = new Breaker({
          failures: this.breakerOpts.failures,
          coolDownMs: this.breakerOpts.coolDownMs,
          onChange: (state) => {
            this.metrics?.breakerOpen.set({ cu: id }, state === 'closed' ? 0 : 1);
            this.log.warn({ cu: id, event: `breaker ${state}` }, `CU ${id}: breaker ${state}`);
          },
        });
        next.set(cu.id, { cu, loaded, hosts: compileHostMatcher(cu.hosts), breaker });
        this.metrics?.loaded.set({ cu: cu.id }, cu.version);
        this.log.info({ cu: cu.id, version: cu.version, phase: cu.phase, event: current ? 'updated' : 'loaded' }, `CU ${cu.id} ${current ? 'updated' : 'loaded'} (version ${cu.version})`);
        if (current) current.loaded.dispose();
      } catch (err) {
        const error = err instanceof CuError ? err : new CuError('compile', cu.id, (err as Error).message);
        nextErrors.set(cu.id, { version: cu.version, error });
        this.metrics?.errors.inc({ cu: cu.id, kind: error.kind });
        this.log.error({ cu: cu.id, version: cu.version, event: 'compile failed', err: error.message, line: error.line, column: error.column }, `CU ${cu.id} failed to compile; ${current ? `version ${current.cu.version} keeps running` : 'skipped'}`);
        // The last version that compiled keeps running: a bad update never removes a working CU.
        if (current) next.set(cu.id, current);
      }
    }
    for (const [id, e] of this.entries) {
      if (!next.has(id)) {
        e.loaded.dispose();
        this.metrics?.loaded.remove({ cu: id });
        this.log.info({ cu: id, event: 'removed' }, `CU ${id} removed`);
      }
    }
    for (const bad of snapshot.invalid) {
      if (!this.invalid.some((i) => i.id === bad.id && i.error === bad.error)) this.log.error({ cu: bad.id, event: 'invalid record', err: bad.error }, `CU ${bad.id} in the store is invalid; skipped`);
    }
    this.entries = next;
    this.errors = nextErrors;
    this.records = nextRecords;
    this.invalid = snapshot.invalid;
    this._settings = snapshot.settings;
    this.skipHost = snapshot.settings.skipHosts.length ? compileHostMatcher(snapshot.settings.skipHosts) : () => false;
    const byPhase = new Map<CuPhase, CuEntry[]>();
    for (const e of [...next.values()].filter((e) => e.cu.enabled).sort((a, b) => compareCus(a.cu, b.cu))) {
      const list = byPhase.get(e.cu.phase) ?? [];
      list.push(e);
      byPhase.set(e.cu.phase, list);
    }
    this.byPhase = byPhase;
  }

  status(): CuStatus[] {
    const out: CuStatus[] = [];
    for (const [id, cu] of this.records) {
      const e = this.entries.get(id);
      const err = this.errors.get(id)?.error;
      out.push({
        id,
        phase: cu.phase,
        enabled: cu.enabled,
        version: cu.version,
        ...(e ? { running: e.cu.version } : {}),
        ...(err ? { error: { kind: err.kind, message: err.message, ...(err.line !== undefined ? { line: err.line } : {}), ...(err.column !== undefined ? { column: err.column } : {}) } } : {}),
        breaker: e?.breaker.state ?? 'closed',
        consecutiveFailures: e?.breaker.consecutiveFailures ?? 0,
      });
    }
    for (const bad of this.invalid) out.push({ id: bad.id, phase: 'access', enabled: false, version: 0, error: { kind: 'invalid', message: bad.error }, breaker: 'closed', consecutiveFailures: 0 });
    return out.sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  dispose(): void {
    for (const e of this.entries.values()) e.loaded.dispose();
    this.entries.clear();
    this.byPhase.clear();
  }
}
