// Resident memory per process of each server: idle, under a cache-HIT load, and holding many idle
// keep-alive connections.
import { OutpostError } from '../../src/errors.ts';
import { treeMemory, type ProcMemory } from '../machine.ts';
import { openIdleConnections } from '../load/idle-connections.ts';
import { runWrk } from '../load/wrk.ts';
import { sleep } from '../proc.ts';
import { wrkLoad } from './throughput.ts';
import type { Metrics, PhaseId, Scenario } from './types.ts';

/** Total RSS and the largest worker's (the processes that serve requests; the only one if alone). */
export function summarise(procs: readonly ProcMemory[]): { totalMiB: number; workerMiB: number } {
  const workers = procs.filter((p) => p.role === 'worker' || p.role === 'child');
  const pool = workers.length > 0 ? workers : procs;
  const round = (x: number): number => Math.round(x * 10) / 10;
  return { totalMiB: round(procs.reduce((a, p) => a + p.rssMiB, 0)), workerMiB: round(Math.max(0, ...pool.map((p) => p.rssMiB))) };
}

export function memoryScenario(phase: PhaseId): Scenario {
  return {
    id: `memory-${phase}`,
    title: 'Memory (RSS)',
    group: 'memory',
    phase,
    servers: ['outpost', 'nginx', 'varnish'],
    repeated: false,
    seconds: (o) => o.durationS + 3,
    describe: (o) => `RSS idle, peak during a ${o.durationS}s HIT 1 KB load, and with ${o.idleConnections.toLocaleString('en')} idle keep-alive connections open`,
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
      };
      take('idle');
      let peak = { totalMiB: 0, workerMiB: 0 };
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
