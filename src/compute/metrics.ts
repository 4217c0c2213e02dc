// Per-CU metrics, labelled by `cu`. Registered in the worker's registry, so /metrics merges them
// across workers like the rest.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export class CuMetrics {
  readonly runs: Counter<'cu' | 'phase'>;
  readonly skips: Counter<'cu' | 'reason'>;
  readonly errors: Counter<'cu' | 'kind'>;
  readonly exits: Counter<'cu' | 'status'>;
  readonly duration: Histogram<'cu'>;
  readonly breakerOpen: Gauge<'cu'>;
  readonly loaded: Gauge<'cu'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.runs = new Counter({ name: 'outpost_cu_runs_total', help: 'CU runs, by CU and phase.', labelNames: ['cu', 'phase'], registers });
    this.skips = new Counter({ name: 'outpost_cu_skips_total', help: 'CU runs skipped, by reason (sampling, host, breaker, disabled).', labelNames: ['cu', 'reason'], registers });
    this.errors = new Counter({ name: 'outpost_cu_errors_total', help: 'CU failures, by kind (compile, runtime, timeout, memory).', labelNames: ['cu', 'kind'], registers });
    this.exits = new Counter({ name: 'outpost_cu_exits_total', help: 'Requests a CU answered itself with exit(), by status.', labelNames: ['cu', 'status'], registers });
    this.duration = new Histogram({
      name: 'outpost_cu_run_seconds',
      help: 'Time one CU run took, host side included.',
      labelNames: ['cu'],
      buckets: [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1],
      registers,
    });
    this.breakerOpen = new Gauge({ name: 'outpost_cu_breaker_open', help: 'Workers on which the CU breaker is open (1 per worker).', labelNames: ['cu'], registers, aggregator: 'sum' });
    this.loaded = new Gauge({ name: 'outpost_cu_loaded_version', help: 'Version of the CU each worker runs (max over workers).', labelNames: ['cu'], registers, aggregator: 'max' });
  }
}
