// Test support for the gate tests: an origin that echoes what it received, so a test can see the
// headers and query the edge forwarded.
import http, { type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLogger, type Logger } from '../../log/logger.ts';

export interface Echoed {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
}

export interface EchoOrigin {
  readonly url: string;
  /** Requests received, in order. */
  readonly seen: Echoed[];
  close(): Promise<void>;
}

/** Answers every request with 200 and a JSON echo of method, url and headers (never cacheable). */
export async function startEchoOrigin(): Promise<EchoOrigin> {
  const seen: Echoed[] = [];
  const server = http.createServer((req, res) => {
    const echoed = { method: req.method ?? '', url: req.url ?? '', headers: req.headers };
    seen.push(echoed);
    req.resume();
    req.on('end', () => {
      const body = JSON.stringify(echoed);
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Points the test stack's default pool at `url` (for startStack's overrides). */
export function poolAt(url: string): Record<string, unknown> {
  return { upstream: { pools: { default: { peers: [url], readTimeout: '5s' } } } };
}

export const quietLog: Logger = createLogger('silent');

/** A port nobody listens on: bound, then released. */
export async function closedPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/**
 * A GET sent exactly as written (undici's helper resolves dot segments; node:http does not), and
 * header values may be lists to send a header twice. Resolves to the status.
 */
export function rawGet(base: string, path: string, headers: Record<string, string | string[]> = {}): Promise<number> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    http
      .get({ host: u.hostname, port: u.port, path, headers }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
      .on('error', reject);
  });
}
