// Many idle keep-alive connections: each one makes a request, reads the answer and then just stays
// open, the way browsers and mobile clients leave connections parked on an edge.
import { connect, type Socket } from 'node:net';
import { responseReader } from './http1-reader.ts';

export interface IdleConnections {
  /** Connections that made their request and are still open. */
  open(): number;
  close(): void;
}

function parked(port: number, request: Buffer, timeoutMs: number, all: Set<Socket>): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    all.add(s);
    const reader = responseReader();
    const t = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, timeoutMs);
    s.once('connect', () => s.write(request));
    s.on('data', (chunk: Buffer) => {
      const status = reader.push(chunk);
      if (status === undefined) return;
      clearTimeout(t);
      resolve(status >= 200 && status < 400);
    });
    s.once('error', () => {
      clearTimeout(t);
      resolve(false);
    });
    s.once('close', () => {
      all.delete(s);
      clearTimeout(t);
      resolve(false);
    });
  });
}

/** Opens `count` connections, `parallel` at a time, within deadlineMs overall. */
export async function openIdleConnections(p: { port: number; path: string; count: number; parallel: number; deadlineMs: number }): Promise<IdleConnections> {
  const all = new Set<Socket>();
  const request = Buffer.from(`GET ${p.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: outpost-bench-idle\r\n\r\n`);
  const deadline = Date.now() + p.deadlineMs;
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < p.count && Date.now() < deadline) {
      next++;
      await parked(p.port, request, 10_000, all);
    }
  };
  await Promise.all(Array.from({ length: p.parallel }, lane));
  return {
    open: () => [...all].filter((s) => !s.destroyed).length,
    close: () => {
      for (const s of all) s.destroy();
      all.clear();
    },
  };
}
