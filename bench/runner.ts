// Executes a plan: per phase, start every server with the same worker count, then interleave the
// servers run by run (rotating who goes first), repeat, and re-run any run that other processes on
// the machine disturbed. One progress line per run.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { cpus } from 'node:os';
import { cpuShares, cpuSnapshot, type ToolPaths } from './machine.ts';
import type { BenchOptions } from './options.ts';
import type { Plan, PlannedPhase } from './plan.ts';
import { setAffinity } from './proc.ts';
import type { Origin } from './servers/origin.ts';
import type { RunningServer, ServerId } from './servers/types.ts';
import * as nginx from './servers/nginx.ts';
import * as varnish from './servers/varnish.ts';
import * as outpost from './servers/outpost.ts';
import * as outpostSecure from './servers/outpost-secure.ts';
import type { Measurement, Metrics, RunContext, Scenario } from './scenarios/types.ts';
import type { CpuShares } from './machine.ts';

export interface RunRecord {
  readonly scenario: string;
  readonly phase: string;
  readonly server: ServerId;
  readonly rep: number;
  readonly attempt: number;
  /** Other processes were too busy; a later attempt replaced this one. */
  readonly discarded: boolean;
  /** Kept although noisy, because attempts or time ran out. */
  readonly noisy: boolean;
  readonly metrics: Metrics;
  readonly cpu?: CpuShares;
  readonly notes: readonly string[];
  readonly detail?: unknown;
  readonly error?: string;
  /** Wall time of the whole attempt, warm-up included. */
  readonly elapsedS: number;
}

export interface RunnerEnv {
  readonly opts: BenchOptions;
  readonly tools: ToolPaths;
  readonly origin: Origin;
  readonly root: string;
  readonly nodePath: string;
  readonly tmp: string;
  readonly startedAt: number;
  say(line: string): void;
}

async function startServer(env: RunnerEnv, phase: PlannedPhase, id: ServerId): Promise<RunningServer> {
  const dir = join(env.tmp, `${phase.setup.id}-${id}`);
  mkdirSync(dir, { recursive: true });
  const base = { dir, cpus: phase.setup.serverCpus };
  const { workers } = phase.setup;
  switch (id) {
    case 'outpost':
      return outpost.start(env.origin.port, workers, { ...base, bin: env.nodePath, root: env.root, tls: phase.tls });
    case 'outpost-secure':
      return outpostSecure.start(env.origin.port, workers, { ...base, bin: env.nodePath, root: env.root, tls: phase.tls });
    case 'nginx':
    case 'nginx-nosendfile':
      return nginx.start(env.origin.port, workers, { ...base, bin: env.tools.nginx ?? 'nginx', sendfile: id === 'nginx' });
    case 'varnish':
      return varnish.start(env.origin.port, workers, { ...base, bin: env.tools.varnishd ?? 'varnishd' });
  }
}

function rotate<T>(list: readonly T[], by: number): T[] {
  const n = list.length;
  return n === 0 ? [] : list.map((_, i) => list[(i + by) % n] as T);
}

function progressLine(r: RunRecord, index: number, total: number, scenario: Scenario, reps: number): string {
  const m = r.metrics;
  const f = (x: number | undefined, unit = '', digits = 2): string => (x === undefined || Number.isNaN(x) ? '–' : `${x.toFixed(digits)}${unit}`);
  const parts: string[] = [];
  if (m['rps'] !== undefined) parts.push(`${Math.round(m['rps']).toLocaleString('en').padStart(8)} req/s`);
  if (m['originRequests'] !== undefined && scenario.group !== 'hit' && scenario.group !== 'pass' && scenario.group !== 'tls') parts.push(`origin ${m['originRequests']}`);
  if (m['p50Ms'] !== undefined) parts.push(`p50 ${f(m['p50Ms'], ' ms')}`);
  if (m['meanMs'] !== undefined) parts.push(`mean ${f(m['meanMs'], ' ms')}`);
  if (m['p99Ms'] !== undefined) parts.push(`p99 ${f(m['p99Ms'], ' ms')}`);
  if (scenario.group === 'herd') parts.push(`max ${f(m['maxMs'], ' ms')}`);
  if (m['brCompressions'] !== undefined) parts.push(`compressions br ${m['brCompressions']} / gzip ${m['gzipCompressions'] ?? '–'} for ${m['objects'] ?? '?'} objects, ${f(m['hitPct'], ' % HIT', 1)}`);
  if (scenario.group === 'memory') parts.push(`RSS (PSS) idle ${f(m['idleTotalMiB'], '', 1)} (${f(m['idleTotalPssMiB'], '', 1)}), load ${f(m['loadTotalMiB'], '', 1)} (${f(m['loadTotalPssMiB'], '', 1)}), ${m['idleConnections'] ?? 0} conns ${f(m['connsTotalMiB'], '', 1)} (${f(m['connsTotalPssMiB'], '', 1)}) MiB`);
  if (r.cpu) parts.push(`CPU: other ${r.cpu.otherPct.toFixed(1)}%, server ${Math.round(r.cpu.serverPct)}%, load ${Math.round(r.cpu.loadPct)}%`);
  const status = r.error ? `FAILED: ${r.error.split('\n')[0]}` : r.discarded ? '→ discarded (busy machine), repeating' : r.noisy ? '(noisy, kept)' : '';
  const rep = scenario.repeated ? `rep ${r.rep}/${reps}` : 'once';
  return `[${String(index).padStart(3)}/${total}] ${r.scenario.padEnd(16)} ${r.server.padEnd(16)} ${rep.padEnd(8)} ${parts.join('  ')}  ${r.elapsedS.toFixed(1)} s ${status}${r.notes.length > 0 ? ` (${r.notes.join('; ')})` : ''}`.trimEnd();
}

export async function runPlan(env: RunnerEnv, plan: Plan): Promise<RunRecord[]> {
  const { opts } = env;
  const records: RunRecord[] = [];
  const allCpus = `0-${cpus().length - 1}`;
  let index = 0;
  let runSeq = 0;
  const warmed = new Set<string>();
  // Planned seconds still ahead, to decide whether a noisy run can be repeated within the budget.
  let aheadS = plan.estimateS;
  for (const phase of plan.phases) {
    const place = phase.setup.loadCpus ?? allCpus;
    // The bench process (herd and idle-connection clients), the origin and wrk share the load CPU.
    await setAffinity(process.pid, place);
    await setAffinity(env.origin.pid, place);
    env.say(`== phase ${phase.setup.id}: ${phase.setup.title}`);
    const servers = new Map<ServerId, RunningServer>();
    try {
      for (const id of phase.servers) {
        try {
          const s = await startServer(env, phase, id);
          servers.set(id, s);
          env.say(`   started ${id} on 127.0.0.1:${s.port}${s.tlsPort ? ` (TLS ${s.tlsPort})` : ''}, pids ${s.pids().join(' ')}`);
        } catch (e) {
          env.say(`   could not start ${id}: ${(e as Error).message}`);
        }
      }
      const measure = async (scenario: Scenario, server: RunningServer, rep: number): Promise<void> => {
        for (let attempt = 1; attempt <= opts.maxAttempts; attempt++) {
          runSeq++;
          const ctx: RunContext = {
            opts,
            tools: env.tools,
            origin: env.origin,
            phase: phase.setup,
            runId: `${Date.now().toString(36)}-${runSeq}`,
            firstRun: !warmed.has(`${scenario.id}/${server.id}`),
            window: async (srv, fn) => {
              const a = cpuSnapshot([srv.pid]);
              const value = await fn();
              const b = cpuSnapshot([srv.pid]);
              return { value, cpu: cpuShares(a, b) };
            },
          };
          let m: Measurement | undefined;
          let error: string | undefined;
          const t0 = Date.now();
          try {
            m = await scenario.run(ctx, server);
          } catch (e) {
            error = (e as Error).message;
          }
          const busy = m !== undefined && m.cpu.otherPct > opts.maxOtherCpuPct;
          const elapsedS = (Date.now() - env.startedAt) / 1_000;
          const outOfTime = elapsedS + aheadS > (opts.budgetS ?? plan.estimateS * 2);
          // Memory readings do not suffer from a busy CPU, and a second attempt would start from the
          // first one's connections: only throughput-style (repeated) runs are redone.
          const retry = busy && scenario.repeated && attempt < opts.maxAttempts && !outOfTime;
          const record: RunRecord = {
            scenario: scenario.id,
            phase: phase.setup.id,
            server: server.id,
            rep,
            attempt,
            discarded: retry,
            noisy: busy && !retry,
            metrics: m?.metrics ?? {},
            ...(m ? { cpu: m.cpu } : {}),
            notes: m?.notes ?? [],
            ...(m?.detail !== undefined ? { detail: m.detail } : {}),
            ...(error !== undefined ? { error } : {}),
            elapsedS: Math.round((Date.now() - t0) / 100) / 10,
          };
          records.push(record);
          if (m !== undefined) warmed.add(`${scenario.id}/${server.id}`);
          if (!retry) {
            index++;
            aheadS -= scenario.seconds(opts);
          }
          env.say(progressLine(record, retry ? index + 1 : index, plan.runs, scenario, opts.reps));
          if (!retry) return;
        }
      };
      const repeated = phase.scenarios.filter((s) => s.repeated);
      for (let rep = 1; rep <= opts.reps; rep++) {
        for (const scenario of repeated) {
          const order = rotate(
            scenario.servers.filter((id) => servers.has(id)),
            rep - 1,
          );
          for (const id of order) {
            const server = servers.get(id);
            if (server) await measure(scenario, server, rep);
          }
        }
      }
      for (const scenario of phase.scenarios.filter((s) => !s.repeated)) {
        for (const id of scenario.servers) {
          const server = servers.get(id);
          if (server) await measure(scenario, server, 1);
        }
      }
    } finally {
      await Promise.all([...servers.values()].map((s) => s.stop()));
    }
  }
  await setAffinity(process.pid, allCpus);
  return records;
}
