// The node load driver, run as its own process: `node node-load.ts '<LoadRun JSON>'`. N undici
// keep-alive connections, each sending the next request as soon as the last answer is read, for
// the run's duration; prints the same JSON line as the wrk script (latencies in µs).
import { Pool } from 'undici';
import type { LoadRun } from './load.ts';

const MARK = 'EXPERIMENT_JSON ';

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? 0;
}

function randomInt(lo: number, hi: number): number {
  return lo + Math.floor(Math.random() * (hi - lo + 1));
}

function header(h: Record<string, string | string[] | undefined>, name: string): string {
  const v = h[name];
  return Array.isArray(v) ? (v[0] ?? '-') : (v ?? '-');
}

async function main(): Promise<void> {
  const run = JSON.parse(process.argv[2] ?? '{}') as LoadRun;
  const { mix } = run;
  const timeoutMs = run.timeoutS * 1_000;
  const pool = new Pool(run.url, { connections: run.connections, pipelining: 1, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  const latencies: number[] = [];
  const counts: Record<string, number> = {};
  let errors = 0;
  const started = performance.now();
  const deadline = started + run.durationS * 1_000;

  const loop = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const item = randomInt(1, 100) <= mix.hotPct ? randomInt(1, mix.hotItems) : randomInt(mix.hotItems + 1, mix.hotItems + mix.tailItems);
      const t0 = performance.now();
      try {
        const r = await pool.request({ method: 'GET', path: `/path/item-${item}.ext?max_age=${run.maxAgeS}` });
        await r.body.dump();
        latencies.push((performance.now() - t0) * 1_000);
        const k = `${header(r.headers, 'x-served-by')}|${header(r.headers, 'x-cache-status')}|${r.statusCode >= 200 && r.statusCode < 300 ? 'ok' : 'bad'}`;
        counts[k] = (counts[k] ?? 0) + 1;
      } catch {
        errors++;
        // A refused connection fails at once: do not spin.
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  };
  await Promise.all(Array.from({ length: run.connections }, loop));
  const durationUs = Math.round((performance.now() - started) * 1_000);
  await pool.destroy();
  const sorted = Float64Array.from(latencies).sort();
  const out = {
    requests: latencies.length + errors,
    duration_us: durationUs,
    connect: 0,
    read: errors,
    write: 0,
    timeout: 0,
    p50: Math.round(percentile(sorted, 50)),
    p90: Math.round(percentile(sorted, 90)),
    p99: Math.round(percentile(sorted, 99)),
    max: Math.round(sorted[sorted.length - 1] ?? 0),
    counts,
  };
  process.stdout.write(`${MARK}${JSON.stringify(out)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
