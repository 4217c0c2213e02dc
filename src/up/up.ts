// `outpost up`: a whole CDN on one machine, in one command — a demo origin, an origin shield, three
// edge PoPs named after regions, a load balancer in front of the edges and a control plane, with
// simulated network distance on every link (seed 004 builds the same with docker-compose and Lua).
//
//   client ──► LB ──(client↔PoP)──► edge-<region> ──(PoP↔shield)──► shield ──(shield↔origin)──► origin
//
// Every node is a real Outpost node (in this process, one worker each) with its own cache; they
// share one store (CUs, rules, IP lists) and one fleet (registry, purge log): the embedded store
// and an in-memory fleet by default, or Redis when `redis` is given. The control plane answers the
// routing API and forwards everything else to the shield's admin API, so `outpost cu|list|purge|
// nodes --admin <control>` manage the whole CDN.
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { request } from 'undici';
import { EmbeddedCuStore } from '../compute/store/embedded.ts';
import type { CuStore } from '../compute/store/store.ts';
import { resolveConfig } from '../config/load.ts';
import { send } from '../control/admin.ts';
import { OutpostError, toOutpostError } from '../errors.ts';
import { MemoryFleet, type Fleet } from '../fleet/fleet.ts';
import { startLoadBalancer, type LoadBalancer } from '../lb/lb.ts';
import type { Logger } from '../log/logger.ts';
import { startInProcessNode, type InProcessNode } from '../node/in-process.ts';
import { SEED_LATENCY, startDemoOrigin, type DemoOrigin } from '../origin/demo-origin.ts';
import { startLink, type Link } from './link.ts';
import { route, type RouteEdge } from './routing.ts';

export interface Topology {
  /** Edge PoPs, by region name. */
  readonly regions: readonly string[];
  /** Where the shield and the origin are. */
  readonly shieldRegion: string;
  /** Where the load balancer's clients are (the LB→PoP links carry that distance). */
  readonly clientRegion: string;
  /** One-way ms between two regions (symmetric; same region: `local`). */
  readonly distances: Readonly<Record<string, number>>;
  readonly local: number;
  /** One-way ms between shield and origin. */
  readonly shieldOriginMs: number;
}

export const DEFAULT_TOPOLOGY: Topology = {
  regions: ['us-east', 'eu-west', 'ap-south'],
  shieldRegion: 'us-east',
  clientRegion: 'us-east',
  distances: { 'us-east|eu-west': 40, 'us-east|ap-south': 110, 'eu-west|ap-south': 70 },
  local: 5,
  shieldOriginMs: 10,
};

export function distance(t: Topology, a: string, b: string, scale = 1): number {
  if (a === b) return t.local * scale;
  const d = t.distances[`${a}|${b}`] ?? t.distances[`${b}|${a}`];
  if (d === undefined) throw new OutpostError('CONFIG_INVALID', `topology: no distance between "${a}" and "${b}"`);
  return d * scale;
}

export interface MiniCdnOptions {
  readonly log: Logger;
  /** Where caches and the embedded store live. */
  readonly dir: string;
  readonly topology?: Topology;
  /** Multiplies every latency (0: no simulated distance). Default 1. */
  readonly latencyScale?: number;
  /** The origin's own simulated work: seed 004's percentile model, or none. Default none. */
  readonly originLatency?: 'seed' | 'off';
  /** Redis URL for the shared store and fleet; default the embedded store and an in-memory fleet. */
  readonly redis?: string;
  /** Key prefix (a hash tag) in Redis; default "{outpost}". */
  readonly redisPrefix?: string;
  readonly lbPolicy?: 'rr' | 'leastconn' | 'chash' | 'bounded';
  /** First port (LB, LB admin, control, edges, shield, origin follow); 0: ephemeral ports. */
  readonly basePort?: number;
  readonly host?: string;
  /** Request collapsing (cache.lock.enabled) on every edge and the shield. Default on. */
  readonly collapsing?: boolean;
}

export interface RunningPop {
  readonly name: string;
  readonly region: string;
  readonly node: InProcessNode;
  /** The edge as its clients reach it (through the client↔PoP link). */
  readonly link: Link;
  readonly edgeUrl: string;
  readonly adminUrl: string;
}

export interface MiniCdn {
  readonly origin: DemoOrigin;
  readonly shield: InProcessNode;
  readonly pops: readonly RunningPop[];
  readonly lb: LoadBalancer;
  readonly links: readonly Link[];
  readonly lbUrl: string;
  readonly controlUrl: string;
  /** What runs where, for printing. */
  table(): string[][];
  close(): Promise<void>;
}

export async function startMiniCdn(o: MiniCdnOptions): Promise<MiniCdn> {
  const t = o.topology ?? DEFAULT_TOPOLOGY;
  const scale = o.latencyScale ?? 1;
  const host = o.host ?? '127.0.0.1';
  const base = o.basePort ?? 0;
  const port = (offset: number) => (base === 0 ? 0 : base + offset);
  const secret = randomBytes(24).toString('hex');
  mkdirSync(o.dir, { recursive: true });
  const cleanups: Array<() => Promise<unknown>> = [];
  const links: Link[] = [];
  const link = async (name: string, target: number, latencyMs: number) => {
    const l = await startLink({ name, target: { host: '127.0.0.1', port: target }, latencyMs });
    links.push(l);
    cleanups.push(() => l.close());
    return l;
  };

  try {
    const origin = await startDemoOrigin({ host: '127.0.0.1', port: port(900), latency: o.originLatency === 'seed' ? SEED_LATENCY : false });
    cleanups.push(() => origin.close());

    // Shared state: one store and one fleet for every node.
    let store: CuStore | undefined;
    let fleet: MemoryFleet | undefined;
    if (!o.redis) {
      store = EmbeddedCuStore.open({ path: join(o.dir, 'store') });
      fleet = new MemoryFleet();
    }
    const shared = (): { store?: CuStore; fleet?: Fleet } => ({ ...(store ? { store } : {}), ...(fleet ? { fleet: fleet.join() } : {}) });
    const storeConfig = o.redis ? { kind: 'redis', url: o.redis, ...(o.redisPrefix ? { prefix: o.redisPrefix } : {}) } : { path: join(o.dir, 'store') };
    const nodeConfig = (name: string, role: 'edge' | 'shield', edgePort: number, adminPort: number, upstream: string, extra: Record<string, unknown> = {}) =>
      resolveConfig({
        // Every hop is on loopback here: each node believes the X-Forwarded-For of the one in front.
        edge: { host, port: edgePort, tlsPort: 0, workers: 1, name, tls: { dir: join(o.dir, 'tls') }, trustedProxies: ['127.0.0.1/32'] },
        admin: { host: '127.0.0.1', port: adminPort },
        upstream: { pools: { default: { peers: [upstream], ...(role === 'edge' ? { headers: { 'x-origin-secret': secret } } : {}) } } },
        demoOrigin: { enabled: false },
        cache: { lock: { enabled: o.collapsing ?? true }, disk: { path: join(o.dir, name, 'cache') } },
        compute: { store: storeConfig, pollInterval: '2s' },
        fleet: { name, role, heartbeat: '1s' },
        log: { level: 'warn', access: false },
        ...extra,
      });

    const originLink = await link('shield→origin', origin.port, t.shieldOriginMs * scale);
    const shield = await startInProcessNode(
      nodeConfig('shield', 'shield', port(200), port(201), originLink.url, { security: { originLock: { secrets: [secret] } } }),
      { log: o.log.child({ node: 'shield' }), ...shared() },
    );
    cleanups.push(() => shield.close());

    const pops: RunningPop[] = [];
    for (const [i, region] of t.regions.entries()) {
      const name = `edge-${region}`;
      const toShield = await link(`${name}→shield`, shield.edge.port, distance(t, region, t.shieldRegion, scale));
      const node = await startInProcessNode(nodeConfig(name, 'edge', port(100 + i * 2), port(101 + i * 2), toShield.url), { log: o.log.child({ node: name }), ...shared() });
      cleanups.push(() => node.close());
      const clientLink = await link(`client→${name}`, node.edge.port, distance(t, t.clientRegion, region, scale));
      pops.push({ name, region, node, link: clientLink, edgeUrl: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${node.edge.port}`, adminUrl: `http://127.0.0.1:${node.adminPort}` });
    }

    const lb = await startLoadBalancer(
      resolveConfig({
        lb: {
          host,
          port: port(0),
          policy: o.lbPolicy ?? 'bounded',
          edges: pops.map((p) => ({ name: p.name, url: p.link.url })),
          healthCheck: { interval: '1s' },
          admin: { host: '127.0.0.1', port: port(1) },
        },
      }),
      { log: o.log.child({ node: 'lb' }), defaultMetrics: false },
    );
    cleanups.push(() => lb.close());

    const shieldAdmin = `http://127.0.0.1:${shield.adminPort}`;
    const control = controlPlane({ topology: t, scale, pops, lb, shieldAdmin, log: o.log });
    await new Promise<void>((resolve, reject) => {
      control.once('error', reject);
      control.listen(port(90), '127.0.0.1', () => resolve());
    });
    cleanups.push(() => new Promise((r) => control.close(() => r(undefined))));
    if (store) cleanups.push(() => store.close());

    const lbUrl = `http://127.0.0.1:${lb.port}`;
    const controlUrl = `http://127.0.0.1:${(control.address() as AddressInfo).port}`;
    return {
      origin,
      shield,
      pops,
      lb,
      links,
      lbUrl,
      controlUrl,
      table: () => [
        ['PART', 'LISTENS', 'ADMIN', 'REACHED THROUGH'],
        ['load balancer', lbUrl, `http://127.0.0.1:${lb.adminPort}`, `${o.lbPolicy ?? 'bounded'} over the ${pops.length} edges`],
        ...pops.map((p) => [p.name, p.edgeUrl, p.adminUrl, `${p.link.url} (client↔PoP ${p.link.latencyMs} ms one way)`]),
        ['shield', `http://127.0.0.1:${shield.edge.port}`, shieldAdmin, `PoP↔shield ${t.regions.map((r) => `${r} ${distance(t, r, t.shieldRegion, scale)} ms`).join(', ')}`],
        ['origin', origin.url, `${origin.url}/__origin/stats`, `shield↔origin ${originLink.latencyMs} ms`],
        ['control plane', controlUrl, controlUrl, `routing API ${controlUrl}/route?url=…&client=REGION; other admin calls go to the shield`],
      ],
      async close() {
        for (const c of cleanups.reverse()) await c().catch(() => undefined);
      },
    };
  } catch (err) {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    throw err;
  }
}

interface ControlDeps {
  readonly topology: Topology;
  readonly scale: number;
  readonly pops: readonly RunningPop[];
  readonly lb: LoadBalancer;
  readonly shieldAdmin: string;
  readonly log: Logger;
}

/** The control plane: GET /route and /topology here; any other path is forwarded to the shield's admin API. */
function controlPlane(d: ControlDeps): Server {
  const health = () => new Map(d.lb.balancer.members.list().map((m) => [m.name, m.snapshot().state === 'up']));
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://control');
    if (req.method === 'GET' && url.pathname === '/route') {
      const target = url.searchParams.get('url');
      const client = url.searchParams.get('client') ?? d.topology.clientRegion;
      if (!target) throw new OutpostError('BAD_REQUEST', 'route: give url=');
      if (!d.topology.regions.includes(client)) throw new OutpostError('BAD_REQUEST', `route: client: expected one of ${d.topology.regions.join(', ')}, got ${JSON.stringify(client)}`);
      const up = health();
      const edges: RouteEdge[] = d.pops.map((p) => ({ name: p.name, region: p.region, url: p.link.url, healthy: up.get(p.name) ?? false }));
      const answer = route({ url: target, clientRegion: client, edges, latencyMs: (c, e) => distance(d.topology, c, e, d.scale), slack: { ratio: 0.5, ms: 10 * d.scale } });
      send(res, answer.edge ? 200 : 503, { url: target, client, ...answer });
      return;
    }
    if (req.method === 'GET' && url.pathname === '/topology') {
      send(res, 200, { ...d.topology, scale: d.scale, pops: d.pops.map((p) => ({ name: p.name, region: p.region, url: p.link.url, edge: p.edgeUrl, admin: p.adminUrl })) });
      return;
    }
    let body: Buffer | undefined;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      const chunks: Buffer[] = [];
      for await (const c of req as AsyncIterable<Buffer>) chunks.push(c);
      body = Buffer.concat(chunks);
    }
    const r = await request(d.shieldAdmin + (req.url ?? '/'), {
      method: (req.method ?? 'GET') as 'GET',
      headers: { ...(req.headers['content-type'] ? { 'content-type': req.headers['content-type'] } : {}), ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}) },
      ...(body ? { body } : {}),
    });
    const text = Buffer.from(await r.body.arrayBuffer());
    res.writeHead(r.statusCode, { 'content-type': String(r.headers['content-type'] ?? 'application/json'), 'content-length': text.length });
    res.end(text);
  };
  return createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const e = toOutpostError(err);
      d.log.info({ code: e.code, msg0: e.message }, 'control plane request failed');
      if (!res.headersSent) send(res, e.status, e.toJSON());
      else res.destroy();
    });
  });
}
