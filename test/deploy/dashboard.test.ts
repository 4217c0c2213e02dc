// The Grafana dashboard's shape: seed 004's panels and the per-CU panels are there, each querying the
// metric it is about, laid out on Grafana's 24-column grid without overlaps. Whether Outpost exports
// those metrics, and whether Prometheus runs the queries, is test/deploy/stack.test.ts's business.
import { describe, expect, it } from 'vitest';
import { dashboardQueries, metricUses } from './promql.ts';
import { readJson } from './support.ts';

interface Target {
  refId: string;
  expr: string;
  legendFormat?: string;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  targets?: Target[];
  fieldConfig?: { defaults: { unit?: string } };
}
const dashboard = readJson('deploy/grafana/dashboards/outpost.json') as unknown as {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Array<{ name: string }> };
};
const panels = dashboard.panels.filter((p) => p.type !== 'row');
const panel = (title: string) => {
  const p = panels.find((x) => x.title === title);
  if (!p) throw new Error(`no panel "${title}"`);
  return p;
};
const exprs = (p: Panel) => (p.targets ?? []).map((t) => t.expr);
const metricsOf = (p: Panel) => [...new Set(exprs(p).flatMap((e) => metricUses(e).map((u) => u.name)))];

describe('the Grafana dashboard', () => {
  it('is a provisionable dashboard: uid, title, unique panel ids, every panel with at least one query', () => {
    expect(dashboard.uid).toBe('outpost');
    expect(dashboard.title).toBe('Outpost CDN');
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of panels) {
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      const refIds = p.targets!.map((t) => t.refId);
      expect(new Set(refIds).size, p.title).toBe(refIds.length);
      for (const t of p.targets!) expect(t.expr.trim(), `${p.title} ${t.refId}`).not.toBe('');
    }
  });

  it('has seed 004\'s panels, each querying the metric it shows', () => {
    const seed: Record<string, { metrics: string[]; unit: string; quantiles?: string[] }> = {
      'Requests/s': { metrics: ['outpost_requests_total'], unit: 'reqps' },
      'Edge hit ratio': { metrics: ['outpost_requests_total'], unit: 'percentunit' },
      'Bytes out': { metrics: ['outpost_response_bytes_total'], unit: 'Bps' },
      'Bandwidth forecast': { metrics: ['outpost_response_bytes_total'], unit: 'bps' },
      'Latency p50 / p95 / p99': { metrics: ['outpost_request_duration_seconds_bucket'], unit: 's', quantiles: ['0.50', '0.95', '0.99'] },
      'Responses by status class': { metrics: ['outpost_requests_total'], unit: 'reqps' },
      'Upstream latency p50 / p95 / p99': { metrics: ['outpost_upstream_response_seconds_bucket'], unit: 's', quantiles: ['0.50', '0.95', '0.99'] },
    };
    for (const [title, want] of Object.entries(seed)) {
      const p = panel(title);
      expect(metricsOf(p), title).toEqual(want.metrics);
      expect(p.fieldConfig?.defaults.unit, title).toBe(want.unit);
      if (want.quantiles) expect(exprs(p).map((e) => e.match(/^histogram_quantile\(([\d.]+),/)?.[1]), title).toEqual(want.quantiles);
    }
    expect(exprs(panel('Edge hit ratio'))[0]).toMatch(/cache=~"HIT\|STALE\|UPDATING\|REVALIDATED"/);
    expect(exprs(panel('Bandwidth forecast')).filter((e) => e.includes('predict_linear(')).length).toBeGreaterThanOrEqual(1);
    expect(exprs(panel('Responses by status class'))[0]).toMatch(/label_replace\(.*"status"/);
    // Seed 004's panels come first, before any row of extras.
    const firstRowEnd = dashboard.panels.findIndex((p, i) => i > 0 && p.type === 'row');
    for (const title of Object.keys(seed)) expect(dashboard.panels.findIndex((p) => p.title === title)).toBeLessThan(firstRowEnd);
  });

  it('has per-CU panels for runs, run time, errors, skips, answers, breaker and version, each filtered by the $cu variable', () => {
    const cuMetrics = ['outpost_cu_runs_total', 'outpost_cu_run_seconds_bucket', 'outpost_cu_errors_total', 'outpost_cu_skips_total', 'outpost_cu_exits_total', 'outpost_cu_breaker_open', 'outpost_cu_loaded_version'];
    const cuPanels = panels.filter((p) => metricsOf(p).some((m) => m.startsWith('outpost_cu_')));
    expect(cuPanels.flatMap(metricsOf).sort()).toEqual([...cuMetrics].sort());
    for (const p of cuPanels) {
      for (const e of exprs(p)) expect(e, p.title).toMatch(/cu=~"\$cu"/);
      expect(p.targets!.every((t) => t.legendFormat?.includes('{{cu}}')), p.title).toBe(true);
    }
    expect(dashboard.templating.list.map((v) => v.name)).toEqual(['job', 'instance', 'cu']);
  });

  it('filters every node panel\'s query by the $job and $instance variables', () => {
    for (const p of panels) {
      if (metricsOf(p).every((m) => m.startsWith('outpost_lb_'))) continue; // the load balancer is one job of its own
      for (const e of exprs(p)) expect(e, p.title).toMatch(/job=~"\$job", instance=~"\$instance"/);
    }
  });

  it('has load-balancer panels per edge: requests, latency, rotation, failures', () => {
    const lbPanels = panels.filter((p) => metricsOf(p).some((m) => m.startsWith('outpost_lb_')));
    expect(lbPanels.map((p) => p.title)).toEqual(['LB requests/s by edge', 'LB latency p99 by edge', 'Edges in rotation', 'LB failures and retries']);
    for (const p of lbPanels) {
      expect(metricsOf(p).every((m) => m.startsWith('outpost_lb_')), p.title).toBe(true);
      for (const e of exprs(p)) expect(e, p.title).toMatch(/by \((le, )?member/);
    }
  });

  it('queries only Outpost\'s own metrics', () => {
    const names = dashboardQueries(dashboard).flatMap((q) => metricUses(q.expr).map((u) => u.name));
    expect(names.length).toBeGreaterThan(30);
    for (const n of names) expect(n).toMatch(/^outpost_/);
  });

  it('lays panels out on the 24-column grid without overlaps', () => {
    const cells = new Set<string>();
    for (const p of dashboard.panels) {
      const g = p.gridPos;
      expect(g.x >= 0 && g.w > 0 && g.x + g.w <= 24, `${p.title} ${JSON.stringify(g)}`).toBe(true);
      for (let x = g.x; x < g.x + g.w; x++) {
        for (let y = g.y; y < g.y + g.h; y++) {
          expect(cells.has(`${x},${y}`), `${p.title} overlaps another panel at ${x},${y}`).toBe(false);
          cells.add(`${x},${y}`);
        }
      }
    }
  });
});
