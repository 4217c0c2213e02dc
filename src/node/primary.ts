// The primary process of a multi-worker node, like nginx's master: it forks one edge worker per
// core and replaces any that die, holds the node-wide cache lock table, owns the shared disk tier's
// upkeep and purges, runs the admin API, and shuts everything down gracefully.
import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { AggregatorRegistry } from 'prom-client';
import { compileCacheKey } from '../cache/key.ts';
import { LockTable } from '../cache/lock.ts';
import type { PurgeSpec } from '../cache/storage/tier.ts';
import { isOutpostMessage, type PrimaryMessage, type WireFill, type WorkerMessage } from '../cluster/ipc.ts';
import type { OutpostConfig } from '../config/load.ts';
import { ComputePlane } from '../compute/plane.ts';
import { createAdminServer } from '../control/admin.ts';
import { cuRoutes, type WorkerCuStatus } from '../control/cu-routes.ts';
import { listRoutes } from '../lists/routes.ts';
import { wafRoutes } from '../security/waf/routes.ts';
import { rulesRoutes } from '../rules/routes.ts';
import { RULES_DOC, rulesDoc, storeRules } from '../rules/live.ts';
import { joinFleet, nodeRoutes } from '../fleet/join.ts';
import { prefetch } from '../control/prefetch.ts';
import { loadOrCreateCertificate } from '../edge/tls.ts';
import { securityHooks } from '../security/cascade.ts';
import { RateLimitAuthority } from '../security/ratelimit/authority.ts';
import { OutpostError } from '../errors.ts';
import type { Logger } from '../log/logger.ts';
import { parseLatency, startDemoOrigin, type DemoOrigin } from '../origin/demo-origin.ts';

export interface RunningNode {
  readonly edgePort: number;
  readonly tlsPort: number | undefined;
  readonly adminPort: number;
  readonly originPort: number | undefined;
  close(): Promise<void>;
}

/** Crashes within this window count towards the restart limit. */
const CRASH_WINDOW_MS = 30_000;
const MAX_CRASHES_IN_WINDOW = 10;
const PURGE_FANOUT_TIMEOUT_MS = 10_000;

export async function runPrimary(config: OutpostConfig, log: Logger): Promise<RunningNode> {
  // Builds the security gates once here so that bad options stop the start, before any worker forks.
  securityHooks(config.security, log);
  const origin: DemoOrigin | undefined = config.demoOrigin.enabled
    ? await startDemoOrigin({ host: config.demoOrigin.host, port: config.demoOrigin.port, latency: parseLatency(config.demoOrigin.latency) })
    : undefined;
  if (origin) log.info({ url: origin.url }, 'demo origin listening');
  if (config.edge.tlsPort !== 0) {
    const tls = await loadOrCreateCertificate(config.edge.tls);
    if (tls.generated) log.info({ dir: config.edge.tls.dir }, 'generated a self-signed TLS certificate');
  }
  const disk = config.cache.disk.enabled
    ? await (await import('../cache/storage/disk.ts')).DiskTier.open({ path: config.cache.disk.path, maxBytes: config.cache.disk.maxBytes, maxObjectBytes: config.cache.disk.maxObjectBytes })
    : undefined;
  // Fills shared between workers pass through in their wire form.
  const locks = new LockTable<WireFill>({ maxAgeMs: config.cache.lock.timeout * 2 });
  const token = randomBytes(16).toString('hex');
  const keyOf = compileCacheKey(config.cache.key);
  const pools = Object.keys(config.upstream.pools);
  const aggregator = new AggregatorRegistry();

  // The plane watches the store (CUs, rules, IP lists) and pushes every new snapshot to every
  // worker; it runs even with edge computing off, since rules and lists live in the same store.
  const connectedWorkers = () => Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w && w.isConnected());
  const plane = await ComputePlane.start(config, log, (snapshot) => {
    for (const w of connectedWorkers()) send(w, { t: 'outpost:cus', snapshot });
  });
  const services = config.compute.enabled ? plane.services() : undefined;
  // The node's rate-limit buckets; workers lease tokens from them (src/security/ratelimit/).
  const rateLimits = await RateLimitAuthority.start(config, log, (modes) => {
    for (const w of connectedWorkers()) send(w, { t: 'outpost:rl-modes', modes });
  });
  let nextStatusId = 1;
  const statusWaits = new Map<number, { results: WorkerCuStatus[]; pending: Set<number>; done: () => void }>();
  const workerCuStatus = (): Promise<WorkerCuStatus[]> => {
    const workers = connectedWorkers();
    const id = nextStatusId++;
    return new Promise((resolve) => {
      const results: WorkerCuStatus[] = [];
      const finish = () => {
        statusWaits.delete(id);
        resolve(results.sort((a, b) => Number(a.worker) - Number(b.worker)));
      };
      const timer = setTimeout(finish, 2_000);
      statusWaits.set(id, { results, pending: new Set(workers.map((w) => w.id)), done: () => (clearTimeout(timer), finish()) });
      if (workers.length === 0) return finish();
      for (const w of workers) send(w, { t: 'outpost:cu-status-req', id });
    });
  };

  let shuttingDown = false;
  const crashes: number[] = [];
  const ready = new Map<number, { port: number; tlsPort?: number }>();
  const readyWaiters: Array<() => void> = [];
  let nextPurgeId = 1;
  const fanouts = new Map<number, { pending: Set<number>; count: number; done: () => void }>();

  const send = (w: Worker, m: PrimaryMessage) => {
    if (w.isConnected()) w.send(m);
  };

  const nodePurge = async (spec: PurgeSpec, soft: boolean): Promise<number> => {
    let count = disk ? await disk.purge(spec, soft) : 0;
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w && w.isConnected());
    if (workers.length === 0) return count;
    const id = nextPurgeId++;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        log.warn({ id, missing: [...(fanouts.get(id)?.pending ?? [])] }, 'purge: some workers did not answer in time');
        fanouts.delete(id);
        resolve();
      }, PURGE_FANOUT_TIMEOUT_MS);
      fanouts.set(id, {
        pending: new Set(workers.map((w) => w.id)),
        count: 0,
        done: () => {
          clearTimeout(timer);
          count += fanouts.get(id)?.count ?? 0;
          fanouts.delete(id);
          resolve();
        },
      });
      for (const w of workers) send(w, { t: 'outpost:purge-local', id, spec, soft });
    });
    return count;
  };

  const onMessage = (worker: Worker, m: WorkerMessage) => {
    switch (m.t) {
      case 'outpost:ready':
        ready.set(worker.id, { port: m.port, ...(m.tlsPort !== undefined ? { tlsPort: m.tlsPort } : {}) });
        for (const r of readyWaiters.splice(0)) r();
        break;
      case 'outpost:hello': {
        const snapshot = plane.current();
        if (snapshot) send(worker, { t: 'outpost:cus', snapshot });
        break;
      }
      case 'outpost:svc': {
        const id = m.id;
        const run = async (): Promise<unknown> => {
          if (!services) throw new Error('edge computing is off');
          if (m.kind === 'redis') return services.redis(m.name, m.args as (string | number)[]);
          const [key, value, ttl] = m.args as [string, string | number | undefined, number | undefined];
          return services.shared(m.name as 'get', key, value, ttl);
        };
        run().then(
          (value) => send(worker, { t: 'outpost:svc-res', id, value }),
          (err: unknown) => send(worker, { t: 'outpost:svc-res', id, error: (err as Error).message }),
        );
        break;
      }
      case 'outpost:cu-status': {
        const w = statusWaits.get(m.id);
        if (!w) break;
        w.results.push({ worker: worker.id, pid: worker.process.pid ?? 0, cus: m.cus });
        w.pending.delete(worker.id);
        if (w.pending.size === 0) w.done();
        break;
      }
      case 'outpost:lock': {
        const id = m.id;
        const token = locks.acquire(m.key, String(worker.id), (outcome, fill) => send(worker, { t: 'outpost:lock-res', id, granted: false, outcome, ...(fill ? { fill } : {}) }));
        if (token !== undefined) send(worker, { t: 'outpost:lock-res', id, granted: true, token });
        break;
      }
      case 'outpost:unlock':
        locks.release(m.key, m.token, m.outcome);
        break;
      case 'outpost:lock-share':
        locks.share(m.key, m.token, m.fill);
        break;
      case 'outpost:rl-lease':
      case 'outpost:rl-return':
        rateLimits?.receive(m, (r) => send(worker, r));
        break;
      case 'outpost:purge': {
        const id = m.id;
        // A PURGE request to a worker: this node and, through the fleet, every other node.
        member.purge(m.spec, m.soft).then(
          (count) => send(worker, { t: 'outpost:purge-res', id, count }),
          (err: unknown) => send(worker, { t: 'outpost:purge-res', id, count: 0, error: (err as Error).message }),
        );
        break;
      }
      case 'outpost:purged-local': {
        const f = fanouts.get(m.id);
        if (!f) break;
        f.count += m.count;
        f.pending.delete(worker.id);
        if (f.pending.size === 0) f.done();
        break;
      }
    }
  };

  // OUTPOST_CPU_PROF_DIR=dir makes every worker write a V8 CPU profile there when it exits
  // (docs/performance.md, "Profiling").
  const profDir = process.env.OUTPOST_CPU_PROF_DIR;
  // isolated-vm asks for --no-node-snapshot on Node 20 and later.
  const baseArgv = process.execArgv.includes('--no-node-snapshot') ? process.execArgv : [...process.execArgv, '--no-node-snapshot'];
  const execArgv = profDir ? [...baseArgv, '--cpu-prof', '--cpu-prof-dir', profDir] : baseArgv;
  cluster.setupPrimary({ exec: fileURLToPath(new URL('./worker.ts', import.meta.url)), args: [], execArgv });
  const env = { OUTPOST_WORKER_CONFIG: JSON.stringify(config), OUTPOST_PREFETCH_TOKEN: token };
  const fork = () => cluster.fork(env);

  cluster.on('message', (worker, m: unknown) => {
    if (isOutpostMessage(m)) onMessage(worker, m as WorkerMessage);
  });
  cluster.on('exit', (worker, code, signal) => {
    ready.delete(worker.id);
    locks.releaseOwner(String(worker.id));
    for (const [, f] of fanouts) {
      if (f.pending.delete(worker.id) && f.pending.size === 0) f.done();
    }
    if (shuttingDown) return;
    const now = Date.now();
    crashes.push(now);
    while (crashes.length && now - crashes[0]! > CRASH_WINDOW_MS) crashes.shift();
    if (crashes.length > MAX_CRASHES_IN_WINDOW) {
      log.fatal({ crashes: crashes.length }, 'workers keep dying; not restarting them');
      return;
    }
    log.error({ worker: worker.id, pid: worker.process.pid, code, signal }, 'worker died; starting a replacement');
    fork();
  });

  // Joins the fleet before any worker serves: purges published while this node was down are applied
  // to the disk tier first (the workers' RAM tiers start empty).
  let edgePort: number | undefined;
  let adminBound: number | undefined;
  const member = await joinFleet({
    config,
    log,
    edgeUrl: () => (edgePort ? `http://${config.edge.host}:${edgePort}` : undefined),
    adminUrl: () => (adminBound ? `http://${config.admin.host}:${adminBound}` : undefined),
    metricsText: () => aggregator.clusterMetrics(),
    applyLocal: nodePurge,
    hasOldObjects: () => (disk?.stats().entries ?? 0) > 0,
  });
  for (let i = 0; i < config.edge.workers; i++) fork();
  const deadline = Date.now() + 30_000;
  while (ready.size < config.edge.workers) {
    if (Date.now() > deadline) throw new OutpostError('INTERNAL', `only ${ready.size} of ${config.edge.workers} workers started within 30 s`);
    if (crashes.length > MAX_CRASHES_IN_WINDOW) throw new OutpostError('INTERNAL', 'workers die at start; see the log above');
    await new Promise<void>((r) => {
      readyWaiters.push(r);
      setTimeout(r, 250).unref();
    });
  }
  const first = [...ready.values()][0]!;
  edgePort = first.port;

  const maintain = disk
    ? setInterval(() => {
        disk.maintain().then(
          (r) => {
            if (r.evicted || r.orphansRemoved) log.info(r, 'disk cache maintained');
          },
          (err: unknown) => log.warn({ err: (err as Error).message }, 'disk cache maintenance failed'),
        );
      }, config.cache.maintainInterval)
    : undefined;
  maintain?.unref();

  const admin = createAdminServer({
    log,
    apiKey: config.admin.apiKey,
    keyOf,
    metrics: async () => ({ contentType: aggregator.contentType, body: await aggregator.clusterMetrics() }),
    status: async () => ({
      mode: 'cluster',
      pid: process.pid,
      workers: Object.values(cluster.workers ?? {}).map((w) => ({ id: w?.id, pid: w?.process.pid, ready: w ? ready.has(w.id) : false })),
      locks: locks.size,
      disk: disk?.stats(),
      edge: { port: first.port, tlsPort: first.tlsPort },
    }),
    purge: (spec, soft) => member.purge(spec, soft),
    prefetch: (urls) => prefetch(urls, { httpPort: first.port, tlsPort: first.tlsPort, token }),
    ...(config.compute.enabled ? { compute: cuRoutes(plane, workerCuStatus) } : {}),
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
    edgePort: first.port,
    tlsPort: first.tlsPort,
    adminPort: (admin.address() as AddressInfo).port,
    originPort: origin?.port,
    async close() {
      shuttingDown = true;
      if (maintain) clearInterval(maintain);
      admin.close();
      admin.closeAllConnections();
      const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w);
      await Promise.all(
        workers.map(
          (w) =>
            new Promise<void>((resolve) => {
              if (w.isDead()) return resolve();
              const kill = setTimeout(() => w.process.kill('SIGKILL'), config.edge.shutdownGrace + 2_000);
              w.once('exit', () => {
                clearTimeout(kill);
                resolve();
              });
              send(w, { t: 'outpost:shutdown' });
            }),
        ),
      );
      await member.close();
      cluster.removeAllListeners('message');
      cluster.removeAllListeners('exit');
      await disk?.close();
      await rateLimits?.close();
      await plane.close();
      await origin?.close();
    },
  };
}
