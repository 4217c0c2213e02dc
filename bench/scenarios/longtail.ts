// Seed 004's long-tail mix: 96 % of requests go to 5 popular items, 4 % spread over 200 others,
// max-age 10 s, 200 ms origin. What matters is how often each item is fetched per freshness period.
import { OutpostError } from '../../src/errors.ts';
import { describeWrk, runWrk, THREAD_ID_LUA, type WrkLoad } from '../load/wrk.ts';
import type { PhaseId, Scenario } from './types.ts';

// The seed's request() with a per-run path prefix and one random stream per wrk thread.
export const LONG_TAIL_LUA = `
${THREAD_ID_LUA}
init = function(args)
  prefix = args[1] or "/lt/"
  math.randomseed(os.time() + 7919 * (id or 0))
end
request = function()
  local item
  if math.random(1, 100) <= 96 then
    item = math.random(1, 5)
  else
    item = math.random(6, 205)
  end
  return wrk.format(nil, prefix .. "item-" .. item .. ".ext?max_age=10&delay=200")
end
`;

function load(url: string, durationS: number, prefix: string): WrkLoad {
  // The seed's own wrk settings: 2 threads, 10 connections.
  return { url, threads: 2, connections: 10, durationS, lua: LONG_TAIL_LUA, luaArgs: [prefix] };
}

export function longTailScenario(phase: PhaseId): Scenario {
  return {
    id: `longtail-${phase}`,
    title: 'Long tail (seed 004)',
    group: 'longtail',
    phase,
    servers: ['outpost', 'nginx', 'varnish'],
    repeated: true,
    seconds: (o) => o.longTailS + 0.2,
    describe: (o) => `96 % of requests to 5 items, 4 % over 200 others, max-age 10, origin delay 200 ms, cold start, ${describeWrk(load('', o.longTailS, ''))}`,
    run: async (ctx, server) => {
      const wrk = ctx.tools.wrk;
      if (wrk === undefined) throw new OutpostError('INTERNAL', 'wrk is not installed');
      const prefix = `/lt/${server.id}-${ctx.runId}/`;
      const before = await ctx.origin.requests();
      const { value: r, cpu } = await ctx.window(server, () => runWrk(wrk, load(`http://127.0.0.1:${server.port}/`, ctx.opts.longTailS, prefix)));
      const originRequests = (await ctx.origin.requests()) - before;
      return {
        metrics: { rps: r.rps, originRequests, p50Ms: r.p50Ms, p99Ms: r.p99Ms, maxMs: r.maxMs, errors: r.errors },
        cpu,
        notes: r.errors > 0 ? [`${r.errors} errors`] : [],
      };
    },
  };
}
