// Shared shape of the throughput scenarios: warm the cache and the server, then one measured wrk run,
// counting origin requests during it (a warm cache should cause none).
import { OutpostError } from '../../src/errors.ts';
import { httpGet } from '../proc.ts';
import { runWrk, type WrkLoad } from '../load/wrk.ts';
import type { RunningServer } from '../servers/types.ts';
import type { Measurement, RunContext } from './types.ts';

export interface ThroughputRun {
  readonly path: string;
  /** Status the last warm-up request should report in X-Cache-Status; undefined skips the check. */
  readonly expectCache?: string;
  readonly durationS: number;
  /** Overrides the phase's scheme/port (HTTPS runs). */
  readonly url?: string;
  /** wrk Lua for the warm-up and the measured run (e.g. request headers). */
  readonly lua?: string;
}

export function wrkLoad(ctx: RunContext, url: string, durationS: number): WrkLoad {
  return { url, threads: ctx.phase.threads, connections: ctx.phase.connections, durationS, cpus: ctx.phase.loadCpus };
}

export async function warmThenMeasure(ctx: RunContext, server: RunningServer, run: ThroughputRun): Promise<Measurement> {
  const wrk = ctx.tools.wrk;
  if (wrk === undefined) throw new OutpostError('INTERNAL', 'wrk is not installed');
  const notes: string[] = [];
  for (let i = 0; i < 2; i++) await httpGet(server.port, run.path);
  const url = run.url ?? `http://127.0.0.1:${server.port}${run.path}`;
  // Warms JIT, connection pools and page cache, and fills the cache of every worker.
  const withLua = (l: WrkLoad): WrkLoad => (run.lua === undefined ? l : { ...l, lua: run.lua });
  if (ctx.firstRun) await runWrk(wrk, withLua(wrkLoad(ctx, url, ctx.opts.warmupS)));
  if (run.expectCache !== undefined) {
    const probe = await httpGet(server.port, run.path);
    const status = String(probe.headers['x-cache-status'] ?? 'none');
    if (!status.toUpperCase().startsWith(run.expectCache)) notes.push(`after warm-up X-Cache-Status was ${status}, expected ${run.expectCache}`);
  }
  const originBefore = await ctx.origin.requests();
  const { value: load, cpu } = await ctx.window(server, () => runWrk(wrk, withLua(wrkLoad(ctx, url, run.durationS))));
  const originRequests = (await ctx.origin.requests()) - originBefore;
  if (load.errors > 0) notes.push(`${load.errors} errors`);
  return {
    metrics: { rps: load.rps, p50Ms: load.p50Ms, p99Ms: load.p99Ms, maxMs: load.maxMs, errors: load.errors, mibPerS: load.mibPerS, originRequests },
    cpu,
    notes,
  };
}
