// The mini-CDN of `outpost up`: origin, shield, 3 PoPs, load balancer and control plane on
// loopback ports, with simulated distance on each link.
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log/logger.ts';
import { startMiniCdn, type MiniCdn } from '../../src/up/up.ts';
import { get, originHits, sleep, tempDir } from '../helpers.ts';
import { promQuery, startPrometheus, which } from '../deploy/support.ts';

const prometheus = which('prometheus');

let cdn: MiniCdn;
let dir: string;

beforeAll(async () => {
  dir = tempDir();
  // A tenth of the default distances: the links still order the PoPs, the test stays quick.
  cdn = await startMiniCdn({ log: createLogger('silent'), dir, latencyScale: 0.1, basePort: 0 });
}, 30_000);
afterAll(async () => {
  await cdn?.close();
  rmSync(dir, { recursive: true, force: true });
});

const HOST = { host: 'cdn.up.test' };

describe('outpost up', () => {
  it('serves through the load balancer, naming the edge that served', async () => {
    const r = await get(`${cdn.lbUrl}/api/one?max_age=60`, { headers: HOST });
    expect(r.status).toBe(200);
    expect(r.header('x-served-by')).toMatch(/^edge-(us-east|eu-west|ap-south)$/);
    expect(cdn.table().map((row) => row[0])).toEqual(['PART', 'load balancer', 'edge-us-east', 'edge-eu-west', 'edge-ap-south', 'shield', 'origin', 'control plane']);
  });

  it('asks the origin once per object however many PoPs ask the shield, and says which tier served', async () => {
    const path = `/api/shielded-${Date.now()}?max_age=60`;
    const first = await Promise.all(cdn.pops.map((p) => get(`${p.link.url}${path}`, { headers: HOST })));
    expect(first.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(originHits(cdn.origin, path)).toBe(1);
    // Each PoP missed; the shield missed for one of them and served the others.
    const chains = first.map((r) => r.header('cache-status') ?? '');
    for (const c of chains) expect(c).toMatch(/^shield; [^,]*, edge-[a-z-]+; fwd=uri-miss; fwd-status=200; stored; ttl=\d+$/);
    // One PoP's request went to the origin; the others were collapsed onto it or hit the shield's copy.
    expect(chains.filter((c) => /^shield; fwd=uri-miss; fwd-status=200; stored; ttl=\d+, /.test(c))).toHaveLength(1);
    expect(chains.filter((c) => /^shield; (hit|fwd=uri-miss; collapsed)/.test(c))).toHaveLength(2);
    const again = await get(`${cdn.pops[1]!.link.url}${path}`, { headers: HOST });
    expect(again.header('x-cache-status')).toBe('HIT');
    expect(originHits(cdn.origin, path)).toBe(1);
  });

  it('keeps the origin at one request per object per freshness period across the three PoPs', async () => {
    const path = `/api/ttl-${Date.now()}?max_age=1`;
    const round = () => Promise.all(cdn.pops.map((p) => get(`${p.link.url}${path}`, { headers: HOST })));
    await round();
    await round();
    expect(originHits(cdn.origin, path)).toBe(1);
    // The shield's Age travels with its copies: every PoP's copy expires with the shield's.
    await sleep(1100);
    await round();
    await round();
    expect(originHits(cdn.origin, path)).toBe(2);
  });

  it('refuses requests to the shield that do not come from an edge', async () => {
    const r = await get(`http://127.0.0.1:${cdn.shield.edge.port}/api/direct`, { headers: HOST });
    expect(r.status).toBe(403);
  });

  it('answers the routing API with an edge near the client, and moves off an edge that is down', async () => {
    const res = await get(`${cdn.controlUrl}/route?url=${encodeURIComponent('http://cdn.up.test/a')}&client=eu-west`);
    expect(res.status, res.text).toBe(200);
    const near = JSON.parse(res.text) as { edge: { name: string }; ranking: unknown[] };
    expect(near.edge.name).toBe('edge-eu-west');
    expect(near.ranking).toHaveLength(3);
    const topo = JSON.parse((await get(`${cdn.controlUrl}/topology`)).text) as { pops: Array<{ name: string }> };
    expect(topo.pops.map((p) => p.name)).toEqual(['edge-us-east', 'edge-eu-west', 'edge-ap-south']);
    const bad = await get(`${cdn.controlUrl}/route?url=x&client=mars`);
    expect(bad.status).toBe(400);
  });

  it('purges every PoP and the shield through the control plane', async () => {
    const path = `/api/purged-${Date.now()}?max_age=60`;
    await Promise.all(cdn.pops.map((p) => get(`${p.link.url}${path}`, { headers: HOST })));
    expect(originHits(cdn.origin, path)).toBe(1);
    const r = await get(`${cdn.controlUrl}/purge`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ urls: [`http://cdn.up.test${path}`] }) });
    expect(r.status).toBe(200);
    let statuses: string[] = [];
    for (let i = 0; i < 100; i++) {
      statuses = await Promise.all(cdn.pops.map(async (p) => (await get(`${p.link.url}${path}`, { headers: HOST })).header('x-cache-status') ?? ''));
      if (statuses.every((s) => s !== 'HIT')) break;
      await sleep(20);
    }
    expect(statuses.every((s) => s === 'MISS')).toBe(true);
    // Shield purged too: the origin was asked again, once.
    expect(originHits(cdn.origin, path)).toBe(2);
  });

  it('lists the five nodes of the fleet through the control plane', async () => {
    let names: string[] = [];
    for (let i = 0; i < 50 && names.length < 4; i++) {
      names = (JSON.parse((await get(`${cdn.controlUrl}/nodes`)).text) as { nodes: Array<{ name: string }> }).nodes.map((n) => n.name);
      await sleep(50);
    }
    expect(names).toEqual(['edge-ap-south', 'edge-eu-west', 'edge-us-east', 'shield']);
  });

  it.skipIf(!prometheus)('is scraped by a real Prometheus: every node and the load balancer (skipped only where Debian’s prometheus is not installed)', async () => {
    const targets = [...cdn.pops.map((p) => `127.0.0.1:${p.node.adminPort}`), `127.0.0.1:${cdn.shield.adminPort}`, `127.0.0.1:${cdn.lb.adminPort}`];
    const file = join(dir, 'prometheus.yml');
    writeFileSync(file, `global: { scrape_interval: 1s, scrape_timeout: 900ms }\nscrape_configs:\n  - job_name: outpost-up\n    static_configs: [{ targets: ${JSON.stringify(targets)} }]\n`);
    await get(`${cdn.lbUrl}/api/scraped?max_age=60`, { headers: HOST });
    const prom = await startPrometheus(prometheus!, file, dir);
    try {
      let up: number[] = [];
      for (let i = 0; i < 100 && !(up.length === targets.length && up.every((v) => v === 1)); i++) {
        await sleep(200);
        const r = await promQuery(prom.url, 'up{job="outpost-up"}');
        up = (r.data?.result ?? []).map((x) => Number(x.value[1]));
      }
      expect(up).toEqual(targets.map(() => 1));
      const requests = await promQuery(prom.url, 'sum(outpost_requests_total)');
      expect(Number(requests.data?.result[0]?.value[1] ?? 0)).toBeGreaterThan(0);
    } finally {
      await prom.stop();
    }
  }, 40_000);
});

describe('outpost up with Redis', () => {
  it('shares CUs, IP lists and purges between its nodes through Redis', async () => {
    const d = tempDir();
    const prefix = `{outpost-up-${Date.now()}}`;
    const r = await startMiniCdn({ log: createLogger('silent'), dir: d, latencyScale: 0, basePort: 0, redis: 'redis://127.0.0.1:6379', redisPrefix: prefix });
    try {
      const json = { 'content-type': 'application/json' };
      const cu = await get(`${r.controlUrl}/cus/tagger`, { method: 'PUT', headers: json, body: JSON.stringify({ phase: 'header_filter', code: "res.headers['x-tagged'] = 'yes';" }) });
      expect(cu.status, cu.text).toBe(200);
      let tagged: Array<string | undefined> = [];
      for (let i = 0; i < 200 && !(tagged.length === 3 && tagged.every((t) => t === 'yes')); i++) {
        tagged = await Promise.all(r.pops.map(async (p) => (await get(`${p.link.url}/api/t`, { headers: HOST })).header('x-tagged')));
        await sleep(10);
      }
      expect(tagged).toEqual(['yes', 'yes', 'yes']);
      const path = `/api/redis-purge-${Date.now()}?max_age=60`;
      await Promise.all(r.pops.map((p) => get(`${p.link.url}${path}`, { headers: HOST })));
      await get(`${r.controlUrl}/purge`, { method: 'POST', headers: json, body: JSON.stringify({ urls: [`http://cdn.up.test${path}`] }) });
      let statuses: string[] = [];
      for (let i = 0; i < 200; i++) {
        statuses = await Promise.all(r.pops.map(async (p) => (await get(`${p.link.url}${path}`, { headers: HOST })).header('x-cache-status') ?? ''));
        if (statuses.every((x) => x === 'MISS')) break;
        await sleep(10);
      }
      expect(statuses).toEqual(['MISS', 'MISS', 'MISS']);
    } finally {
      await r.close();
      rmSync(d, { recursive: true, force: true });
    }
  }, 30_000);
});
