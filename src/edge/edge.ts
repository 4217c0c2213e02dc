// Builds one edge process from the configuration: storage tiers, HTTP cache, collapsing, origin
// pools, the phase driver and its listeners. A cluster worker runs one; so does an in-process node.
import type { ServerHttp2Session } from 'node:http2';
import type { Logger } from 'pino';
import { HttpCache, type Outgoing } from '../cache/http-cache.ts';
import { compileCacheKey, compileIgnoredParamsFilter } from '../cache/key.ts';
import { compressionFromConfig } from '../cache/compress.ts';
import { Collapser } from '../cache/lock.ts';
import type { PolicyOptions } from '../cache/policy.ts';
import { RamTier } from '../cache/storage/ram.ts';
import type { PurgeSpec, StorageTier } from '../cache/storage/tier.ts';
import type { Coordinator } from '../cluster/coordinator.ts';
import type { OutpostConfig } from '../config/load.ts';
import { OutpostError } from '../errors.ts';
import { EdgeMetrics } from '../metrics/metrics.ts';
import { UpstreamPool } from '../upstream/pool.ts';
import { Driver } from './driver.ts';
import type { EdgeHooks, RequestContext } from './phases.ts';
import { isAllowed, parseCidrList } from './cidr.ts';
import { securityHooks } from '../security/cascade.ts';
import { closeGracefully, createListeners, listen } from './server.ts';
import type { TlsMaterial } from './tls.ts';
import type { DocBoard } from '../control/doc-board.ts';
import { rulesHookOptions, rulesHooks } from '../rules/hooks.ts';
import { boardRules } from '../rules/live.ts';
import { realIpResolver } from './real-ip.ts';

export interface EdgeOptions {
  readonly config: OutpostConfig;
  readonly coordinator: Coordinator;
  readonly log: Logger;
  readonly tls?: TlsMaterial;
  /** Hook sets for the phases; a function receives the edge's metrics (to register its own). */
  readonly hooks?: readonly EdgeHooks[] | ((metrics: EdgeMetrics) => readonly EdgeHooks[]);
  /** Workers of a cluster share their ports (SO_REUSEPORT) and leave the disk tier's upkeep to the primary. */
  readonly clustered: boolean;
  readonly prefetchToken: string;
  /** Stored documents (IP lists, rules) as this process last received them. */
  readonly board?: DocBoard;
}

export interface Edge {
  readonly port: number;
  readonly tlsPort: number | undefined;
  readonly metrics: EdgeMetrics;
  readonly tiers: readonly StorageTier[];
  readonly cache: HttpCache;
  /** Purges this process's tiers only (the coordinator calls it for node-wide purges). */
  purgeLocal(spec: PurgeSpec, soft: boolean): Promise<number>;
  close(): Promise<void>;
}

export function policyFromConfig(c: OutpostConfig['cache']): PolicyOptions {
  const statusTtlMs = new Map<number, number>();
  for (const [codes, ms] of Object.entries(c.statusTtl)) {
    for (const code of codes.split(/\s+/)) statusTtlMs.set(code === 'any' ? 0 : Number(code), ms);
  }
  return {
    statusTtlMs,
    heuristicFraction: c.heuristic.fraction,
    heuristicMaxMs: c.heuristic.max,
    defaultSwrMs: c.staleWhileRevalidate,
    defaultSieMs: c.staleIfError,
    cacheSetCookie: c.cacheSetCookie,
  };
}

export async function startEdge(o: EdgeOptions): Promise<Edge> {
  const { config, log } = o;
  const tiers: StorageTier[] = [new RamTier({ maxBytes: config.cache.ram.maxBytes, maxObjectBytes: config.cache.ram.maxObjectBytes })];
  if (config.cache.disk.enabled) {
    tiers.push(await (await import('../cache/storage/disk.ts')).DiskTier.open({ path: config.cache.disk.path, maxBytes: config.cache.disk.maxBytes, maxObjectBytes: config.cache.disk.maxObjectBytes }));
  }
  const metrics = new EdgeMetrics(tiers.map((t) => ({ name: t.name, shared: t.name === 'disk', stats: () => t.stats() })));
  const rules = o.board ? [rulesHooks(boardRules(o.board, Object.keys(config.upstream.pools), log), rulesHookOptions(config, log))] : [];
  const security = securityHooks(config.security, log, {
    ...(o.board ? { board: o.board } : {}),
    onRefusal: (gate, status) => metrics.securityRefusals.inc({ gate, status: String(status) }),
    ...(o.coordinator.rateLimit ? { rateLimit: o.coordinator.rateLimit } : {}),
    registry: metrics.registry,
  });
  const pools = new Map<string, UpstreamPool>();
  for (const [name, pc] of Object.entries(config.upstream.pools)) pools.set(name, new UpstreamPool(name, pc, metrics, log));
  const pool = (name: string): UpstreamPool => {
    const p = pools.get(name);
    if (!p) throw new OutpostError('NO_UPSTREAM', `no upstream pool named "${name}"`);
    return p;
  };
  const keyFn = compileCacheKey(config.cache.key);
  const stripIgnored = compileIgnoredParamsFilter(config.cache.key.ignoreParams);
  const keyOf = (parts: { scheme: string; host: string; path: string; query: string }) => keyFn(parts);

  const cache = new HttpCache({
    enabled: config.cache.enabled,
    tiers,
    policy: policyFromConfig(config.cache),
    ...(config.cache.lock.enabled ? { collapser: new Collapser(o.coordinator.lock, { timeoutMs: config.cache.lock.timeout }) } : {}),
    pool,
    forwarding: { xForwardedFor: config.edge.xForwardedFor, via: config.edge.via, name: config.edge.name },
    metrics,
    log,
    name: config.edge.name,
    keyOf,
    invalidate: async (keys) => {
      await Promise.all(keys.map((key) => o.coordinator.purge({ kind: 'key', key }, false)));
    },
    compression: compressionFromConfig(config.compression),
  });

  // Every process applies a purge to all its tiers, the shared disk tier included: a worker that
  // committed a fill just after the primary purged the disk removes it again here. In a cluster the
  // primary counts the disk tier's entries, so a worker reports only its RAM tier's.
  const purgeLocal = async (spec: PurgeSpec, soft: boolean): Promise<number> => {
    cache.notePurge(spec, soft);
    const counts = await Promise.all(
      tiers.map(async (t) => {
        const n = await t.purge(spec, soft);
        return o.clustered && t.name === 'disk' ? 0 : n;
      }),
    );
    const n = counts.reduce((a, b) => a + b, 0);
    if (n) metrics.purges.inc({ kind: spec.kind, mode: soft ? 'soft' : 'hard' }, n);
    return n;
  };
  o.coordinator.onPurge(purgeLocal);

  const purgeAllow = parseCidrList(config.purge.allowFrom);
  let draining = false;
  // Synchronous except for PURGE: most requests pass through here on the hot path.
  const builtin = (ctx: RequestContext): Outgoing | Promise<Outgoing> | undefined => {
    if (ctx.path === '/health' && (ctx.method === 'GET' || ctx.method === 'HEAD') && !ctx.query) {
      ctx.cacheOutcome = 'BYPASS';
      return { status: draining ? 503 : 200, headers: { 'content-type': 'text/plain', 'cache-control': 'no-store' }, body: Buffer.from(draining ? 'draining\n' : 'ok\n') };
    }
    if (ctx.method === 'PURGE') return purgeRequest(ctx);
    return undefined;
  };
  const purgeRequest = async (ctx: RequestContext): Promise<Outgoing> => {
    ctx.cacheOutcome = 'BYPASS';
    if (!isAllowed(purgeAllow, ctx.clientIp)) throw new OutpostError('FORBIDDEN', `PURGE from ${ctx.clientIp} is not allowed by purge.allowFrom`);
    const soft = ctx.headers['x-purge-soft'] === '1' || ctx.headers['x-purge-soft'] === 'true';
    // Like `outpost purge URL`: both the http and the https copy of the URL.
    let count = 0;
    for (const scheme of ['http', 'https'] as const) {
      count += await o.coordinator.purge({ kind: 'key', key: keyFn({ scheme, host: ctx.host, path: ctx.path, query: ctx.query }) }, soft);
    }
    log.info({ key: ctx.cacheKey, soft, count, ip: ctx.clientIp }, 'purged by PURGE request');
    const body = Buffer.from(JSON.stringify({ purged: count, key: ctx.cacheKey, soft }) + '\n');
    return { status: count ? 200 : 404, headers: { 'content-type': 'application/json', 'cache-control': 'no-store' }, body };
  };

  const driver = new Driver({
    realIp: realIpResolver(config.edge.trustedProxies, config.edge.realIpHeader),
    // The rules run first (in rewrite), the security cascade first in access; then hooks given by
    // the caller (CUs, tests).
    hooks: [...rules, ...security, ...(typeof o.hooks === 'function' ? o.hooks(metrics) : (o.hooks ?? []))],
    stages: {
      cacheKey: (ctx) => {
        if (stripIgnored) ctx.query = stripIgnored(ctx.query);
        return keyFn({ scheme: ctx.scheme, host: ctx.host, path: ctx.path, query: ctx.query });
      },
      builtin,
      serve: (ctx, body, refresh) => cache.handle(ctx, body, { refresh }),
    },
    metrics,
    log,
    ...(config.log.access ? { access: log.child({ type: 'access' }) } : {}),
    maxBodyBytes: config.limits.maxBodyBytes,
    prefetchToken: o.prefetchToken,
    draining: () => draining,
  });

  const listeners = createListeners(config, driver, o.tls, log, metrics);
  const sessions = new Set<ServerHttp2Session>();
  listeners.https?.on('session', (s: ServerHttp2Session) => {
    sessions.add(s);
    s.once('close', () => sessions.delete(s));
  });
  const port = await listen(listeners.http, config.edge.port, config.edge.host, o.clustered);
  const tlsPort = listeners.https ? await listen(listeners.https, config.edge.tlsPort, config.edge.host, o.clustered) : undefined;

  return {
    port,
    tlsPort,
    metrics,
    tiers,
    cache,
    purgeLocal,
    async close() {
      draining = true;
      for (const s of sessions) s.close();
      await Promise.all([
        closeGracefully(listeners.http, config.edge.shutdownGrace),
        listeners.https ? closeGracefully(listeners.https, config.edge.shutdownGrace) : undefined,
      ]);
      await Promise.all([...pools.values()].map((p) => p.close()));
      await cache.drain();
      await Promise.all(tiers.map((t) => t.close()));
    },
  };
}
