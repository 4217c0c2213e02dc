// The node's rate-limit authority: the one place that holds each limit's buckets, in the primary
// of a multi-process node (its workers ask over IPC) or in the process of an in-process node.
// Workers take tokens in small leases and spend them without asking (src/security/ratelimit/
// leases.ts); the authority never grants more than a bucket holds, so the node as a whole never
// passes the limit. Global limits draw from Redis instead (redis-buckets.ts), one call per lease;
// while Redis cannot be reached, the node's own bucket stands in, and says so in the log and in
// outpost_ratelimit_mode.
import type { Logger } from 'pino';
import type { OutpostConfig } from '../../config/load.ts';
import { OutpostError } from '../../errors.ts';
import { TokenBuckets, type Grant } from './buckets.ts';
import type { RateLimitChannel, RateLimitModes, RateLimitPrimaryMessage, RateLimitWorkerMessage } from './channel.ts';
import { parseRateLimit, policyOf, rateLimitSettings, type RateLimitPolicy } from './policy.ts';
import { RedisBuckets } from './redis-buckets.ts';

/** How long a node waits at start for Redis before it begins with its local buckets. */
const START_WAIT_MS = 1000;

interface Limit {
  readonly policy: RateLimitPolicy;
  readonly local: TokenBuckets;
  readonly redis?: RedisBuckets;
}

export interface AuthorityOptions {
  readonly log: Logger;
  readonly clock?: () => number;
  /** Redis connections for the global limits, made by start(). */
  readonly redis?: ReadonlyMap<number, RedisBuckets>;
}

export class RateLimitAuthority {
  readonly #limits: Array<Limit | undefined> = [];
  readonly #log: Logger;
  readonly #listeners = new Set<(modes: RateLimitModes) => void>();
  readonly #connections: Set<RedisBuckets>;

  /** Policies by their position in the settings (holes: switched off). */
  constructor(policies: ReadonlyArray<RateLimitPolicy | undefined>, o: AuthorityOptions) {
    this.#log = o.log;
    policies.forEach((p, i) => {
      if (!p) return;
      const redis = o.redis?.get(i);
      this.#limits[i] = { policy: p, local: new TokenBuckets(p.local, { maxKeys: p.maxKeys, ...(o.clock ? { clock: o.clock } : {}) }), ...(redis ? { redis } : {}) };
    });
    this.#connections = new Set(o.redis?.values());
  }

  /**
   * The authority for `security.rateLimit`, with its Redis connections open (waiting up to 1 s for
   * each); undefined when no limit is configured. Run after the cascade validated the options.
   */
  static async start(config: OutpostConfig, log: Logger, onModes?: (modes: RateLimitModes) => void): Promise<RateLimitAuthority | undefined> {
    const settings = rateLimitSettings(config.security.rateLimit);
    if (settings.length === 0) return undefined;
    const policies: RateLimitPolicy[] = [];
    const redis = new Map<number, RedisBuckets>();
    const byConnection = new Map<string, RedisBuckets>();
    let authority: RateLimitAuthority | undefined;
    for (const s of settings) {
      let parsed: ReturnType<typeof parseRateLimit>;
      try {
        parsed = parseRateLimit(s.options);
      } catch (err) {
        throw new OutpostError('CONFIG_INVALID', `security.${s.setting}: ${(err as Error).message}`, { cause: err });
      }
      const p = policyOf(parsed, s.index, String(s.options.name));
      policies[s.index] = p;
      if (!p.global) continue;
      const target = redisTarget(p, config.compute.store, s.setting);
      const id = JSON.stringify([target, p.global.timeoutMs]);
      let conn = byConnection.get(id);
      if (!conn) {
        conn = new RedisBuckets({
          ...target,
          timeoutMs: p.global.timeoutMs,
          log,
          onState: (up) => {
            if (authority) authority.#stateChanged(up, target.urls);
          },
        });
        byConnection.set(id, conn);
      }
      redis.set(s.index, conn);
    }
    authority = new RateLimitAuthority(policies, { log, redis });
    if (onModes) authority.watchModes(onModes);
    const up = await Promise.all([...byConnection.values()].map((c) => c.ready(START_WAIT_MS)));
    if (up.some((u) => !u)) log.warn('rate limit: Redis unreachable at start; each node applies its local limit until it answers');
    return authority;
  }

  /** Each limit's mode now. */
  modes(): RateLimitModes {
    return Array.from(this.#limits, (l) => (l === undefined ? null : l.redis?.up ? 'global' : 'local'));
  }

  watchModes(listener: (modes: RateLimitModes) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Up to `want` tokens (the worker sizes its leases; never more than the burst). */
  lease(index: number, key: string, want: number): Grant | Promise<Grant> {
    const l = this.#limits[index];
    // A limit this authority does not know (a worker on another configuration): do not block its traffic.
    if (!l) return { granted: Math.max(0, Math.floor(want)), remaining: 0, waitMs: 0 };
    const n = Math.max(0, Math.min(Math.floor(want), l.policy.burst));
    if (!l.redis?.up) return l.local.take(key, n);
    const p = l.policy;
    return l.redis.take(RedisBuckets.keyOf(p.global!.prefix, p.name, key), p, n).catch(() => l.local.take(key, n));
  }

  giveBack(index: number, key: string, n: number): void {
    const l = this.#limits[index];
    if (!l || !(n > 0)) return;
    const p = l.policy;
    if (l.redis?.up) l.redis.giveBack(RedisBuckets.keyOf(p.global!.prefix, p.name, key), p, n);
    else l.local.giveBack(key, n);
  }

  /** For an in-process node: the channel its gates use. */
  channel(): RateLimitChannel {
    return {
      lease: async (index, key, want) => this.lease(index, key, want),
      giveBack: (index, returns) => {
        for (const [key, n] of returns) this.giveBack(index, key, n);
      },
      watchModes: (listener) => {
        this.watchModes(listener);
        listener(this.modes());
      },
    };
  }

  /** Handles a worker's message in the primary; `reply` sends to that worker. */
  receive(m: RateLimitWorkerMessage, reply: (m: RateLimitPrimaryMessage) => void): void {
    if (m.t === 'outpost:rl-return') {
      for (const [key, n] of m.returns) this.giveBack(m.index, key, n);
      return;
    }
    const answers = m.asks.map(([index, key, want]) => this.lease(index, key, want));
    const send = (grants: readonly Grant[]) =>
      reply({ t: 'outpost:rl-grant', id: m.id, grants: grants.map((g) => [g.granted, g.remaining, g.waitMs] as const), modes: this.modes() });
    if (answers.every((a): a is Grant => !(a instanceof Promise))) send(answers);
    else void Promise.all(answers).then(send);
  }

  async close(): Promise<void> {
    this.#listeners.clear();
    await Promise.all([...this.#connections].map((c) => c.close()));
  }

  #stateChanged(up: boolean, urls: readonly string[]): void {
    if (up) this.#log.info({ redis: urls }, 'rate limit: Redis reachable again; global limits are shared across nodes again');
    else this.#log.warn({ redis: urls }, 'rate limit: Redis unreachable; falling back to this node\'s local limit (outpost_ratelimit_mode{mode="local"})');
    const modes = this.modes();
    for (const l of this.#listeners) l(modes);
  }
}

/** Where a global limit's Redis is: its own url/nodes, or else the CU store's Redis. */
function redisTarget(p: RateLimitPolicy, store: OutpostConfig['compute']['store'], setting: string): { kind: 'redis' | 'redis-cluster'; urls: string[] } {
  const g = p.global!;
  if (g.nodes) return { kind: 'redis-cluster', urls: [...g.nodes] };
  if (g.url) return { kind: 'redis', urls: [g.url] };
  if (store.kind === 'redis') return { kind: 'redis', urls: [store.url] };
  if (store.kind === 'redis-cluster') return { kind: 'redis-cluster', urls: store.nodes.length ? [...store.nodes] : [store.url] };
  throw new OutpostError('CONFIG_INVALID', `security.${setting}.global.url: expected a redis:// URL (compute.store.kind is "embedded", so there is no Redis to share)`);
}
