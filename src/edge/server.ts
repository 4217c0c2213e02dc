// The edge's listening sockets: cleartext HTTP/1.1, and TLS offering h2 and http/1.1 by ALPN.
// Protocol-level faults (malformed request lines, oversized headers, ambiguous lengths, slow
// clients) are answered here, before a request exists, by Node's strict llhttp parser.
import { createServer, type Server } from 'node:http';
import { createSecureServer, type Http2SecureServer } from 'node:http2';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { OutpostConfig } from '../config/load.ts';
import type { EdgeMetrics } from '../metrics/metrics.ts';
import type { Driver } from './driver.ts';
import { FastLane, fastLaneOf } from './fast-http1.ts';
import type { TlsMaterial } from './tls.ts';

interface ClientFault {
  readonly status: number;
  readonly reason: string;
  readonly code: string;
}

/** Maps Node's parser error codes to the status the client gets. */
export function classifyClientError(err: NodeJS.ErrnoException): ClientFault {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return { status: 431, reason: 'Request Header Fields Too Large', code: 'HEADERS_TOO_LARGE' };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
    case 'ERR_HTTP_HEADERS_TIMEOUT':
      return { status: 408, reason: 'Request Timeout', code: 'CLIENT_TIMEOUT' };
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
    case 'HPE_INVALID_TRANSFER_ENCODING':
    case 'HPE_INVALID_CONTENT_LENGTH':
      return { status: 400, reason: 'Bad Request', code: 'AMBIGUOUS_LENGTH' };
    default:
      return { status: 400, reason: 'Bad Request', code: 'BAD_REQUEST' };
  }
}

function onClientError(log: Logger, metrics: EdgeMetrics) {
  return (err: NodeJS.ErrnoException, socket: Socket): void => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const f = classifyClientError(err);
    metrics.clientErrors.inc({ code: f.code });
    log.info({ code: f.code, parser: err.code, ip: socket.remoteAddress, reason: (err as { reason?: string }).reason }, 'malformed request refused');
    const body = `${f.status} ${f.code}\n`;
    socket.end(`HTTP/1.1 ${f.status} ${f.reason}\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
  };
}

export interface EdgeListeners {
  readonly http: Server;
  readonly https?: Http2SecureServer;
}

export function createListeners(config: OutpostConfig, driver: Driver, tls: TlsMaterial | undefined, log: Logger, metrics: EdgeMetrics): EdgeListeners {
  const l = config.limits;
  const http = createServer(
    {
      maxHeaderSize: l.maxHeaderBytes,
      headersTimeout: l.headersTimeout,
      requestTimeout: l.requestTimeout,
      keepAliveTimeout: l.keepAliveTimeout,
      // Node checks header/request timeouts on this interval (30 s by default), which would let a
      // slow client hold a connection far beyond limits.headersTimeout.
      connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(l.headersTimeout / 4))),
      requireHostHeader: true,
      joinDuplicateHeaders: false,
      insecureHTTPParser: false,
      // A request without Content-Length or Transfer-Encoding gets an already-ended body instead of
      // a live stream: less work per GET. The driver reads a body only when those headers say so.
      optimizeEmptyRequests: true,
    },
    driver.handle,
  );
  http.maxConnections = l.maxConnectionsPerWorker;
  http.on('clientError', onClientError(log, metrics));
  if (config.edge.fastHttp1) new FastLane(http, driver.handle, { maxHeaderBytes: l.maxHeaderBytes, keepAliveTimeout: l.keepAliveTimeout });

  let https: Http2SecureServer | undefined;
  if (tls && config.edge.tlsPort !== 0) {
    https = createSecureServer({
      cert: tls.cert,
      key: tls.key,
      allowHTTP1: true,
      maxSessionMemory: 64,
      // HTTP/1.1 over TLS uses the same limits as cleartext.
      maxHeaderSize: l.maxHeaderBytes,
      settings: { maxHeaderListSize: l.maxHeaderBytes },
    } as Parameters<typeof createSecureServer>[0], driver.handle);
    https.setTimeout(l.requestTimeout);
    https.on('clientError' as 'session', ((err: NodeJS.ErrnoException, socket: Socket) => onClientError(log, metrics)(err, socket)) as never);
    https.on('sessionError', (err) => log.debug({ err: err.message }, 'h2 session error'));
  }
  return { http, ...(https ? { https } : {}) };
}

/** Listens on a port; several workers bind it together with SO_REUSEPORT, like nginx's `reuseport`. */
export function listen(server: Server | Http2SecureServer, port: number, host: string, shared: boolean): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, ...(shared ? { exclusive: true, reusePort: true } : {}) }, () => {
      server.off('error', reject);
      const addr = server.address();
      resolve(typeof addr === 'object' && addr ? addr.port : port);
    });
  });
}

/** Stops accepting, lets in-flight requests finish for up to graceMs, then cuts what remains. */
export async function closeGracefully(server: Server | Http2SecureServer, graceMs: number): Promise<void> {
  if (!server.listening) return;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  // A keep-alive connection counts as idle only once its last response has fully ended, which may
  // be just after close() was called; so idle connections are swept until the server has closed.
  const lane = fastLaneOf(server);
  const sweep = () => {
    if ('closeIdleConnections' in server) server.closeIdleConnections();
    lane?.closeIdle();
  };
  sweep();
  const sweeper = setInterval(sweep, 50);
  sweeper.unref();
  const timer = setTimeout(() => {
    if ('closeAllConnections' in server) server.closeAllConnections();
    lane?.closeAll();
  }, graceMs);
  timer.unref();
  await closed;
  clearInterval(sweeper);
  clearTimeout(timer);
}
