// Reading the shipped Grafana dashboard and Prometheus exposition text in tests: which metric names a
// PromQL expression uses (and whether it rates them), and which metric families an /metrics page has.
// Small on purpose: enough PromQL to check that every panel queries metrics Outpost really exports.

const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'atan2', 'inf', 'nan']);
/** Functions whose first argument must be a counter (or a histogram's _bucket/_sum/_count series). */
const RATE_FUNCTIONS = new Set(['rate', 'irate', 'increase']);

export interface MetricUse {
  readonly name: string;
  /** The name is the first argument of rate(), irate() or increase(). */
  readonly rated: boolean;
}

/** Every metric name an expression selects, in order of first use; functions, keywords, labels and strings are left out. */
export function metricUses(expr: string): MetricUse[] {
  const s = expr
    // Strings first: they may hold anything, braces and brackets included.
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^{}]*\}/g, ' ') // label matchers (Grafana's ${var} sits inside them or inside strings)
    .replace(/\[[^\][]*\]/g, ' ') // ranges and subqueries, with $__rate_interval
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)/g, ' ') // label lists
    .replace(/\boffset\s+-?[0-9a-z]+/gi, ' ')
    .replace(/@\s*[^\s)]+/g, ' ');
  const uses = new Map<string, MetricUse>();
  const ident = /[A-Za-z_:][A-Za-z0-9_:]*/g;
  for (let m = ident.exec(s); m; m = ident.exec(s)) {
    const before = s[m.index - 1];
    // Part of a number (1e3, 0x1f) or of a Grafana variable ($job) left outside a matcher.
    if (before !== undefined && /[0-9.$]/.test(before)) continue;
    const after = s.slice(m.index + m[0].length).match(/^\s*(\()?/);
    if (after?.[1]) continue; // a function or aggregation: name(
    const name = m[0];
    if (KEYWORDS.has(name.toLowerCase())) continue;
    const call = s.slice(0, m.index).match(/([A-Za-z_]+)\s*\(\s*$/);
    const rated = call !== null && RATE_FUNCTIONS.has(call[1]!);
    const prev = uses.get(name);
    uses.set(name, { name, rated: (prev?.rated ?? false) || rated });
  }
  return [...uses.values()];
}

export interface Family {
  readonly type: string;
  /** Samples in the exposition (a family may be declared with none yet). */
  samples: number;
}

/** Metric families of a Prometheus text exposition, by name, with their type and sample count. */
export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  for (const line of text.split('\n')) {
    const t = line.match(/^# TYPE ([A-Za-z_:][A-Za-z0-9_:]*) (\w+)/);
    if (t) {
      if (!families.has(t[1]!)) families.set(t[1]!, { type: t[2]!, samples: 0 });
      continue;
    }
    const sample = line.match(/^([A-Za-z_:][A-Za-z0-9_:]*)[{ ]/);
    if (!sample) continue;
    const fam = familyOf(sample[1]!, families);
    if (fam) fam.samples++;
  }
  return families;
}

/** The family a series name belongs to: itself, or a histogram or summary it is the _bucket, _sum or _count of. */
export function familyOf(series: string, families: ReadonlyMap<string, Family>): Family | undefined {
  const own = families.get(series);
  if (own) return own;
  const m = series.match(/^(.*)_(bucket|sum|count)$/);
  if (!m) return undefined;
  const base = families.get(m[1]!);
  if (!base || !(base.type === 'histogram' || (base.type === 'summary' && m[2] !== 'bucket'))) return undefined;
  return base;
}

/** What is wrong with one use of a metric against an exposition, or undefined when nothing is. */
export function checkUse(use: MetricUse, families: ReadonlyMap<string, Family>): string | undefined {
  const fam = familyOf(use.name, families);
  if (!fam) return `${use.name} is not exported`;
  const histogramPart = fam !== families.get(use.name);
  if (use.rated && !(fam.type === 'counter' || histogramPart)) return `${use.name} is a ${fam.type} but is used in rate()`;
  if (!use.rated && (fam.type === 'counter' || histogramPart)) return `${use.name} is a ${histogramPart ? `${fam.type} series` : 'counter'} used without rate()`;
  return undefined;
}

export interface DashboardQuery {
  readonly where: string;
  readonly expr: string;
}

interface PanelLike {
  title?: string;
  type?: string;
  targets?: Array<{ expr?: string; refId?: string }>;
  panels?: PanelLike[];
}

/** Every PromQL expression in a dashboard: each panel target's expr and each query variable's query. */
export function dashboardQueries(dashboard: { panels?: PanelLike[]; templating?: { list?: Array<{ name: string; query?: unknown; definition?: string }> } }): DashboardQuery[] {
  const out: DashboardQuery[] = [];
  const walk = (panels: PanelLike[] | undefined) => {
    for (const p of panels ?? []) {
      for (const t of p.targets ?? []) if (t.expr !== undefined) out.push({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr });
      walk(p.panels);
    }
  };
  walk(dashboard.panels);
  for (const v of dashboard.templating?.list ?? []) {
    const q = typeof v.query === 'object' && v.query !== null ? (v.query as { query?: string }).query : typeof v.query === 'string' ? v.query : v.definition;
    // label_values(metric{…}, label): the selector is PromQL.
    const sel = q?.match(/^label_values\((.*),\s*\w+\)$/);
    if (sel) out.push({ where: `variable $${v.name}`, expr: sel[1]! });
  }
  return out;
}

/** A panel query with Grafana's variables replaced so that Prometheus can run it on its own. */
export function withGrafanaVariables(expr: string, rateInterval = '1m'): string {
  return expr
    .replace(/\$__rate_interval|\$__interval|\$\{__rate_interval\}/g, rateInterval)
    .replace(/\$\{?(job|instance|cu)\}?/g, '.*');
}
