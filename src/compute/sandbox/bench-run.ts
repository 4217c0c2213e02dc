// µs per CU run in the isolate runtime, measured in-process (no HTTP): the sandbox's own share of the
// per-request overhead. Run: node src/compute/sandbox/bench-run.ts [--runs N]
// The median of 25 batches is reported; a bare isolated-vm applySync is shown for scale.
import ivm from 'isolated-vm';
import type { CuRecord } from '../cu.ts';
import type { CuRequestView, CuRunInput, CuRunOutput, LoadedCu } from '../runtime.ts';
import { IsolateRuntime } from './isolate-runtime.ts';
import { MemoryCuServices } from './memory-services.ts';

const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 100_000;
const BATCHES = 25;

function record(id: string, code: string): CuRecord {
  return {
    id, phase: 'access', code, lang: 'js', sampling: 100, hosts: [], priority: 100, enabled: true,
    timeoutMs: 50, memoryMb: 16, failure: 'open', version: 1, updatedAt: new Date(0).toISOString(),
  };
}

// A browser-like request: what a CU sees on a typical HIT.
function request(i: number): CuRequestView {
  return {
    method: 'GET',
    uri: '/hls/colorbar_high/index.m3u8?token=token',
    path: '/hls/colorbar_high/index.m3u8',
    query: 'token=token',
    args: { token: 'token' },
    headers: {
      host: 'localhost:8080',
      'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36',
      accept: '*/*',
      'accept-encoding': 'gzip, deflate, br',
      'accept-language': 'en-US,en;q=0.9',
      referer: 'http://localhost:8080/app',
      cookie: 'superstition=token',
      connection: 'keep-alive',
    },
    cookies: { superstition: 'token' },
    ip: `10.0.${(i >> 8) & 255}.${i & 255}`,
    host: 'localhost',
    scheme: 'http',
  };
}

// A new request view per run, as the edge makes one per request (so no serialisation is reused).
function inputs(n: number): CuRunInput[] {
  const out: CuRunInput[] = [];
  for (let i = 0; i < n; i++) out.push({ phase: 'access', request: request(i), vars: {}, timings: { requestMs: 0.2 } });
  return out;
}

async function measure(name: string, run: (input: CuRunInput) => unknown, isAsync: boolean): Promise<number> {
  const pool = inputs(1024);
  const perBatch = Math.max(1, Math.floor(RUNS / BATCHES));
  // The time limit is wall-clock: on a loaded machine a stalled run can hit it. Counted, not fatal.
  let failures = 0;
  const once = async (i: number): Promise<void> => {
    try {
      const r = run(pool[i & 1023]!);
      if (isAsync) await r;
    } catch {
      failures++;
    }
  };
  for (let i = 0; i < Math.min(perBatch, 5000); i++) await once(i);
  const samples: number[] = [];
  for (let b = 0; b < BATCHES; b++) {
    const t0 = process.hrtime.bigint();
    if (isAsync) for (let i = 0; i < perBatch; i++) await once(i);
    else {
      for (let i = 0; i < perBatch; i++) {
        try {
          run(pool[i & 1023]!);
        } catch {
          failures++;
        }
      }
    }
    samples.push(Number(process.hrtime.bigint() - t0) / perBatch / 1000);
  }
  samples.sort((a, b) => a - b);
  const median = samples[Math.floor(samples.length / 2)]!;
  const failed = failures > 0 ? `, ${failures} failed` : '';
  console.log(`${name.padEnd(48)} ${median.toFixed(2).padStart(7)} µs/run  (p10 ${samples[2]!.toFixed(2)}, p90 ${samples[22]!.toFixed(2)}${failed})`);
  return median;
}

const services = new MemoryCuServices();
const runtime = new IsolateRuntime({ services });

const bare = new ivm.Isolate({ memoryLimit: 16 });
const bareFn = bare.createContextSync().evalSync('(function () {})', { reference: true }) as ivm.Reference<() => void>;
await measure('bare applySync (isolated-vm, for scale)', () => bareFn.applySync(undefined, []), false);
await measure('bare applySync with a timeout', () => bareFn.applySync(undefined, [], { timeout: 50 }), false);

const cases: Array<[string, string]> = [
  ['trivial sync CU (empty body)', 'return;'],
  ['trivial sync CU (reads a header, passes)', "if (req.headers['x-block'] === '1') return exit(403);"],
  ['token auth (seed 000: args/cookie, sets a cookie)', "const token = req.args.token ?? req.cookies.superstition;\nif (token !== 'token') return exit(403);\nres.headers['set-cookie'] = 'superstition=token';"],
  ['the bench\'s trivial CU (reads the path, sets a var)', 'if (req.path === "/never") return exit(404); vars.seen = true;'],
  ['sets 2 headers', "res.headers['x-edge'] = 'outpost';\nres.headers['x-client-ip'] = req.ip;"],
  ['async CU: one redis call (in-memory services)', "const n = await redis.incr('count:' + req.ip);\nres.headers['x-request-counter'] = String(n);"],
];
const loaded: LoadedCu[] = [];
for (const [name, code] of cases) {
  const cu = runtime.load(record(name.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, ''), code));
  loaded.push(cu);
  await measure(name, (input) => cu.run(input) as CuRunOutput | Promise<CuRunOutput>, cu.async);
}

const five = loaded.slice(0, 5).filter((c) => !c.async);
await measure(`${five.length} sync CUs on the same request`, (input) => {
  for (const cu of five) cu.run(input);
}, false);

runtime.dispose();
bare.dispose();
