// Prefetch: each URL is requested through this node's own edge with a token that makes the cache
// refresh it, so the object lands in every tier exactly as a client request would store it.
import { Agent, request } from 'undici';

export interface PrefetchResult {
  readonly url: string;
  readonly status: number;
  readonly cache?: string;
  readonly error?: string;
}

export interface PrefetchTarget {
  readonly httpPort: number;
  readonly tlsPort?: number | undefined;
  readonly token: string;
}

const agent = new Agent({ connect: { rejectUnauthorized: false }, keepAliveTimeout: 5_000 });

export async function prefetch(urls: readonly string[], target: PrefetchTarget, opts: { concurrency?: number } = {}): Promise<PrefetchResult[]> {
  const results: PrefetchResult[] = new Array(urls.length);
  let next = 0;
  const worker = async () => {
    while (next < urls.length) {
      const i = next++;
      const raw = urls[i]!;
      try {
        const u = new URL(raw);
        const tls = u.protocol === 'https:';
        if (!tls && u.protocol !== 'http:') throw new Error('not an http(s) URL');
        if (tls && !target.tlsPort) throw new Error('https URL but the edge has no TLS port');
        const origin = tls ? `https://127.0.0.1:${target.tlsPort}` : `http://127.0.0.1:${target.httpPort}`;
        const res = await request(origin + u.pathname + u.search, {
          dispatcher: agent,
          headers: { host: u.host, 'x-outpost-prefetch': target.token },
          headersTimeout: 60_000,
          bodyTimeout: 60_000,
        });
        await res.body.dump({ limit: Number.MAX_SAFE_INTEGER });
        const cache = res.headers['x-cache-status'];
        results[i] = { url: raw, status: res.statusCode, ...(typeof cache === 'string' ? { cache } : {}) };
      } catch (err) {
        results[i] = { url: raw, status: 0, error: (err as Error).message };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.concurrency ?? 8, urls.length) }, worker));
  return results;
}
