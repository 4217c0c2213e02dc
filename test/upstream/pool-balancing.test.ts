// Origin pools choose peers with the balancer (src/balance): policies, weights, active checks.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { get, sleep, startStack, type Stack } from '../helpers.ts';

let s: Stack | undefined;
const origins: Server[] = [];
afterEach(async () => {
  await s?.close();
  s = undefined;
  for (const o of origins.splice(0)) {
    o.closeAllConnections();
    o.close();
  }
});

/** An origin that names itself in every response; /health answers `health.status`. */
async function named(name: string): Promise<{ url: string; health: { status: number }; hits: () => number }> {
  const health = { status: 200 };
  let hits = 0;
  const srv = createServer((req, res) => {
    if (req.url === '/health') return res.writeHead(health.status).end();
    hits++;
    res.writeHead(200, { 'cache-control': 'no-store', 'x-origin': name }).end(name);
  });
  origins.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`, health, hits: () => hits };
}

describe('origin pool balancing', () => {
  it('sends each URL to one peer under consistent hashing', async () => {
    const [a, b, c] = await Promise.all([named('a'), named('b'), named('c')]);
    s = await startStack({ upstream: { pools: { default: { peers: [a.url, b.url, c.url], policy: 'chash' } } } });
    const owners = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const first = (await get(`${s.base}/obj/${i}`)).text;
      for (let k = 0; k < 3; k++) expect((await get(`${s.base}/obj/${i}`)).text).toBe(first);
      owners.add(first);
    }
    expect([...owners].sort()).toEqual(['a', 'b', 'c']);
  });

  it('gives peers their weight under round robin', async () => {
    const [a, b] = await Promise.all([named('a'), named('b')]);
    s = await startStack({ upstream: { pools: { default: { peers: [a.url, b.url], weights: { [b.url]: 3 } } } } });
    for (let i = 0; i < 40; i++) await get(`${s.base}/w/${i}`);
    expect([a.hits(), b.hits()]).toEqual([10, 30]);
  });

  it('stops sending to a peer whose health check fails, and resumes when it passes', async () => {
    const [a, b] = await Promise.all([named('a'), named('b')]);
    s = await startStack({ upstream: { pools: { default: { peers: [a.url, b.url], healthCheck: { interval: '50ms', timeout: '200ms', fall: 1, rise: 1 } } } } });
    a.health.status = 503;
    await sleep(200);
    const before = a.hits();
    for (let i = 0; i < 10; i++) expect((await get(`${s.base}/h/${i}`)).text).toBe('b');
    expect(a.hits()).toBe(before);
    a.health.status = 200;
    await sleep(200);
    const seen = new Set<string>();
    for (let i = 0; i < 10; i++) seen.add((await get(`${s.base}/h2/${i}`)).text);
    expect([...seen].sort()).toEqual(['a', 'b']);
  });
});
