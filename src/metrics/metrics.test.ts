// Per-request metrics are tallied in plain numbers and reach prom-client when the registry is read;
// these check that what Prometheus sees is what was observed, for one process and merged across workers.
import { AggregatorRegistry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { EdgeMetrics } from './metrics.ts';

const line = (text: string, name: string): number => Number(new RegExp(`^${name.replace(/[{}"+.]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text)?.[1]);

describe('edge request metrics', () => {
  it('counts requests by status and cache status, bytes, and durations in buckets', async () => {
    const m = new EdgeMetrics([], { defaultMetrics: false });
    m.observeRequest(200, 'HIT', 1024, 0.002);
    m.observeRequest(200, 'HIT', 1024, 0.02);
    m.observeRequest(304, 'HIT', 0, 0.001);
    m.observeRequest(502, 'MISS', 10, 7);
    const text = await m.registry.metrics();
    expect(line(text, 'outpost_requests_total{status="200",cache="HIT"}')).toBe(2);
    expect(line(text, 'outpost_requests_total{status="304",cache="HIT"}')).toBe(1);
    expect(line(text, 'outpost_requests_total{status="502",cache="MISS"}')).toBe(1);
    expect(line(text, 'outpost_response_bytes_total{cache="HIT"}')).toBe(2048);
    expect(line(text, 'outpost_request_duration_seconds_bucket{le="0.005",cache="HIT"}')).toBe(2);
    expect(line(text, 'outpost_request_duration_seconds_bucket{le="0.05",cache="HIT"}')).toBe(3);
    expect(line(text, 'outpost_request_duration_seconds_bucket{le="+Inf",cache="HIT"}')).toBe(3);
    expect(line(text, 'outpost_request_duration_seconds_bucket{le="5",cache="MISS"}')).toBe(0);
    expect(line(text, 'outpost_request_duration_seconds_bucket{le="10",cache="MISS"}')).toBe(1);
    expect(line(text, 'outpost_request_duration_seconds_sum{cache="HIT"}')).toBeCloseTo(0.023);
    expect(line(text, 'outpost_request_duration_seconds_count{cache="MISS"}')).toBe(1);
  });

  it('keeps counting across reads: a read hands over what it saw, it does not lose or repeat it', async () => {
    const m = new EdgeMetrics([], { defaultMetrics: false });
    m.observeRequest(200, 'HIT', 1, 0.001);
    await m.registry.metrics();
    m.observeRequest(200, 'HIT', 1, 0.001);
    const text = await m.registry.metrics();
    expect(line(text, 'outpost_requests_total{status="200",cache="HIT"}')).toBe(2);
    expect(line(text, 'outpost_response_bytes_total{cache="HIT"}')).toBe(2);
    expect(line(text, 'outpost_request_duration_seconds_count{cache="HIT"}')).toBe(2);
  });

  it('sums every worker\'s requests and durations when the primary merges their registries', async () => {
    const a = new EdgeMetrics([], { defaultMetrics: false });
    const b = new EdgeMetrics([], { defaultMetrics: false });
    a.observeRequest(200, 'HIT', 100, 0.001);
    b.observeRequest(200, 'HIT', 50, 0.2);
    const merged = AggregatorRegistry.aggregate([await a.registry.getMetricsAsJSON(), await b.registry.getMetricsAsJSON()]);
    const text = await merged.metrics();
    expect(line(text, 'outpost_requests_total{status="200",cache="HIT"}')).toBe(2);
    expect(line(text, 'outpost_response_bytes_total{cache="HIT"}')).toBe(150);
    expect(line(text, 'outpost_request_duration_seconds_bucket{le="0.005",cache="HIT"}')).toBe(1);
    expect(line(text, 'outpost_request_duration_seconds_bucket{le="0.5",cache="HIT"}')).toBe(2);
    expect(line(text, 'outpost_request_duration_seconds_count{cache="HIT"}')).toBe(2);
  });
});
