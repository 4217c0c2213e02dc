// A simulated network link: a TCP proxy on 127.0.0.1 that delays every chunk by a one-way latency
// in each direction (plus optional jitter), keeping the bytes of each direction in order. The
// mini-CDN (`outpost up`) puts one between client and PoP, PoP and shield, shield and origin, as
// seed 004 simulates distance. A connection pays the latency on its handshake too (the first
// bytes), like a real round trip.
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface LinkOptions {
  /** Where the link leads. */
  readonly target: { readonly host: string; readonly port: number };
  /** One-way delay in ms (a round trip costs twice this). */
  readonly latencyMs: number;
  /** Up to this many ms added at random per chunk (order is kept). */
  readonly jitterMs?: number;
  readonly name?: string;
}

export interface Link {
  readonly name: string;
  readonly port: number;
  readonly url: string;
  latencyMs: number;
  /** Bytes carried in each direction. */
  readonly stats: { toTarget: number; fromTarget: number; connections: number };
  close(): Promise<void>;
}

export async function startLink(o: LinkOptions): Promise<Link> {
  const sockets = new Set<Socket>();
  const stats = { toTarget: 0, fromTarget: 0, connections: 0 };
  const link = { latencyMs: o.latencyMs };
  const jitter = o.jitterMs ?? 0;

  /** Forwards `from` to `to` with the delay; returns when the last chunk forwarded is due. */
  const pipe = (from: Socket, to: Socket, count: (n: number) => void): (() => number) => {
    // Each chunk is due `latency` after it arrived, but never before the previous one, and one
    // queue per direction delivers them in order: a timer per chunk would not, since Node computes
    // a timer's expiry from the loop's cached clock, so a later, shorter timer can fire first.
    let lastDue = 0;
    const queue: Array<{ due: number; data: Buffer | null }> = [];
    let timer: NodeJS.Timeout | undefined;
    const flush = (): void => {
      timer = undefined;
      const now = performance.now();
      while (queue.length > 0 && queue[0]!.due <= now + 0.5) {
        const { data } = queue.shift()!;
        if (data === null) to.end();
        else to.write(data);
      }
      if (queue.length > 0) timer = setTimeout(flush, Math.max(1, queue[0]!.due - now));
    };
    const send = (due: number, data: Buffer | null): void => {
      lastDue = due;
      queue.push({ due, data });
      timer ??= setTimeout(flush, Math.max(0, due - performance.now()));
    };
    from.on('data', (d: Buffer) => {
      count(d.length);
      const delay = link.latencyMs + (jitter ? Math.random() * jitter : 0);
      if (delay <= 0 && queue.length === 0 && lastDue <= performance.now()) {
        to.write(d);
        return;
      }
      send(Math.max(performance.now() + delay, lastDue), d);
    });
    // A half-close travels with the same delay, after the data before it.
    from.on('end', () => send(Math.max(performance.now() + link.latencyMs, lastDue), null));
    return () => lastDue;
  };

  const server: Server = createServer((client) => {
    stats.connections++;
    const upstream = connect(o.target.port, o.target.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.setNoDelay(true);
      s.on('error', () => undefined);
    }
    const toTargetDue = pipe(client, upstream, (n) => (stats.toTarget += n));
    const fromTargetDue = pipe(upstream, client, (n) => (stats.fromTarget += n));
    // One side gone: the other goes too, once what was in flight towards it has been delivered
    // (a server that answers and closes must not lose its answer in the link).
    const closeOther = (other: Socket, due: () => number) => () => {
      sockets.delete(other === client ? upstream : client);
      setTimeout(() => {
        other.destroy();
        sockets.delete(other);
      }, Math.max(0, due() - performance.now()) + 20);
    };
    upstream.on('close', closeOther(client, fromTargetDue));
    client.on('close', closeOther(upstream, toTargetDue));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  return {
    name: o.name ?? `link-${port}`,
    port,
    url: `http://127.0.0.1:${port}`,
    get latencyMs() {
      return link.latencyMs;
    },
    set latencyMs(v: number) {
      link.latencyMs = v;
    },
    stats,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
