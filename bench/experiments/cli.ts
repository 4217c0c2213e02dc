// `outpost bench experiments` (also `npm run experiments`): seed 004's experiments on Outpost's
// mini-CDN: a progress bar on stderr while they run, then one table per experiment group, the seed's
// findings checked, and bench/results/experiments-<time>.{json,svg}. docs/experiments.md explains.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseDuration } from '../../src/config/units.ts';
import { OutpostError } from '../../src/errors.ts';
import { machineInfo, toolVersions } from '../machine.ts';
import { which } from '../proc.ts';
import { GROUP_INFO, selectExperiments, type Experiment } from './experiments.ts';
import type { Driver } from './load.ts';
import { findings, markdownFindings, markdownTables, summarise, writeResults, type ExperimentsResult } from './report.ts';
import { RUN_OVERHEAD_S, runExperiments, type RunHooks, type RunOptions, type RunRecord } from './runner.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

export const USAGE = `usage: outpost bench experiments [--quick] [--only NAME,...] [--duration 20s] [--reps N]
                                [--connections N] [--driver wrk|node] [--latency-scale F] [--no-write] [--doc]
  --quick          5 s per run, 1 run per experiment: the whole suite in about a minute
  --only           experiments or groups: ttl, collapsing, policy, or ids such as ttl-10s,policy-rr
  --duration       load per run (default 20s; --quick 5s)
  --reps           runs per experiment, each on a fresh mini-CDN; tables show the median (default 3; --quick 1)
  --connections    concurrent keep-alive connections (default 10, as seed 004's wrk -c10)
  --threads        wrk threads (default 2, as the seed's -t2)
  --timeout        per-request timeout of the load generator (default 2s, wrk's default)
  --driver         wrk (default when installed) or node (undici in a child process)
  --latency-scale  simulated network distance between the mini-CDN's parts (default 0: none, as the seed)
  --out DIR        where the JSON and SVG go (default bench/results)
  --no-write       print the tables only
  --doc            also rewrite the results section of docs/experiments.md (complete runs only)
  --max-other-cpu  run again (up to 3 attempts, time allowing) when other processes used more than PCT %
                   of the machine during a run (default 25)
  --log-level      the mini-CDN's log level (default silent)

Experiments (each on a fresh mini-CDN: 3 edges, a shield, the demo origin with seed 004's latency):
${Object.entries(GROUP_INFO)
  .map(([g, i]) => `  ${g.padEnd(11)} ${i.title}: ${i.setup}`)
  .join('\n')}`;

export interface CliOptions extends RunOptions {
  readonly only: readonly string[] | undefined;
  readonly write: boolean;
  readonly doc: boolean;
  readonly outDir: string;
}

function positiveInt(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new OutpostError('BAD_REQUEST', `--${name}: expected a whole number above 0, got "${raw}"`);
  return n;
}

function seconds(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const ms = parseDuration(raw);
  // wrk takes whole seconds.
  if (ms === undefined || ms < 1_000) throw new OutpostError('BAD_REQUEST', `--${name}: expected a duration of at least 1s such as 20s or 1m, got "${raw}"`);
  return Math.round(ms / 1_000);
}

function nodeBinary(): string {
  const local = join(root, 'node_modules/.bin/node');
  return existsSync(local) ? local : process.execPath;
}

export async function parseCli(argv: readonly string[]): Promise<CliOptions | 'help'> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      duration: { type: 'string' },
      reps: { type: 'string' },
      connections: { type: 'string' },
      threads: { type: 'string' },
      timeout: { type: 'string' },
      driver: { type: 'string' },
      'latency-scale': { type: 'string' },
      out: { type: 'string' },
      'no-write': { type: 'boolean', default: false },
      doc: { type: 'boolean', default: false },
      'log-level': { type: 'string' },
      'max-other-cpu': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) return 'help';
  if (positionals.length > 0) throw new OutpostError('BAD_REQUEST', `unexpected argument "${positionals[0]}"`);
  const only = values.only
    ?.split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  selectExperiments(only);
  const scale = values['latency-scale'] === undefined ? 0 : Number(values['latency-scale']);
  if (!Number.isFinite(scale) || scale < 0) throw new OutpostError('BAD_REQUEST', `--latency-scale: expected a number >= 0, got "${values['latency-scale']}"`);
  const wrk = await which('wrk');
  const driver = (values.driver ?? (wrk ? 'wrk' : 'node')) as Driver;
  if (driver !== 'wrk' && driver !== 'node') throw new OutpostError('BAD_REQUEST', `--driver: expected wrk or node, got "${values.driver}"`);
  if (driver === 'wrk' && !wrk) throw new OutpostError('BAD_REQUEST', '--driver wrk: wrk is not installed (apt-get install wrk), or use --driver node');
  const durationS = seconds('duration', values.duration, values.quick ? 5 : 20);
  const reps = positiveInt('reps', values.reps, values.quick ? 1 : 3);
  const maxOther = values['max-other-cpu'] === undefined ? 25 : Number(values['max-other-cpu']);
  if (!Number.isFinite(maxOther) || maxOther <= 0 || maxOther > 100) throw new OutpostError('BAD_REQUEST', `--max-other-cpu: expected a percentage above 0, got "${values['max-other-cpu']}"`);
  // Repeating disturbed runs may stretch the suite by 15 % (at least a minute), no more.
  const plannedS = selectExperiments(only).length * reps * (durationS + RUN_OVERHEAD_S);
  return {
    only,
    durationS,
    reps,
    connections: positiveInt('connections', values.connections, 10),
    threads: positiveInt('threads', values.threads, 2),
    timeoutS: seconds('timeout', values.timeout, 2),
    latencyScale: scale,
    driver,
    bin: driver === 'wrk' ? (wrk ?? 'wrk') : nodeBinary(),
    logLevel: values['log-level'] ?? 'silent',
    maxOtherCpuPct: maxOther,
    maxAttempts: 3,
    budgetS: Math.round(plannedS + Math.max(60, plannedS * 0.15)),
    write: !values['no-write'],
    doc: values.doc,
    outDir: values.out ?? join(root, 'bench/results'),
  };
}

const fmt = (x: number): string => (Number.isFinite(x) ? Math.round(x).toLocaleString('en') : '–');

/** A progress bar on a TTY (redrawn in place), one line per finished run otherwise. */
export function progressHooks(stream: NodeJS.WriteStream | NodeJS.WritableStream, durationS: number, reps: number, busyPct: number): RunHooks {
  const tty = 'isTTY' in stream && stream.isTTY === true;
  let finished = 0;
  let total = 1;
  const bar = (fraction: number): string => {
    const width = 24;
    const fill = Math.max(0, Math.min(width, Math.round(fraction * width)));
    return `[${'#'.repeat(fill)}${'.'.repeat(width - fill)}]`;
  };
  const head = (e: Experiment, rep: number): string => `${String(finished + 1).padStart(String(total).length)}/${total} ${e.id}${reps > 1 ? ` run ${rep}/${reps}` : ''}`;
  return {
    start(index, n, e, rep) {
      finished = index;
      total = n;
      if (tty) stream.write(`\r\x1b[K${bar(finished / total)} ${head(e, rep)} starting a fresh mini-CDN`);
    },
    tick(t) {
      if (!tty) return;
      const fraction = (finished + Math.min(1, t.elapsedS / durationS)) / total;
      const rps = t.elapsedS > 0 ? t.requests / t.elapsedS : 0;
      stream.write(`\r\x1b[K${bar(fraction)} ${head(t.experiment, t.rep)}  ${Math.min(durationS, t.elapsedS).toFixed(0)}/${durationS} s  ${fmt(rps)} req/s  origin ${fmt(t.originRequests)}`);
    },
    done(index, n, e, r: RunRecord) {
      finished = index + 1;
      const what = r.error !== undefined ? `FAILED: ${r.error.split('\n')[0]}` : `${fmt(r.rps)} req/s, hit ${r.hitRatioPct.toFixed(1)} %, p99 ${r.p99Ms.toFixed(1)} ms, errors ${r.errors}, origin ${fmt(r.originRequests)}${r.discarded ? ` → others used ${r.otherCpuPct} % of the machine: run again` : r.otherCpuPct > busyPct ? ` (busy machine: others ${r.otherCpuPct} %, kept)` : ''}`;
      stream.write(`${tty ? '\r\x1b[K' : ''}${String(index + 1).padStart(String(n).length)}/${n} ${e.id}${reps > 1 ? ` run ${r.rep}/${reps}` : ''}: ${what}\n`);
    },
  };
}

export interface SuiteOutput {
  readonly result: ExperimentsResult;
  readonly tables: string;
  readonly files?: { readonly json: string; readonly svg: string; readonly doc?: string };
}

/** Runs the selected experiments and writes the files; what `outpost bench experiments` does, minus printing. */
export async function runSuite(o: CliOptions, hooks: RunHooks = {}): Promise<SuiteOutput> {
  const experiments = selectExperiments(o.only);
  const started = new Date();
  const records = await runExperiments(experiments, o, hooks);
  const summaries = summarise(experiments, records);
  const versions = await toolVersions(o.driver === 'wrk' ? { wrk: o.bin } : {}, nodeBinary());
  const { only, write: _w, doc: _d, outDir: _o, ...runOptions } = o;
  const result: ExperimentsResult = {
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    elapsedS: Math.round((Date.now() - started.getTime()) / 1_000),
    options: { ...runOptions, only },
    machine: machineInfo(),
    versions,
    experiments,
    records,
    summaries,
    findings: findings(summaries),
  };
  const tables = `${markdownTables(summaries, o.maxOtherCpuPct)}\n#### The seed’s findings, checked\n\n${markdownFindings(result.findings)}\n`;
  if (!o.write) return { result, tables };
  // A partial run would replace the full tables with a few rows: the doc only from complete runs.
  const complete = o.only === undefined && records.every((r) => r.error === undefined);
  const files = writeResults(result, o.outDir, o.doc && complete ? join(root, 'docs/experiments.md') : undefined);
  return { result, tables, files };
}

export async function benchCommand(argv: readonly string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'experiments') {
    process.stdout.write(`${USAGE}\n\nThe comparison with nginx and Varnish is \`npm run bench\` (docs/performance.md).\n`);
    return sub === undefined || sub === 'help' || sub === '--help' ? 0 : 2;
  }
  const o = await parseCli(rest);
  if (o === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const list = selectExperiments(o.only);
  const runs = list.length * o.reps;
  const estimateS = Math.round(runs * (o.durationS + RUN_OVERHEAD_S));
  process.stderr.write(
    `${runs} run(s): ${list.map((e) => e.id).join(', ')}${o.reps > 1 ? ` × ${o.reps}` : ''}; ${o.durationS} s each, ${o.driver} with ${o.connections} connections — about ${estimateS < 120 ? `${estimateS} s` : `${Math.round(estimateS / 60)} min`}\n`,
  );
  const out = await runSuite(o, progressHooks(process.stderr, o.durationS, o.reps, o.maxOtherCpuPct));
  process.stdout.write(`\n${out.tables}`);
  if (out.files) {
    const { json, svg, doc } = out.files;
    process.stdout.write(`\nresults: ${json}\nchart:   ${svg}\n${doc ? `doc:     ${doc}\n` : o.doc ? 'docs/experiments.md left as is (partial or failed run)\n' : ''}`);
  }
  return out.result.records.some((r) => r.error !== undefined) ? 1 : 0;
}
