// A whole node in one process: demo origin (if enabled), one edge and the admin API. Tests use it;
// so can programs that embed Outpost. `outpost start` runs the multi-process node (src/node/primary.ts).
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { InProcessCoordinator } from '../cluster/coordinator.ts';
import { RateLimitAuthority } from '../security/ratelimit/authority.ts';
import { compileCacheKey } from '../cache/key.ts';
import type { OutpostConfig } from '../config/load.ts';
import { ComputePlane } from '../compute/plane.ts';
import type { CuStatus } from '../compute/registry.ts';
import { createComputeWorker, type ComputeWorker } from '../compute/worker-side.ts';
import { createAdminServer } from '../control/admin.ts';
import { cuRoutes } from '../control/cu-routes.ts';
import { DocBoard } from '../control/doc-board.ts';
import { listRoutes } from '../lists/routes.ts';
import { wafRoutes } from '../security/waf/routes.ts';
import { rulesRoutes } from '../rules/routes.ts';
import { RULES_DOC, rulesDoc, storeRules } from '../rules/live.ts';
import { joinFleet, nodeRoutes } from '../fleet/join.ts';
import type { FleetMember } from '../fleet/member.ts';
import type { Fleet } from '../fleet/fleet.ts';
import type { CuStore } from '../compute/store/store.ts';
import type { EdgeMetrics } from '../metrics/metrics.ts';
import { prefetch } from '../control/prefetch.ts';
import { startEdge, type Edge } from '../edge/edge.ts';
import type { EdgeHooks } from '../edge/phases.ts';
import { loadOrCreateCertificate } from '../edge/tls.ts';
import { createLogger, type Logger } from '../log/logger.ts';
import { parseLatency, startDemoOrigin, type DemoOrigin } from '../origin/demo-origin.ts';

export interface InProcessNode {
  readonly edge: Edge;
  /** Present when edge computing is on. */
  readonly compute?: { readonly plane: ComputePlane; status(): readonly CuStatus[] };
  /** The node's store watcher (CUs, rules, IP lists), on whether edge computing is on or not. */
  readonly plane: ComputePlane;
  /** The documents this node's edge holds. */
  readonly board: DocBoard;
  /** This node's membership of the fleet (registry, purge log). */
  readonly member: FleetMember;
  readonly adminPort: number;
  readonly origin?: DemoOrigin;
  readonly coordinator: InProcessCoordinator;
  readonly log: Logger;
  close(): Promise<void>;
}

export interface InProcessNodeOptions {
  readonly hooks?: readonly EdgeHooks[];
  readonly log?: Logger;
  /** A store shared by several in-process nodes (`outpost up` with the embedded store). */
  readonly store?: CuStore;
  /** A fleet shared by several in-process nodes. */
  readonly fleet?: Fleet;
}

export async function startInProcessNode(config: OutpostConfig, opts: InProcessNodeOptions = {}): Promise<InProcessNode> {
  const log = opts.log ?? createLogger(config.log.level);
  const origin = config.demoOrigin.enabled
    ? await startDemoOrigin({ host: config.demoOrigin.host, port: config.demoOrigin.port, latency: parseLatency(config.demoOrigin.latency) })
    : undefined;
  const tls = config.edge.tlsPort !== 0 ? await loadOrCreateCertificate(config.edge.tls) : undefined;
  const rateLimits = await RateLimitAuthority.start(config, log);
  const coordinator = new InProcessCoordinator({ lockMaxAgeMs: config.cache.lock.timeout * 2, ...(rateLimits ? { rateLimit: rateLimits.channel() } : {}) });
  const token = randomBytes(16).toString('hex');
  let compute: ComputeWorker | undefined;
  const board = new DocBoard();
  const plane = await ComputePlane.start(config, log, (s) => {
    board.apply(s.docs);
    compute?.apply(s);
  }, opts.store);
  const firstDocs = plane.current()?.docs;
  if (firstDocs) board.apply(firstDocs);
  const hooks = (metrics: EdgeMetrics): EdgeHooks[] => {
    const list = [...(opts.hooks ?? [])];
    if (config.compute.enabled) {
      compute = createComputeWorker({ config, log, registry: metrics.registry, services: plane.services() });
      const first = plane.current();
      if (first) compute.apply(first);
      list.push(compute.hooks);
    }
    return list;
  };
  const edge = await startEdge({ config, coordinator, log, ...(tls ? { tls } : {}), hooks, board, clustered: false, prefetchToken: token });
  const keyOf = compileCacheKey(config.cache.key);
  const pools = Object.keys(config.upstream.pools);
  let adminBound: number | undefined;
  const member = await joinFleet({
    config,
    log,
    edgeUrl: () => `http://${config.edge.host}:${edge.port}`,
    adminUrl: () => (adminBound ? `http://${config.admin.host}:${adminBound}` : undefined),
    metricsText: () => edge.metrics.registry.metrics(),
    applyLocal: (spec, soft) => coordinator.purge(spec, soft),
    hasOldObjects: () => edge.tiers.some((t) => t.name === 'disk' && t.stats().entries > 0),
    ...(opts.fleet ? { fleet: opts.fleet } : {}),
  });
  const admin: Server = createAdminServer({
    log,
    apiKey: config.admin.apiKey,
    keyOf,
    metrics: async () => ({ contentType: edge.metrics.registry.contentType, body: await edge.metrics.registry.metrics() }),
    status: async () => ({ mode: 'in-process', pid: process.pid, tiers: edge.tiers.map((t) => ({ tier: t.name, ...t.stats() })) }),
    purge: (spec, soft) => member.purge(spec, soft),
    prefetch: (urls) => prefetch(urls, { httpPort: edge.port, tlsPort: edge.tlsPort, token }),
    ...(config.compute.enabled ? { compute: cuRoutes(plane, async () => [{ worker: 'in-process', pid: process.pid, cus: compute?.status() ?? [] }]) } : {}),
    routes: [
      listRoutes(plane.store, log),
      wafRoutes(plane.store, config.security.waf, log),
      nodeRoutes(member, config.fleet.heartbeat),
      rulesRoutes(rulesDoc(plane.store), storeRules(() => plane.current()?.docs.find((d) => d.name === RULES_DOC), pools, log).current, { pools, log }),
    ],
  });
  await new Promise<void>((resolve, reject) => {
    admin.once('error', reject);
    admin.listen(config.admin.port, config.admin.host, () => resolve());
  });
  adminBound = (admin.address() as AddressInfo).port;
  return {
    edge,
    adminPort: (admin.address() as AddressInfo).port,
    ...(config.compute.enabled ? { compute: { plane, status: () => compute?.status() ?? [] } } : {}),
    plane,
    board,
    member,
    ...(origin ? { origin } : {}),
    coordinator,
    log,
    async close() {
      admin.close();
      admin.closeAllConnections();
      await member.close();
      await edge.close();
      await rateLimits?.close();
      compute?.close();
      await plane.close();
      await origin?.close();
    },
  };
}
