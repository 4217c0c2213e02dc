// Cache HIT throughput and latency for one object size: the hot path of an edge.
import { describeWrk } from '../load/wrk.ts';
import type { ServerId } from '../servers/types.ts';
import { warmThenMeasure } from './throughput.ts';
import type { PhaseId, Scenario } from './types.ts';

export type HitSize = '1k' | '16k' | '256k';

const LABEL: Record<HitSize, string> = { '1k': '1 KB', '16k': '16 KB', '256k': '256 KB' };

export function hitScenario(size: HitSize, phase: PhaseId): Scenario {
  // Large bodies are where sendfile() helps nginx most; a user-space proxy cannot use it, so nginx is
  // also measured without it.
  const servers: ServerId[] = size === '256k' ? ['outpost', 'nginx', 'nginx-nosendfile', 'varnish'] : ['outpost', 'nginx', 'varnish'];
  return {
    id: `hit-${size}-${phase}`,
    title: `HIT ${LABEL[size]}`,
    group: 'hit',
    phase,
    servers,
    repeated: true,
    seconds: (o) => o.durationS + o.warmupS / o.reps + 0.2,
    describe: (o, p) => `GET /static/${size} (cached), ${describeWrk({ url: '', threads: p.threads, connections: p.connections, durationS: o.durationS, cpus: p.loadCpus })}`,
    run: (ctx, server) => warmThenMeasure(ctx, server, { path: `/static/${size}`, expectCache: 'HIT', durationS: ctx.opts.durationS }),
  };
}
