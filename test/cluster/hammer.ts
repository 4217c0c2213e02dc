// Load for rate-limit tests: many keep-alive connections, each sending requests back to back for
// a fixed time, counting answers by status. Many connections let the kernel spread them over a
// node's workers (SO_REUSEPORT).
import { Agent, request } from 'undici';

export interface HammerResult {
  /** Answers by status, per target URL. */
  readonly byUrl: ReadonlyMap<string, ReadonlyMap<number, number>>;
  /**
   * ms from the first request sent to the last one sent: the window in which the node saw them
   * arrive (answers still in flight at the end were sent, and counted by the node, within it).
   */
  readonly elapsedMs: number;
  count(status: number, url?: string): number;
}

export async function hammer(urls: readonly string[], o: { connections: number; durationMs: number; headers?: Record<string, string> }): Promise<HammerResult> {
  const agent = new Agent({ connections: o.connections, pipelining: 1, keepAliveTimeout: 10_000 });
  const byUrl = new Map<string, Map<number, number>>(urls.map((u) => [u, new Map()]));
  const t0 = performance.now();
  const until = t0 + o.durationMs;
  let lastSent = t0;
  const client = async (url: string) => {
    const counts = byUrl.get(url)!;
    for (let now = performance.now(); now < until; now = performance.now()) {
      lastSent = now;
      try {
        const res = await request(url, { dispatcher: agent, headers: o.headers ?? {}, headersTimeout: 10_000, bodyTimeout: 10_000 });
        await res.body.dump();
        counts.set(res.statusCode, (counts.get(res.statusCode) ?? 0) + 1);
      } catch {
        counts.set(0, (counts.get(0) ?? 0) + 1);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: o.connections * urls.length }, (_, i) => client(urls[i % urls.length]!)));
  } finally {
    await agent.close();
  }
  return {
    byUrl,
    elapsedMs: lastSent - t0,
    count: (status, url) => {
      let n = 0;
      for (const [u, m] of byUrl) if (url === undefined || u === url) n += m.get(status) ?? 0;
      return n;
    },
  };
}
