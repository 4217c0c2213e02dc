// Runs one loaded CU through the runner protocol; the same for every runtime, which only supplies
// `call` (how to reach the runner's entry points, under a time limit).
//
// Async CUs run in segments: each host call into the sandbox is synchronous and time-limited, and
// between segments the host performs the Redis/shared calls the CU is waiting on. isolated-vm's
// own promise support would be simpler, but its timeout stops counting at the first `await`
// (measured: a loop after an await ran unbounded), so the time limit could not be enforced; here
// every instruction a CU runs is inside a limited segment, and the limit is the CU's CPU budget
// summed over its segments (time spent waiting on Redis is not charged to it).
import type { CuPhase } from '../cu.ts';
import { CuError, type CuHostServices, type CuRequestView, type CuRunInput, type CuRunOutput } from '../runtime.ts';
import { decodeReport, encodeInput, performCalls, performDetached, requestHeadersJson, runtimeError, type RunnerReport, type ServiceCall } from './protocol.ts';
import type { PreparedCu } from './source.ts';

const BODY_ARG = 6;

export type RunnerEntry = 'start' | 'poll' | 'resume' | 'drop' | 'logsOf';

export interface RunnerAccess {
  /** Calls a runner entry point; throws CuError (timeout, memory, runtime) when the sandbox fails. */
  call(entry: RunnerEntry, args: readonly unknown[], timeoutMs: number): unknown;
  /**
   * For a runner in the host's own realm, whose promise reactions run only once the host's stack
   * unwinds: resolves when they have run. Absent when each call drains them (isolated-vm does).
   */
  settle?(): Promise<void>;
}

export type CuLog = (cuId: string, level: string, msg: string) => void;

export interface ExecutionOptions {
  readonly prepared: PreparedCu;
  readonly timeoutMs: number;
  readonly services: CuHostServices;
  readonly log: CuLog;
}

export class CuExecution {
  readonly #p: PreparedCu;
  readonly #timeoutMs: number;
  readonly #services: CuHostServices;
  readonly #log: CuLog;
  readonly #access: RunnerAccess;
  #seq = 0;
  /** The request of the sync run in progress, and of each async run, for headersOf(). */
  #syncView: CuRequestView | undefined;
  readonly #views = new Map<number, CuRequestView>();

  constructor(opts: ExecutionOptions, access: RunnerAccess) {
    this.#p = opts.prepared;
    this.#timeoutMs = opts.timeoutMs;
    this.#services = opts.services;
    this.#log = opts.log;
    this.#access = access;
  }

  run(input: CuRunInput): CuRunOutput | Promise<CuRunOutput> {
    const args = encodeInput(input, this.#p.uses);
    // Every argument costs a copy across the boundary; the runner reads missing ones as empty
    // ('' means "not sent" except for the body, the last one, where only null does).
    for (let last = args.length - 1; last > 0; last--) {
      const v = args[last];
      if (v === null || (v === '' && last < BODY_ARG)) args.pop();
      else break;
    }
    if (!this.#p.async) {
      let raw: unknown;
      this.#syncView = input.request;
      try {
        raw = this.#access.call('start', [0, ...args], this.#timeoutMs);
      } catch (e) {
        throw this.#failed(e, 0);
      } finally {
        this.#syncView = undefined;
      }
      return this.#finish(decodeReport(this.#p.id, input.phase, raw));
    }
    const runId = ++this.#seq;
    this.#views.set(runId, input.request);
    let out: CuRunOutput | Promise<CuRunOutput>;
    try {
      out = this.#runAsync(runId, input.phase, args);
    } catch (e) {
      this.#views.delete(runId);
      throw e;
    }
    if (!(out instanceof Promise)) {
      this.#views.delete(runId);
      return out;
    }
    return out.finally(() => this.#views.delete(runId));
  }

  /** The request headers of a run, as JSON: what the runner asks for when they were not sent. */
  headersOf(runId: number): string {
    const view = runId === 0 ? this.#syncView : this.#views.get(runId);
    return view === undefined ? '{}' : requestHeadersJson(view);
  }

  #runAsync(runId: number, phase: CuPhase, args: ReturnType<typeof encodeInput>): CuRunOutput | Promise<CuRunOutput> {
    const budget = { used: 0 };
    try {
      this.#segment('start', [runId, ...args], budget);
    } catch (e) {
      throw this.#failed(e, runId);
    }
    if (this.#access.settle !== undefined) return this.#continue(phase, runId, budget);
    const report = this.#poll(phase, runId, budget);
    // Done before its first await (an early exit, say): answered without a promise.
    if (!report.waiting) return this.#finish(report);
    return this.#continue(phase, runId, budget, report);
  }

  async #continue(phase: CuPhase, runId: number, budget: { used: number }, polled?: RunnerReport): Promise<CuRunOutput> {
    let report = polled;
    for (;;) {
      if (report === undefined) {
        await this.#access.settle?.();
        report = this.#poll(phase, runId, budget);
      }
      if (!report.waiting) return this.#finish(report);
      const calls = report.calls ?? [];
      if (calls.length === 0) {
        this.#drop(runId);
        throw new CuError('runtime', this.#p.id, 'the CU awaits something that never settles (only redis and shared calls can be awaited)');
      }
      const results = await performCalls(this.#services, calls);
      try {
        this.#segment('resume', [runId, results], budget);
      } catch (e) {
        throw this.#failed(e, runId);
      }
      report = this.#access.settle === undefined ? this.#poll(phase, runId, budget) : undefined;
    }
  }

  #poll(phase: CuPhase, runId: number, budget: { used: number }): RunnerReport {
    try {
      return decodeReport(this.#p.id, phase, this.#segment('poll', [runId], budget));
    } catch (e) {
      throw this.#failed(e, runId);
    }
  }

  #segment(entry: 'start' | 'poll' | 'resume', args: readonly unknown[], budget: { used: number }): unknown {
    const remaining = this.#timeoutMs - budget.used;
    if (remaining <= 0) throw timeoutError(this.#p.id, this.#timeoutMs);
    const t0 = performance.now();
    try {
      return this.#access.call(entry, args, remaining);
    } finally {
      budget.used += performance.now() - t0;
    }
  }

  #finish(report: RunnerReport): CuRunOutput {
    if (report.calls !== undefined && report.calls.length > 0) {
      performDetached(this.#services, report.calls, (msg) => this.#log(this.#p.id, 'warn', msg));
    }
    if (report.error !== undefined) {
      // No output carries them, so the lines a failed run logged go to the host's log.
      for (const l of report.logs ?? []) this.#log(this.#p.id, l.level, l.msg);
      throw runtimeError(this.#p.id, report.error);
    }
    return report.output!;
  }

  /** After a failed call into the sandbox: recover a timed-out run's log lines, and forget the run. */
  #failed(e: unknown, runId: number): unknown {
    if (e instanceof CuError && e.kind === 'timeout') {
      try {
        const logs = this.#access.call('logsOf', [runId], 10);
        if (typeof logs === 'string') {
          for (const l of JSON.parse(logs) as { level: string; msg: string }[]) this.#log(this.#p.id, l.level, l.msg);
        }
      } catch {
        // The sandbox is gone or stuck: nothing to recover.
      }
    }
    if (runId !== 0) this.#drop(runId);
    return e;
  }

  #drop(runId: number): void {
    try {
      this.#access.call('drop', [runId], 10);
    } catch {
      // nothing to forget in a sandbox that is gone
    }
  }
}

export function timeoutError(cuId: string, timeoutMs: number): CuError {
  return new CuError('timeout', cuId, `the CU ran longer than its time limit of ${timeoutMs} ms`);
}

export function memoryError(cuId: string, memoryMb: number): CuError {
  return new CuError('memory', cuId, `the CU exceeded its memory limit of ${memoryMb} MB; its isolate was disposed and is recreated for the next run`);
}
