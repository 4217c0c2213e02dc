// The load balancer node (`outpost lb`): an HTTP/1.1 listener in front of edge nodes, one undici
// keep-alive pool per edge, the balancer (src/balance) choosing among them with active and passive
// health, and an admin listener for member state, run-time membership and metrics.
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import { Pool } from 'undici';
import { Balancer } from '../balance/balancer.ts';
import { compileHashKey } from '../balance/key.ts';
import type { OutpostConfig } from '../config/load.ts';
import { classifyClientError, closeGracefully, listen } from '../edge/server.ts';
import { createLbAdmin } from './admin.ts';
import { LbMetrics } from './metrics.ts';
import { createProxy } from './proxy.ts';

export interface LoadBalancer {
  readonly port: number;
  readonly adminPort: number;
  readonly balancer: Balancer<Pool>;
  readonly metrics: LbMetrics;
  /** Stops taking requests, lets those in flight finish (lb.shutdownGrace), then closes everything. */
  close(): Promise<void>;
}

export async function startLoadBalancer(config: Pick<OutpostConfig, 'lb' | 'limits'>, opts: { log: Logger; defaultMetrics?: boolean }): Promise<LoadBalancer> {
  const lb = config.lb;
  const log = opts.log;
  let metrics: LbMetrics | undefined;
  const balancer = new Balancer<Pool>(
    {
      policy: lb.policy,
      loadFactor: lb.loadFactor,
      healthCheck: lb.healthCheck.enabled ? lb.healthCheck : undefined,
      passive: lb.passive,
      create: (m) =>
        new Pool(m.url.origin, {
          connections: lb.connections,
          keepAliveTimeout: lb.keepAliveTimeout,
          keepAliveMaxTimeout: Math.max(lb.keepAliveTimeout, 1000),
          headersTimeout: lb.readTimeout,
          bodyTimeout: lb.readTimeout,
          connect: { timeout: lb.connectTimeout },
          pipelining: 1,
        }),
      destroy: (p) => p.close().catch(() => p.destroy()),
      log,
      onCheck: (m, ok) => metrics?.checks.inc({ member: m.name, result: ok ? 'ok' : 'fail' }),
    },
    lb.edges,
  );
  metrics = new LbMetrics(() => balancer.members.list(), { defaultMetrics: opts.defaultMetrics ?? true });

  let draining = false;
  const handler = createProxy({
    balancer,
    keyOf: lb.policy === 'chash' || lb.policy === 'bounded' ? compileHashKey(lb.hashKey) : undefined,
    retries: lb.retries,
    servedBy: lb.servedByHeader.toLowerCase(),
    forwarding: { xForwardedFor: lb.xForwardedFor, via: lb.via, name: lb.name },
    metrics,
    log,
    draining: () => draining,
  });
  const l = config.limits;
  const server: Server = createServer(
    {
      maxHeaderSize: l.maxHeaderBytes,
      headersTimeout: l.headersTimeout,
      requestTimeout: l.requestTimeout,
      keepAliveTimeout: l.keepAliveTimeout,
      connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(l.headersTimeout / 4))),
      joinDuplicateHeaders: false,
    },
    handler,
  );
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (err.code === 'ECONNRESET' || !socket.writable) return void socket.destroy();
    const f = classifyClientError(err);
    const body = `${f.status} ${f.code}\n`;
    socket.end(`HTTP/1.1 ${f.status} ${f.reason}\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
  });
  const admin = createLbAdmin({ balancer: balancer as Balancer<unknown>, metrics, log, apiKey: lb.admin.apiKey });

  let port: number;
  try {
    port = await listen(server, lb.port, lb.host, false);
    await listen(admin, lb.admin.port, lb.admin.host, false);
  } catch (err) {
    server.close();
    await balancer.close();
    throw err;
  }
  const adminPort = (admin.address() as AddressInfo).port;

  return {
    port,
    adminPort,
    balancer,
    metrics,
    async close() {
      draining = true;
      await closeGracefully(server, lb.shutdownGrace);
      admin.close();
      admin.closeAllConnections();
      await balancer.close();
    },
  };
}
