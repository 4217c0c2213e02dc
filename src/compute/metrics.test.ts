import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { CuMetrics } from './metrics.ts';

describe('CU metrics', () => {
  it('count runs per CU and phase across scrapes, and time them in outpost_cu_run_seconds', async () => {
    const registry = new Registry();
    const m = new CuMetrics(registry);
    const auth = m.runCounter('auth', 'access');
    for (let i = 0; i < 3; i++) auth.inc();
    m.runCounter('tag', 'body_filter').inc();
    m.duration.observeFor('auth', 0.00003);
    let text = await registry.metrics();
    expect(text).toContain('outpost_cu_runs_total{cu="auth",phase="access"} 3');
    expect(text).toContain('outpost_cu_runs_total{cu="tag",phase="body_filter"} 1');
    expect(text).toContain('outpost_cu_run_seconds_bucket{le="0.00005",cu="auth"} 1');
    expect(text).toContain('outpost_cu_run_seconds_count{cu="auth"} 1');
    // The same counter bound again keeps counting where it was; a scrape hands over only what is new.
    m.runCounter('auth', 'access').inc();
    auth.inc();
    text = await registry.metrics();
    expect(text).toContain('outpost_cu_runs_total{cu="auth",phase="access"} 5');
  });
});
