// The experiments' load drivers. Both draw each request from a hot-set/tail mix, count every response
// by the edge that served it (X-Served-By), its X-Cache-Status and whether it was 2xx, and print one
// JSON line at the end. `wrk` (what seed 004 used) runs a Lua script; `node` (bench/experiments/
// node-load.ts, for machines without wrk) keeps N undici keep-alive connections busy. Either runs in
// its own process, so the mini-CDN has this process's event loop to itself.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OutpostError } from '../../src/errors.ts';
import { fileURLToPath } from 'node:url';
import { runCommand } from '../proc.ts';

export type Driver = 'wrk' | 'node';

/** `hotPct` % of requests go to items 1..hotItems, the rest to the next `tailItems` items. */
export interface Mix {
  readonly hotPct: number;
  readonly hotItems: number;
  readonly tailItems: number;
}

export interface LoadRun {
  readonly url: string;
  readonly mix: Mix;
  /** Sent as ?max_age=N: the demo origin's Cache-Control max-age. */
  readonly maxAgeS: number;
  readonly connections: number;
  /** wrk threads; the node driver runs in one. */
  readonly threads: number;
  readonly durationS: number;
  /** wrk's per-request timeout (seed 004 ran wrk with its 2 s default). */
  readonly timeoutS: number;
}

/** Responses counted by "edge|X-Cache-Status|ok" or "edge|X-Cache-Status|bad" (bad: not 2xx). */
export type ResponseCounts = Record<string, number>;

export interface LoadResult {
  readonly requests: number;
  readonly durationS: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Connect, read, write errors and timeouts (responses that never came). */
  readonly socketErrors: number;
  readonly counts: ResponseCounts;
}

export const MARK = 'EXPERIMENT_JSON ';

// Seed 004's request() (`item-N.ext` under /path/), its mix made a parameter; one random stream per
// thread. Counting in response() makes wrk parse headers, which costs little at these rates.
export const MIX_LUA = `
local counter = 0
local threads = {}
setup = function(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
init = function(args)
  hot_pct = tonumber(args[1])
  hot_items = tonumber(args[2])
  tail_items = tonumber(args[3])
  max_age = args[4]
  math.randomseed(os.time() + 7919 * (id or 0))
  counts = {}
end
request = function()
  local item
  if math.random(1, 100) <= hot_pct then
    item = math.random(1, hot_items)
  else
    item = math.random(hot_items + 1, hot_items + tail_items)
  end
  return wrk.format(nil, "/path/item-" .. item .. ".ext?max_age=" .. max_age)
end
response = function(status, headers, body)
  local edge = headers["x-served-by"] or headers["X-Served-By"] or "-"
  local cache = headers["x-cache-status"] or headers["X-Cache-Status"] or "-"
  local ok = "bad"
  if status >= 200 and status < 300 then ok = "ok" end
  local k = edge .. "|" .. cache .. "|" .. ok
  counts[k] = (counts[k] or 0) + 1
end
done = function(summary, latency, requests)
  local e = summary.errors
  local parts = {}
  local total = {}
  for _, t in ipairs(threads) do
    local c = t:get("counts")
    if c then
      for k, v in pairs(c) do total[k] = (total[k] or 0) + v end
    end
  end
  for k, v in pairs(total) do
    table.insert(parts, string.format('"%s":%d', k:gsub('[^%w%-%._|]', '?'), v))
  end
  io.write(string.format('${MARK}{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"p50":%d,"p90":%d,"p99":%d,"max":%d,"counts":{%s}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, table.concat(parts, ",")))
end
`;

/** Long tail of seed 004: 96 % of requests to the 5 popular items, 4 % over 200 others. */
export const LONG_TAIL: Mix = { hotPct: 96, hotItems: 5, tailItems: 200 };
/** One very hot item: half the requests to it, the other half over 200 others. */
export const HOT_ITEM: Mix = { hotPct: 50, hotItems: 1, tailItems: 200 };

export function describeMix(m: Mix): string {
  return `${m.hotPct} % of requests to ${m.hotItems === 1 ? '1 item' : `${m.hotItems} items`}, the rest over ${m.tailItems} others`;
}

export function wrkArgs(run: LoadRun, script: string): string[] {
  return [
    '-t', String(run.threads),
    '-c', String(run.connections),
    '-d', `${run.durationS}s`,
    '--timeout', `${run.timeoutS}s`,
    '-s', script,
    run.url,
    '--',
    String(run.mix.hotPct), String(run.mix.hotItems), String(run.mix.tailItems), String(run.maxAgeS),
  ];
}

/** Runs the load with wrk at `bin`, or with the node driver under the Node binary `bin`. */
export async function runLoad(driver: Driver, bin: string, run: LoadRun): Promise<LoadResult> {
  if (driver === 'node') {
    const script = fileURLToPath(new URL('./node-load.ts', import.meta.url));
    const r = await runCommand(bin, [script, JSON.stringify(run)], { timeoutMs: (run.durationS + 20) * 1_000 });
    return resultFrom('node driver', r);
  }
  return runWrk(bin, run);
}

function resultFrom(what: string, r: { code: number | null; stdout: string; stderr: string; timedOut: boolean }): LoadResult {
  const line = r.stdout.split('\n').find((l) => l.startsWith(MARK));
  if (!line) throw new OutpostError('INTERNAL', `${what} gave no result (exit ${r.code}${r.timedOut ? ', timed out' : ''}): ${(r.stderr || r.stdout).slice(-500)}`);
  return parseResultLine(line.slice(MARK.length));
}

async function runWrk(bin: string, run: LoadRun): Promise<LoadResult> {
  const dir = mkdtempSync(join(tmpdir(), 'outpost-experiment-lua-'));
  try {
    const script = join(dir, 'mix.lua');
    writeFileSync(script, MIX_LUA);
    return resultFrom('wrk', await runCommand(bin, wrkArgs(run, script), { timeoutMs: (run.durationS + 20) * 1_000 }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The JSON line both drivers print (latencies in µs, as wrk gives them). */
export function parseResultLine(json: string): LoadResult {
  const j = JSON.parse(json) as Record<string, unknown>;
  const n = (k: string): number => Number(j[k] ?? 0);
  const seconds = n('duration_us') / 1e6 || 1;
  const ms = (us: number): number => Math.round(us / 10) / 100;
  const counts: ResponseCounts = {};
  const raw = j['counts'];
  if (raw !== null && typeof raw === 'object') for (const [k, v] of Object.entries(raw)) counts[k] = Number(v);
  return {
    requests: n('requests'),
    durationS: Math.round(seconds * 100) / 100,
    rps: Math.round(n('requests') / seconds),
    p50Ms: ms(n('p50')),
    p90Ms: ms(n('p90')),
    p99Ms: ms(n('p99')),
    maxMs: ms(n('max')),
    socketErrors: n('connect') + n('read') + n('write') + n('timeout'),
    counts,
  };
}
