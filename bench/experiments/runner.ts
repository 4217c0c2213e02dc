// Runs experiments: for each one a fresh mini-CDN (cold caches, so runs compare), the load through
// its load balancer for a fixed time, then the figures: req/s, latency percentiles, errors, hit ratio
// per edge and overall (from each response's X-Served-By and X-Cache-Status) and origin requests.
// Repetitions go round the whole list, so a noisy moment of the machine spreads over the variants.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../src/log/logger.ts';
import { startMiniCdn, type MiniCdn } from '../../src/up/up.ts';
import { cpuShares, cpuSnapshot } from '../machine.ts';
import { sleep } from '../proc.ts';
import type { Experiment } from './experiments.ts';
import { runLoad, type Driver, type LoadResult, type ResponseCounts } from './load.ts';

export interface RunOptions {
  readonly durationS: number;
  readonly reps: number;
  readonly connections: number;
  readonly threads: number;
  readonly timeoutS: number;
  /** Simulated network distance between the mini-CDN's parts (0: none, as in the seed's docker setup). */
  readonly latencyScale: number;
  readonly driver: Driver;
  /** wrk for the wrk driver, a Node 24 binary for the node driver. */
  readonly bin: string;
  readonly logLevel: string;
  /** A run during which other processes used more of the machine than this (%) is repeated… */
  readonly maxOtherCpuPct: number;
  /** …up to this many attempts in all… */
  readonly maxAttempts: number;
  /** …while the suite can still end within this many seconds. */
  readonly budgetS: number;
}

/** Seconds to start and stop a mini-CDN around a run, for estimates. */
export const RUN_OVERHEAD_S = 1.5;

/** X-Cache-Status values that mean the edge answered without going forward. */
export const HIT_STATUSES: ReadonlySet<string> = new Set(['HIT', 'UPDATING', 'STALE']);

export interface EdgeFigures {
  readonly requests: number;
  readonly hits: number;
  /** % of this edge's responses served from its cache. */
  readonly hitRatioPct: number;
}

export interface RunRecord {
  readonly experiment: string;
  readonly rep: number;
  readonly attempt: number;
  /** Other processes were busy: a later attempt replaced this run, and the tables leave it out. */
  readonly discarded: boolean;
  readonly requests: number;
  readonly durationS: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Non-2xx responses plus requests that got no response (connect/read/write errors, timeouts). */
  readonly errors: number;
  readonly non2xx: number;
  readonly socketErrors: number;
  readonly hitRatioPct: number;
  readonly edges: Readonly<Record<string, EdgeFigures>>;
  /** Busiest edge's requests over the mean per edge: 1 is perfectly flat. */
  readonly edgeMaxOverAvg: number;
  readonly originRequests: number;
  /** Of which for the hot items (1..mix.hotItems): where collapsing matters, and what the TTL refreshes. */
  readonly originHotRequests: number;
  /** Share of the machine used by processes other than this one and its load generator, in %. */
  readonly otherCpuPct: number;
  /** Raw response counts, "edge|X-Cache-Status|ok|bad". */
  readonly counts: ResponseCounts;
  readonly error?: string;
}

export interface Tick {
  readonly experiment: Experiment;
  readonly rep: number;
  readonly elapsedS: number;
  /** Requests the load balancer has answered so far in this run. */
  readonly requests: number;
  readonly originRequests: number;
}

export interface RunHooks {
  /** A run is about to start (index counts from 0). */
  start?(index: number, total: number, e: Experiment, rep: number): void;
  tick?(t: Tick): void;
  done?(index: number, total: number, e: Experiment, record: RunRecord): void;
}

const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;

/** Per-edge and overall figures from the response counts; every PoP appears, even one nobody reached. */
export function figuresFrom(counts: ResponseCounts, edgeNames: readonly string[]): { edges: Record<string, EdgeFigures>; hitRatioPct: number; non2xx: number; edgeMaxOverAvg: number } {
  const acc = new Map<string, { requests: number; hits: number }>(edgeNames.map((n) => [n, { requests: 0, hits: 0 }]));
  let total = 0;
  let hits = 0;
  let non2xx = 0;
  for (const [key, n] of Object.entries(counts)) {
    const [edge = '-', cache = '-', ok = 'ok'] = key.split('|');
    const a = acc.get(edge) ?? { requests: 0, hits: 0 };
    acc.set(edge, a);
    a.requests += n;
    total += n;
    if (ok !== 'ok') non2xx += n;
    if (HIT_STATUSES.has(cache)) {
      a.hits += n;
      hits += n;
    }
  }
  const edges: Record<string, EdgeFigures> = {};
  for (const [name, a] of acc) edges[name] = { requests: a.requests, hits: a.hits, hitRatioPct: a.requests === 0 ? 0 : round((a.hits / a.requests) * 100, 2) };
  const perEdge = edgeNames.map((n) => acc.get(n)?.requests ?? 0);
  const mean = perEdge.reduce((s, x) => s + x, 0) / Math.max(1, perEdge.length);
  return { edges, hitRatioPct: total === 0 ? 0 : round((hits / total) * 100, 2), non2xx, edgeMaxOverAvg: mean === 0 ? 0 : round(Math.max(...perEdge) / mean, 2) };
}

const ITEM = /^\/path\/item-(\d+)\.ext/;

/** Origin requests for items 1..hotItems between two snapshots of the origin's per-path counts. */
export function hotRequests(before: Readonly<Record<string, number>>, after: Readonly<Record<string, number>>, hotItems: number): number {
  let n = 0;
  for (const [path, count] of Object.entries(after)) {
    const m = ITEM.exec(path);
    if (m && Number(m[1]) <= hotItems) n += count - (before[path] ?? 0);
  }
  return n;
}

function lbRequests(cdn: MiniCdn): { requests: number; inFlight: number } {
  let requests = 0;
  let inFlight = 0;
  for (const m of cdn.lb.balancer.members.list()) {
    const s = m.snapshot();
    requests += s.requests;
    inFlight += s.inFlight;
  }
  return { requests, inFlight };
}

type Measured = Omit<RunRecord, 'attempt' | 'discarded'>;

async function runOne(e: Experiment, rep: number, o: RunOptions, hooks: RunHooks): Promise<Measured> {
  const dir = mkdtempSync(join(tmpdir(), `outpost-experiment-${e.id}-`));
  let cdn: MiniCdn | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    cdn = await startMiniCdn({
      log: createLogger(o.logLevel),
      dir,
      latencyScale: o.latencyScale,
      originLatency: 'seed',
      lbPolicy: e.policy,
      collapsing: e.collapsing,
      basePort: 0,
    });
    const running = cdn;
    const origin0 = running.origin.stats().requests;
    const byPath0 = { ...running.origin.stats().byPath };
    const lb0 = lbRequests(running).requests;
    const cpu0 = cpuSnapshot([]);
    const t0 = performance.now();
    timer = setInterval(() => {
      hooks.tick?.({ experiment: e, rep, elapsedS: (performance.now() - t0) / 1_000, requests: lbRequests(running).requests - lb0, originRequests: running.origin.stats().requests - origin0 });
    }, 250);
    const load: LoadResult = await runLoad(o.driver, o.bin, {
      url: running.lbUrl,
      mix: e.mix,
      maxAgeS: e.maxAgeS,
      connections: o.connections,
      threads: o.threads,
      durationS: o.durationS,
      timeoutS: o.timeoutS,
    });
    clearInterval(timer);
    // The load generator stops with requests still on their way to the origin: let them land.
    for (let i = 0; i < 30 && lbRequests(running).inFlight > 0; i++) await sleep(100);
    const cpu = cpuShares(cpu0, cpuSnapshot([]));
    const after = running.origin.stats();
    const originRequests = after.requests - origin0;
    const f = figuresFrom(load.counts, running.pops.map((p) => p.name));
    return {
      experiment: e.id,
      rep,
      requests: load.requests,
      durationS: load.durationS,
      rps: load.rps,
      p50Ms: load.p50Ms,
      p90Ms: load.p90Ms,
      p99Ms: load.p99Ms,
      maxMs: load.maxMs,
      errors: f.non2xx + load.socketErrors,
      non2xx: f.non2xx,
      socketErrors: load.socketErrors,
      hitRatioPct: f.hitRatioPct,
      edges: f.edges,
      edgeMaxOverAvg: f.edgeMaxOverAvg,
      originRequests,
      originHotRequests: hotRequests(byPath0, after.byPath, e.mix.hotItems),
      otherCpuPct: cpu.otherPct,
      counts: load.counts,
    };
  } finally {
    if (timer !== undefined) clearInterval(timer);
    await cdn?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function failed(e: Experiment, rep: number, err: unknown): Measured {
  return {
    experiment: e.id,
    rep,
    requests: 0,
    durationS: 0,
    rps: NaN,
    p50Ms: NaN,
    p90Ms: NaN,
    p99Ms: NaN,
    maxMs: NaN,
    errors: NaN,
    non2xx: NaN,
    socketErrors: NaN,
    hitRatioPct: NaN,
    edges: {},
    edgeMaxOverAvg: NaN,
    originRequests: NaN,
    originHotRequests: NaN,
    otherCpuPct: NaN,
    counts: {},
    error: err instanceof Error ? err.message : String(err),
  };
}

/**
 * Every experiment `reps` times, each run on a fresh mini-CDN; a failed run is recorded, not thrown.
 * A run disturbed by other processes is recorded as discarded and done again while time allows.
 */
export async function runExperiments(experiments: readonly Experiment[], o: RunOptions, hooks: RunHooks = {}): Promise<RunRecord[]> {
  const records: RunRecord[] = [];
  const total = experiments.length * o.reps;
  const perRunS = o.durationS + RUN_OVERHEAD_S;
  const t0 = performance.now();
  let index = 0;
  for (let rep = 1; rep <= o.reps; rep++) {
    for (const e of experiments) {
      for (let attempt = 1; ; attempt++) {
        hooks.start?.(index, total, e, rep);
        let m: Measured;
        try {
          m = await runOne(e, rep, o, hooks);
        } catch (err) {
          m = failed(e, rep, err);
        }
        const elapsedS = (performance.now() - t0) / 1_000;
        const aheadS = (total - index) * perRunS;
        const again = m.error === undefined && m.otherCpuPct > o.maxOtherCpuPct && attempt < o.maxAttempts && elapsedS + aheadS <= o.budgetS;
        const record: RunRecord = { ...m, attempt, discarded: again };
        records.push(record);
        hooks.done?.(index, total, e, record);
        if (!again) break;
      }
      index++;
    }
  }
  return records;
}
