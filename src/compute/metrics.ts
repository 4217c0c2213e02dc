// Per-CU metrics, labelled by `cu`. Registered in the worker's registry, so /metrics merges them
// across workers like the rest. Runs and run times are counted on every CU run, so they use the
// edge's cheap forms (src/metrics/metrics.ts): a FastHistogram, and a tally per (cu, phase) handed
// to prom-client when the registry is read; prom-client hashes its labels on every call otherwise.
import { Counter, Gauge, type Registry } from 'prom-client';
import { FastHistogram } from '../metrics/metrics.ts';

/** The run counter of one CU in one phase; bound once per loaded CU. */
export interface CuRunCounter {
  inc(): void;
}

export class CuMetrics {
  readonly runs: Counter<'cu' | 'phase'>;
  /** Runs not yet handed to `runs`, by cu and phase. */
  readonly #pendingRuns = new Map<string, { labels: { cu: string; phase: string }; n: number }>();
  readonly skips: Counter<'cu' | 'reason'>;
  readonly errors: Counter<'cu' | 'kind'>;
  readonly exits: Counter<'cu' | 'status'>;
  readonly duration: FastHistogram<'cu'>;
  readonly breakerOpen: Gauge<'cu'>;
  readonly loaded: Gauge<'cu'>;

  constructor(registry: Registry) {
    const registers = [registry];
    const pending = this.#pendingRuns;
    this.runs = new Counter({
      name: 'outpost_cu_runs_total',
      help: 'CU runs, by CU and phase.',
      labelNames: ['cu', 'phase'],
      registers,
      collect() {
        for (const t of pending.values()) {
          if (t.n > 0) this.inc(t.labels, t.n);
          t.n = 0;
        }
      },
    });
    this.skips = new Counter({ name: 'outpost_cu_skips_total', help: 'CU runs skipped, by reason (sampling, host, breaker, disabled).', labelNames: ['cu', 'reason'], registers });
    this.errors = new Counter({ name: 'outpost_cu_errors_total', help: 'CU failures, by kind (compile, runtime, timeout, memory).', labelNames: ['cu', 'kind'], registers });
    this.exits = new Counter({ name: 'outpost_cu_exits_total', help: 'Requests a CU answered itself with exit(), by status.', labelNames: ['cu', 'status'], registers });
    this.duration = new FastHistogram({
      name: 'outpost_cu_run_seconds',
      help: 'Time one CU run took, host side included.',
      label: 'cu',
      buckets: [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1],
      registers,
    });
    this.breakerOpen = new Gauge({ name: 'outpost_cu_breaker_open', help: 'Workers on which the CU breaker is open (1 per worker).', labelNames: ['cu'], registers, aggregator: 'sum' });
    this.loaded = new Gauge({ name: 'outpost_cu_loaded_version', help: 'Version of the CU each worker runs (max over workers).', labelNames: ['cu'], registers, aggregator: 'max' });
  }

  /** The run counter of `cu` in `phase`: a plain increment, read into outpost_cu_runs_total on collection. */
  runCounter(cu: string, phase: string): CuRunCounter {
    const key = `${cu}\u0000${phase}`;
    let t = this.#pendingRuns.get(key);
    if (t === undefined) this.#pendingRuns.set(key, (t = { labels: { cu, phase }, n: 0 }));
    const tally = t;
    return {
      inc() {
        tally.n++;
      },
    };
  }
}
