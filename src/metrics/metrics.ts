// Prometheus metrics of one process. In a multi-worker node the primary merges every worker's
// registry (prom-client's AggregatorRegistry), so /metrics shows the node as a whole.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Request duration buckets in seconds, as seed 004 configures VTS. */
export const DURATION_BUCKETS = [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10];
const UPSTREAM_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface TierGaugeSource {
  readonly name: string;
  /** Disk tiers are shared by the node's workers, so they are not summed across workers. */
  readonly shared: boolean;
  stats(): { bytes: number; entries: number; evictions: number };
}

export class EdgeMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'outpost_requests_total',
    help: 'Requests answered, by status code and cache status.',
    labelNames: ['status', 'cache'] as const,
    registers: [this.registry],
  });
  readonly bytesSent = new Counter({
    name: 'outpost_response_bytes_total',
    help: 'Response body bytes sent to clients, by cache status.',
    labelNames: ['cache'] as const,
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'outpost_request_duration_seconds',
    help: 'Time from request arrival to the last byte sent.',
    labelNames: ['cache'] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  readonly upstreamConnect = new Histogram({
    name: 'outpost_upstream_connect_seconds',
    help: 'Time to open a new connection to an origin peer.',
    labelNames: ['pool'] as const,
    buckets: UPSTREAM_BUCKETS,
    registers: [this.registry],
  });
  readonly upstreamResponse = new Histogram({
    name: 'outpost_upstream_response_seconds',
    help: 'Time from sending a request to an origin until its response headers arrived.',
    labelNames: ['pool', 'status'] as const,
    buckets: UPSTREAM_BUCKETS,
    registers: [this.registry],
  });
  readonly upstreamErrors = new Counter({
    name: 'outpost_upstream_errors_total',
    help: 'Origin requests that failed without a response, by error code.',
    labelNames: ['pool', 'code'] as const,
    registers: [this.registry],
  });
  readonly collapsed = new Counter({
    name: 'outpost_collapsed_requests_total',
    help: 'Requests that waited for another request to fill the cache instead of asking the origin.',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly staleServed = new Counter({
    name: 'outpost_stale_served_total',
    help: 'Stale responses served, by reason (updating: stale-while-revalidate, error: stale-if-error).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly clientErrors = new Counter({
    name: 'outpost_client_errors_total',
    help: 'Requests refused before reaching the pipeline, by error code.',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });
  readonly purges = new Counter({
    name: 'outpost_purged_objects_total',
    help: 'Cache entries removed or marked stale by purges, by kind.',
    labelNames: ['kind', 'mode'] as const,
    registers: [this.registry],
    aggregator: 'sum',
  });

  constructor(tiers: readonly TierGaugeSource[] = [], opts: { defaultMetrics?: boolean } = {}) {
    const tierGauge = (name: string, help: string, pick: (s: ReturnType<TierGaugeSource['stats']>) => number, shared: boolean) =>
      new Gauge({
        name,
        help,
        labelNames: ['tier'] as const,
        registers: [this.registry],
        aggregator: shared ? 'max' : 'sum',
        collect() {
          for (const t of tiers) if (t.shared === shared) this.set({ tier: t.name }, pick(t.stats()));
        },
      });
    // Separate metric objects per aggregation rule, exposed under distinct names.
    tierGauge('outpost_cache_bytes', 'Bytes held by each worker-local cache tier (summed over workers).', (s) => s.bytes, false);
    tierGauge('outpost_cache_entries', 'Entries held by each worker-local cache tier (summed over workers).', (s) => s.entries, false);
    tierGauge('outpost_cache_evictions', 'Entries evicted from each worker-local cache tier for room.', (s) => s.evictions, false);
    tierGauge('outpost_cache_shared_bytes', 'Bytes held by the node-wide (disk) cache tier.', (s) => s.bytes, true);
    tierGauge('outpost_cache_shared_entries', 'Entries held by the node-wide (disk) cache tier.', (s) => s.entries, true);
    tierGauge('outpost_cache_shared_evictions', 'Entries evicted from the node-wide (disk) cache tier for room.', (s) => s.evictions, true);
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'outpost_process_' });
  }
}
