// h2load (Debian's nghttp2-client) for HTTP/2 over TLS, which wrk cannot speak.
import { OutpostError } from '../../src/errors.ts';
import { runCommand } from '../proc.ts';
import type { LoadResult } from './wrk.ts';

export interface H2Load {
  readonly url: string;
  readonly threads: number;
  readonly connections: number;
  /** Concurrent streams per connection. */
  readonly streams: number;
  readonly durationS: number;
  readonly warmupS: number;
  readonly cpus?: string | undefined;
}

export function describeH2load(load: H2Load): string {
  return `h2load -t${load.threads} -c${load.connections} -m${load.streams} -D${load.durationS}${load.cpus === undefined ? '' : ` (cpu ${load.cpus})`}`;
}

export async function runH2load(bin: string, load: H2Load): Promise<LoadResult> {
  const args = ['-t', String(load.threads), '-c', String(load.connections), '-m', String(load.streams), '-D', String(load.durationS), '--warm-up-time', String(load.warmupS), load.url];
  const r = await runCommand(bin, args, { timeoutMs: (load.durationS + load.warmupS + 20) * 1_000, cpus: load.cpus });
  return parseH2load(r.stdout, r.stderr);
}

const MS: Record<string, number> = { us: 0.001, ms: 1, s: 1_000 };

/** Reads h2load's summary; it reports mean and max request times, not percentiles. */
export function parseH2load(stdout: string, stderr = ''): LoadResult {
  const fin = /finished in ([\d.]+)s, ([\d.]+) req\/s, ([\d.]+)([KMG]?B)\/s/.exec(stdout);
  const reqs = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(stdout);
  const status = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(stdout);
  const time = /time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)/.exec(stdout);
  if (!fin || !reqs) throw new OutpostError('INTERNAL', `h2load gave no result: ${(stderr || stdout).slice(-500)}`);
  const unit: Record<string, number> = { B: 1 / 2 ** 20, KB: 1 / 1024, MB: 1, GB: 1024 };
  const ms = (v: string | undefined, u: string | undefined): number => Math.round(Number(v ?? NaN) * (MS[u ?? 'ms'] ?? 1) * 100) / 100;
  return {
    rps: Math.round(Number(fin[2])),
    // h2load prints no median; its mean stands in for p50 and is labelled so in the report.
    p50Ms: time ? ms(time[5], time[6]) : NaN,
    p99Ms: NaN,
    maxMs: time ? ms(time[3], time[4]) : NaN,
    requests: Number(reqs[4]),
    errors: Number(reqs[5]) + Number(reqs[6]) + Number(reqs[7]) + (status ? Number(status[3]) + Number(status[4]) : 0),
    durationS: Number(fin[1]),
    mibPerS: Math.round(Number(fin[3]) * (unit[fin[4] ?? 'B'] ?? 1) * 10) / 10,
  };
}
