// Command-line flags of `npm run bench`, validated once, with the durations each mode implies.
import { parseArgs } from 'node:util';
import { OutpostError } from '../src/errors.ts';

export const SERVER_FLAGS = ['outpost', 'nginx', 'varnish'] as const;
export type ServerFlag = (typeof SERVER_FLAGS)[number];

export interface BenchOptions {
  readonly quick: boolean;
  readonly dryRun: boolean;
  /** Scenario ids or id prefixes to run (`hit` selects every hit-*); undefined = all. */
  readonly only: readonly string[] | undefined;
  readonly servers: readonly ServerFlag[];
  /** Measured repetitions per scenario and server; the report shows the median and min–max. */
  readonly reps: number;
  /** Seconds of load per measured throughput run, and of warm-up before it. */
  readonly durationS: number;
  readonly warmupS: number;
  readonly longTailS: number;
  /** A run is discarded and repeated when other processes used more than this share of the machine (%). */
  readonly maxOtherCpuPct: number;
  /** Attempts per run before a noisy result is kept anyway (and flagged). */
  readonly maxAttempts: number;
  readonly idleConnections: number;
  readonly herdClients: number;
  /**
   * Noisy runs are repeated only while the elapsed time plus the planned time still ahead stays under
   * this many seconds (keeps --quick under 3 minutes); undefined = twice the plan's estimate.
   */
  readonly budgetS: number | undefined;
  /** Write bench/results/*.json and docs/performance.md. */
  readonly write: boolean;
}

export const USAGE = `usage: node bench/run.ts [--quick] [--dry-run] [--only scenario,...] [--servers outpost,nginx,varnish]
                         [--reps N] [--duration S] [--max-other-cpu PCT] [--no-write]
  --quick          1 repetition and short runs: finishes in under 3 minutes
  --dry-run        print the plan (scenarios, servers, loads) and exit without measuring
  --only           scenario ids or prefixes, e.g. --only hit-1k,herd
  --servers        which servers to measure (default: all three)
  --reps           repetitions per run (default 3; --quick 1)
  --duration       seconds of load per throughput run (default 10; --quick 2)
  --max-other-cpu  discard and repeat runs where other processes used more than PCT % of the machine (default 15)
  --no-write       do not write bench/results/*.json and docs/performance.md`;

function positiveInt(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new OutpostError('CONFIG_INVALID', `--${name}: expected a positive number, got "${raw}"`);
  return n;
}

export function parseOptions(argv: readonly string[]): BenchOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      quick: { type: 'boolean', default: false },
      'dry-run': { type: 'boolean', default: false },
      only: { type: 'string' },
      servers: { type: 'string' },
      reps: { type: 'string' },
      duration: { type: 'string' },
      'max-other-cpu': { type: 'string' },
      'no-write': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const quick = values.quick;
  const list = (s: string | undefined): string[] | undefined =>
    s
      ?.split(',')
      .map((x) => x.trim())
      .filter((x) => x !== '');
  const servers = list(values.servers) ?? [...SERVER_FLAGS];
  for (const s of servers) {
    if (!(SERVER_FLAGS as readonly string[]).includes(s)) throw new OutpostError('CONFIG_INVALID', `--servers: expected some of ${SERVER_FLAGS.join(', ')}, got "${s}"`);
  }
  const durationS = positiveInt('duration', values.duration, quick ? 2 : 10);
  return {
    quick,
    dryRun: values['dry-run'],
    only: list(values.only),
    servers: servers as ServerFlag[],
    reps: Math.round(positiveInt('reps', values.reps, quick ? 1 : 3)),
    durationS,
    warmupS: quick ? 1 : 2,
    longTailS: quick ? 10 : 30,
    maxOtherCpuPct: positiveInt('max-other-cpu', values['max-other-cpu'], 15),
    maxAttempts: 3,
    idleConnections: 10_000,
    herdClients: 200,
    budgetS: quick ? 165 : undefined,
    write: !values['no-write'],
  };
}
