import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { OutpostError } from '../errors.ts';
import { loadConfig, resolveConfig } from './load.ts';

function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(OutpostError);
    return (err as OutpostError).message;
  }
  throw new Error('expected a configuration error');
}

describe('configuration', () => {
  it('has a default for every setting and runs the demo origin when no origin is configured', () => {
    const c = resolveConfig({});
    expect(c.edge.port).toBe(8080);
    expect(c.edge.tlsPort).toBe(8443);
    expect(c.admin).toMatchObject({ host: '127.0.0.1', port: 8081 });
    expect(c.demoOrigin.enabled).toBe(true);
    expect(c.upstream.pools.default?.peers).toEqual(['http://127.0.0.1:9000']);
    expect(c.edge.workers).toBeGreaterThanOrEqual(1);
    expect(c.cache.lock.timeout).toBe(5000);
    expect(c.cache.ram.maxBytes).toBe(256 * 1024 * 1024);
  });

  it('reads durations as seconds or with units, and sizes as bytes or with units', () => {
    const c = resolveConfig({ limits: { headersTimeout: '500ms', requestTimeout: 3, maxBodyBytes: '2m' }, cache: { statusTtl: { '200 206': '1h', any: 10 } } });
    expect(c.limits.headersTimeout).toBe(500);
    expect(c.limits.requestTimeout).toBe(3000);
    expect(c.limits.maxBodyBytes).toBe(2 * 1024 * 1024);
    expect(c.cache.statusTtl).toEqual({ '200 206': 3_600_000, any: 10_000 });
  });

  it('names every bad setting and says what is wrong', () => {
    const msg = messageOf(() => resolveConfig({ edge: { port: 'abc', workers: 0 }, cache: { ram: { maxBytes: '12q' } }, limits: { headersTimeout: 'soon' } }));
    expect(msg).toContain('edge.port: expected a port number (got "abc")');
    expect(msg).toContain('edge.workers: expected at least 1 worker');
    expect(msg).toContain('cache.ram.maxBytes: expected a size');
    expect(msg).toContain('limits.headersTimeout: expected a duration');
  });

  it('refuses unknown origin URL forms and bad status keys', () => {
    expect(messageOf(() => resolveConfig({ upstream: { pools: { default: { peers: ['ftp://x'] } } } }))).toContain('upstream.pools.default.peers.0');
    expect(messageOf(() => resolveConfig({ cache: { statusTtl: { ok: '1m' } } }))).toContain('cache.statusTtl');
  });

  it('requires an API key when the admin API listens beyond loopback', () => {
    expect(messageOf(() => resolveConfig({ admin: { host: '0.0.0.0' } }))).toContain('admin.apiKey: required');
    expect(resolveConfig({ admin: { host: '0.0.0.0', apiKey: 'k'.repeat(32) } }).admin.apiKey).toHaveLength(32);
  });

  it('requires a default pool once pools are configured', () => {
    expect(messageOf(() => resolveConfig({ upstream: { pools: { api: { peers: ['http://127.0.0.1:1'] } } } }))).toContain('upstream.pools.default');
  });

  it('refuses two listeners on one port', () => {
    expect(messageOf(() => resolveConfig({ edge: { port: 9000 } }))).toContain('demoOrigin.port: port 9000 is already used by edge.port');
  });

  it('lets environment variables override the file', () => {
    const c = resolveConfig({ edge: { port: 1234 } }, { env: { OUTPOST_PORT: '4321', OUTPOST_ORIGIN: 'http://127.0.0.1:7000, http://127.0.0.1:7001', OUTPOST_WORKERS: '3' } });
    expect(c.edge.port).toBe(4321);
    expect(c.edge.workers).toBe(3);
    expect(c.upstream.pools.default?.peers).toEqual(['http://127.0.0.1:7000', 'http://127.0.0.1:7001']);
    expect(c.demoOrigin.enabled).toBe(false);
  });

  it('loads YAML and JSON files, and reports unreadable ones by path', () => {
    const dir = mkdtempSync(join(tmpdir(), 'outpost-config-'));
    writeFileSync(join(dir, 'a.yaml'), 'edge:\n  port: 8888\ncache:\n  lock: { timeout: 2s }\n');
    writeFileSync(join(dir, 'b.json'), JSON.stringify({ edge: { port: 8889 } }));
    writeFileSync(join(dir, 'bad.yaml'), 'edge: [unclosed');
    expect(loadConfig(join(dir, 'a.yaml'), {}).cache.lock.timeout).toBe(2000);
    expect(loadConfig(join(dir, 'b.json'), {}).edge.port).toBe(8889);
    expect(messageOf(() => loadConfig(join(dir, 'bad.yaml'), {}))).toContain('cannot parse config file');
    expect(messageOf(() => loadConfig(join(dir, 'missing.yaml'), {}))).toContain('cannot read config file');
  });
});

describe('compute configuration', () => {
  it('defaults to the sandboxed runtime and the embedded store', () => {
    const c = resolveConfig({});
    expect(c.compute.runtime).toBe('isolate');
    expect(c.compute.store.kind).toBe('embedded');
  });

  it('points at Redis with one environment variable', () => {
    const c = resolveConfig({}, { env: { OUTPOST_STORE: 'redis-cluster', OUTPOST_REDIS_NODES: 'redis://10.0.0.1:7000, redis://10.0.0.2:7000' } });
    expect(c.compute.store.kind).toBe('redis-cluster');
    expect(c.compute.store.nodes).toEqual(['redis://10.0.0.1:7000', 'redis://10.0.0.2:7000']);
  });

  it('names a bad store setting', () => {
    expect(() => resolveConfig({ compute: { store: { kind: 'mongo', prefix: 'outpost' } } })).toThrow(/compute\.store\.kind[\s\S]*compute\.store\.prefix: expected a Redis hash tag/);
  });
});
