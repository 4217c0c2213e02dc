// `npm run bench`: Outpost beside nginx proxy_cache and Varnish on this machine, in one run.
// See docs/performance.md for the method; `--dry-run` prints the plan without measuring.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureOpenFiles, findTools, installMissing, machineInfo, toolVersions, type ToolPaths } from './machine.ts';
import { parseOptions, USAGE, type BenchOptions } from './options.ts';
import { buildPlan, describePlan, phaseSetups, serverIdsFor } from './plan.ts';
import { stopAll } from './proc.ts';
import { evaluateBars, markdownTables, summarise, writeResults, type BenchResult } from './report.ts';
import { runPlan } from './runner.ts';
import { selectScenarios } from './scenarios/index.ts';
import { ORIGIN_SCRIPT, startOrigin } from './servers/origin.ts';
import { outpostAvailable } from './servers/outpost.ts';
import type { ServerId } from './servers/types.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const say = (line: string): void => console.log(line);
/** The run's scratch folder (server configs, nginx cache files), removed however the run ends. */
let scratch: string | undefined;

function nodeBinary(): string {
  const local = join(root, 'node_modules/.bin/node');
  return existsSync(local) ? local : process.execPath;
}

/** Which servers can run, and why the others cannot. */
function availability(opts: BenchOptions, tools: ToolPaths): { available: ServerId[]; skipped: string[] } {
  const available: ServerId[] = [];
  const skipped: string[] = [];
  for (const id of serverIdsFor(opts.servers)) {
    if (id === 'outpost' || id === 'outpost-secure') {
      if (outpostAvailable(root)) available.push(id);
      else skipped.push('Outpost: src/cli.ts is not in the tree yet');
    } else if (id === 'varnish') {
      if (tools.varnishd) available.push(id);
      else skipped.push('Varnish: varnishd could not be installed');
    } else if (tools.nginx) available.push(id);
    else if (id === 'nginx') skipped.push('nginx: could not be installed');
  }
  return { available, skipped };
}

async function main(): Promise<number> {
  let opts: BenchOptions;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (e) {
    console.error(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  for (const o of opts.only ?? []) {
    if (selectScenarios([o]).length === 0) {
      console.error(`--only: no scenario matches "${o}"; scenarios: ${selectScenarios(undefined).map((s) => s.id).join(', ')}`);
      return 2;
    }
  }
  const machine = machineInfo();
  let tools = await findTools();
  say(`Outpost bench${opts.quick ? ' (--quick)' : ''}${opts.dryRun ? ' — dry run, nothing is started' : ''}`);
  say(`machine: ${machine.cpuCount} × ${machine.cpuModel}, ${machine.memoryGiB} GiB, ${machine.os}, Linux ${machine.kernel}`);
  say(
    `settings: ${opts.reps} repetition(s), ${opts.durationS} s per throughput run after ${opts.warmupS} s warm-up, long tail ${opts.longTailS} s; ` +
      `runs discarded when other processes use > ${opts.maxOtherCpuPct} % of the machine (up to ${opts.maxAttempts} attempts)`,
  );

  if (opts.dryRun) {
    const missing = (['nginx', 'varnishd', 'wrk', 'h2load'] as const).filter((t) => tools[t] === undefined);
    say(`tools: ${Object.entries(tools).map(([k, v]) => `${k} ${v}`).join(', ') || 'none found'}${missing.length > 0 ? `; missing (would be installed from Debian): ${missing.join(', ')}` : ''}`);
    say(`outpost: ${outpostAvailable(root) ? 'src/cli.ts' : 'src/cli.ts not in the tree yet (would be skipped)'}`);
    say(`origin: ${existsSync(join(root, ORIGIN_SCRIPT)) ? ORIGIN_SCRIPT : `${ORIGIN_SCRIPT} is not in the tree yet`}`);
    const plan = buildPlan(opts, serverIdsFor(opts.servers), machine.cpuCount);
    for (const line of describePlan(plan, opts)) say(line);
    say(`scenarios: ${plan.phases.flatMap((p) => p.scenarios.map((s) => s.id)).join(', ')}`);
    return 0;
  }

  tools = await installMissing(tools, say);
  if (tools.wrk === undefined) {
    console.error('wrk is required and could not be installed (apt-get install wrk)');
    return 1;
  }
  const { available, skipped } = availability(opts, tools);
  if (tools.h2load === undefined) skipped.push('h2: h2load (nghttp2-client) could not be installed; wrk and autocannon cannot speak h2');
  for (const s of skipped) say(`skipping ${s}`);
  if (available.length === 0) {
    console.error('no server to measure');
    return 1;
  }
  if (!available.includes('nginx') || !available.includes('varnish')) say('some comparison servers are missing: their columns and ratios will be empty');

  const open = await ensureOpenFiles(opts.idleConnections * 2 + 10_000);
  if (open < opts.idleConnections + 1_000) say(`open-files limit is ${open}: fewer than ${opts.idleConnections} idle connections can be held`);

  const nodePath = nodeBinary();
  const versions = await toolVersions(tools, nodePath);
  say(`versions: ${Object.entries(versions).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  const plan = buildPlan(opts, available, machine.cpuCount);
  for (const line of describePlan(plan, opts)) say(line);

  const startedAt = new Date();
  const tmp = mkdtempSync(join(tmpdir(), 'outpost-bench-'));
  scratch = tmp;
  const origin = await startOrigin(root, nodePath);
  say(`origin (${origin.source}) on 127.0.0.1:${origin.port}`);
  try {
    const records = await runPlan({ opts, tools, origin, root, nodePath, tmp, startedAt: startedAt.getTime(), say }, plan);
    const summaries = summarise(records);
    const setups = phaseSetups(machine.cpuCount);
    const result: BenchResult = {
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      elapsedS: Math.round((Date.now() - startedAt.getTime()) / 1_000),
      options: opts,
      machine,
      versions,
      origin: origin.source,
      phases: plan.phases.map((p) => setups[p.setup.id]),
      skipped,
      records,
      summaries,
      bars: evaluateBars(summaries),
    };
    say('');
    say(markdownTables(result));
    if (opts.write) {
      // A partial run would replace the full table with a few rows: docs only from complete runs.
      const complete = opts.only === undefined;
      const written = writeResults(result, root, complete);
      say('');
      say(`results: ${written.json}${written.doc ? `, ${written.doc}` : ' (docs/performance.md left as is: partial run)'}`);
    }
    return 0;
  } finally {
    await origin.stop();
    await stopAll();
    rmSync(tmp, { recursive: true, force: true });
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    say(`\n${signal}: stopping the servers`);
    void stopAll().finally(() => {
      if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
      process.exit(130);
    });
  });
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  async (e: unknown) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
    await stopAll();
    process.exitCode = 1;
  },
);
