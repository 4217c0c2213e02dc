// A quick loop for working on the hot path: one cache-HIT load against Outpost (optionally beside
// nginx and Varnish, interleaved round by round), and with --prof a V8 CPU profile of the worker,
// summarised by function. Not part of `npm run bench`; see docs/performance.md, "Profiling".
//
//   node bench/profile.ts [--path /static/1k] [--seconds 5] [--rounds 3] [--workers 1]
//                         [--servers outpost,nginx,varnish,outpost@OTHER_CHECKOUT] [--prof] [--keep DIR] [--top 30]
//                         [--cu 'CODE' [--cus N]]   (N access CUs with that code, on every Outpost)
import { mkdtempSync, readdirSync, readFileSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuShares, cpuSnapshot, findTools } from './machine.ts';
import { runWrk } from './load/wrk.ts';
import { formatSummary, summariseProfile, type CpuProfile } from './profile-summary.ts';
import { httpGet, setAffinity, stopAll } from './proc.ts';
import { startOrigin } from './servers/origin.ts';
import * as nginx from './servers/nginx.ts';
import * as outpost from './servers/outpost.ts';
import * as varnish from './servers/varnish.ts';
import type { RunningServer } from './servers/types.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
/** USER_HZ: /proc/PID/stat counts CPU time in these. */
const CLOCK_TICKS = 100;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      path: { type: 'string', default: '/static/1k' },
      seconds: { type: 'string', default: '5' },
      rounds: { type: 'string', default: '3' },
      workers: { type: 'string', default: '1' },
      servers: { type: 'string', default: 'outpost' },
      prof: { type: 'boolean', default: false },
      keep: { type: 'string' },
      top: { type: 'string', default: '30' },
      cu: { type: 'string' },
      cus: { type: 'string', default: '1' },
    },
  });
  const tools = await findTools();
  if (!tools.wrk) throw new Error('wrk is required (apt-get install wrk)');
  const workers = Number(values.workers);
  // As in the bench: with one worker, the server on CPU 0 and everything else on CPU 1.
  const serverCpus = workers === 1 ? '0' : undefined;
  const loadCpus = workers === 1 ? '1' : undefined;
  const tmp = mkdtempSync(join(tmpdir(), 'outpost-profile-'));
  const profDir = values.keep ?? join(tmp, 'prof');
  if (values.prof) {
    mkdirSync(profDir, { recursive: true });
    process.env.OUTPOST_CPU_PROF_DIR = profDir;
  }
  const nodePath = join(root, 'node_modules/.bin/node');
  if (loadCpus) await setAffinity(process.pid, loadCpus);
  const origin = await startOrigin(root, nodePath);
  if (loadCpus) await setAffinity(origin.pid, loadCpus);
  const servers: RunningServer[] = [];
  try {
    for (const id of values.servers.split(',')) {
      const dir = join(tmp, id.replaceAll('/', '_'));
      mkdirSync(dir, { recursive: true });
      const base = { dir, cpus: serverCpus };
      // outpost@DIR runs the Outpost of another checkout (with that checkout's bench config) beside this one, for A/B comparisons.
      if (id.startsWith('outpost@')) {
        const other = id.slice(8);
        const mod = (await import(pathToFileURL(join(other, 'bench/servers/outpost.ts')).href)) as typeof outpost;
        servers.push({ ...(await mod.start(origin.port, workers, { ...base, bin: nodePath, root: other })), id: id as 'outpost' });
      }
      else if (id === 'outpost') servers.push(await outpost.start(origin.port, workers, { ...base, bin: nodePath, root }));
      else if (id === 'nginx') servers.push(await nginx.start(origin.port, workers, { ...base, bin: tools.nginx ?? 'nginx' }));
      else if (id === 'varnish') servers.push(await varnish.start(origin.port, workers, { ...base, bin: tools.varnishd ?? 'varnishd' }));
      else throw new Error(`unknown server ${id}`);
    }
    if (values.cu !== undefined) {
      for (const s of servers) {
        const port = (s as Partial<{ adminPort: number }>).adminPort;
        if (port === undefined) continue;
        for (let i = 0; i < Number(values.cus); i++) {
          const r = await fetch(`http://127.0.0.1:${port}/cus/profile-cu-${i}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ phase: 'access', code: values.cu }) });
          if (!r.ok) throw new Error(`PUT /cus/profile-cu-${i}: ${r.status} ${await r.text()}`);
        }
      }
      // Propagation to the workers takes milliseconds; the warm-up below runs with the CUs.
      await new Promise((r) => setTimeout(r, 500));
    }
    const load = (url: string, durationS: number) => ({ url, threads: workers, connections: 50 * workers, durationS, cpus: loadCpus });
    for (const s of servers) {
      await httpGet(s.port, values.path);
      await runWrk(tools.wrk, load(`http://127.0.0.1:${s.port}${values.path}`, 2));
      const probe = await httpGet(s.port, values.path);
      console.log(`${s.id}: X-Cache-Status ${String(probe.headers['x-cache-status'])}, ${probe.body.length} bytes`);
    }
    const results = new Map<string, number[]>();
    const cost = new Map<string, number[]>();
    for (let r = 0; r < Number(values.rounds); r++) {
      for (const s of r % 2 === 0 ? servers : [...servers].reverse()) {
        const a = cpuSnapshot([s.pid]);
        const w = await runWrk(tools.wrk, load(`http://127.0.0.1:${s.port}${values.path}`, Number(values.seconds)));
        const b = cpuSnapshot([s.pid]);
        const cpu = cpuShares(a, b);
        // CPU time per request resists noise better than req/s: a neighbour that steals the load
        // generator's CPU lowers req/s but not what each request costs the server.
        const usPerReq = (((b.server - a.server) / CLOCK_TICKS) * 1e6) / Math.max(1, w.requests);
        results.set(s.id, [...(results.get(s.id) ?? []), w.rps]);
        cost.set(s.id, [...(cost.get(s.id) ?? []), usPerReq]);
        console.log(
          `round ${r + 1} ${s.id.padEnd(8)} ${String(w.rps).padStart(7)} req/s  ${usPerReq.toFixed(1).padStart(5)} µs CPU/req  p50 ${w.p50Ms} ms  p99 ${w.p99Ms} ms  server CPU ${cpu.serverPct} %  other ${cpu.otherPct} %  errors ${w.errors}`,
        );
      }
    }
    const med = (list: readonly number[]): number => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)] ?? Number.NaN;
    for (const [id, list] of results) {
      console.log(`${id}: median ${med(list)} req/s (${list.join(', ')}), ${med(cost.get(id) ?? []).toFixed(1)} µs CPU/req`);
    }
  } finally {
    for (const s of servers) await s.stop();
    await origin.stop();
    await stopAll();
  }
  if (values.prof) {
    for (const f of readdirSync(profDir).filter((x) => x.endsWith('.cpuprofile'))) {
      const p = JSON.parse(readFileSync(join(profDir, f), 'utf8')) as CpuProfile;
      const s = summariseProfile(p, root);
      // The primary's profile is mostly idle; the worker's is the one that served the load.
      if (s.busyMs < 1_000) continue;
      console.log(`\n== ${join(profDir, f)}`);
      console.log(formatSummary(s, Number(values.top)));
    }
  }
  // --keep puts the profiles outside tmp, so they survive this.
  rmSync(tmp, { recursive: true, force: true });
}

main().catch(async (e: unknown) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
  await stopAll();
  process.exitCode = 1;
});
