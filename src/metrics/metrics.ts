// Prometheus metrics of one process. In a multi-worker node the primary merges every worker's
// registry (prom-client's AggregatorRegistry), so /metrics shows the node as a whole.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type Metric } from 'prom-client';

/** Request duration buckets in seconds, as seed 004 configures VTS. */
export const DURATION_BUCKETS = [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10];
const UPSTREAM_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface TierGaugeSource {
  readonly name: string;
  /** Disk tiers are shared by the node's workers, so they are not summed across workers. */
  readonly shared: boolean;
  stats(): { bytes: number; entries: number; evictions: number };
}

/**
 * A histogram with one label whose observe() is a bucket search and three additions. prom-client's
 * hashes its labels on every call, which cost as much as the rest of the per-request bookkeeping on
 * a cache HIT. The registry and the cluster aggregator read it through get(), in prom-client's shape.
 */
export class FastHistogram<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly labelNames: readonly L[];
  readonly #label: L;
  readonly #bounds: readonly number[];
  /** Label value → counts per bucket (the last one is +Inf, non-cumulative), sum, count. */
  #series = new Map<string, { counts: Float64Array; sum: number; count: number }>();

  constructor(config: { name: string; help: string; label: L; buckets: readonly number[]; registers: readonly Registry[] }) {
    this.name = config.name;
    this.help = config.help;
    this.#label = config.label;
    this.labelNames = [config.label];
    this.#bounds = [...config.buckets].sort((a, b) => a - b);
    for (const r of config.registers) r.registerMetric(this as unknown as Metric);
  }

  observe(labels: Partial<Record<L, string | number>>, value: number): void {
    this.observeFor(String(labels[this.#label] ?? ''), value);
  }

  /** observe() for a label value given directly: no labels object. */
  observeFor(labelValue: string, value: number): void {
    if (!Number.isFinite(value)) return;
    let s = this.#series.get(labelValue);
    if (s === undefined) this.#series.set(labelValue, (s = { counts: new Float64Array(this.#bounds.length + 1), sum: 0, count: 0 }));
    const b = this.#bounds;
    let i = 0;
    while (i < b.length && value > b[i]!) i++;
    s.counts[i]! += 1;
    s.sum += value;
    s.count += 1;
  }

  reset(): void {
    this.#series = new Map();
  }

  async get(): Promise<{ name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> }> {
    const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
    for (const [lv, s] of this.#series) {
      let acc = 0;
      for (let i = 0; i < this.#bounds.length; i++) {
        acc += s.counts[i]!;
        values.push({ labels: { le: this.#bounds[i]!, [this.#label]: lv }, value: acc, metricName: `${this.name}_bucket` });
      }
      values.push({ labels: { le: '+Inf', [this.#label]: lv }, value: s.count, metricName: `${this.name}_bucket` });
      values.push({ labels: { [this.#label]: lv }, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { [this.#label]: lv }, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

/** Requests and bytes of one (status, cache) pair since prom-client last read them. */
interface RequestTally {
  readonly labels: { status: string; cache: string };
  requests: number;
  /** Requests not yet handed to outpost_response_bytes_total (a bodiless one still creates its series). */
  bytesRequests: number;
  bytes: number;
}

export class EdgeMetrics {
  readonly registry = new Registry();
  /** The driver calls observeRequest() per request; its tallies reach these two counters when they are read. */
  readonly requests: Counter<'status' | 'cache'>;
  readonly bytesSent: Counter<'cache'>;
  readonly duration: FastHistogram<'cache'>;
  /** cache → status → tally: two map lookups on constant keys, no string built per request. */
  readonly #tallies = new Map<string, Map<number, RequestTally>>();
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
  readonly upstreamCache = new Counter({
    name: 'outpost_upstream_cache_total',
    help: 'Responses this cache fetched upstream, by the X-Cache-Status the upstream sent (an origin shield: HIT, MISS…; an origin: none).',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });
  readonly securityRefusals = new Counter({
    name: 'outpost_security_refusals_total',
    help: 'Requests the security cascade answered itself, by gate and status.',
    labelNames: ['gate', 'status'] as const,
    registers: [this.registry],
  });
  readonly purges = new Counter({
    name: 'outpost_purged_objects_total',
    help: 'Cache entries removed or marked stale by purges, by kind.',
    labelNames: ['kind', 'mode'] as const,
    registers: [this.registry],
    aggregator: 'sum',
  });
  // Compression happens once per cached object and coding, never per hit: plain counters will do.
  readonly compressions = new Counter({
    name: 'outpost_compressions_total',
    help: 'Bodies compressed by the edge, by coding: each cached object once per coding, plus responses not stored, compressed on the fly.',
    labelNames: ['encoding'] as const,
    registers: [this.registry],
  });
  readonly compressionBytesIn = new Counter({
    name: 'outpost_compression_bytes_in_total',
    help: 'Bytes given to the compressor, by coding.',
    labelNames: ['encoding'] as const,
    registers: [this.registry],
  });
  readonly compressionBytesOut = new Counter({
    name: 'outpost_compression_bytes_out_total',
    help: 'Bytes the compressor produced, by coding.',
    labelNames: ['encoding'] as const,
    registers: [this.registry],
  });
  readonly decompressions = new Counter({
    name: 'outpost_decompressions_total',
    help: 'Pre-compressed origin bodies decoded for clients that do not accept their coding, by coding.',
    labelNames: ['encoding'] as const,
    registers: [this.registry],
  });

  constructor(tiers: readonly TierGaugeSource[] = [], opts: { defaultMetrics?: boolean } = {}) {
    const tallies = this.#tallies;
    const pending = function* (): Generator<RequestTally> {
      for (const byStatus of tallies.values()) yield* byStatus.values();
    };
    this.requests = new Counter({
      name: 'outpost_requests_total',
      help: 'Requests answered, by status code and cache status.',
      labelNames: ['status', 'cache'] as const,
      registers: [this.registry],
      collect() {
        for (const t of pending()) {
          if (t.requests > 0) this.inc(t.labels, t.requests);
          t.requests = 0;
        }
      },
    });
    this.bytesSent = new Counter({
      name: 'outpost_response_bytes_total',
      help: 'Response body bytes sent to clients, by cache status.',
      labelNames: ['cache'] as const,
      registers: [this.registry],
      collect() {
        for (const t of pending()) {
          if (t.bytesRequests > 0) this.inc({ cache: t.labels.cache }, t.bytes);
          t.bytesRequests = 0;
          t.bytes = 0;
        }
      },
    });
    this.duration = new FastHistogram({
      name: 'outpost_request_duration_seconds',
      help: 'Time from request arrival to the last byte sent.',
      label: 'cache',
      buckets: DURATION_BUCKETS,
      registers: [this.registry],
    });
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

  /** Counts one answered request in outpost_requests_total, outpost_response_bytes_total and the duration histogram. */
  observeRequest(status: number, cache: string, bytes: number, seconds: number): void {
    let byStatus = this.#tallies.get(cache);
    if (byStatus === undefined) this.#tallies.set(cache, (byStatus = new Map()));
    let t = byStatus.get(status);
    if (t === undefined) byStatus.set(status, (t = { labels: { status: String(status), cache }, requests: 0, bytesRequests: 0, bytes: 0 }));
    t.requests++;
    t.bytesRequests++;
    t.bytes += bytes;
    this.duration.observeFor(cache, seconds);
  }
}
