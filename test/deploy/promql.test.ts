// The small PromQL reader the dashboard tests rely on: if it missed a name, a dashboard query of a
// metric Outpost does not export would pass unseen.
import { describe, expect, it } from 'vitest';
import { checkUse, dashboardQueries, metricUses, parseExposition, withGrafanaVariables } from './promql.ts';

const names = (expr: string) => metricUses(expr).map((u) => u.name);

describe('reading metric names out of PromQL', () => {
  it('finds the metric inside aggregations, rate() and histogram_quantile(), not functions, labels or ranges', () => {
    expect(names('histogram_quantile(0.99, sum by (le, cache) (rate(outpost_request_duration_seconds_bucket{job=~"$job", cache!="HIT"}[$__rate_interval])))')).toEqual([
      'outpost_request_duration_seconds_bucket',
    ]);
    expect(names('sum without (instance) (up)')).toEqual(['up']);
  });

  it('finds both sides of a binary operation and ignores keywords and numbers', () => {
    expect(names('8 * sum(rate(a_total[5m])) / on (job) group_left (x) b_bytes > bool 1e3 or c_gauge offset 5m')).toEqual(['a_total', 'b_bytes', 'c_gauge']);
  });

  it('ignores what string arguments hold, even text that looks like a metric or a selector', () => {
    expect(names('sum by (class) (label_replace(rate(req_total{a="}"}[1m]), "class", "$1", "status", "fake_metric{x}[1m]"))')).toEqual(['req_total']);
  });

  it('reads through subqueries (the bandwidth forecast)', () => {
    const uses = metricUses('predict_linear(sum(rate(outpost_response_bytes_total{job=~"$job"}[5m]))[1h:1m], 3600)');
    expect(uses).toEqual([{ name: 'outpost_response_bytes_total', rated: true }]);
  });

  it('tells which names are rated', () => {
    expect(metricUses('sum(rate(x_total[1m])) / sum(y_bytes)')).toEqual([
      { name: 'x_total', rated: true },
      { name: 'y_bytes', rated: false },
    ]);
  });

  it('replaces Grafana variables so that Prometheus can run the query', () => {
    expect(withGrafanaVariables('rate(a{job=~"$job", instance=~"${instance}"}[$__rate_interval])')).toBe('rate(a{job=~".*", instance=~".*"}[1m])');
  });
});

describe('checking a use against an exposition', () => {
  const families = parseExposition(
    [
      '# HELP req_total x',
      '# TYPE req_total counter',
      'req_total{status="200"} 3',
      '# TYPE dur_seconds histogram',
      'dur_seconds_bucket{le="+Inf"} 1',
      'dur_seconds_sum 0.1',
      'dur_seconds_count 1',
      '# TYPE size_bytes gauge',
      '# TYPE empty_total counter',
    ].join('\n'),
  );

  it('counts samples per family, histogram series included', () => {
    expect(families.get('req_total')).toEqual({ type: 'counter', samples: 1 });
    expect(families.get('dur_seconds')).toEqual({ type: 'histogram', samples: 3 });
    expect(families.get('empty_total')).toEqual({ type: 'counter', samples: 0 });
  });

  it('accepts counters and histogram series in rate(), gauges outside it', () => {
    expect(checkUse({ name: 'req_total', rated: true }, families)).toBeUndefined();
    expect(checkUse({ name: 'dur_seconds_bucket', rated: true }, families)).toBeUndefined();
    expect(checkUse({ name: 'size_bytes', rated: false }, families)).toBeUndefined();
  });

  it('refuses unknown names, gauges in rate(), bare counters and suffixes of non-histograms', () => {
    expect(checkUse({ name: 'nope_total', rated: true }, families)).toBe('nope_total is not exported');
    expect(checkUse({ name: 'size_bytes', rated: true }, families)).toMatch(/gauge but is used in rate/);
    expect(checkUse({ name: 'req_total', rated: false }, families)).toMatch(/counter used without rate/);
    expect(checkUse({ name: 'req_total_count', rated: true }, families)).toBe('req_total_count is not exported');
  });
});

describe('listing a dashboard\'s queries', () => {
  it('takes every target in rows and panels and the selector of each label_values variable', () => {
    const d = {
      panels: [{ title: 'A', targets: [{ refId: 'A', expr: 'x' }] }, { title: 'row', type: 'row', panels: [{ title: 'B', targets: [{ refId: 'B', expr: 'y' }] }] }],
      templating: { list: [{ name: 'job', query: { query: 'label_values(z{a="b"}, job)' } }] },
    };
    expect(dashboardQueries(d).map((q) => q.expr)).toEqual(['x', 'y', 'z{a="b"}']);
  });
});
