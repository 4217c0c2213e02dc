// Turns run records into medians with min–max, checks the performance bars of issue 3, and renders
// the Markdown tables (stdout and docs/performance.md) and the JSON result file.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MachineInfo, Versions } from './machine.ts';
import type { BenchOptions } from './options.ts';
import type { RunRecord } from './runner.ts';
import type { PhaseSetup } from './scenarios/types.ts';
import type { ServerId } from './servers/types.ts';
import { median, round } from './stats.ts';
import { SCENARIOS } from './scenarios/index.ts';
import { HERD_ORIGIN_DELAY_MS } from './scenarios/herd.ts';
import { COMPRESSION_OBJECTS, SECURITY_TARGET } from './scenarios/security.ts';
import { CU_PROPAGATION_TARGET_MS, CU_SHARE_TARGET, CU_US_PER_CU_TARGET, TRIVIAL } from './scenarios/compute.ts';
import { DENIED_PROBE_ADDRESS, DENY_ENTRIES } from './servers/outpost-secure.ts';

export interface Stat {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

export interface Summary {
  readonly scenario: string;
  readonly server: ServerId;
  /** Runs that count (discarded ones excluded). */
  readonly runs: number;
  readonly discarded: number;
  readonly noisy: number;
  readonly failed: number;
  readonly otherCpuPct: number;
  readonly serverCpuPct: number;
  readonly metrics: Record<string, Stat>;
  readonly notes: readonly string[];
}

export function summarise(records: readonly RunRecord[]): Summary[] {
  const groups = new Map<string, RunRecord[]>();
  for (const r of records) {
    const key = `${r.scenario}\u0000${r.server}`;
    const list = groups.get(key);
    if (list) list.push(r);
    else groups.set(key, [r]);
  }
  const out: Summary[] = [];
  for (const list of groups.values()) {
    const first = list[0];
    if (!first) continue;
    const kept = list.filter((r) => !r.discarded && r.error === undefined);
    const metrics: Record<string, Stat> = {};
    const names = new Set(kept.flatMap((r) => Object.keys(r.metrics)));
    for (const name of names) {
      const values = kept.map((r) => r.metrics[name]).filter((v): v is number => v !== undefined && !Number.isNaN(v));
      if (values.length > 0) metrics[name] = { median: round(median(values)), min: Math.min(...values), max: Math.max(...values) };
    }
    out.push({
      scenario: first.scenario,
      server: first.server,
      runs: kept.length,
      discarded: list.filter((r) => r.discarded).length,
      noisy: kept.filter((r) => r.noisy).length,
      failed: list.filter((r) => r.error !== undefined).length,
      otherCpuPct: round(median(kept.flatMap((r) => (r.cpu ? [r.cpu.otherPct] : []))), 1),
      serverCpuPct: round(median(kept.flatMap((r) => (r.cpu ? [r.cpu.serverPct] : []))), 0),
      metrics,
      notes: [...new Set(list.flatMap((r) => [...r.notes, ...(r.error ? [`failed: ${r.error.split('\n')[0] ?? ''}`] : [])]))],
    });
  }
  return out;
}

function find(summaries: readonly Summary[], scenario: string, server: ServerId): Summary | undefined {
  return summaries.find((s) => s.scenario === scenario && s.server === server);
}

function metric(summaries: readonly Summary[], scenario: string, server: ServerId, name: string): number | undefined {
  return find(summaries, scenario, server)?.metrics[name]?.median;
}

// ---- bars ----------------------------------------------------------------------------------------

export interface BarResult {
  readonly bar: string;
  readonly measured: string;
  readonly target: string;
  /** undefined: not measured in this run (a server or scenario was missing). */
  readonly pass: boolean | undefined;
  /** A figure behind it comes from a run kept although other processes were busy. */
  readonly noisy?: boolean;
}

function ratioBar(s: readonly Summary[], scenario: string, vs: ServerId, min: number, label: string): BarResult {
  const o = metric(s, scenario, 'outpost', 'rps');
  const v = metric(s, scenario, vs, 'rps');
  if (o === undefined || v === undefined || v === 0) return { bar: label, measured: 'not measured', target: `≥ ${min.toFixed(2)}`, pass: undefined };
  const r = o / v;
  const noisy = (find(s, scenario, 'outpost')?.noisy ?? 0) + (find(s, scenario, vs)?.noisy ?? 0) > 0;
  return { bar: label, measured: `${r.toFixed(2)} (${fmtInt(o)} ÷ ${fmtInt(v)})`, target: `≥ ${min.toFixed(2)}`, pass: r >= min, noisy };
}

export function evaluateBars(s: readonly Summary[]): BarResult[] {
  const bars = [
    ratioBar(s, 'hit-1k-w1', 'nginx', 0.7, 'HIT 1 KB, 1 worker pinned: Outpost ÷ nginx'),
    ratioBar(s, 'hit-16k-w1', 'nginx', 0.7, 'HIT 16 KB, 1 worker pinned: Outpost ÷ nginx'),
    ratioBar(s, 'hit-1k-w1', 'varnish', 1.0, 'HIT 1 KB, 1 worker pinned: Outpost ÷ Varnish'),
    ratioBar(s, 'hit-16k-w1', 'varnish', 1.0, 'HIT 16 KB, 1 worker pinned: Outpost ÷ Varnish'),
    ratioBar(s, 'hit-256k-w1', 'nginx-nosendfile', 0.75, 'HIT 256 KB, 1 worker pinned: Outpost ÷ nginx (sendfile off)'),
    ratioBar(s, 'hit-1k-w2', 'nginx', 0.75, 'HIT 1 KB, 2 workers: Outpost ÷ nginx'),
  ];
  const herdOrigin = metric(s, 'herd-w2', 'outpost', 'originRequests');
  const herdMax = find(s, 'herd-w2', 'outpost')?.metrics['originRequests']?.max;
  bars.push({
    bar: 'Herd, 2 workers: Outpost origin requests',
    measured: herdOrigin === undefined ? 'not measured' : herdMax !== undefined && herdMax !== herdOrigin ? `${herdOrigin} (max ${herdMax})` : String(herdOrigin),
    target: '= 1',
    pass: herdOrigin === undefined ? undefined : herdMax === 1 && herdOrigin === 1,
  });
  const herdP99 = metric(s, 'herd-w2', 'outpost', 'p99Ms');
  const limit = HERD_ORIGIN_DELAY_MS + 20;
  bars.push({
    bar: 'Herd, 2 workers: Outpost p99 per client',
    measured: herdP99 === undefined ? 'not measured' : `${herdP99.toFixed(1)} ms`,
    target: `≤ ${limit} ms`,
    pass: herdP99 === undefined ? undefined : herdP99 <= limit,
  });
  const ltO = metric(s, 'longtail-w2', 'outpost', 'originRequests');
  const ltV = metric(s, 'longtail-w2', 'varnish', 'originRequests');
  bars.push({
    bar: 'Long tail, 2 workers: origin requests, Outpost vs Varnish',
    measured: ltO === undefined || ltV === undefined ? 'not measured' : `${ltO} vs ${ltV}`,
    target: '≤ Varnish',
    pass: ltO === undefined || ltV === undefined ? undefined : ltO <= ltV,
  });
  return bars;
}

// ---- Markdown ------------------------------------------------------------------------------------

function fmtInt(x: number): string {
  return Math.round(x).toLocaleString('en');
}

function fmtStat(st: Stat | undefined, f: (x: number) => string = fmtInt): string {
  if (st === undefined) return '—';
  return st.min === st.max ? f(st.median) : `${f(st.median)} (${f(st.min)}–${f(st.max)})`;
}

const ms = (x: number): string => x.toFixed(x < 10 ? 2 : 1);
const mib = (x: number): string => x.toFixed(1);

function ratio(s: readonly Summary[], scenario: string, vs: ServerId): string {
  const o = metric(s, scenario, 'outpost', 'rps');
  const v = metric(s, scenario, vs, 'rps');
  return o === undefined || v === undefined || v === 0 ? '—' : (o / v).toFixed(2);
}

function table(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

const SERVER_LABEL: Record<ServerId, string> = {
  outpost: 'Outpost',
  'outpost-secure': 'Outpost + security gates',
  nginx: 'nginx',
  'nginx-nosendfile': 'nginx (sendfile off)',
  varnish: 'Varnish',
};

function throughputSection(s: readonly Summary[], ids: readonly string[], title: string): string | undefined {
  const present = ids.filter((id) => s.some((x) => x.scenario === id));
  if (present.length === 0) return undefined;
  const servers: ServerId[] = ['outpost', 'nginx', 'nginx-nosendfile', 'varnish'];
  const cols = servers.filter((srv) => present.some((id) => find(s, id, srv)));
  const hasNoSf = cols.includes('nginx-nosendfile');
  const head = ['', ...cols.map((c) => `${SERVER_LABEL[c]} req/s`), 'Outpost ÷ nginx', ...(hasNoSf ? ['Outpost ÷ nginx (sendfile off)'] : []), 'Outpost ÷ Varnish'];
  const title0 = (id: string): string => SCENARIOS.find((x) => x.id === id)?.title ?? id;
  const rows = present.map((id) => [
    title0(id),
    ...cols.map((c) => {
      const x = find(s, id, c);
      return `${fmtStat(x?.metrics['rps'])}${x && x.noisy > 0 ? ' *' : ''}`;
    }),
    ratio(s, id, 'nginx'),
    ...(hasNoSf ? [ratio(s, id, 'nginx-nosendfile')] : []),
    ratio(s, id, 'varnish'),
  ]);
  const latHead = ['p50 / p99 ms (server CPU)', ...cols.map((c) => SERVER_LABEL[c])];
  const latRows = present.map((id) => [
    title0(id),
    ...cols.map((c) => {
      const x = find(s, id, c);
      const m = x?.metrics;
      return m?.['p50Ms'] && m['p99Ms'] ? `${ms(m['p50Ms'].median)} / ${ms(m['p99Ms'].median)} (${x?.serverCpuPct ?? '–'} %)` : '—';
    }),
  ]);
  const noisy = present.some((id) => cols.some((c) => (find(s, id, c)?.noisy ?? 0) > 0));
  const foot = noisy ? '\n\n\\* includes a run kept although other processes were busy (their CPU is in the JSON).' : '';
  return `### ${title}\n\n${table(head, rows)}${foot}\n\n${table(latHead, latRows)}`;
}

function perServer(s: readonly Summary[], scenario: string): Summary[] {
  const order: ServerId[] = ['outpost', 'nginx', 'nginx-nosendfile', 'varnish'];
  return order.flatMap((id) => {
    const x = find(s, scenario, id);
    return x ? [x] : [];
  });
}

export interface BenchResult {
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly elapsedS: number;
  readonly options: BenchOptions;
  readonly machine: MachineInfo;
  readonly versions: Versions;
  readonly origin: string;
  readonly phases: readonly PhaseSetup[];
  readonly skipped: readonly string[];
  readonly records: readonly RunRecord[];
  readonly summaries: readonly Summary[];
  readonly bars: readonly BarResult[];
}

/** Issue 5: the security gates' cost on HITs (share of plain Outpost) and compressions per object. */
function securitySection(s: readonly Summary[], w1: PhaseSetup | undefined, w2: PhaseSetup | undefined): string | undefined {
  const plain = find(s, 'sec-hit-1k-w1', 'outpost');
  const secure = find(s, 'sec-hit-1k-w1', 'outpost-secure');
  const comp = find(s, 'compress-w2', 'outpost');
  if (!plain && !secure && !comp) return undefined;
  const star = (x: Summary | undefined): string => (x && x.noisy > 0 ? ' \\*' : '');
  const parts: string[] = ['### Issue 5: security and compression'];
  if (plain || secure) {
    const a = plain?.metrics['rps']?.median;
    const b = secure?.metrics['rps']?.median;
    const share = a !== undefined && b !== undefined && a > 0 ? b / a : undefined;
    const result = share === undefined ? 'n/a' : share >= SECURITY_TARGET ? 'PASS' : 'FAIL';
    const lat = (x: Summary | undefined): string => {
      const m = x?.metrics;
      return m?.['p50Ms'] && m['p99Ms'] ? `${ms(m['p50Ms'].median)} / ${ms(m['p99Ms'].median)} (${x?.serverCpuPct ?? '–'} %)` : '—';
    };
    const limited = secure?.metrics['rateLimited'];
    parts.push(
      `Cache HIT 1 KB, ${w1?.title ?? '1 worker'}: the same Outpost config without and with the security gates, two servers started in the ` +
        `same run and measured alternately, with a browser's \`User-Agent\`, \`Referer\` and \`Accept\` on every request (the WAF ` +
        `inspects them); median of the repetitions (min–max).\n\n` +
        table(
          ['', 'Outpost req/s', 'Outpost + gates req/s', 'Share', 'Target', 'Result'],
          [['HIT 1 KB', `${fmtStat(plain?.metrics['rps'])}${star(plain)}`, `${fmtStat(secure?.metrics['rps'])}${star(secure)}`, share === undefined ? '—' : `${(share * 100).toFixed(1)} %`, `≥ ${SECURITY_TARGET * 100} %`, result]],
        ) +
        `\n\n${table(['p50 / p99 ms (server CPU)', 'Outpost', 'Outpost + gates'], [['HIT 1 KB', lat(plain), lat(secure)]])}` +
        `\n\nGates: an IP deny list of ${DENY_ENTRIES.toLocaleString('en')} random IPv4 blocks (none contains 127.0.0.1) stored through ` +
        `\`PUT /lists/bench-deny\` before warming; a node rate limit of 1,000,000/s (burst 1,000,000, key \`ip\`), far above the load, so ` +
        `it never refuses but every request spends a leased token; the WAF in block mode. Before every run the bench checks that ` +
        `\`GET /lists\` shows ${DENY_ENTRIES.toLocaleString('en')} entries, that a request from ${DENIED_PROBE_ADDRESS} (a loopback address inside ` +
        `one of the list's blocks) gets 403 and an attack URL gets the WAF's 403 (each +1 in \`outpost_security_refusals_total\`), and ` +
        `that \`outpost_ratelimit_mode\` shows the limit; requests refused by the rate limit during the runs: ` +
        `${limited === undefined ? '—' : fmtInt(limited.max)}.`,
    );
  }
  if (comp) {
    const br = comp.metrics['brCompressions'];
    const gz = comp.metrics['gzipCompressions'];
    const n = comp.metrics['objects']?.median ?? COMPRESSION_OBJECTS;
    const counts = (st: Stat | undefined): string => (st === undefined ? '—' : st.min === st.max ? fmtInt(st.median) : `${fmtInt(st.min)}–${fmtInt(st.max)}`);
    const once = br !== undefined && gz !== undefined && br.min === n && br.max === n && gz.min === n && gz.max === n;
    parts.push(
      `Compression under a HIT load, ${w2?.title ?? '2 workers'}: ${fmtInt(n)} text objects of 16 KiB, fresh for each run and stored ` +
        `first without compression, then asked for with \`Accept-Encoding: br\`, \`gzip\` and none in rotation; ` +
        `\`outpost_compressions_total{encoding}\` (admin \`/metrics\`, all workers) read before and after each run.\n\n` +
        table(
          ['', 'req/s', 'p50 / p99 ms', 'HIT %', 'Compressions per run', 'Target', 'Result'],
          [
            [
              'br / gzip / identity',
              `${fmtStat(comp.metrics['rps'])}${star(comp)}`,
              comp.metrics['p50Ms'] && comp.metrics['p99Ms'] ? `${ms(comp.metrics['p50Ms'].median)} / ${ms(comp.metrics['p99Ms'].median)}` : '—',
              fmtStat(comp.metrics['hitPct'], (x) => x.toFixed(1)),
              `br ${counts(br)} / gzip ${counts(gz)} for ${fmtInt(n)} objects`,
              'once per object and coding',
              br === undefined || gz === undefined ? 'n/a' : once ? 'PASS' : 'FAIL',
            ],
          ],
        ),
    );
  }
  return parts.join('\n\n');
}

/** Issue 4, per CU count: the share of the no-CU throughput and the µs each CU adds at the median. */
export function cuCost(rps0: number | undefined, rpsN: number | undefined, n: number): { share: number; usPerCu: number } | undefined {
  if (rps0 === undefined || rpsN === undefined || !(rps0 > 0) || !(rpsN > 0) || n <= 0) return undefined;
  return { share: rpsN / rps0, usPerCu: ((1 / rpsN - 1 / rps0) * 1e6) / n };
}

/** Issue 4: what trivial access CUs cost on 1 KB HITs, and how fast a CU change reaches every worker. */
function computeSection(s: readonly Summary[], w1: PhaseSetup | undefined, w2: PhaseSetup | undefined): string | undefined {
  const base = find(s, 'cu-0-w1', 'outpost');
  const withCus = ([1, 5] as const).map((n) => ({ n, x: find(s, `cu-${n}-w1`, 'outpost') }));
  const prop = find(s, 'cu-propagation-w2', 'outpost');
  if (!base && withCus.every((c) => !c.x) && !prop) return undefined;
  const star = (x: Summary | undefined): string => (x && x.noisy > 0 ? ' \\*' : '');
  const lat = (x: Summary | undefined): string => {
    const m = x?.metrics;
    const cpu = x !== undefined && Number.isFinite(x.serverCpuPct) ? ` (${x.serverCpuPct} %)` : '';
    return m?.['p50Ms'] && m['p99Ms'] ? `${ms(m['p50Ms'].median)} / ${ms(m['p99Ms'].median)}${cpu}` : '—';
  };
  const pct = (x: number): string => `${(x * 100).toFixed(1)} %`;
  const shareTarget = `≥ ${Math.round(CU_SHARE_TARGET * 100)} % of no CU`;
  const usTarget = `≤ ${CU_US_PER_CU_TARGET} µs per CU`;
  const parts: string[] = ['### Issue 4: computing units'];
  if (base || withCus.some((c) => c.x)) {
    const rps0 = base?.metrics['rps']?.median;
    const rows: string[][] = [['no CU', `${fmtStat(base?.metrics['rps'])}${star(base)}`, lat(base), base ? '100 %' : '—', '—', '—', '—']];
    for (const { n, x } of withCus) {
      const cost = cuCost(rps0, x?.metrics['rps']?.median, n);
      const checks: Array<[string, boolean]> = cost === undefined ? [] : [...(n === 1 ? [['share', cost.share >= CU_SHARE_TARGET] as [string, boolean]] : []), ['µs per CU', cost.usPerCu <= CU_US_PER_CU_TARGET]];
      const failed = checks.filter(([, ok]) => !ok).map(([name]) => name);
      const result = cost === undefined ? 'n/a' : failed.length === 0 ? 'PASS' : checks.length > 1 ? `FAIL (${failed.join(', ')})` : 'FAIL';
      rows.push([
        n === 1 ? '1 trivial access CU' : `${n} trivial access CUs`,
        `${fmtStat(x?.metrics['rps'])}${star(x)}`,
        lat(x),
        cost === undefined ? '—' : pct(cost.share),
        cost === undefined ? '—' : `${cost.usPerCu.toFixed(1)} µs`,
        n === 1 ? `${shareTarget}; ${usTarget}` : usTarget,
        result,
      ]);
    }
    parts.push(
      `Cache HIT 1 KB, ${w1?.title ?? '1 worker'}: the same Outpost server with no CU, then 1, then 5 trivial access CUs installed ` +
        `through the admin API (each confirmed running on every worker before the warm-up, removed after the run), in turn in every ` +
        `repetition; median of the repetitions (min–max).\n\n` +
        table(['', 'req/s', 'p50 / p99 ms (server CPU)', 'Share of no CU', 'µs added per CU (median)', 'Target', 'Result'], rows) +
        `\n\nEach CU is the access-phase code \`${TRIVIAL}\`: it compares the request's path with one that is never asked for ` +
        `and sets a variable, so it lets every request through. The µs added per CU is derived from the throughput of one pinned worker, (1 ÷ req/s with n CUs − 1 ÷ req/s without) ` +
        `× 10⁶ ÷ n from the medians: the worker's time per request that the CUs add when it runs at full CPU, not a latency.`,
    );
  }
  if (prop) {
    const p50 = prop.metrics['p50Ms'];
    const p99 = prop.metrics['p99Ms'];
    // One run's percentiles keep their unrounded min and max: show a range only when it is one.
    const msStat = (st: Stat | undefined): string => (st === undefined ? '—' : ms(st.min) === ms(st.max) ? ms(st.median) : fmtStat(st, ms));
    const result = p99 === undefined ? 'n/a' : p99.median <= CU_PROPAGATION_TARGET_MS ? 'PASS' : 'FAIL';
    parts.push(
      `CU change, ${w2?.title ?? '2 workers'}: CU writes through the admin API (\`PUT /cus/:id\`), each timed until \`GET /cus/status\` ` +
        `shows every worker running the new version (embedded store).\n\n` +
        table(
          ['', 'p50 ms', 'p99 ms', 'Target', 'Result'],
          [[`admin API write → every worker runs it${star(prop)}`, msStat(p50), msStat(p99), `p99 ≤ ${CU_PROPAGATION_TARGET_MS.toLocaleString('en')} ms`, result]],
        ),
    );
  }
  return parts.join('\n\n');
}

export function markdownTables(r: BenchResult): string {
  const s = r.summaries;
  const w1 = r.phases.find((p) => p.id === 'w1');
  const w2 = r.phases.find((p) => p.id === 'w2');
  const parts: string[] = [];
  const cell = (x: Summary, name: string, f: (v: number) => string = fmtInt): string => fmtStat(x.metrics[name], f);
  const label = (x: Summary): string => `${SERVER_LABEL[x.server]}${x.noisy > 0 ? ' *' : ''}`;
  parts.push(
    `Run ${r.startedAt} (${r.elapsedS} s${r.options.quick ? ', --quick' : ''}): ${r.options.reps} repetition(s), median (min–max); ` +
      `${r.machine.cpuCount} × ${r.machine.cpuModel}, Linux ${r.machine.kernel}; ` +
      Object.entries(r.versions)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ') +
      `; origin ${r.origin}.`,
  );
  if (r.skipped.length > 0) parts.push(`Not measured: ${r.skipped.join('; ')}.`);
  const hit1 = throughputSection(s, ['hit-1k-w1', 'hit-16k-w1', 'hit-256k-w1'], `Cache HIT — ${w1?.title ?? '1 worker'}`);
  if (hit1) parts.push(hit1);
  const hit2 = throughputSection(s, ['hit-1k-w2', 'hit-16k-w2', 'hit-256k-w2'], `Cache HIT — ${w2?.title ?? '2 workers'}`);
  if (hit2) parts.push(hit2);
  const pass = throughputSection(s, ['pass-w1'], `Pass-through (Cache-Control: no-store) — ${w1?.title ?? '1 worker'}`);
  if (pass) parts.push(`${pass}\n\nEvery request reaches the origin (a single Node process), which bounds all three servers alike.`);
  const herd = perServer(s, 'herd-w2');
  if (herd.length > 0) {
    parts.push(
      `### Thundering herd — ${r.options.herdClients} clients at once, one cold key, ${HERD_ORIGIN_DELAY_MS} ms origin, 2 workers\n\n` +
        table(
          ['Server', 'Origin requests', 'p50 (ms)', 'p99 (ms)', 'max (ms)', 'Failed clients'],
          herd.map((x) => [label(x), cell(x, 'originRequests'), cell(x, 'p50Ms', ms), cell(x, 'p99Ms', ms), cell(x, 'maxMs', ms), cell(x, 'errors')]),
        ),
    );
  }
  const lt = perServer(s, 'longtail-w2');
  if (lt.length > 0) {
    parts.push(
      `### Long tail (seed 004) — 96 % to 5 items, 4 % over 200, max-age 10 s, 200 ms origin, ${r.options.longTailS} s, 2 workers\n\n` +
        table(
          ['Server', 'req/s', 'Origin requests', 'p50 (ms)', 'p99 (ms)', 'Errors'],
          lt.map((x) => [label(x), cell(x, 'rps'), cell(x, 'originRequests'), cell(x, 'p50Ms', ms), cell(x, 'p99Ms', ms), cell(x, 'errors')]),
        ),
    );
  }
  const https = find(s, 'https-hit-1k-w1', 'outpost');
  const h2 = find(s, 'h2-hit-1k-w1', 'outpost');
  if (https || h2) {
    const rows: string[][] = [];
    if (https) rows.push(['HTTPS (HTTP/1.1, wrk)', cell(https, 'rps'), `p50 ${cell(https, 'p50Ms', ms)}, p99 ${cell(https, 'p99Ms', ms)}`]);
    if (h2) rows.push(['h2 (h2load, 16 connections × 10 streams)', cell(h2, 'rps'), `mean ${cell(h2, 'meanMs', ms)} (h2load reports no percentiles)`]);
    parts.push(`### Outpost over TLS — cache HIT 1 KB, ${w1?.title ?? '1 worker'}\n\n${table(['Protocol', 'req/s', 'Latency (ms)'], rows)}`);
  }
  const mem = perServer(s, 'memory-w1');
  if (mem.length > 0) {
    const pair = (x: Summary, worker: string, total: string): string | undefined => {
      const w = x.metrics[worker];
      const t = x.metrics[total];
      return w && t ? `${mib(w.median)} / ${mib(t.median)}` : undefined;
    };
    const both = (x: Summary, label: string): string => {
      const rss = pair(x, `${label}WorkerMiB`, `${label}TotalMiB`);
      const pss = pair(x, `${label}WorkerPssMiB`, `${label}TotalPssMiB`);
      return rss === undefined ? '—' : pss === undefined ? rss : `${rss} (PSS ${pss})`;
    };
    parts.push(
      `### Memory — MiB, largest worker / all processes: RSS (PSS), 1 worker\n\n` +
        table(
          ['Server', 'Idle (after the runs above)', 'Under HIT 1 KB load (peak)', `${r.options.idleConnections.toLocaleString('en')} idle keep-alive connections`, 'Connections held'],
          mem.map((x) => [SERVER_LABEL[x.server], both(x, 'idle'), both(x, 'load'), both(x, 'conns'), cell(x, 'idleConnections')]),
        ) +
        `\n\nnginx: master + worker (+ cache manager/loader); Varnish: manager + child (malloc storage 256 MB); Outpost: primary + worker. ` +
        `RSS counts shared pages once per process (for Outpost, the \`node\` binary's ~120 MB of file-backed pages appear in every process), ` +
        `so the sum of RSS overcounts; PSS (from \`/proc/PID/smaps_rollup\`) shares them out and sums to what the server costs the machine.`,
    );
  }
  const issue4 = computeSection(s, w1, w2);
  if (issue4) parts.push(issue4);
  const issue5 = securitySection(s, w1, w2);
  if (issue5) parts.push(issue5);
  if (r.bars.length > 0) {
    const mark = (p: boolean | undefined): string => (p === undefined ? 'n/a' : p ? 'PASS' : 'FAIL');
    parts.push(`### Bars (issue 3)\n\n${table(['Bar', 'Measured', 'Target', 'Result'], r.bars.map((b) => [b.bar, b.measured, b.target, `${mark(b.pass)}${b.noisy === true ? ' \\*' : ''}`]))}`);
  }
  const kept = r.records.filter((x) => !x.discarded);
  const discarded = r.records.length - kept.length;
  const noisy = kept.filter((x) => x.noisy).length;
  const failed = kept.filter((x) => x.error !== undefined).length;
  const others = median(kept.flatMap((x) => (x.cpu ? [x.cpu.otherPct] : [])));
  parts.push(
    `Runs: ${kept.length} kept, ${discarded} discarded and repeated because other processes used more than ${r.options.maxOtherCpuPct} % of the machine, ` +
      `${noisy} kept although noisy (marked \\*), ${failed} failed; median CPU of other processes during runs ${Number.isNaN(others) ? '–' : others.toFixed(1)} %.`,
  );
  const notes = s.filter((x) => x.notes.length > 0).map((x) => `- ${x.scenario} / ${SERVER_LABEL[x.server]}: ${x.notes.join('; ')}`);
  if (notes.length > 0) parts.push(`Notes:\n\n${notes.join('\n')}`);
  return parts.join('\n\n');
}

const DOC_HEAD = `# Performance

Outpost is measured side by side with nginx (proxy_cache) and Varnish on the same machine, in the same
run, with the same origin and the same load. This page holds the latest figures; every run also saves
its raw data as JSON under \`bench/results/\`.

## How to reproduce

\`\`\`sh
npm run bench             # full run: 3 interleaved repetitions, 10 s per throughput run (about 20 minutes)
npm run bench -- --quick  # 1 repetition, 2 s runs: under 3 minutes
npm run bench -- --dry-run --quick             # print the plan, measure nothing
npm run bench -- --only hit-1k,herd --servers outpost,nginx
\`\`\`

The bench installs nginx, Varnish, wrk and h2load from Debian (\`apt-get install nginx varnish wrk
nghttp2-client\`) when they are missing; what cannot be installed is skipped and said so. It starts its
own instances with its own configs on free ports of 127.0.0.1 (never the system services) and stops
them at the end.

## Method

- **One origin for all**: the demo origin (\`src/origin/main.ts\`) with latency simulation off;
  \`/static/<size>\` objects with \`max-age=3600\`, \`?delay=\` and \`?cc=\` switches for the herd, long-tail and
  pass-through cases.
- **Same configuration intent**: nginx with \`proxy_cache\` (keys_zone), \`proxy_cache_lock on\`,
  \`proxy_cache_use_stale updating\` + \`proxy_cache_background_update on\`, upstream keep-alive, no access
  log, \`keepalive_requests\` 1,000,000; Varnish with \`-s malloc,256m\`, built-in VCL, one thread pool per
  worker; Outpost with its RAM tier in front of its disk tier (like nginx's, a cache on disk), the cache lock
  on, no access log, edge computing on as by default but no CU deployed. The same worker count for all
  three.
- **Placement**: with 1 worker the server is pinned to CPU 0 and wrk, the origin and the bench to CPU 1
  (\`taskset\`); with 2 workers nothing is pinned.
- **Warm-up**: two requests then a short wrk run per measured run, so every worker's cache, JIT and
  connection pools are warm; the bench checks \`X-Cache-Status: HIT\` after it and counts origin requests
  during the run (a warm cache causes none). The herd's first measured run follows three unmeasured herds
  on other cold keys, which warm the miss, lock and fill path the same way.
- **Noise**: the machine is shared. The servers are interleaved run by run (the first server rotates
  each repetition) and each figure is the median of the repetitions with min–max. During every run the
  CPU used by processes other than the bench's is read from \`/proc/stat\` and \`/proc/<pid>/stat\`; a run
  where it exceeded the threshold (\`--max-other-cpu\`, 15 % of the machine by default) is discarded and
  repeated.
- **Bounded**: every load has a fixed duration and a kill timeout; the herd and the idle connections have
  deadlines.
- **Loads**: wrk (HTTP/1.1 and HTTPS), h2load (h2; autocannon cannot speak h2), and two generators of the
  bench's own on \`node:net\`: the herd (all connections opened first, then every request written in one
  loop) and the idle keep-alive connections (each makes one request, then stays open).
- **Issue 5** (Outpost only): \`sec-hit-1k-w1\` starts a second Outpost with the security gates on
  (\`outpost-secure\`: IP deny list, rate limit, WAF) beside the plain one and alternates them on 1 KB HITs;
  \`compress-w2\` counts \`outpost_compressions_total\` around a HIT load over fresh text objects.

## Reading the figures

- On 2 cores the load generator is never far from its own limit: with 1 worker, wrk has one core, and
  nginx serving 1 KB hits needs about as much CPU as wrk does to ask for them. The latency tables show
  the server's CPU (in % of one core) next to p50/p99: a server well under 100 % was held back by the load
  generator, so its ratio to Outpost is, if anything, flattering to Outpost's competitor.
- Pass-through uses one URL whose responses say \`no-store\`. nginx, with \`proxy_cache_lock on\`, makes
  concurrent requests for it wait for the first one and poll the lock every 500 ms before going to the
  origin themselves: hence its tiny p50 and its p99 in hundreds of milliseconds. Varnish marks the object
  hit-for-miss and sends everyone through at once.
- The herd: nginx's lock waiters also poll every 500 ms, so its clients get their answer about 500 ms
  after the first byte is asked for, on a 200 ms origin; Varnish wakes its waiters when the object arrives.
- The long tail counts each item fetched per freshness period (205 items, max-age 10 s): a 30 s run needs
  about 205 × 3 origin requests at best, more when each worker fetches for itself. Outpost counts age as
  nginx and Varnish do (docs/caching.md, "Age"): an apparent age under the one-second resolution of \`Date\`
  counts as 0 and the origin's response time is not charged to the object, so a freshness period is the
  full 10 s from the response's arrival. (Under the strict RFC 9111 reading it was 8.8–9.8 s, and the run
  counted 620 origin requests against Varnish's 615.)
- The machine: the figures below come from a 2-vCPU Firecracker VM (AMD EPYC) on which every server is
  3–4× slower per request than on the Xeon VM of the "Where the time goes" profile, and whose speed swings
  by up to 2× between consecutive runs although no other process is busy (no steal time is reported).
  Read the min–max ranges before the medians.

## Latest results

`;

const DOC_TAIL = `## Where the time goes

Profiled (2026-11-22) on the earlier 2-vCPU Xeon VM (Node 24.21) with the worker pinned to CPU 0 and wrk on CPU 1, serving
cache HITs of 1 KB (\`node bench/profile.ts --prof\`, below). Figures are CPU time per request of the server
process (user + kernel, from \`/proc/PID/stat\`), the measure least disturbed by the other tenants of the
machine, at saturation on a quiet machine:

| Server | CPU per 1 KB HIT | user | kernel | req/s on one core |
| --- | --- | --- | --- | --- |
| nginx (proxy_cache, sendfile) | ~7.7 µs | ~2.7 µs | ~5 µs | ~128,000 |
| Varnish | ~12.4 µs | | | ~80,000 |
| a 20-line \`node:http\` server sending the same 1 KB and headers from memory | ~10.8 µs | ~6 µs | ~4.8 µs | ~93,000 |
| Outpost before this work (disk tier on) | ~18 µs | | | ~56,000 |
| Outpost now | ~12.5–13.5 µs | ~9 µs | ~4.5 µs | ~74,000–79,000 |

The kernel's share (one \`read\` and one \`writev\` per request for Outpost, nine system calls for nginx, and
the loopback TCP path behind them) costs all servers about the same. The difference is user space: nginx
spends under 3 µs per hit there; a bare \`node:http\` server already spends about 6 µs, so **a Node server that
does nothing at all reaches about 0.73 × nginx** here, and the 0.70 bar leaves Outpost's own code well
under a microsecond. In the profile of Outpost's worker, of its busy time:

- ~45 % native: the \`writev\` system call and the loopback delivery it triggers (~35 %), epoll and libuv;
- ~30 % Node's HTTP/1 stack: llhttp callbacks, \`IncomingMessage\` and \`ServerResponse\`, header validation
  (\`checkIsHttpToken\`, \`checkInvalidHeaderChar\`) and serialization (\`_storeHeader\`), stream machinery,
  the keep-alive timer re-armed on every response;
- ~10–14 % Outpost: the driver and its async phases (~6 %), the cache lookup and response (~4–5 %: LRU
  get, freshness, headers, Cache-Status), the request context (~2 %), metrics (< 0.5 %);
- ~3 % garbage collection.

### What the profile showed, and what changed

Each step measured with \`bench/profile.ts\` A/B runs (\`outpost@OTHER_CHECKOUT\`) on 1 KB HITs, one worker:

| Change | Effect |
| --- | --- |
| Every hit parsed the stored \`Date\` (and looked for \`Age\`) four times (lookup, freshness, \`Age\`, Cache-Status ttl) with a regex and a \`Date\` object, re-evaluated preconditions by parsing \`Last-Modified\` although the request had none, and rebuilt the client header object from the stored list. Now a view per stored entry (a \`WeakMap\` keyed by its meta) holds the client headers and a meta with Date/Age already applied; each hit copies the headers and adds Age, X-Cache-Status and Cache-Status (rendered once a second per entry); preconditions are evaluated only when the request has one. | date parsing was ~20 % of the worker's CPU; −17 % CPU per request |
| prom-client hashed its label objects three times per request (requests, bytes, duration: ~0.5 µs). Requests and bytes are now tallied in plain numbers per (status, cache) and handed to the counters when the registry is read; the duration histogram is a small one-label histogram read in prom-client's format. \`/metrics\` is unchanged. | −0.5 µs per request |
| The driver awaited values that were not promises (hooks, built-in stages, the write of a Buffer body); Host validation ran its regex on every request. It now awaits only promises, writes Buffer bodies synchronously, and keeps a small bounded map of recently seen valid Host values. | a few % |
| \`optimizeEmptyRequests\` on the HTTP/1 server: a GET without a body gets an already-ended request stream instead of a live one. | +10 % req/s |
| The lookup now returns the freshness it worked out, so a hit computes it once. | ~1–2 % |

Together: ~56,000 → ~75,000 req/s for 1 KB HITs on one core (+30 %), 18 → ~13 µs of CPU per request.

### What would move the bars still missed

- **HIT vs nginx (1 KB, 16 KB, 2 workers)**: not reachable through \`node:http\`, which alone costs more user
  time per request than the bar allows (above). On the current VM a 20-line \`node:net\` server answering
  1 KB from memory did ~70–85k req/s where the same through \`node:http\` did ~21–32k (nginx ~40k). So
  cleartext HTTP/1.1 now has a **fast lane** (\`src/edge/fast-http1.ts\`, docs/architecture.md): plain
  GET/HEAD requests whose whole head it recognises are read off the socket and answered through the same
  driver with one write; anything else goes to \`node:http\` with the bytes read. A/B on 1 KB HITs, 8
  interleaved rounds: 23.4k against 20.5k req/s, 43.8 against 49.0 µs of CPU per request. The gain is
  smaller than the bare servers suggest because on this VM a response's \`write\` and the wake-up of the
  client's CPU it causes cost ~15 µs (a third of Outpost's CPU per request, and more the slower the server
  is, since the client's CPU idles and must be woken each time). What is left of user time is spread thin:
  the head parser (~2 µs), the driver's async phases and promise chain (~3 µs), rendering the response
  head (~1.5 µs), the cache lookup (~2 µs). The RAM HIT is now answered without a promise (+15 %, A/B).
  A response head pre-rendered per stored entry is the next step.
- **16 KB HITs** were a third slower than 1 KB ones (nginx's barely differ): \`perf\` showed V8 in major
  GCs a fifth of the time, started for *external memory pressure*. The fast lane copied head and body
  into one new buffer per response, and at 16 KB that is 400 MB/s of ArrayBuffers outside the V8 heap.
  Bodies over 4 KiB now go out in one corked \`writev\` of the head and the stored buffer itself (no
  copy; below 4 KiB the copy is as fast, measured with a bare socket server): 37.1k against 26.1k req/s,
  26.5 against 38.3 µs of CPU per request, A/B over 6 rounds. \`node bench/profile.ts --path /static/16k\`.
- **HIT vs Varnish (1 KB, 16 KB)**: 0.80–0.92 on the Xeon VM; see the bars above for the current one.
- **Computing units (issue 4)**: isolated-vm's per-call time limit is put on a grid (a timer thread that
  woke once per CU run cost ~33 µs per request: deadlines now fall on a grid of a fifth of the limit, at
  most 10 ms, so a 50 ms limit stops a run after 50–61 ms), phases whose CUs are all synchronous answer
  without a promise (+10 % req/s with one CU, A/B), and a run no longer asks the isolate whether it was
  disposed. What is left is the call into the isolate itself. \`node bench/isolate-floor.ts\` measures it
  apart from Outpost: a minimal \`node:http\` server answering 1 KB, with 0, 1 or 5 empty
  \`applySync\` calls per request. On this VM one empty call costs a server far more than the 1.4 µs it
  takes in a loop (caches and TLB cold after the request's own work, and the slower server's client CPU
  idling), above the 8 µs per CU the bar allows, so that bar cannot be met here by any design that enters
  an isolate per request; one call per phase for all of a worker's CUs would pay the entry once for 5 CUs
  but not for 1.
- **Herd p99 (2 workers)**: \`node bench/herd-timeline.ts --roots A,B\` runs herds against two checkouts,
  interleaved. What a herd's time went to, from the first request's arrival (timestamps in the fill
  path): the writer's lock grant comes after 7–15 ms, because each worker answers the IPC reply only
  after it has taken in the ~100 requests that arrived with the first (the client, both workers and the
  origin share 2 CPUs); the origin's headers 205–208 ms later; then the RAM commit; then, before this
  round, the disk's commit (11–13 ms under the herd: a data sync of the body and an LMDB commit) before
  any waiter was woken, and 100 index reads and stats in the other worker. Now the fill keeps pace with
  RAM only (the disk's writes follow), the writer's worker wakes its waiters at the RAM commit, the
  other worker gets the object over IPC at the same moment (≤ 256 KiB, no Vary) and puts it in its RAM,
  and the waiters one fill wakes share one lookup. Every waiter is now answered 1–5 ms after the RAM
  commit. Median p99 over 12 interleaved herds: 220.5 ms against 233.7 ms before. What is left over
  Varnish is the lock grant's wait for the arrivals, and the origin request itself.
- **Bench runner edge case**: a phase that has only non-repeated Outpost-only scenarios selected (e.g.
  \`--only cu\` with several servers) can find no Outpost server running; run such scenarios with a
  throughput scenario of the same phase, as the full plan does.
- **Memory** (no bar, but far from nginx): Outpost's primary and worker are each a Node process, about
  100 MB PSS each when freshly started (V8 heap, Node and the dependencies' code); the worker's heap
  then grows under load (to ~300 MB after the runs above). No tuning of the hot path changes that.

## Profiling

\`\`\`sh
node bench/profile.ts --prof                 # Outpost alone, 1 KB HITs, prints a self/inclusive-time summary
node bench/profile.ts --servers outpost,nginx,varnish --rounds 5   # interleaved, with CPU µs per request
node bench/profile.ts --servers outpost,outpost@/path/to/other/checkout  # A/B two versions of Outpost
node bench/profile.ts --path /static/16k --workers 2 --keep /tmp/prof    # keep the .cpuprofile files
node bench/profile-summary.ts /tmp/prof/*.cpuprofile --top 40            # summarise a profile again
node bench/isolate-floor.ts --rounds 3       # what an empty isolated-vm call costs a minimal server here
node bench/herd-timeline.ts --roots /work/main,/path/to/other/checkout --runs 12  # herds, A/B, p99 per run
\`\`\`

\`OUTPOST_CPU_PROF_DIR=dir outpost start\` makes every worker write a V8 CPU profile (\`--cpu-prof\`) into
\`dir\` when it exits; open it in Chrome DevTools (Performance tab) or speedscope for a flame graph, or
summarise it with \`bench/profile-summary.ts\`.
`;

export function performanceDoc(r: BenchResult): string {
  return `${DOC_HEAD}${markdownTables(r)}\n\n${DOC_TAIL}`;
}

export function writeResults(r: BenchResult, root: string, docs: boolean): { json: string; doc?: string } {
  const dir = join(root, 'bench/results');
  mkdirSync(dir, { recursive: true });
  const json = join(dir, `${r.startedAt.replaceAll(':', '-').replace(/\.\d+Z$/, 'Z')}.json`);
  writeFileSync(json, `${JSON.stringify(r, null, 2)}\n`);
  if (!docs) return { json };
  const doc = join(root, 'docs/performance.md');
  writeFileSync(doc, performanceDoc(r));
  return { json, doc };
}
