import { createServer, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startLink, type Link } from './link.ts';

let server: Server | undefined;
let link: Link | undefined;
afterEach(async () => {
  await link?.close();
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
  server = undefined;
  link = undefined;
});

async function origin(handler: Parameters<typeof createServer>[1]): Promise<number> {
  server = createServer(handler);
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
  return (server.address() as { port: number }).port;
}

describe('simulated link', () => {
  it('delays a request and its answer by the one-way latency each way', async () => {
    const port = await origin((_req, res) => res.end('ok'));
    link = await startLink({ target: { host: '127.0.0.1', port }, latencyMs: 40 });
    const t0 = performance.now();
    const r = await request(`${link.url}/`);
    expect(await r.body.text()).toBe('ok');
    // Handshake bytes, request and answer each cross the link: at least two one-way trips.
    expect(performance.now() - t0).toBeGreaterThanOrEqual(80);
    expect(link.stats.connections).toBe(1);
    expect(link.stats.fromTarget).toBeGreaterThan(0);
  });

  it('delivers an answer in full when the server closes right after sending it, and keeps order', async () => {
    const body = Array.from({ length: 2000 }, (_, i) => `line ${i}\n`).join('');
    const port = await origin((_req, res) => {
      res.setHeader('connection', 'close');
      for (let i = 0; i < body.length; i += 1000) res.write(body.slice(i, i + 1000));
      res.end();
    });
    link = await startLink({ target: { host: '127.0.0.1', port }, latencyMs: 20, jitterMs: 10 });
    // Jitter gives every chunk its own delay: several answers, so that a reordering would show.
    for (let i = 0; i < 5; i++) {
      const r = await request(`${link.url}/`, { reset: true });
      expect(await r.body.text()).toBe(body);
    }
  });
});
