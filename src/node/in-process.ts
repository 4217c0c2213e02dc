// A whole node in one process: demo origin (if enabled), one edge and the admin API. Tests use it;
// so can programs that embed Outpost. `outpost start` runs the multi-process node (src/node/primary.ts).
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { InProcessCoordinator } from '../cluster/coordinator.ts';
import { compileCacheKey } from '../cache/key.ts';
import type { OutpostConfig } from '../config/load.ts';
import { ComputePlane } from '../compute/plane.ts';
import type { CuStatus } from '../compute/registry.ts';
import { createComputeWorker, type ComputeWorker } from '../compute/worker-side.ts';
import { createAdminServer } from '../control/admin.ts';
import { cuRoutes } from '../control/cu-routes.ts';
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
  readonly adminPort: number;
  readonly origin?: DemoOrigin;
  readonly coordinator: InProcessCoordinator;
  readonly log: Logger;
  close(): Promise<void>;
}

export async function startInProcessNode(config: OutpostConfig, opts: { hooks?: readonly EdgeHooks[]; log?: Logger } = {}): Promise<InProcessNode> {
  const log = opts.log ?? createLogger(config.log.level);
  const origin = config.demoOrigin.enabled
    ? await startDemoOrigin({ host: config.demoOrigin.host, port: config.demoOrigin.port, latency: parseLatency(config.demoOrigin.latency) })
    : undefined;
  const tls = config.edge.tlsPort !== 0 ? await loadOrCreateCertificate(config.edge.tls) : undefined;
  const coordinator = new InProcessCoordinator({ lockMaxAgeMs: config.cache.lock.timeout * 2 });
  const token = randomBytes(16).toString('hex');
  let compute: ComputeWorker | undefined;
  const plane = config.compute.enabled ? await ComputePlane.start(config, log, (s) => compute?.apply(s)) : undefined;
  const hooks = (metrics: EdgeMetrics): EdgeHooks[] => {
    const list = [...(opts.hooks ?? [])];
    if (plane) {
      compute = createComputeWorker({ config, log, registry: metrics.registry, services: plane.services() });
      const first = plane.current();
      if (first) compute.apply(first);
      list.push(compute.hooks);
    }
    return list;
  };
  const edge = await startEdge({ config, coordinator, log, ...(tls ? { tls } : {}), hooks, clustered: false, prefetchToken: token });
  const keyOf = compileCacheKey(config.cache.key);
  const admin: Server = createAdminServer({
    log,
    apiKey: config.admin.apiKey,
    keyOf,
    metrics: async () => ({ contentType: edge.metrics.registry.contentType, body: await edge.metrics.registry.metrics() }),
    status: async () => ({ mode: 'in-process', pid: process.pid, tiers: edge.tiers.map((t) => ({ tier: t.name, ...t.stats() })) }),
    purge: (spec, soft) => coordinator.purge(spec, soft),
    prefetch: (urls) => prefetch(urls, { httpPort: edge.port, tlsPort: edge.tlsPort, token }),
    ...(plane ? { compute: cuRoutes(plane, async () => [{ worker: 'in-process', pid: process.pid, cus: compute?.status() ?? [] }]) } : {}),
  });
  await new Promise<void>((resolve, reject) => {
    admin.once('error', reject);
    admin.listen(config.admin.port, config.admin.host, () => resolve());
  });
  return {
    edge,
    adminPort: (admin.address() as AddressInfo).port,
    ...(plane ? { compute: { plane, status: () => compute?.status() ?? [] } } : {}),
    ...(origin ? { origin } : {}),
    coordinator,
    log,
    async close() {
      admin.close();
      admin.closeAllConnections();
      await edge.close();
      compute?.close();
      await plane?.close();
      await origin?.close();
    },
  };
}
