// Entry point of an edge worker process, forked by the primary (src/node/primary.ts).
import cluster from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import { WorkerCoordinator, isOutpostMessage, type PrimaryMessage, type WorkerMessage } from '../cluster/ipc.ts';
import { openStore } from '../compute/plane.ts';
import type { CuStore, StoreSnapshot } from '../compute/store/store.ts';
import { createComputeWorker, type ComputeWorker } from '../compute/worker-side.ts';
import type { OutpostConfig } from '../config/load.ts';
import { startEdge } from '../edge/edge.ts';
import { loadOrCreateCertificate } from '../edge/tls.ts';
import { createLogger } from '../log/logger.ts';
import type { EdgeMetrics } from '../metrics/metrics.ts';
import { DocBoard } from '../control/doc-board.ts';

/** How long a new worker waits for its first set of CUs before it starts serving anyway. */
const FIRST_SNAPSHOT_WAIT_MS = 10_000;

const config = JSON.parse(process.env.OUTPOST_WORKER_CONFIG ?? 'null') as OutpostConfig | null;
if (!config || !cluster.isWorker || !process.send) {
  console.error('src/node/worker.ts is started by the Outpost primary process, not by hand');
  process.exit(2);
}
const log = createLogger(config.log.level, { worker: cluster.worker?.id });
const send = (m: WorkerMessage) => process.send?.(m);
const coordinator = new WorkerCoordinator(send);
let closing = false;
let edgeClose: (() => Promise<void>) | undefined;

process.on('uncaughtException', (err) => {
  log.fatal({ err }, 'uncaught exception in worker; exiting (the primary starts a replacement)');
  process.exit(70);
});
process.on('unhandledRejection', (err) => {
  log.error({ err }, 'unhandled promise rejection in worker');
});

const shutdown = async () => {
  if (closing) return;
  closing = true;
  await edgeClose?.().catch((err: unknown) => log.warn({ err }, 'error while closing'));
  process.exit(0);
};

// Listen to the primary from the start: the first CU snapshot may arrive before the edge is up.
let firstSnapshot: StoreSnapshot | undefined;
let gotFirst: (() => void) | undefined;
coordinator.onCus = (s) => {
  firstSnapshot = s;
  gotFirst?.();
};
process.on('message', (m: unknown) => {
  if (!isOutpostMessage(m)) return;
  const msg = m as PrimaryMessage;
  if (msg.t === 'outpost:shutdown') void shutdown();
  else coordinator.receive(msg);
});
send({ t: 'outpost:hello' });
// Signals go to the whole process group on Ctrl-C; the primary orchestrates the shutdown.
process.on('SIGINT', () => undefined);
process.on('SIGTERM', () => void shutdown());
process.on('disconnect', () => void shutdown());

const tls = config.edge.tlsPort !== 0 ? await loadOrCreateCertificate(config.edge.tls) : undefined;

// Edge computing. Data commands go straight to Redis when the store is Redis; the embedded store's
// data and the shared dictionary live in the primary.
let compute: ComputeWorker | undefined;
let dataStore: CuStore | undefined;
// The first snapshot brings CUs, rules and IP lists: serving before it would let through what a
// deny list or an auth CU is there to stop.
if (!firstSnapshot) {
  await new Promise<void>((resolve) => {
    gotFirst = resolve;
    setTimeout(() => {
      if (!firstSnapshot) log.warn('no CUs, rules or lists from the primary yet; serving without them until they arrive');
      resolve();
    }, FIRST_SNAPSHOT_WAIT_MS).unref();
  });
}
const board = new DocBoard();
if (firstSnapshot) board.apply(firstSnapshot.docs);
coordinator.onCus = (snapshot) => board.apply(snapshot.docs);
const computeHooks = (metrics: EdgeMetrics) => {
  if (!config.compute.enabled) return [];
  const viaPrimary = coordinator.services(config.compute.store.commandTimeout);
  dataStore = config.compute.store.kind === 'embedded' ? undefined : openStore(config.compute);
  const store = dataStore;
  compute = createComputeWorker({
    config,
    log,
    registry: metrics.registry,
    services: { shared: viaPrimary.shared, redis: store ? (name, args) => store.command(name, args) : viaPrimary.redis },
  });
  if (firstSnapshot) compute.apply(firstSnapshot);
  coordinator.onCus = (snapshot) => {
    board.apply(snapshot.docs);
    compute?.apply(snapshot);
  };
  coordinator.cuStatus = () => compute?.status() ?? [];
  return [compute.hooks];
};

const edge = await startEdge({ config, coordinator, log, ...(tls ? { tls } : {}), hooks: computeHooks, board, clustered: true, prefetchToken: process.env.OUTPOST_PREFETCH_TOKEN ?? '' });
AggregatorRegistry.setRegistries([edge.metrics.registry]);
// prom-client answers the primary's metric requests only once an AggregatorRegistry exists here.
new AggregatorRegistry();
edgeClose = async () => {
  await edge.close();
  compute?.close();
  await dataStore?.close().catch(() => undefined);
};
if (closing) await edgeClose();

send({ t: 'outpost:ready', port: edge.port, ...(edge.tlsPort !== undefined ? { tlsPort: edge.tlsPort } : {}) });
log.debug({ port: edge.port, tlsPort: edge.tlsPort }, 'worker ready');
