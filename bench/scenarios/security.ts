// Issue 5's measurements. (1) What the security gates cost on cache HITs: the same 1 KB HIT load on
// Outpost plain and on Outpost with a 10,000-entry IP deny list, a node rate limit and the WAF
// (`outpost-secure`), interleaved in one run; target ≥ 85 % of the plain throughput. (2) That
// compression happens once per object and coding under a HIT load: 50 text objects asked for with br,
// gzip and no Accept-Encoding in rotation, counting `outpost_compressions_total` around the run.
import { OutpostError } from '../../src/errors.ts';
import { describeWrk, runWrk, THREAD_ID_LUA, type WrkLoad } from '../load/wrk.ts';
import { httpGet } from '../proc.ts';
import { adminMetrics, adminPortOf, httpCall, metricSum } from '../servers/outpost-admin.ts';
import { checkGates, DENY_ENTRIES } from '../servers/outpost-secure.ts';
import type { RunningServer } from '../servers/types.ts';
import { warmThenMeasure, wrkLoad } from './throughput.ts';
import type { Measurement, PhaseId, RunContext, Scenario } from './types.ts';

/** Share of the plain throughput the gates must leave (issue 5). */
export const SECURITY_TARGET = 0.85;

// Headers a browser sends, which the WAF inspects (user-agent, referer); set once, so wrk keeps its
// fast path (no per-request Lua). Both servers get the same requests.
export const BROWSER_HEADERS_LUA = `
wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
wrk.headers["Referer"] = "https://www.example.com/products/index.html?page=2&sort=price"
wrk.headers["Accept"] = "*/*"
`;

export function securityHitScenario(phase: PhaseId): Scenario {
  return {
    id: `sec-hit-1k-${phase}`,
    title: 'HIT 1 KB, security gates off / on',
    group: 'security',
    phase,
    servers: ['outpost', 'outpost-secure'],
    repeated: true,
    seconds: (o) => o.durationS + o.warmupS / o.reps + 0.5,
    describe: (o, p) =>
      `GET /static/1k (cached) with browser headers on Outpost plain vs with ${DENY_ENTRIES.toLocaleString('en')}-entry deny list + node rate limit + WAF (block), ` +
      describeWrk({ url: '', threads: p.threads, connections: p.connections, durationS: o.durationS, cpus: p.loadCpus, lua: BROWSER_HEADERS_LUA }),
    async run(ctx: RunContext, server: RunningServer): Promise<Measurement> {
      const run = { path: '/static/1k', expectCache: 'HIT', durationS: ctx.opts.durationS, lua: BROWSER_HEADERS_LUA };
      if (server.id !== 'outpost-secure') return warmThenMeasure(ctx, server, run);
      // Checked before every run, outside the measured window: a ratio from a server whose gates were
      // off would be meaningless.
      const gates = await checkGates(server);
      const admin = adminPortOf(server);
      const refusedBefore = metricSum(await adminMetrics(admin), 'outpost_ratelimit_refused_total');
      const m = await warmThenMeasure(ctx, server, run);
      const rateLimited = metricSum(await adminMetrics(admin), 'outpost_ratelimit_refused_total') - refusedBefore;
      return {
        ...m,
        metrics: { ...m.metrics, listEntries: gates.listEntries, ipRefusals: gates.ipRefusals, wafRefusals: gates.wafRefusals, rateLimited },
        notes: [...(m.notes ?? []), ...(rateLimited > 0 ? [`the rate limit refused ${rateLimited} requests`] : [])],
        detail: { gates },
      };
    },
  };
}

export const COMPRESSION_OBJECTS = 50;
const COMPRESSION_SIZE = '16k';

// Every (object, coding) request formatted once per thread; each thread starts at its own offset.
export const ROTATION_LUA = `
${THREAD_ID_LUA}
init = function(args)
  local prefix = args[1]
  local n = tonumber(args[2])
  local codings = { "br", "gzip", "" }
  reqs = {}
  for i = 0, n - 1 do
    for _, c in ipairs(codings) do
      local h = {}
      if c ~= "" then h["Accept-Encoding"] = c end
      reqs[#reqs + 1] = wrk.format("GET", prefix .. i, h)
    end
  end
  idx = ((id or 0) * 37) % #reqs
end
request = function()
  idx = idx + 1
  if idx > #reqs then idx = 1 end
  return reqs[idx]
end
`;

function rotationLoad(ctx: RunContext, port: number, prefix: string, durationS: number): WrkLoad {
  return { ...wrkLoad(ctx, `http://127.0.0.1:${port}/`, durationS), lua: ROTATION_LUA, luaArgs: [prefix, String(COMPRESSION_OBJECTS)] };
}

/** Stores every object unencoded (a request without Accept-Encoding compresses nothing). */
async function prime(port: number, prefix: string): Promise<void> {
  for (let i = 0; i < COMPRESSION_OBJECTS; i++) {
    const r = await httpGet(port, `${prefix}${i}`);
    if (r.status !== 200) throw new OutpostError('INTERNAL', `GET ${prefix}${i}: ${r.status}`);
  }
}

export function compressionScenario(phase: PhaseId): Scenario {
  return {
    id: `compress-${phase}`,
    title: `HIT ${COMPRESSION_SIZE} text × ${COMPRESSION_OBJECTS} objects, br / gzip / identity`,
    group: 'security',
    phase,
    servers: ['outpost'],
    repeated: true,
    seconds: (o) => o.durationS + o.warmupS / o.reps + 1,
    describe: (o, p) =>
      `${COMPRESSION_OBJECTS} text objects of 16 KiB (fresh per run, stored first without compression), each asked for with br, gzip and no Accept-Encoding in rotation; ` +
      `outpost_compressions_total counted around the run (expect ${COMPRESSION_OBJECTS} per coding), ` +
      describeWrk({ url: '', threads: p.threads, connections: p.connections, durationS: o.durationS, cpus: p.loadCpus, lua: 'x' }),
    async run(ctx: RunContext, server: RunningServer): Promise<Measurement> {
      const wrk = ctx.tools.wrk;
      if (wrk === undefined) throw new OutpostError('INTERNAL', 'wrk is not installed');
      const admin = adminPortOf(server);
      // Fresh keys per run (the origin ignores unknown query parameters), so each run starts with
      // no variant made and must make exactly one per object and coding.
      const prefixOf = (tag: string): string => `/static/${COMPRESSION_SIZE}.txt?run=${tag}&obj=`;
      if (ctx.firstRun) {
        const warm = prefixOf(`${ctx.runId}-warm`);
        await prime(server.port, warm);
        await runWrk(wrk, rotationLoad(ctx, server.port, warm, ctx.opts.warmupS));
      }
      const prefix = prefixOf(ctx.runId);
      await prime(server.port, prefix);
      const before = await adminMetrics(admin);
      const originBefore = await ctx.origin.requests();
      const { value: load, cpu } = await ctx.window(server, () => runWrk(wrk, rotationLoad(ctx, server.port, prefix, ctx.opts.durationS)));
      const originRequests = (await ctx.origin.requests()) - originBefore;
      const after = await adminMetrics(admin);
      const delta = (name: string, labels: Record<string, string> = {}): number => metricSum(after, name, labels) - metricSum(before, name, labels);
      const br = delta('outpost_compressions_total', { encoding: 'br' });
      const gzip = delta('outpost_compressions_total', { encoding: 'gzip' });
      const served = delta('outpost_requests_total');
      const hits = delta('outpost_requests_total', { cache: 'HIT' });
      // One probe per coding after the counters were read: the variants are really served from the cache.
      const probe = await probeVariants(server.port, `${prefix}0`);
      const notes: string[] = [];
      if (load.errors > 0) notes.push(`${load.errors} errors`);
      if (br !== COMPRESSION_OBJECTS || gzip !== COMPRESSION_OBJECTS) notes.push(`expected ${COMPRESSION_OBJECTS} compressions per coding`);
      if (probe !== 'br HIT, gzip HIT') notes.push(`probe after the run: ${probe}`);
      return {
        metrics: {
          rps: load.rps,
          p50Ms: load.p50Ms,
          p99Ms: load.p99Ms,
          errors: load.errors,
          requests: load.requests,
          objects: COMPRESSION_OBJECTS,
          brCompressions: br,
          gzipCompressions: gzip,
          hitPct: served > 0 ? Math.round((hits / served) * 1_000) / 10 : NaN,
          originRequests,
        },
        cpu,
        notes,
        detail: { compressions: `br ${br} / gzip ${gzip} for ${COMPRESSION_OBJECTS} objects`, served, hits },
      };
    },
  };
}

/** `br HIT, gzip HIT` when both variants of the object are served from the cache with their coding. */
async function probeVariants(port: number, path: string): Promise<string> {
  const out: string[] = [];
  for (const coding of ['br', 'gzip']) {
    const r = await httpCall(port, path, { headers: { 'accept-encoding': coding } });
    out.push(`${String(r.headers['content-encoding'] ?? 'identity')} ${String(r.headers['x-cache-status'] ?? 'none')}`);
  }
  return out.join(', ');
}
