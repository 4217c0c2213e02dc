// Issue 4's measurements: what trivial access CUs cost on cache HITs (1 and 5 against none, same
// server, same run), and how long a CU change takes from the admin API to every worker.
import { request } from 'undici';
import { OutpostError } from '../../src/errors.ts';
import type { RunningServer } from '../servers/types.ts';
import { warmThenMeasure } from './throughput.ts';
import type { Measurement, PhaseId, RunContext, Scenario } from './types.ts';

/** Issue 4's targets: HIT throughput with one trivial access CU as a share of none, µs each CU adds at the median, and p99 from an admin write to every worker. */
export const CU_SHARE_TARGET = 0.6;
export const CU_US_PER_CU_TARGET = 8;
export const CU_PROPAGATION_TARGET_MS = 1000;

type OutpostServer = RunningServer & { readonly adminPort: number };

function adminPort(server: RunningServer): number {
  const p = (server as Partial<OutpostServer>).adminPort;
  if (p === undefined) throw new OutpostError('INTERNAL', 'CU scenarios need an Outpost server with an admin port');
  return p;
}

async function admin(port: number, method: 'GET' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<unknown> {
  const r = await request(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await r.body.text();
  if (r.statusCode >= 400) throw new OutpostError('INTERNAL', `admin ${method} ${path}: ${r.statusCode} ${text}`);
  return text ? (JSON.parse(text) as unknown) : undefined;
}

interface Status {
  workers: Array<{ cus: Array<{ id: string; running?: number }> }>;
}

/** Resolves once every worker runs `version` of `id` (or, with version 0, no longer has it). */
async function untilEveryWorker(port: number, id: string, version: number, timeoutMs = 10_000): Promise<void> {
  const t0 = performance.now();
  while (performance.now() - t0 < timeoutMs) {
    const st = (await admin(port, 'GET', '/cus/status')) as Status;
    const done = st.workers.length > 0 && st.workers.every((w) => (version === 0 ? !w.cus.some((c) => c.id === id) : w.cus.some((c) => c.id === id && c.running === version)));
    if (done) return;
    await new Promise((r) => setTimeout(r, 2));
  }
  throw new OutpostError('INTERNAL', `CU ${id} v${version} did not reach every worker within ${timeoutMs} ms`);
}

/** The cheapest meaningful CU: reads the request, touches vars, decides nothing. */
export const TRIVIAL = 'if (req.path === "/never") return exit(404); vars.seen = true;';

export function cuOverheadScenario(count: 0 | 1 | 5, phase: PhaseId): Scenario {
  return {
    id: `cu-${count}-${phase}`,
    title: count === 0 ? 'HIT 1 KB, no CU (baseline)' : `HIT 1 KB + ${count} trivial access CU${count > 1 ? 's' : ''}`,
    group: 'tls',
    phase,
    servers: ['outpost'],
    repeated: true,
    seconds: (o) => o.durationS + o.warmupS / o.reps + 1,
    describe: (o) => `GET /static/1k (cached) with ${count} trivial access CU(s) installed, wrk ${o.durationS} s`,
    async run(ctx: RunContext, server: RunningServer): Promise<Measurement> {
      const port = adminPort(server);
      const ids = Array.from({ length: count }, (_, i) => `bench-trivial-${i}`);
      for (const id of ids) {
        const rec = (await admin(port, 'PUT', `/cus/${id}`, { phase: 'access', code: TRIVIAL })) as { version: number };
        await untilEveryWorker(port, id, rec.version);
      }
      try {
        // The first run of each count warms with its own CUs in place.
        return await warmThenMeasure({ ...ctx, firstRun: true }, server, { path: '/static/1k', expectCache: 'HIT', durationS: ctx.opts.durationS });
      } finally {
        for (const id of ids) {
          await admin(port, 'DELETE', `/cus/${id}`);
          await untilEveryWorker(port, id, 0);
        }
      }
    },
  };
}

function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
}

export function cuPropagationScenario(phase: PhaseId): Scenario {
  const writes = 30;
  return {
    id: `cu-propagation-${phase}`,
    title: 'CU change: admin API write → every worker runs it',
    group: 'tls',
    phase,
    servers: ['outpost'],
    repeated: false,
    seconds: () => 5,
    describe: () => `${writes} CU writes through the admin API, each timed until every worker runs the new version (embedded store)`,
    async run(ctx: RunContext, server: RunningServer): Promise<Measurement> {
      const port = adminPort(server);
      const { value: times, cpu } = await ctx.window(server, async () => {
        const out: number[] = [];
        for (let i = 0; i < writes; i++) {
          const t0 = performance.now();
          const rec = (await admin(port, 'PUT', '/cus/bench-propagation', { phase: 'access', code: `vars.v = ${i};` })) as { version: number };
          await untilEveryWorker(port, 'bench-propagation', rec.version);
          out.push(performance.now() - t0);
        }
        return out;
      });
      await admin(port, 'DELETE', '/cus/bench-propagation');
      return {
        metrics: { p50Ms: percentile(times, 50), p99Ms: percentile(times, 99), maxMs: Math.max(...times) },
        cpu,
        notes: [`${writes} writes; target p99 ≤ ${CU_PROPAGATION_TARGET_MS} ms`],
      };
    },
  };
}
