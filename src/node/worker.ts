// Entry point of an edge worker process, forked by the primary (src/node/primary.ts).
import cluster from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import { WorkerCoordinator, isOutpostMessage, type PrimaryMessage, type WorkerMessage } from '../cluster/ipc.ts';
import type { OutpostConfig } from '../config/load.ts';
import { startEdge } from '../edge/edge.ts';
import { loadOrCreateCertificate } from '../edge/tls.ts';
import { createLogger } from '../log/logger.ts';

const config = JSON.parse(process.env.OUTPOST_WORKER_CONFIG ?? 'null') as OutpostConfig | null;
if (!config || !cluster.isWorker || !process.send) {
  console.error('src/node/worker.ts is started by the Outpost primary process, not by hand');
  process.exit(2);
}
const log = createLogger(config.log.level, { worker: cluster.worker?.id });
const send = (m: WorkerMessage) => process.send?.(m);
const coordinator = new WorkerCoordinator(send);
let closing = false;

process.on('uncaughtException', (err) => {
  log.fatal({ err }, 'uncaught exception in worker; exiting (the primary starts a replacement)');
  process.exit(70);
});
process.on('unhandledRejection', (err) => {
  log.error({ err }, 'unhandled promise rejection in worker');
});

const tls = config.edge.tlsPort !== 0 ? await loadOrCreateCertificate(config.edge.tls) : undefined;
const edge = await startEdge({ config, coordinator, log, ...(tls ? { tls } : {}), clustered: true, prefetchToken: process.env.OUTPOST_PREFETCH_TOKEN ?? '' });
AggregatorRegistry.setRegistries([edge.metrics.registry]);
// prom-client answers the primary's metric requests only once an AggregatorRegistry exists here.
new AggregatorRegistry();

const shutdown = async () => {
  if (closing) return;
  closing = true;
  await edge.close().catch((err: unknown) => log.warn({ err }, 'error while closing'));
  process.exit(0);
};
process.on('message', (m: unknown) => {
  if (!isOutpostMessage(m)) return;
  const msg = m as PrimaryMessage;
  if (msg.t === 'outpost:shutdown') void shutdown();
  else coordinator.receive(msg);
});
// Signals go to the whole process group on Ctrl-C; the primary orchestrates the shutdown.
process.on('SIGINT', () => undefined);
process.on('SIGTERM', () => void shutdown());
process.on('disconnect', () => void shutdown());

send({ t: 'outpost:ready', port: edge.port, ...(edge.tlsPort !== undefined ? { tlsPort: edge.tlsPort } : {}) });
log.debug({ port: edge.port, tlsPort: edge.tlsPort }, 'worker ready');
