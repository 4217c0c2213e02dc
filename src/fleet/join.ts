// Joining the fleet from a node's configuration: which store the nodes share, who this node is,
// and the admin routes that show the fleet (GET /nodes).
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { PurgeSpec } from '../cache/storage/tier.ts';
import type { OutpostConfig } from '../config/load.ts';
import { send } from '../control/admin.ts';
import type { Logger } from '../log/logger.ts';
import { LocalFleet, RedisFleet, type Fleet, type NodeInfo } from './fleet.ts';
import { FleetMember } from './member.ts';

export const OUTPOST_VERSION = '0.1.0';

export function openFleet(config: OutpostConfig): Fleet {
  const s = config.compute.store;
  if (s.kind === 'embedded') return new LocalFleet();
  return new RedisFleet({
    kind: s.kind,
    urls: s.kind === 'redis' ? [s.url] : s.nodes.length ? s.nodes : [s.url],
    prefix: s.prefix,
    commandTimeoutMs: s.commandTimeout,
    history: config.fleet.purgeHistory,
  });
}

/** Cache statuses that count as served from cache in the hit ratio. */
const HIT_STATUSES = new Set(['HIT', 'STALE', 'UPDATING']);

/** Requests and hits from a Prometheus exposition's outpost_requests_total lines. */
export function requestStats(exposition: string): { requests: number; hits: number } {
  let requests = 0;
  let hits = 0;
  for (const m of exposition.matchAll(/^outpost_requests_total\{([^}]*)\} (\d+(?:\.\d+)?(?:e\+?\d+)?)$/gm)) {
    const n = Number(m[2]);
    requests += n;
    const cache = /cache="([^"]*)"/.exec(m[1]!)?.[1] ?? '';
    if (HIT_STATUSES.has(cache)) hits += n;
  }
  return { requests, hits };
}

export interface JoinOptions {
  readonly config: OutpostConfig;
  readonly log: Logger;
  readonly edgeUrl: () => string | undefined;
  readonly adminUrl: () => string | undefined;
  readonly metricsText: () => Promise<string>;
  readonly applyLocal: (spec: PurgeSpec, soft: boolean) => Promise<number>;
  readonly hasOldObjects: () => boolean;
  /** A fleet shared in-process (`outpost up`); default: from the store settings. */
  readonly fleet?: Fleet;
}

export async function joinFleet(o: JoinOptions): Promise<FleetMember> {
  const { config } = o;
  const name = config.fleet.name ?? hostname();
  const self = {
    id: `${name}-${process.pid}-${randomBytes(3).toString('hex')}`,
    name,
    role: config.fleet.role,
    version: OUTPOST_VERSION,
    pid: process.pid,
    host: hostname(),
    startedAt: Date.now(),
  };
  let edge: string | undefined;
  let admin: string | undefined;
  return FleetMember.start({
    fleet: o.fleet ?? openFleet(config),
    log: o.log.child({ part: 'fleet' }),
    get self() {
      edge ??= o.edgeUrl();
      admin ??= o.adminUrl();
      return { ...self, ...(edge ? { edge } : {}), ...(admin ? { admin } : {}) };
    },
    stats: async () => ({ ...requestStats(await o.metricsText()), healthy: true }),
    heartbeatMs: config.fleet.heartbeat,
    applyLocal: o.applyLocal,
    ...(config.cache.disk.enabled ? { cursorFile: join(config.cache.disk.path, 'purge-cursor') } : {}),
    hasOldObjects: o.hasOldObjects,
  });
}

/** GET /nodes: the nodes of the fleet, each with `up` (a heartbeat within 3 intervals). */
export function nodeRoutes(member: FleetMember, heartbeatMs: number) {
  return async (req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> => {
    if (path !== '/nodes' || req.method !== 'GET') return false;
    const now = Date.now();
    const nodes = (await member.nodes(10 * 60_000)).map((n: NodeInfo) => ({ ...n, up: now - n.seenAt <= 3 * heartbeatMs, self: n.id === member.id }));
    send(res, 200, { nodes });
    return true;
  };
}
