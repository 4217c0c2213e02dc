// Pass-through: every response says no-store, so each request goes to the origin. This measures the
// proxying path (and is bounded by the origin's own speed, which is the same for every server).
import { describeWrk } from '../load/wrk.ts';
import { warmThenMeasure } from './throughput.ts';
import type { PhaseId, Scenario } from './types.ts';

export function passThroughScenario(phase: PhaseId): Scenario {
  return {
    id: `pass-${phase}`,
    title: 'Pass-through (no-store)',
    group: 'pass',
    phase,
    servers: ['outpost', 'nginx', 'varnish'],
    repeated: true,
    seconds: (o) => o.durationS + o.warmupS / o.reps + 0.2,
    describe: (o, p) => `GET /api/pass?cc=no-store (uncacheable), ${describeWrk({ url: '', threads: p.threads, connections: p.connections, durationS: o.durationS, cpus: p.loadCpus })}`,
    run: (ctx, server) => warmThenMeasure(ctx, server, { path: '/api/pass?cc=no-store', durationS: ctx.opts.durationS }),
  };
}
