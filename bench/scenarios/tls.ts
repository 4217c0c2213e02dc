// Cache HIT over HTTPS (HTTP/1.1, wrk) and over h2 (h2load), for Outpost alone.
import { OutpostError } from '../../src/errors.ts';
import { httpGet } from '../proc.ts';
import { describeWrk } from '../load/wrk.ts';
import { describeH2load, runH2load, type H2Load } from '../load/h2load.ts';
import { warmThenMeasure } from './throughput.ts';
import type { PhaseId, Scenario } from './types.ts';

export function httpsScenario(phase: PhaseId): Scenario {
  return {
    id: `https-hit-1k-${phase}`,
    title: 'HTTPS HIT 1 KB',
    group: 'tls',
    phase,
    servers: ['outpost'],
    repeated: true,
    seconds: (o) => o.durationS + o.warmupS / o.reps + 0.2,
    describe: (o, p) => `GET https://…/static/1k, ${describeWrk({ url: '', threads: p.threads, connections: p.connections, durationS: o.durationS, cpus: p.loadCpus })}`,
    run: async (ctx, server) => {
      if (server.tlsPort === undefined) throw new OutpostError('INTERNAL', 'outpost was started without TLS');
      return warmThenMeasure(ctx, server, { path: '/static/1k', durationS: ctx.opts.durationS, url: `https://127.0.0.1:${server.tlsPort}/static/1k` });
    },
  };
}

function h2Load(durationS: number, warmupS: number, cpus: string | undefined, url: string): H2Load {
  return { url, threads: 1, connections: 16, streams: 10, durationS, warmupS, cpus };
}

export function h2Scenario(phase: PhaseId): Scenario {
  return {
    id: `h2-hit-1k-${phase}`,
    title: 'h2 HIT 1 KB',
    group: 'tls',
    phase,
    servers: ['outpost'],
    repeated: true,
    seconds: (o) => o.durationS + o.warmupS + 0.2,
    describe: (o, p) => `GET /static/1k over h2 (TLS), ${describeH2load(h2Load(o.durationS, o.warmupS, p.loadCpus, ''))}; needs h2load (nghttp2-client)`,
    run: async (ctx, server) => {
      const bin = ctx.tools.h2load;
      if (bin === undefined) throw new OutpostError('INTERNAL', 'h2load (nghttp2-client) is not installed; wrk and autocannon cannot speak h2');
      if (server.tlsPort === undefined) throw new OutpostError('INTERNAL', 'outpost was started without TLS');
      await httpGet(server.port, '/static/1k');
      const url = `https://127.0.0.1:${server.tlsPort}/static/1k`;
      // h2load's own warm-up period is excluded from its figures but not from the CPU window.
      const { value: load, cpu } = await ctx.window(server, () => runH2load(bin, h2Load(ctx.opts.durationS, ctx.opts.warmupS, ctx.phase.loadCpus, url)));
      return {
        metrics: { rps: load.rps, meanMs: load.p50Ms, maxMs: load.maxMs, errors: load.errors, mibPerS: load.mibPerS },
        cpu,
        notes: load.errors > 0 ? [`${load.errors} errors`] : [],
      };
    },
  };
}
