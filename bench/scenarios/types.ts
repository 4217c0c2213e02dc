// The contract between the runner and the scenarios: a scenario measures one server once and returns
// flat numeric metrics, which the runner repeats, interleaves, vets for noise and summarises.
import type { CpuShares, ToolPaths } from '../machine.ts';
import type { Origin } from '../servers/origin.ts';
import type { RunningServer, ServerId } from '../servers/types.ts';
import type { BenchOptions } from '../options.ts';

export type PhaseId = 'w1' | 'w2';

/** How servers and load generators are placed for one worker count. */
export interface PhaseSetup {
  readonly id: PhaseId;
  readonly workers: number;
  readonly title: string;
  /** taskset CPU list for the servers; undefined = not pinned. */
  readonly serverCpus: string | undefined;
  /** taskset CPU list for wrk, the origin and the bench itself; undefined = not pinned. */
  readonly loadCpus: string | undefined;
  readonly threads: number;
  readonly connections: number;
}

export type Metrics = Record<string, number>;

export interface Measurement {
  readonly metrics: Metrics;
  /** CPU shares over the measured window only (not the warm-up). */
  readonly cpu: CpuShares;
  readonly notes?: readonly string[];
  /** Anything else worth keeping in the JSON (per-process memory, for instance). */
  readonly detail?: unknown;
}

export interface RunContext {
  readonly opts: BenchOptions;
  readonly tools: ToolPaths;
  readonly origin: Origin;
  readonly phase: PhaseSetup;
  /** Unique per measured attempt, for cold keys that no earlier run has cached. */
  readonly runId: string;
  /** First measured run of this scenario on this server: warm up fully (later repetitions are warm). */
  readonly firstRun: boolean;
  /** Runs fn and reports the CPU shares of the machine while it ran. */
  window<T>(server: RunningServer, fn: () => Promise<T>): Promise<{ value: T; cpu: CpuShares }>;
}

export interface Scenario {
  readonly id: string;
  /** Row label in the report. */
  readonly title: string;
  readonly group: 'hit' | 'pass' | 'herd' | 'longtail' | 'tls' | 'memory' | 'security';
  readonly phase: PhaseId;
  readonly servers: readonly ServerId[];
  /** Repeated and interleaved (median of N); false runs once per server at the end of its phase. */
  readonly repeated: boolean;
  /** Seconds one measured run takes, warm-up included, for the plan's estimate. */
  seconds(opts: BenchOptions): number;
  /** What it will run, for --dry-run and the docs. */
  describe(opts: BenchOptions, phase: PhaseSetup): string;
  run(ctx: RunContext, server: RunningServer): Promise<Measurement>;
}
