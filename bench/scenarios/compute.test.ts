import { describe, expect, it } from 'vitest';
import { benchRecord, reportFor } from '../report-fixtures.ts';
import { cuCost } from '../report.ts';
import type { RunRecord } from '../runner.ts';
import type { ServerId } from '../servers/types.ts';

describe('the issue 4 report section', () => {
  const rec = (scenario: string, metrics: Record<string, number>, server: ServerId = 'outpost'): RunRecord => benchRecord(scenario, server, metrics);
  const doc = reportFor;

  it('derives the µs each CU adds from the median throughputs', () => {
    const one = cuCost(50_000, 40_000, 1);
    expect(one?.share).toBeCloseTo(0.8, 10);
    expect(one?.usPerCu).toBeCloseTo(5, 10);
    expect(cuCost(50_000, 25_000, 5)?.usPerCu).toBeCloseTo(4, 10);
    expect(cuCost(undefined, 25_000, 5)).toBeUndefined();
    expect(cuCost(50_000, 0, 1)).toBeUndefined();
  });

  it('gives the share of no-CU throughput and µs per CU against the 60 % and 8 µs targets, and the propagation p99', () => {
    const text = doc([
      rec('cu-0-w1', { rps: 50_000, p50Ms: 1, p99Ms: 2 }),
      rec('cu-1-w1', { rps: 40_000, p50Ms: 1.2, p99Ms: 2.5 }),
      rec('cu-5-w1', { rps: 25_000, p50Ms: 2, p99Ms: 4 }),
      rec('cu-propagation-w2', { p50Ms: 20, p99Ms: 900, maxMs: 950 }),
    ]);
    expect(text).toContain('### Issue 4: computing units');
    expect(text).toContain('| no CU | 50,000 | 1.00 / 2.00 | 100 % | — | — | — |');
    expect(text).toMatch(/\| 1 trivial access CU \| 40,000 \| .+ \| 80\.0 % \| 5\.0 µs \| ≥ 60 % of no CU; ≤ 8 µs per CU \| PASS \|/);
    expect(text).toMatch(/\| 5 trivial access CUs \| 25,000 \| .+ \| 50\.0 % \| 4\.0 µs \| ≤ 8 µs per CU \| PASS \|/);
    expect(text).toContain('| admin API write → every worker runs it | 20.0 | 900.0 | p99 ≤ 1,000 ms | PASS |');
    expect(text).toContain('`if (req.path === "/never") return exit(404); vars.seen = true;`');
    const both = doc([rec('cu-0-w1', { rps: 1 }), rec('sec-hit-1k-w1', { rps: 1 })]);
    expect(both.indexOf('### Issue 4')).toBeLessThan(both.indexOf('### Issue 5'));
  });

  it('fails a share under 60 %, more than 8 µs per CU and a p99 over 1000 ms, and says which target a CU missed', () => {
    const text = doc([
      rec('cu-0-w1', { rps: 50_000 }),
      rec('cu-1-w1', { rps: 35_000 }),
      rec('cu-5-w1', { rps: 10_000 }),
      rec('cu-propagation-w2', { p50Ms: 300, p99Ms: 1200 }),
    ]);
    // 70 % of no CU passes, but 1/35,000 − 1/50,000 s is 8.6 µs.
    expect(text).toMatch(/\| 70\.0 % \| 8\.6 µs \| .+ \| FAIL \(µs per CU\) \|/);
    expect(text).toMatch(/\| 20\.0 % \| 16\.0 µs \| ≤ 8 µs per CU \| FAIL \|/);
    expect(text).toContain('| 300.0 | 1200.0 | p99 ≤ 1,000 ms | FAIL |');
    expect(doc([rec('cu-0-w1', { rps: 50_000 }), rec('cu-1-w1', { rps: 25_000 })])).toMatch(/\| 50\.0 % \| 20\.0 µs \| .+ \| FAIL \(share, µs per CU\) \|/);
    // Exactly 60 % passes.
    expect(doc([rec('cu-0-w1', { rps: 100_000 }), rec('cu-1-w1', { rps: 60_000 })])).toMatch(/\| 60\.0 % \| 6\.7 µs \| .+ \| PASS \|/);
  });

  it('shows what was measured of a partial run and is left out when no CU scenario ran', () => {
    const noBase = doc([rec('cu-1-w1', { rps: 40_000 })]);
    expect(noBase).toMatch(/\| no CU \| — \| — \| — \| — \| — \| — \|/);
    expect(noBase).toMatch(/\| 1 trivial access CU \| 40,000 \| — \| — \| — \| .+ \| n\/a \|/);
    expect(noBase).not.toContain('admin API write');
    const propOnly = doc([rec('cu-propagation-w2', { p50Ms: 20, p99Ms: 60 })]);
    expect(propOnly).toContain('### Issue 4: computing units');
    expect(propOnly).not.toContain('trivial access CU');
    expect(propOnly).toContain('| PASS |');
    const hitOnly = doc([rec('hit-1k-w1', { rps: 1 }, 'nginx'), rec('hit-1k-w1', { rps: 1 })]);
    expect(hitOnly).not.toContain('Issue 4');
    expect(hitOnly).not.toContain('computing units');
  });
});
