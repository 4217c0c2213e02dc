// CUs in isolated-vm isolates: the default runtime.
//
// Isolate model: ONE ISOLATE PER CU (per version, per worker). isolated-vm enforces memory limits and
// disposes isolates whole, so a CU that allocates without end takes down only its own isolate; with
// a shared isolate it would take every CU in it along. Separate isolates also keep CUs from seeing
// each other's globals. The price is a few MB and ~2 ms of setup per CU at load time, never per
// request. Each isolate has one context holding the runner (prelude.js) and the compiled CU.
//
// Nothing of the host is inside an isolate: no require, no process, no timers, no host objects. The
// only bridge is a host crypto function whose Reference lives in the runner's closure, out of the
// CU's reach (a Reference would let code walk to the host's Function constructor).
import ivm from 'isolated-vm';
import { CuError, type CuHostServices, type CuRunInput, type CuRunOutput, type CuRuntime, type LoadedCu } from '../runtime.ts';
import type { CuRecord } from '../cu.ts';
import { CuExecution, memoryError, timeoutError, type CuLog, type RunnerAccess, type RunnerEntry } from './execution.ts';
import { hostCrypto, PRELUDE_SOURCE } from './protocol.ts';
import { compileError, CU_PARAMS, lastLineLength, prepareCu, WRAPPER_LINE_OFFSET, wrapperSource, type PreparedCu } from './source.ts';

/** Bounds our own load-time steps inside an isolate (runner setup, install). */
const LOAD_TIMEOUT_MS = 1000;
/** Redis/shared calls one run may make. */
const MAX_CALLS_PER_RUN = 100;

export interface IsolateRuntimeOptions {
  readonly services: CuHostServices;
  /** Events about a CU that are not part of a run's output (isolate recreated, a failed run's log lines, …). */
  readonly log?: CuLog;
}

export interface IsolateRuntimeStats {
  /** Isolates alive now (one per loaded CU). */
  readonly isolates: number;
  readonly isolatesCreated: number;
  /** Compilations of CU code: one per load, plus one per isolate recreated after a memory-limit disposal. */
  readonly compiles: number;
  readonly memoryDisposals: number;
}

export class IsolateRuntime implements CuRuntime {
  readonly name = 'isolate';
  /** Enforces time and memory limits and isolates CUs from the host (see runtime-suite.ts). */
  readonly capabilities = Object.freeze({ limits: true, isolation: true });
  readonly #services: CuHostServices;
  readonly #log: CuLog;
  readonly #loaded = new Set<IsolateCu>();
  readonly #crypto = new ivm.Reference(hostCrypto);
  /** @internal Updated by the loaded CUs; read through stats(). */
  readonly counters = { isolatesCreated: 0, compiles: 0, memoryDisposals: 0 };
  #disposed = false;

  constructor(opts: IsolateRuntimeOptions) {
    this.#services = opts.services;
    this.#log = opts.log ?? (() => {});
  }

  load(cu: CuRecord): LoadedCu {
    if (this.#disposed) throw new CuError('runtime', cu.id, 'the runtime was disposed');
    const loaded = new IsolateCu(this, cu, prepareCu(cu), this.#services, this.#log);
    this.#loaded.add(loaded);
    return loaded;
  }

  stats(): IsolateRuntimeStats {
    let isolates = 0;
    for (const l of this.#loaded) if (l.alive) isolates++;
    return { isolates, ...this.counters };
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const l of [...this.#loaded]) l.dispose();
    this.#crypto.release();
  }

  /** @internal */
  cryptoRef(): ivm.Reference<typeof hostCrypto> {
    return this.#crypto;
  }

  /** @internal */
  forget(cu: IsolateCu): void {
    this.#loaded.delete(cu);
  }
}

type Entries = Record<RunnerEntry, ivm.Reference<(...args: unknown[]) => unknown>>;

class IsolateCu implements LoadedCu, RunnerAccess {
  readonly id: string;
  readonly version: number;
  readonly async: boolean;
  readonly #runtime: IsolateRuntime;
  readonly #cu: CuRecord;
  readonly #p: PreparedCu;
  readonly #log: CuLog;
  readonly #exec: CuExecution;
  readonly #headersOf: ivm.Reference<(runId: number) => string>;
  #isolate: ivm.Isolate | null = null;
  #entries: Entries | null = null;
  #disposed = false;
  #rebuildScheduled = false;

  constructor(runtime: IsolateRuntime, cu: CuRecord, p: PreparedCu, services: CuHostServices, log: CuLog) {
    this.id = cu.id;
    this.version = cu.version;
    this.async = p.async;
    this.#runtime = runtime;
    this.#cu = cu;
    this.#p = p;
    this.#log = log;
    this.#exec = new CuExecution({ prepared: p, timeoutMs: cu.timeoutMs, services, log }, this);
    this.#headersOf = new ivm.Reference((runId: number) => this.#exec.headersOf(runId));
    try {
      this.#build();
    } catch (e) {
      this.#headersOf.release();
      throw e;
    }
  }

  get alive(): boolean {
    return this.#isolate !== null && !this.#isolate.isDisposed;
  }

  run(input: CuRunInput): CuRunOutput | Promise<CuRunOutput> {
    if (this.#disposed) throw new CuError('runtime', this.id, 'the CU was unloaded');
    // #entries is dropped whenever the isolate is (see #classify); asking the isolate itself
    // (isDisposed) would cost a call into isolated-vm on every run.
    if (this.#entries === null) this.#rebuild();
    return this.#exec.run(input);
  }

  call(entry: RunnerEntry, args: readonly unknown[], timeoutMs: number): unknown {
    const entries = this.#entries;
    // A disposed isolate makes applySync throw, and #classify tells why.
    if (entries === null) {
      throw this.#disposed ? new CuError('runtime', this.id, 'the CU was unloaded') : memoryError(this.id, this.#cu.memoryMb);
    }
    try {
      return entries[entry].applySync(undefined, args as ivm.Transferable[], alignedTimeout(timeoutMs));
    } catch (e) {
      throw this.#classify(e);
    }
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#runtime.forget(this);
    this.#teardown();
    this.#headersOf.release();
  }

  #classify(e: unknown): CuError {
    if (this.#disposed) return new CuError('runtime', this.id, 'the CU was unloaded while running');
    if (this.#isolate?.isDisposed) {
      this.#runtime.counters.memoryDisposals++;
      this.#teardown();
      this.#scheduleRebuild();
      return memoryError(this.id, this.#cu.memoryMb);
    }
    const msg = e instanceof Error ? e.message : String(e);
    if (msg === 'Script execution timed out.') return timeoutError(this.id, this.#cu.timeoutMs);
    return new CuError('runtime', this.id, `sandbox failure: ${msg}`);
  }

  /** A fresh isolate right after a memory-limit disposal, so the next request does not pay for it. */
  #scheduleRebuild(): void {
    if (this.#rebuildScheduled) return;
    this.#rebuildScheduled = true;
    setImmediate(() => {
      this.#rebuildScheduled = false;
      if (this.#disposed || this.alive) return;
      try {
        this.#rebuild();
      } catch {
        // reported by #rebuild; the next run tries again
      }
    });
  }

  #rebuild(): void {
    try {
      this.#build();
      this.#log(this.id, 'warn', 'isolate recreated after the CU exceeded its memory limit');
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      this.#log(this.id, 'error', `isolate could not be recreated: ${msg}`);
      throw e instanceof CuError ? e : new CuError('runtime', this.id, `isolate could not be recreated: ${msg}`);
    }
  }

  #teardown(): void {
    const isolate = this.#isolate;
    this.#isolate = null;
    this.#entries = null;
    if (isolate !== null && !isolate.isDisposed) isolate.dispose();
  }

  /** New isolate, runner and compiled CU. Throws CuError('compile') for code that does not compile. */
  #build(): void {
    const p = this.#p;
    const counters = this.#runtime.counters;
    const isolate = new ivm.Isolate({
      memoryLimit: this.#cu.memoryMb,
      onCatastrophicError: (msg) => this.#log(this.id, 'error', `isolate failed beyond recovery: ${msg}`),
    });
    counters.isolatesCreated++;
    try {
      const context = isolate.createContextSync();
      // CUs are JavaScript: WebAssembly would only widen what the code can reach inside V8.
      context.evalSync('delete globalThis.WebAssembly', { timeout: LOAD_TIMEOUT_MS });
      const api = context.evalClosureSync(PRELUDE_SOURCE, [this.#runtime.cryptoRef()], {
        filename: 'outpost:cu-runner.js',
        timeout: LOAD_TIMEOUT_MS,
        result: { reference: true },
      }) as ivm.Reference<Record<string, unknown>>;
      const fn = (name: string): ivm.Reference<(...args: unknown[]) => unknown> =>
        api.getSync(name, { reference: true }) as ivm.Reference<(...args: unknown[]) => unknown>;

      counters.compiles++;
      let script: ivm.Script;
      try {
        script = isolate.compileScriptSync(wrapperSource(p), { filename: p.filename, lineOffset: WRAPPER_LINE_OFFSET });
      } catch (e) {
        throw isolateCompileError(p, this.#cu.code, e);
      }
      const refused = fn('check').applySync(undefined, [p.body, [...CU_PARAMS], p.async], {
        arguments: { copy: true },
        timeout: LOAD_TIMEOUT_MS,
      });
      if (typeof refused === 'string') throw new CuError('compile', this.id, refused);
      const userFn = script.runSync(context, { reference: true, timeout: LOAD_TIMEOUT_MS }) as ivm.Reference<unknown>;
      script.release();
      fn('install').applySync(undefined, [userFn.derefInto(), p.uses, p.async, p.filename, MAX_CALLS_PER_RUN, this.#headersOf], {
        timeout: LOAD_TIMEOUT_MS,
      });
      userFn.release();
      this.#entries = { start: fn('start'), poll: fn('poll'), resume: fn('resume'), drop: fn('drop'), logsOf: fn('logsOf') };
      api.release();
      this.#isolate = isolate;
    } catch (e) {
      isolate.dispose();
      if (e instanceof CuError) throw e;
      throw new CuError('compile', this.id, `the CU could not be loaded: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}

/** isolated-vm reports "Unexpected identifier 'a' [cu/x.js:2:4]"; the position is already the user's. */
function isolateCompileError(p: PreparedCu, code: string, e: unknown): CuError {
  const raw = e instanceof Error ? e.message : String(e);
  const name = e instanceof Error ? e.name : 'SyntaxError';
  const m = /^(.*) \[[^\]]*:(\d+):(\d+)\]$/s.exec(raw);
  const where = { id: p.id, lines: p.lines, lastLineLength: lastLineLength(code) };
  return m ? compileError(where, `${name}: ${m[1]}`, Number(m[2]), Number(m[3])) : compileError(where, `${name}: ${raw}`);
}

/**
 * The `timeout` option for one call into an isolate: the CU's limit, stretched so that the deadline
 * falls on a grid of a fifth of the limit (at most 10 ms).
 *
 * Why: isolated-vm arms a timer per call on its timer thread, which wakes at each pending deadline
 * even after the call returned and cancelled it. With deadlines spread like the calls, that thread
 * woke once per CU run; on this project's machine (a 2-vCPU VM, worker pinned) the wake-ups cost
 * ~33 µs per request, against ~15 µs for the run itself. Deadlines on a grid are handled in a few
 * wake-ups per grid step, whatever the request rate. A run is still stopped, between its limit and
 * the limit plus one grid step plus 1 ms (50 ms: 50–61 ms).
 */
export function alignedTimeout(limitMs: number): { timeout: number } {
  const grid = Math.min(10, Math.max(1, Math.round(limitMs / 5)));
  const now = performance.now();
  const ms = Math.max(1, Math.ceil(Math.ceil((now + limitMs) / grid) * grid - now));
  return (TIMEOUT_OPTIONS[ms] ??= { timeout: ms });
}
/** One options object per millisecond value: the per-call path allocates nothing. */
const TIMEOUT_OPTIONS: Array<{ timeout: number } | undefined> = [];
