// What a bench run will do: phases (worker counts and CPU placement), servers, scenarios, run count
// and an estimate of the time. The same plan drives --dry-run and the real run.
import type { BenchOptions, ServerFlag } from './options.ts';
import { selectScenarios } from './scenarios/index.ts';
import type { PhaseId, PhaseSetup, Scenario } from './scenarios/types.ts';
import type { ServerId } from './servers/types.ts';

export interface PlannedPhase {
  readonly setup: PhaseSetup;
  readonly servers: readonly ServerId[];
  readonly scenarios: readonly Scenario[];
  /** Outpost also listens for HTTPS/h2 in this phase. */
  readonly tls: boolean;
}

export interface Plan {
  readonly phases: readonly PlannedPhase[];
  /** Measured runs (before any repeat for noise). */
  readonly runs: number;
  readonly estimateS: number;
}

export function phaseSetups(cpuCount: number): Record<PhaseId, PhaseSetup> {
  const pinned = cpuCount >= 2;
  return {
    w1: {
      id: 'w1',
      workers: 1,
      title: pinned ? '1 worker, server pinned to CPU 0, load generator and origin on CPU 1' : '1 worker (one CPU: no pinning possible)',
      serverCpus: pinned ? '0' : undefined,
      loadCpus: pinned ? '1' : undefined,
      threads: 1,
      connections: 50,
    },
    w2: { id: 'w2', workers: 2, title: '2 workers, not pinned', serverCpus: undefined, loadCpus: undefined, threads: 2, connections: 100 },
  };
}

export function serverIdsFor(flags: readonly ServerFlag[]): ServerId[] {
  const ids: ServerId[] = [];
  for (const f of flags) {
    if (f === 'nginx') ids.push('nginx', 'nginx-nosendfile');
    // Outpost with the security gates on is only planned by the scenarios that compare it with Outpost.
    else if (f === 'outpost') ids.push('outpost', 'outpost-secure');
    else ids.push(f);
  }
  return ids;
}

/** Servers per scenario after --servers and availability. */
export function serversOf(s: Scenario, available: readonly ServerId[]): ServerId[] {
  return s.servers.filter((id) => available.includes(id));
}

export function buildPlan(opts: BenchOptions, available: readonly ServerId[], cpuCount: number): Plan {
  const setups = phaseSetups(cpuCount);
  const chosen = selectScenarios(opts.only);
  const phases: PlannedPhase[] = [];
  let runs = 0;
  let estimateS = 0;
  for (const id of ['w1', 'w2'] as const) {
    const scenarios = chosen.filter((s) => s.phase === id && serversOf(s, available).length > 0);
    if (scenarios.length === 0) continue;
    const servers = [...new Set(scenarios.flatMap((s) => serversOf(s, available)))];
    const tls = scenarios.some((s) => s.group === 'tls');
    phases.push({ setup: setups[id], servers, scenarios, tls });
    estimateS += servers.length * 1.5;
    for (const s of scenarios) {
      const n = serversOf(s, available).length * (s.repeated ? opts.reps : 1);
      runs += n;
      estimateS += n * s.seconds(opts);
    }
  }
  return { phases, runs, estimateS: Math.round(estimateS) };
}

export function describePlan(plan: Plan, opts: BenchOptions): string[] {
  const lines: string[] = [];
  for (const p of plan.phases) {
    lines.push(`phase ${p.setup.id}: ${p.setup.title}; servers: ${p.servers.join(', ')}${p.tls ? ' (Outpost also on HTTPS/h2)' : ''}`);
    for (const s of p.scenarios) {
      const servers = s.servers.filter((id) => p.servers.includes(id));
      const times = s.repeated ? `${opts.reps}×` : '1×';
      lines.push(`  ${s.id.padEnd(16)} ${times} [${servers.join(', ')}] ${s.describe(opts, p.setup)}`);
    }
  }
  lines.push(`${plan.runs} measured runs, about ${plan.estimateS} s (plus repeats of noisy runs)`);
  return lines;
}
