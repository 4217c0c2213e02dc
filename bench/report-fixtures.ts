// Test support for the report's sections: run records and a whole result, as few fields as the
// report reads. Used by bench/scenarios/*.test.ts.
import { markdownTables, summarise, type BenchResult } from './report.ts';
import type { RunRecord } from './runner.ts';
import type { ServerId } from './servers/types.ts';

/** One kept run of a scenario (phase from its -w1/-w2 suffix unless `extra` says otherwise). */
export function benchRecord(scenario: string, server: ServerId, metrics: Record<string, number>, extra: Partial<RunRecord> = {}): RunRecord {
  return {
    scenario,
    phase: scenario.endsWith('w1') ? 'w1' : 'w2',
    server,
    rep: 1,
    attempt: 1,
    discarded: false,
    noisy: false,
    metrics,
    notes: [],
    elapsedS: 1,
    ...extra,
  };
}

/** The report's Markdown for these records. */
export function reportFor(records: RunRecord[]): string {
  return markdownTables({
    startedAt: '2026-01-01T00:00:00Z',
    options: { quick: true, reps: 1, maxOtherCpuPct: 15, idleConnections: 10_000, herdClients: 200, longTailS: 10 },
    machine: { cpuCount: 2, cpuModel: 'x', kernel: 'k' },
    versions: {},
    origin: 'o',
    phases: [],
    skipped: [],
    records,
    summaries: summarise(records),
    bars: [],
    elapsedS: 1,
  } as unknown as BenchResult);
}
