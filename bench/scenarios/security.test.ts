import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { IpSet } from '../../src/lists/ip-set.ts';
import { startDemoOrigin } from '../../src/origin/demo-origin.ts';
import { benchRecord, reportFor } from '../report-fixtures.ts';
import { metricSum } from '../servers/outpost-admin.ts';
import * as outpost from '../servers/outpost.ts';
import * as outpostSecure from '../servers/outpost-secure.ts';
import { checkGates, DENIED_PROBE_ADDRESS, denyEntries } from '../servers/outpost-secure.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('the 10,000-entry deny list', () => {
  it('has distinct valid blocks that deny the probe address but never 127.0.0.1', () => {
    const entries = denyEntries();
    expect(entries).toHaveLength(10_000);
    expect(new Set(entries).size).toBe(10_000);
    const set = IpSet.from(entries);
    expect(set.has('127.0.0.1')).toBe(false);
    expect(set.has(DENIED_PROBE_ADDRESS)).toBe(true);
    expect(entries.filter((e) => e.startsWith('127.'))).toEqual(['127.66.0.0/16']);
    expect(denyEntries()).toEqual(entries);
  });
});

describe('metric sums from an exposition', () => {
  it('adds the series whose labels match and ignores other metrics with the same prefix', () => {
    const text = [
      '# HELP outpost_compressions_total Bodies compressed.',
      'outpost_compressions_total{encoding="br"} 50',
      'outpost_compressions_total{encoding="gzip"} 49',
      'outpost_compressions_total_extra{encoding="br"} 7',
      'outpost_requests_total{status="200",cache="HIT"} 1000',
      'outpost_requests_total{status="200",cache="MISS"} 50',
      'outpost_requests_total{status="403",cache="NONE"} 2',
    ].join('\n');
    expect(metricSum(text, 'outpost_compressions_total', { encoding: 'br' })).toBe(50);
    expect(metricSum(text, 'outpost_compressions_total')).toBe(99);
    expect(metricSum(text, 'outpost_requests_total', { cache: 'HIT' })).toBe(1000);
    expect(metricSum(text, 'outpost_requests_total')).toBe(1052);
    expect(metricSum(text, 'outpost_security_refusals_total', { gate: 'waf' })).toBe(0);
  });
});

describe('the issue 5 report section', () => {
  const rec = benchRecord;
  const doc = reportFor;

  it('gives the share of plain throughput against the 85 % target and the compressions per object', () => {
    const text = doc([
      rec('sec-hit-1k-w1', 'outpost', { rps: 70_000, p50Ms: 0.6, p99Ms: 1.2 }),
      rec('sec-hit-1k-w1', 'outpost-secure', { rps: 63_000, p50Ms: 0.7, p99Ms: 1.4, rateLimited: 0 }),
      rec('compress-w2', 'outpost', { rps: 20_000, objects: 50, brCompressions: 50, gzipCompressions: 50, hitPct: 100 }),
    ]);
    expect(text).toContain('### Issue 5: security and compression');
    expect(text).toMatch(/\| HIT 1 KB \| 70,000 \| 63,000 \| 90\.0 % \| ≥ 85 % \| PASS \|/);
    expect(text).toContain('br 50 / gzip 50 for 50 objects | once per object and coding | PASS');
  });

  it('fails a share under 85 % and a second compression of an object', () => {
    const text = doc([
      rec('sec-hit-1k-w1', 'outpost', { rps: 70_000 }),
      rec('sec-hit-1k-w1', 'outpost-secure', { rps: 56_000 }),
      rec('compress-w2', 'outpost', { objects: 50, brCompressions: 51, gzipCompressions: 50 }),
    ]);
    expect(text).toMatch(/\| 80\.0 % \| ≥ 85 % \| FAIL \|/);
    expect(text).toContain('br 51 / gzip 50 for 50 objects | once per object and coding | FAIL');
  });

  it('is left out when neither scenario ran', () => {
    expect(doc([rec('hit-1k-w1', 'outpost', { rps: 1 })])).not.toContain('Issue 5');
  });
});

describe('Outpost with the security gates', () => {
  it('refuses the probe address and the WAF attack once its list is loaded; plain Outpost fails the check', async () => {
    const origin = await startDemoOrigin({ port: 0, host: '127.0.0.1', latency: false });
    const dir = mkdtempSync(join(tmpdir(), 'bench-secure-'));
    const bin = process.execPath;
    const servers: Array<{ stop(): Promise<void> }> = [];
    for (const sub of ['secure', 'plain']) mkdirSync(join(dir, sub));
    try {
      const secure = await outpostSecure.start(origin.port, 1, { dir: join(dir, 'secure'), bin, root });
      servers.push(secure);
      const plain = await outpost.start(origin.port, 1, { dir: join(dir, 'plain'), bin, root });
      servers.push(plain);
      const gates = await checkGates(secure);
      expect(gates).toMatchObject({ listEntries: 10_000, deniedStatus: 403, wafStatus: 403, ipRefusals: 1, wafRefusals: 1, rateLimitMode: 'local' });
      expect(gates.wafRule).not.toBe('');
      await expect(checkGates(plain)).rejects.toThrow(/gates are not all on/);
    } finally {
      await Promise.all(servers.map((s) => s.stop()));
      await origin.close(0);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
