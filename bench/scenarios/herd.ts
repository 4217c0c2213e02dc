// The thundering herd: N clients at once for one cold key on a slow origin. A good edge sends one
// request to the origin and answers everyone as soon as it returns.
import { runHerd } from '../load/herd.ts';
import { sleep } from '../proc.ts';
import type { PhaseId, Scenario } from './types.ts';

export const HERD_ORIGIN_DELAY_MS = 200;
/** Unmeasured herds (on other cold keys) before the first measured one. */
const HERD_WARMUPS = 3;

export function herdScenario(phase: PhaseId): Scenario {
  return {
    id: `herd-${phase}`,
    title: 'Thundering herd',
    group: 'herd',
    phase,
    servers: ['outpost', 'nginx', 'varnish'],
    repeated: true,
    seconds: (o) => 1 + (HERD_WARMUPS * 0.8) / o.reps,
    describe: (o) => `${o.herdClients} connections, one request each written at once, one cold key, origin delay ${HERD_ORIGIN_DELAY_MS} ms (node:net client)`,
    run: async (ctx, server) => {
      // As the throughput runs warm up before measuring, the first run warms the herd's own path
      // (cold-key lookups, the lock, the fill, waking the waiters, the origin connection) with a herd
      // on another cold key: a JIT-compiled server would otherwise be measured in its interpreter.
      for (let i = 0; ctx.firstRun && i < HERD_WARMUPS; i++) {
        await runHerd({ port: server.port, path: `/herd/${server.id}-${ctx.runId}-warm${i}?delay=${HERD_ORIGIN_DELAY_MS}&max_age=60`, clients: ctx.opts.herdClients, timeoutMs: 10_000 });
        await sleep(200);
      }
      const path = `/herd/${server.id}-${ctx.runId}?delay=${HERD_ORIGIN_DELAY_MS}&max_age=60`;
      const before = await ctx.origin.requests();
      const { value: herd, cpu } = await ctx.window(server, () => runHerd({ port: server.port, path, clients: ctx.opts.herdClients, timeoutMs: 10_000 }));
      // Requests still on their way to the origin (a lock that timed out, say) must be counted too.
      await sleep(300);
      const originRequests = (await ctx.origin.requests()) - before;
      return {
        metrics: { originRequests, p50Ms: herd.p50Ms, p99Ms: herd.p99Ms, maxMs: herd.maxMs, errors: herd.errors, writeSpreadMs: herd.writeSpreadMs },
        cpu,
        notes: herd.errors > 0 ? [`${herd.errors} of ${herd.clients} clients failed`] : [],
      };
    },
  };
}
