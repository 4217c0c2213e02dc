// Prometheus metrics of the load balancer node, per member (edge): requests by status, time to
// the last byte, failures by kind, retries, health-check results, and up / in-flight gauges read
// from the balancer when scraped.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Member } from '../balance/balancer.ts';
import { DURATION_BUCKETS, FastHistogram } from '../metrics/metrics.ts';

export class LbMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'member' | 'status'>;
  readonly duration: FastHistogram<'member'>;
  readonly failures: Counter<'member' | 'kind'>;
  readonly retries: Counter<'member'>;
  readonly checks: Counter<'member' | 'result'>;

  constructor(members: () => readonly Member<unknown>[], opts: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.requests = new Counter({
      name: 'outpost_lb_requests_total',
      help: 'Requests answered, by the member that served them ("none" when none could) and status.',
      labelNames: ['member', 'status'] as const,
      registers,
    });
    this.duration = new FastHistogram({
      name: 'outpost_lb_request_duration_seconds',
      help: 'Time from request arrival to the last byte sent, by member.',
      label: 'member',
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.failures = new Counter({
      name: 'outpost_lb_member_failures_total',
      help: 'Failed requests to a member, by kind (connect, timeout, reset, status), as passive health counts them.',
      labelNames: ['member', 'kind'] as const,
      registers,
    });
    this.retries = new Counter({
      name: 'outpost_lb_retries_total',
      help: 'Requests sent to another member after this one failed before any response byte.',
      labelNames: ['member'] as const,
      registers,
    });
    this.checks = new Counter({
      name: 'outpost_lb_health_checks_total',
      help: 'Active health checks, by member and result (ok, fail).',
      labelNames: ['member', 'result'] as const,
      registers,
    });
    new Gauge({
      name: 'outpost_lb_member_up',
      help: '1 when the member may be chosen, 0 when health checks or passive health took it out.',
      labelNames: ['member'] as const,
      registers,
      collect() {
        this.reset();
        for (const m of members()) this.set({ member: m.name }, m.available ? 1 : 0);
      },
    });
    new Gauge({
      name: 'outpost_lb_member_in_flight',
      help: 'Requests sent to the member and not yet finished.',
      labelNames: ['member'] as const,
      registers,
      collect() {
        this.reset();
        for (const m of members()) this.set({ member: m.name }, m.inFlight);
      },
    });
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'outpost_lb_process_' });
  }
}
