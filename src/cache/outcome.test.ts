import { describe, expect, it } from 'vitest';
import { CACHE_OUTCOMES, formatCacheStatus } from './outcome.ts';

describe('formatCacheStatus', () => {
  it('renders a hit with its remaining ttl in whole seconds', () => {
    expect(formatCacheStatus('Outpost', { outcome: 'HIT', ttlMs: 376_999 })).toBe('Outpost; hit; ttl=376');
  });

  it('renders a hit without ttl when none is given', () => {
    expect(formatCacheStatus('Outpost', { outcome: 'HIT' })).toBe('Outpost; hit');
  });

  it('renders a collapsed hit as a forwarded miss that was collapsed', () => {
    expect(formatCacheStatus('Outpost', { outcome: 'HIT', ttlMs: 60_000, collapsed: true })).toBe('Outpost; fwd=uri-miss; collapsed; ttl=60');
  });

  it('renders stale-while-revalidate as a hit with negative ttl', () => {
    expect(formatCacheStatus('Outpost', { outcome: 'UPDATING', ttlMs: -412_000 })).toBe('Outpost; hit; ttl=-412');
  });

  it('rounds stale ttls down so that stale is always negative', () => {
    expect(formatCacheStatus('Outpost', { outcome: 'UPDATING', ttlMs: -1 })).toBe('Outpost; hit; ttl=-1');
    expect(formatCacheStatus('Outpost', { outcome: 'HIT', ttlMs: 999 })).toBe('Outpost; hit; ttl=0');
    expect(formatCacheStatus('Outpost', { outcome: 'HIT', ttlMs: -0 })).toBe('Outpost; hit; ttl=0');
  });

  it('renders stale served because the origin was unreachable as a hit with detail', () => {
    expect(formatCacheStatus('Outpost', { outcome: 'STALE', ttlMs: -30_000, detail: 'UPSTREAM_CONNECT' })).toBe('Outpost; hit; ttl=-30; detail=UPSTREAM_CONNECT');
  });

  it('renders stale served after an origin error status as a forward', () => {
    expect(formatCacheStatus('Outpost', { outcome: 'STALE', ttlMs: -30_000, fwdStatus: 503, detail: 'origin-503' })).toBe(
      'Outpost; fwd=stale; fwd-status=503; ttl=-30; detail=origin-503',
    );
  });

  it('renders a miss with forward status and stored', () => {
    expect(formatCacheStatus('Outpost', { outcome: 'MISS', fwdStatus: 200, stored: true })).toBe('Outpost; fwd=uri-miss; fwd-status=200; stored');
    expect(formatCacheStatus('Outpost', { outcome: 'MISS', fwdStatus: 200, stored: true, ttlMs: 60_000 })).toBe(
      'Outpost; fwd=uri-miss; fwd-status=200; stored; ttl=60',
    );
  });

  it('lets the caller name a more specific forward reason', () => {
    expect(formatCacheStatus('Outpost', { outcome: 'MISS', fwd: 'vary-miss', fwdStatus: 200 })).toBe('Outpost; fwd=vary-miss; fwd-status=200');
    expect(formatCacheStatus('Outpost', { outcome: 'MISS', fwd: 'request' })).toBe('Outpost; fwd=request');
  });

  it('writes false stored and collapsed as ?0', () => {
    expect(formatCacheStatus('Outpost', { outcome: 'MISS', stored: false, collapsed: false })).toBe('Outpost; fwd=uri-miss; stored=?0; collapsed=?0');
  });

  it('renders a collapsed miss', () => {
    expect(formatCacheStatus('Outpost', { outcome: 'MISS', collapsed: true, stored: true })).toBe('Outpost; fwd=uri-miss; stored; collapsed');
  });

  it('renders an expired entry replaced from the origin as fwd=stale', () => {
    expect(formatCacheStatus('Outpost', { outcome: 'EXPIRED', fwdStatus: 200, stored: true })).toBe('Outpost; fwd=stale; fwd-status=200; stored');
  });

  it('renders a revalidation as fwd=stale with fwd-status 304', () => {
    expect(formatCacheStatus('Outpost', { outcome: 'REVALIDATED', ttlMs: 300_000 })).toBe('Outpost; fwd=stale; fwd-status=304; ttl=300');
  });

  it('renders a configured bypass with its reason', () => {
    expect(formatCacheStatus('Outpost', { outcome: 'BYPASS', fwdStatus: 200, detail: 'config' })).toBe('Outpost; fwd=bypass; fwd-status=200; detail=config');
  });

  it('renders a bypass for the method as fwd=method', () => {
    expect(formatCacheStatus('Outpost', { outcome: 'BYPASS', fwdStatus: 201, detail: 'method' })).toBe('Outpost; fwd=method; fwd-status=201; detail=method');
  });

  it('renders a response the cache refused to store as a miss that was not stored', () => {
    expect(formatCacheStatus('Outpost', { outcome: 'BYPASS', fwdStatus: 200, detail: 'private', ttlMs: 5000 })).toBe(
      'Outpost; fwd=miss; fwd-status=200; stored=?0; detail=private',
    );
    expect(formatCacheStatus('Outpost', { outcome: 'BYPASS', fwd: 'stale', detail: 'no-freshness' })).toBe('Outpost; fwd=stale; stored=?0; detail=no-freshness');
  });

  it('quotes a detail that is not a token', () => {
    expect(formatCacheStatus('Outpost', { outcome: 'HIT', detail: 'disk tier' })).toBe('Outpost; hit; detail="disk tier"');
    expect(formatCacheStatus('Outpost', { outcome: 'HIT', detail: '503' })).toBe('Outpost; hit; detail="503"');
  });

  it('quotes a cache name that is not a token', () => {
    expect(formatCacheStatus('CDN Company Here', { outcome: 'HIT' })).toBe('"CDN Company Here"; hit');
    expect(formatCacheStatus('edge-1.example.com', { outcome: 'HIT' })).toBe('edge-1.example.com; hit');
  });

  it('writes the key as an escaped string with non-printable characters percent-encoded', () => {
    expect(formatCacheStatus('Outpost', { outcome: 'HIT', key: 'https://a/"x"\\y\u0000z\u00e9' })).toBe('Outpost; hit; key="https://a/\\"x\\"\\\\y%00z%C3%A9"');
  });

  it('lists the outcomes in the X-Cache-Status vocabulary', () => {
    expect(CACHE_OUTCOMES).toEqual(['HIT', 'MISS', 'EXPIRED', 'STALE', 'UPDATING', 'REVALIDATED', 'BYPASS']);
  });

  it('never writes hit and fwd together', () => {
    for (const outcome of CACHE_OUTCOMES) {
      for (const extra of [{}, { fwdStatus: 200 }, { collapsed: true }, { fwd: 'stale' as const }]) {
        const s = formatCacheStatus('Outpost', { outcome, ...extra });
        expect(s.includes('; hit') && s.includes('fwd='), `${outcome} ${JSON.stringify(extra)}`).toBe(false);
      }
    }
  });
});
