// Resident memory per process of each server: idle, under a cache-HIT load, and holding many idle
// keep-alive connections. RSS and PSS both: RSS counts the pages processes share (the node binary,
// shared libraries) once per process, so summing it over a server's processes overcounts.
import { OutpostError } from '../../src/errors.ts';
import { treeMemory, type ProcMemory } from '../machine.ts';
import { openIdleConnections } from '../load/idle-connections.ts';
import { runWrk } from '../load/wrk.ts';
import { sleep } from '../proc.ts';
import { wrkLoad } from './throughput.ts';
import type { Metrics, PhaseId, Scenario } from './types.ts';

export interface MemorySummary {
  /** Sum of RSS over all processes (overcounts shared pages). */
  readonly totalMiB: number;
  /** RSS of the largest worker (the processes that serve requests; the only one if alone). */
  readonly workerMiB: number;
  /** Sum of PSS over all processes: what the server as a whole costs the machine. */
  readonly totalPssMiB: number;
  /** PSS of the largest worker (by RSS). */
  readonly workerPssMiB: number;
}

export function summarise(procs: readonly ProcMemory[]): MemorySummary {
  const workers = procs.filter((p) => p.role === 'worker' || p.role === 'child');
  const pool = workers.length > 0 ? workers : procs;
  const round = (x: number): number => Math.round(x * 10) / 10;
  const largest = pool.reduce<ProcMemory | undefined>((a, p) => (a === undefined || p.rssMiB > a.rssMiB ? p : a), undefined);
  return {
    totalMiB: round(procs.reduce((a, p) => a + p.rssMiB, 0)),
    workerMiB: round(largest?.rssMiB ?? 0),
    totalPssMiB: round(procs.reduce((a, p) => a + p.pssMiB, 0)),
    workerPssMiB: round(largest?.pssMiB ?? Number.NaN),
  };
}

export function memoryScenario(phase: PhaseId): Scenario {
  return {
    id: `memory-${phase}`,
    title: 'Memory (RSS, PSS)',
    group: 'memory',
    phase,
    servers: ['outpost', 'nginx', 'varnish'],
    repeated: false,
    seconds: (o) => o.durationS + 3,
    describe: (o) => `RSS and PSS idle, peak during a ${o.durationS}s HIT 1 KB load, and with ${o.idleConnections.toLocaleString('en')} idle keep-alive connections open`,
    run: async (ctx, server) => {
      const wrk = ctx.tools.wrk;
      if (wrk === undefined) throw new OutpostError('INTERNAL', 'wrk is not installed');
      const metrics: Metrics = {};
      const detail: Record<string, ProcMemory[]> = {};
      const take = (label: string): void => {
        const procs = treeMemory(server.pid);
        const s = summarise(procs);
        detail[label] = procs;
        metrics[`${label}TotalMiB`] = s.totalMiB;
        metrics[`${label}WorkerMiB`] = s.workerMiB;
        metrics[`${label}TotalPssMiB`] = s.totalPssMiB;
        metrics[`${label}WorkerPssMiB`] = s.workerPssMiB;
      };
      take('idle');
      let peak: MemorySummary = { totalMiB: 0, workerMiB: 0, totalPssMiB: 0, workerPssMiB: 0 };
      const sampler = setInterval(() => {
        const s = summarise(treeMemory(server.pid));
        if (s.totalMiB > peak.totalMiB) peak = s;
      }, 250);
      const { cpu } = await ctx.window(server, async () => {
        try {
          return await runWrk(wrk, wrkLoad(ctx, `http://127.0.0.1:${server.port}/static/1k`, ctx.opts.durationS));
        } finally {
          clearInterval(sampler);
        }
      });
      metrics['loadTotalMiB'] = peak.totalMiB;
      metrics['loadWorkerMiB'] = peak.workerMiB;
      metrics['loadTotalPssMiB'] = peak.totalPssMiB;
      metrics['loadWorkerPssMiB'] = peak.workerPssMiB;
      const conns = await openIdleConnections({ port: server.port, path: '/static/1k', count: ctx.opts.idleConnections, parallel: 200, deadlineMs: 60_000 });
      try {
        await sleep(1_000);
        metrics['idleConnections'] = conns.open();
        take('conns');
      } finally {
        conns.close();
      }
      const notes = metrics['idleConnections'] === ctx.opts.idleConnections ? [] : [`only ${metrics['idleConnections']} of ${ctx.opts.idleConnections} connections stayed open`];
      return { metrics, cpu, notes, detail };
    },
  };
}
