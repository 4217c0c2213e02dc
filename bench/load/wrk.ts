// wrk from Debian drives every HTTP/1.1 load; a Lua done() hook prints the summary as one JSON line so
// nothing depends on wrk's human-readable output.
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OutpostError } from '../../src/errors.ts';
import { runCommand } from '../proc.ts';

export interface LoadResult {
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly requests: number;
  /** Connect/read/write errors, timeouts and non-2xx/3xx responses together. */
  readonly errors: number;
  readonly durationS: number;
  readonly mibPerS: number;
}

export interface WrkLoad {
  readonly url: string;
  readonly threads: number;
  readonly connections: number;
  readonly durationS: number;
  /** CPU list for taskset; undefined lets the kernel place wrk. */
  readonly cpus?: string | undefined;
  /** Lua that defines request() (and may define setup/init) for loads wrk cannot express as one URL. */
  readonly lua?: string;
  /** Arguments handed to the Lua init(args). */
  readonly luaArgs?: readonly string[];
}

const MARK = 'BENCH_JSON ';

// Only done() is defined here, so a plain load keeps wrk's fast path (no per-request Lua).
const REPORT_LUA = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('${MARK}{"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50":%d,"p99":%d,"max":%d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
`;

let scriptDir: string | undefined;

function writeScript(lua: string | undefined): string {
  if (scriptDir === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'outpost-bench-lua-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    scriptDir = dir;
  }
  const file = join(scriptDir, `load-${Date.now()}-${Math.random().toString(36).slice(2)}.lua`);
  writeFileSync(file, `${lua ?? ''}\n${REPORT_LUA}`);
  return file;
}

export function wrkArgs(load: WrkLoad, script: string): string[] {
  const args = ['-t', String(load.threads), '-c', String(load.connections), '-d', `${load.durationS}s`, '--timeout', '5s', '-s', script, load.url];
  if (load.luaArgs && load.luaArgs.length > 0) args.push('--', ...load.luaArgs);
  return args;
}

/** A one-line description of the load, for plans and progress. */
export function describeWrk(load: WrkLoad): string {
  return `wrk -t${load.threads} -c${load.connections} -d${load.durationS}s${load.cpus === undefined ? '' : ` (cpu ${load.cpus})`}${load.lua ? ' +lua' : ''}`;
}

export async function runWrk(bin: string, load: WrkLoad): Promise<LoadResult> {
  const script = writeScript(load.lua);
  const r = await runCommand(bin, wrkArgs(load, script), { timeoutMs: (load.durationS + 20) * 1_000, cpus: load.cpus });
  const line = r.stdout.split('\n').find((l) => l.startsWith(MARK));
  if (!line) throw new OutpostError('INTERNAL', `wrk gave no result (exit ${r.code}${r.timedOut ? ', timed out' : ''}): ${(r.stderr || r.stdout).slice(-500)}`);
  return parseWrkJson(line.slice(MARK.length));
}

export function parseWrkJson(json: string): LoadResult {
  const j = JSON.parse(json) as Record<string, number>;
  const n = (k: string): number => Number(j[k] ?? 0);
  const seconds = n('duration_us') / 1e6 || 1;
  const ms = (us: number): number => Math.round(us / 10) / 100;
  return {
    rps: Math.round(n('requests') / seconds),
    p50Ms: ms(n('p50')),
    p99Ms: ms(n('p99')),
    maxMs: ms(n('max')),
    requests: n('requests'),
    errors: n('connect') + n('read') + n('write') + n('status') + n('timeout'),
    durationS: Math.round(seconds * 100) / 100,
    mibPerS: Math.round((n('bytes') / seconds / 2 ** 20) * 10) / 10,
  };
}

/**
 * A wrk Lua prologue that numbers the threads: each sees its own `id` (0, 1, …) in init(), for
 * scripts that give every thread its own random stream or offset.
 */
export const THREAD_ID_LUA = `local counter = 0
setup = function(thread)
  thread:set("id", counter)
  counter = counter + 1
end`;
