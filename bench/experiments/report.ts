// From run records to what people read: medians per experiment over the repetitions, one Markdown
// table per group, the seed's findings checked against the figures, the SVG chart, and the files
// under bench/results/ (and, for a complete run, the results section of docs/experiments.md).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { MachineInfo, Versions } from '../machine.ts';
import { median } from '../stats.ts';
import { PALETTE, renderChart, type Panel } from './chart.ts';
import { GROUP_INFO, GROUPS, type Experiment, type Group } from './experiments.ts';
import type { RunOptions, RunRecord } from './runner.ts';

export interface Range {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

export interface ExperimentSummary {
  readonly experiment: Experiment;
  readonly runs: number;
  readonly failed: number;
  readonly rps: Range;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
  readonly hitRatioPct: Range;
  readonly originRequests: number;
  readonly originHotRequests: number;
  readonly edgeMaxOverAvg: number;
  readonly otherCpuPct: number;
  /** Median per edge over the runs. */
  readonly edges: Readonly<Record<string, { readonly requests: number; readonly hitRatioPct: number }>>;
  readonly errorsSeen: readonly string[];
}

export type Verdict = 'holds' | 'partly holds' | 'does not hold' | 'not measured';

export interface Finding {
  readonly id: Group;
  /** What seed 004 found. */
  readonly claim: string;
  readonly verdict: Verdict;
  /** The figures behind the verdict. */
  readonly figures: string;
}

export interface ExperimentsResult {
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly elapsedS: number;
  readonly options: RunOptions & { readonly only: readonly string[] | undefined };
  readonly machine: MachineInfo;
  readonly versions: Versions;
  readonly experiments: readonly Experiment[];
  readonly records: readonly RunRecord[];
  readonly summaries: readonly ExperimentSummary[];
  readonly findings: readonly Finding[];
}

const r2 = (x: number): number => Math.round(x * 100) / 100;

function range(values: readonly number[]): Range {
  const v = values.filter((x) => Number.isFinite(x));
  if (v.length === 0) return { median: NaN, min: NaN, max: NaN };
  return { median: r2(median(v)), min: Math.min(...v), max: Math.max(...v) };
}

/** Edge names in the order the PoPs were started, from the records themselves. */
export function edgeNames(records: readonly RunRecord[]): string[] {
  const names: string[] = [];
  for (const r of records) for (const [name, e] of Object.entries(r.edges)) if (!names.includes(name) && (name !== '-' || e.requests > 0)) names.push(name);
  return names;
}

export function summarise(experiments: readonly Experiment[], records: readonly RunRecord[]): ExperimentSummary[] {
  const names = edgeNames(records);
  return experiments.flatMap((e) => {
    const all = records.filter((r) => r.experiment === e.id && !r.discarded);
    if (all.length === 0) return [];
    const ok = all.filter((r) => r.error === undefined);
    const med = (f: (r: RunRecord) => number): number => range(ok.map(f)).median;
    const edges: Record<string, { requests: number; hitRatioPct: number }> = {};
    for (const name of names) edges[name] = { requests: med((r) => r.edges[name]?.requests ?? 0), hitRatioPct: med((r) => r.edges[name]?.hitRatioPct ?? 0) };
    return [
      {
        experiment: e,
        runs: ok.length,
        failed: all.length - ok.length,
        rps: range(ok.map((r) => r.rps)),
        p50Ms: med((r) => r.p50Ms),
        p90Ms: med((r) => r.p90Ms),
        p99Ms: med((r) => r.p99Ms),
        errors: med((r) => r.errors),
        hitRatioPct: range(ok.map((r) => r.hitRatioPct)),
        originRequests: med((r) => r.originRequests),
        originHotRequests: med((r) => r.originHotRequests),
        edgeMaxOverAvg: med((r) => r.edgeMaxOverAvg),
        otherCpuPct: med((r) => r.otherCpuPct),
        edges,
        errorsSeen: [...new Set(all.flatMap((r) => (r.error === undefined ? [] : [r.error.split('\n')[0] ?? ''])))],
      },
    ];
  });
}

// ---- findings -------------------------------------------------------------------------------------

const fmt = (x: number, digits = 0): string => (Number.isFinite(x) ? x.toLocaleString('en', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : '–');
const pct = (x: number): string => `${fmt(x, 1)} %`;

function byId(summaries: readonly ExperimentSummary[], id: string): ExperimentSummary | undefined {
  return summaries.find((s) => s.experiment.id === id && s.runs > 0);
}

function increasing(values: readonly number[]): boolean {
  return values.every((v, i) => i === 0 || v > (values[i - 1] ?? Infinity));
}

export function findings(summaries: readonly ExperimentSummary[]): Finding[] {
  const out: Finding[] = [];

  const ttls = summaries.filter((s) => s.experiment.group === 'ttl' && s.runs > 0).sort((a, b) => a.experiment.maxAgeS - b.experiment.maxAgeS);
  const ttlClaim = 'Longer TTL → higher hit ratio and higher throughput (seed: max-age 1 s → 23 % hits, 27.7 req/s; 60 s → 80 % hits, 76.2 req/s).';
  if (ttls.length < 2) out.push({ id: 'ttl', claim: ttlClaim, verdict: 'not measured', figures: 'needs at least two TTLs' });
  else {
    const hits = increasing(ttls.map((s) => s.hitRatioPct.median));
    const rps = increasing(ttls.map((s) => s.rps.median));
    out.push({
      id: 'ttl',
      claim: ttlClaim,
      verdict: hits && rps ? 'holds' : hits || rps ? 'partly holds' : 'does not hold',
      figures:
        `hit ratio ${ttls.map((s) => `${s.experiment.label} ${pct(s.hitRatioPct.median)}`).join(', ')} (${hits ? 'rises' : 'does not rise'} with the TTL); ` +
        `req/s ${ttls.map((s) => `${s.experiment.label} ${fmt(s.rps.median)}`).join(', ')} (${rps ? 'rises' : 'does not rise'}); ` +
        `origin requests ${ttls.map((s) => `${s.experiment.label} ${fmt(s.originRequests)}`).join(', ')}`,
    });
  }

  const rr = byId(summaries, 'policy-rr');
  const ch = byId(summaries, 'policy-chash');
  const bd = byId(summaries, 'policy-bounded');
  const chashClaim = 'Consistent hashing → higher hit ratio than round robin (each item is cached on one edge instead of on every edge).';
  if (!rr || !ch) out.push({ id: 'policy', claim: chashClaim, verdict: 'not measured', figures: 'needs policy-rr and policy-chash' });
  else {
    const holds = ch.hitRatioPct.median > rr.hitRatioPct.median;
    out.push({
      id: 'policy',
      claim: chashClaim,
      verdict: holds ? 'holds' : 'does not hold',
      figures: `hit ratio chash ${pct(ch.hitRatioPct.median)} vs rr ${pct(rr.hitRatioPct.median)}; origin requests chash ${fmt(ch.originRequests)} vs rr ${fmt(rr.originRequests)}; req/s chash ${fmt(ch.rps.median)} vs rr ${fmt(rr.rps.median)}`,
    });
  }
  const boundedClaim = 'Bounded load → flatter load per edge than plain consistent hashing under one hot item.';
  if (!bd || !ch) out.push({ id: 'policy', claim: boundedClaim, verdict: 'not measured', figures: 'needs policy-chash and policy-bounded' });
  else {
    const holds = bd.edgeMaxOverAvg < ch.edgeMaxOverAvg;
    const perEdge = (s: ExperimentSummary): string => Object.values(s.edges).map((e) => fmt(e.requests)).join(' / ');
    out.push({
      id: 'policy',
      claim: boundedClaim,
      verdict: holds ? 'holds' : 'does not hold',
      figures: `busiest edge / mean: bounded ${fmt(bd.edgeMaxOverAvg, 2)} vs chash ${fmt(ch.edgeMaxOverAvg, 2)} (requests per edge: bounded ${perEdge(bd)}, chash ${perEdge(ch)}); hit ratio bounded ${pct(bd.hitRatioPct.median)} vs chash ${pct(ch.hitRatioPct.median)}`,
    });
  }

  const on = byId(summaries, 'collapsing-on');
  const off = byId(summaries, 'collapsing-off');
  const collapseClaim = 'Request collapsing on the long tail: on and off are close, off marginally ahead in throughput (seed 3.1.x); collapsing exists to spare the origin the herd.';
  if (!on || !off) out.push({ id: 'collapsing', claim: collapseClaim, verdict: 'not measured', figures: 'needs collapsing-on and collapsing-off' });
  else {
    const diff = (off.rps.median - on.rps.median) / Math.max(1, on.rps.median);
    // Within 10 %, or within the spread of the runs: the machine's noise cannot tell them apart.
    const overlap = off.rps.min <= on.rps.max && on.rps.min <= off.rps.max && (off.runs > 1 || on.runs > 1);
    const close = Math.abs(diff) <= 0.1 || overlap;
    out.push({
      id: 'collapsing',
      claim: collapseClaim,
      verdict: close && diff >= 0 ? 'holds' : close ? 'partly holds' : 'does not hold',
      figures: `req/s off ${fmt(off.rps.median)} vs on ${fmt(on.rps.median)} (${diff >= 0 ? '+' : ''}${fmt(diff * 100, 1)} % off vs on${overlap ? `; the runs overlap: off ${fmt(off.rps.min)}–${fmt(off.rps.max)}, on ${fmt(on.rps.min)}–${fmt(on.rps.max)}` : ''}); origin requests off ${fmt(off.originRequests)} vs on ${fmt(on.originRequests)}, of which for the ${on.experiment.mix.hotItems} hot items off ${fmt(off.originHotRequests)} vs on ${fmt(on.originHotRequests)}; p99 off ${fmt(off.p99Ms, 1)} ms vs on ${fmt(on.p99Ms, 1)} ms`,
    });
  }
  return out;
}

// ---- tables ---------------------------------------------------------------------------------------

const short = (edge: string): string => edge.replace(/^edge-/, '');

function withRange(r: Range, f: (x: number) => string, runs: number): string {
  return runs > 1 && Number.isFinite(r.min) ? `${f(r.median)} (${f(r.min)}–${f(r.max)})` : f(r.median);
}

/** One Markdown table per group that ran. */
export function markdownTables(summaries: readonly ExperimentSummary[], busyPct = 25): string {
  const out: string[] = [];
  for (const g of GROUPS) {
    const rows = summaries.filter((s) => s.experiment.group === g);
    if (rows.length === 0) continue;
    const info = GROUP_INFO[g];
    const edges = Object.keys(rows[0]?.edges ?? {});
    const edgeHead = edges.map(short).join(' / ');
    const runs = Math.max(...rows.map((r) => r.runs));
    out.push(`### ${info.title}`, '', `${info.setup}.${runs > 1 ? ` Median of ${runs} runs (min–max).` : ''}`, '');
    out.push(`| ${info.variable} | req/s | p50 ms | p90 ms | p99 ms | errors | hit ratio | hit ratio per edge (${edgeHead}) | origin requests (hot items) | requests per edge (${edgeHead}) | busiest edge / mean |`);
    out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const s of rows) {
      if (s.runs === 0) {
        out.push(`| ${s.experiment.label} | failed: ${s.errorsSeen.join('; ').replace(/\|/g, '\\|')} |||||||||| `);
        continue;
      }
      out.push(
        `| ${s.experiment.label} | ${withRange(s.rps, (x) => fmt(x), s.runs)} | ${fmt(s.p50Ms, 1)} | ${fmt(s.p90Ms, 1)} | ${fmt(s.p99Ms, 1)} | ${fmt(s.errors)} | ` +
          `${withRange(s.hitRatioPct, (x) => pct(x), s.runs)} | ${edges.map((e) => fmt(s.edges[e]?.hitRatioPct ?? NaN, 1)).join(' / ')} | ${fmt(s.originRequests)} (${fmt(s.originHotRequests)}) | ` +
          `${edges.map((e) => fmt(s.edges[e]?.requests ?? NaN)).join(' / ')} | ${fmt(s.edgeMaxOverAvg, 2)} |`,
      );
    }
    const busy = rows.filter((s) => s.otherCpuPct > busyPct);
    if (busy.length > 0) out.push('', `Other processes used > ${busyPct} % of the machine (median of the runs kept) during: ${busy.map((s) => `${s.experiment.label} (${fmt(s.otherCpuPct)} %)`).join(', ')}.`);
    const failed = rows.filter((s) => s.failed > 0 && s.runs > 0);
    if (failed.length > 0) out.push('', `Failed runs (left out): ${failed.map((s) => `${s.experiment.label} ${s.failed}× (${s.errorsSeen.join('; ')})`).join(', ')}.`);
    out.push('');
  }
  return out.join('\n');
}

export function markdownFindings(list: readonly Finding[]): string {
  return list.map((f) => `- **${f.verdict}** — ${f.claim} Measured: ${f.figures}.`).join('\n');
}

// ---- chart ----------------------------------------------------------------------------------------

// Whole-CDN figures in grey; each edge keeps its colour in every panel.
const WHOLE = '#555555';
const EDGE_COLORS = [PALETTE[0], PALETTE[1], PALETTE[2], PALETTE[3], PALETTE[5]].filter((c): c is string => c !== undefined);
const LATENCY_COLORS = ['#56B4E9', '#CC79A7', '#D55E00'];

export function panels(summaries: readonly ExperimentSummary[]): Panel[] {
  const out: Panel[] = [];
  const of = (g: Group): ExperimentSummary[] => summaries.filter((s) => s.experiment.group === g && s.runs > 0);
  const edges = Object.keys(summaries[0]?.edges ?? {});
  const edgeColors = edges.map((_, i) => EDGE_COLORS[i % EDGE_COLORS.length] ?? WHOLE);
  // Hit ratios here sit between 95 and 100 %: their complement, the share that went forward, shows
  // the differences on an axis that still starts at zero.
  const miss = (hit: number | undefined): number | undefined => (hit === undefined || !Number.isFinite(hit) ? undefined : Math.round((100 - hit) * 100) / 100);
  const missPanel = (title: string, rows: readonly ExperimentSummary[]): Panel => ({
    title,
    unit: '%',
    colors: [WHOLE, ...edgeColors],
    series: ['overall', ...edges.map(short)],
    groups: rows.map((s) => ({ label: s.experiment.label, values: [miss(s.hitRatioPct.median), ...edges.map((e) => miss(s.edges[e]?.hitRatioPct))] })),
  });
  const single = (title: string, unit: string, rows: readonly ExperimentSummary[], f: (s: ExperimentSummary) => number, series: string): Panel => ({
    title,
    unit,
    series: [series],
    colors: [WHOLE],
    groups: rows.map((s) => ({ label: s.experiment.label, values: [f(s)] })),
  });
  const originPanel = (title: string, rows: readonly ExperimentSummary[]): Panel => ({
    title,
    unit: 'requests',
    series: ['all items', 'hot items'],
    colors: [WHOLE, '#D55E00'],
    groups: rows.map((s) => ({ label: s.experiment.label, values: [s.originRequests, s.originHotRequests] })),
  });
  const ttl = of('ttl');
  if (ttl.length > 0) {
    out.push(missPanel('TTL (max-age): miss ratio (100 − hit)', ttl));
    out.push(single('TTL (max-age): throughput', 'req/s', ttl, (s) => s.rps.median, 'req/s'));
    out.push(originPanel('TTL (max-age): origin requests', ttl));
  }
  const col = of('collapsing');
  if (col.length > 0) {
    out.push(originPanel('Collapsing: origin requests', col));
    out.push(single('Collapsing: throughput', 'req/s', col, (s) => s.rps.median, 'req/s'));
    out.push({ title: 'Collapsing: latency', unit: 'ms', series: ['p50', 'p90', 'p99'], colors: LATENCY_COLORS, groups: col.map((s) => ({ label: s.experiment.label, values: [s.p50Ms, s.p90Ms, s.p99Ms] })) });
  }
  const pol = of('policy');
  if (pol.length > 0) {
    out.push(missPanel('Policy, hot item: miss ratio (100 − hit)', pol));
    out.push({ title: 'Policy, hot item: requests per edge', unit: 'requests', series: edges.map(short), colors: edgeColors, groups: pol.map((s) => ({ label: s.experiment.label, values: edges.map((e) => s.edges[e]?.requests) })) });
    out.push(single('Policy, hot item: throughput', 'req/s', pol, (s) => s.rps.median, 'req/s'));
  }
  return out;
}

export function chartSvg(result: Pick<ExperimentsResult, 'startedAt' | 'options' | 'machine' | 'summaries'>): string {
  const o = result.options;
  const runs = Math.max(0, ...result.summaries.map((s) => s.runs));
  const subtitle =
    `Outpost mini-CDN (3 edges, shield, seed 004 origin latency), ${o.driver} ${o.connections} connections, ${o.durationS} s per run` +
    `${runs > 1 ? `, median of ${runs}` : ''}; ${result.machine.cpuCount} × ${result.machine.cpuModel}; ${result.startedAt}`;
  return renderChart("Seed 004's experiments", subtitle, panels(result.summaries), 3);
}

// ---- files ----------------------------------------------------------------------------------------

export const DOC_BEGIN = '<!-- experiments:results:begin -->';
export const DOC_END = '<!-- experiments:results:end -->';

export function stamp(d: Date): string {
  return d.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
}

/** The generated part of docs/experiments.md: run line, tables, findings, chart. */
export function docSection(result: ExperimentsResult, svgPath: string, docDir: string): string {
  const o = result.options;
  const m = result.machine;
  return [
    DOC_BEGIN,
    '',
    `Run of ${result.startedAt} (\`outpost bench experiments\`): ${m.cpuCount} × ${m.cpuModel}, ${m.memoryGiB} GiB, ${m.os}; ` +
      `Node ${result.versions['node'] ?? '?'}${result.versions['wrk'] ? `, wrk ${result.versions['wrk']}` : ''}; ${o.driver} with ${o.connections} connections` +
      `${o.driver === 'wrk' ? ` on ${o.threads} threads` : ''}, ${o.durationS} s per run, ${o.reps} run(s) per experiment, latency scale ${o.latencyScale}; ${Math.round(result.elapsedS / 60)} min in all.`,
    '',
    markdownTables(result.summaries, o.maxOtherCpuPct),
    `![Seed 004's experiments: miss ratio, throughput, origin requests, latency, requests per edge](${relative(docDir, svgPath)})`,
    '',
    '#### The seed’s findings, checked',
    '',
    markdownFindings(result.findings),
    '',
    DOC_END,
  ].join('\n');
}

export interface Written {
  readonly json: string;
  readonly svg: string;
  readonly doc?: string;
}

/** Writes bench/results/experiments-<stamp>.{json,svg}; with `doc`, replaces the results section of that file. */
export function writeResults(result: ExperimentsResult, outDir: string, doc?: string): Written {
  mkdirSync(outDir, { recursive: true });
  const base = join(outDir, `experiments-${stamp(new Date(result.startedAt))}`);
  const json = `${base}.json`;
  const svg = `${base}.svg`;
  writeFileSync(json, `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(svg, chartSvg(result));
  if (doc === undefined) return { json, svg };
  const text = existsSync(doc) ? readFileSync(doc, 'utf8') : `${DOC_BEGIN}\n${DOC_END}\n`;
  const a = text.indexOf(DOC_BEGIN);
  const b = text.indexOf(DOC_END);
  const section = docSection(result, svg, join(doc, '..'));
  const next = a >= 0 && b > a ? text.slice(0, a) + section + text.slice(b + DOC_END.length) : `${text.trimEnd()}\n\n${section}\n`;
  writeFileSync(doc, next);
  return { json, svg, doc };
}
