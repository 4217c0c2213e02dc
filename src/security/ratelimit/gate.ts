// The rate-limit gate: a token bucket per key (client address, header, cookie, path, host or a
// mix), correct across the node's workers and, with `global`, across nodes through Redis. The
// buckets live in the node's authority (authority.ts); this gate spends tokens leased from it
// (leases.ts). Refusals are 429 with Retry-After and the RateLimit-Policy / RateLimit fields of
// draft-ietf-httpapi-ratelimit-headers.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { EdgeHooks, RequestContext } from '../../edge/phases.ts';
import { gateLogger } from '../gates/options.ts';
import { readCookie } from '../gates/request-parts.ts';
import { refuse } from '../gates/refuse.ts';
import { compileScope, hostnameOf, normalizePath } from '../gates/scope.ts';
import { RateLimitAuthority } from './authority.ts';
import type { RateLimitChannel } from './channel.ts';
import { LeaseTable } from './leases.ts';
import { parseRateLimit, policyOf, type KeyPart, type RateLimitOptions, type RateLimitPolicy } from './policy.ts';

export interface RateLimitEnv {
  /** Position of this limit in `security.rateLimit`: its id at the node's authority. Default 0. */
  readonly index?: number;
  /** The node's authority; without one the gate keeps its own buckets (this process only). */
  readonly channel?: RateLimitChannel;
  /** Where outpost_ratelimit_* are registered. */
  readonly registry?: Registry;
}

/** Keys longer than this are kept as a digest, so that huge header values cost no memory. */
const MAX_KEY_LENGTH = 128;

function digest(v: string): string {
  return createHash('sha256').update(v).digest('base64url').slice(0, 22);
}

type KeyFn = (ctx: RequestContext) => string;

/** When the header or cookie is missing, the request counts under its client address (NUL keeps the two apart). */
function partFn(part: KeyPart): KeyFn {
  if (part === 'ip') return (ctx) => ctx.clientIp;
  if (part === 'path') return (ctx) => normalizePath(ctx.path);
  if (part === 'host') return (ctx) => hostnameOf(ctx.host);
  const name = part.slice(part.indexOf(':') + 1);
  if (part.startsWith('header:')) {
    return (ctx) => {
      const v = ctx.headers[name];
      const s = Array.isArray(v) ? v.join(', ') : v;
      return s ? s : `\0${ctx.clientIp}`;
    };
  }
  return (ctx) => readCookie(ctx.headers.cookie, name) || `\0${ctx.clientIp}`;
}

/**
 * The key of a request. Keys built from several parts, or digested, are made once per distinct
 * value and reused: a fresh string per request would have to be hashed again by every Map lookup,
 * which costs more than the rest of the gate. At most `maxEntries` are kept (then all are dropped).
 */
function compileKey(parts: readonly KeyPart[], maxEntries: number): KeyFn {
  if (parts.length === 1 && parts[0] === 'ip') return (ctx) => ctx.clientIp;
  const fns = parts.map(partFn);
  const make = (values: readonly string[]) => {
    const k = values.join('\n');
    return k.length > MAX_KEY_LENGTH ? digest(k) : k;
  };
  if (fns.length === 1) {
    const f = fns[0]!;
    let long = new Map<string, string>();
    return (ctx) => {
      const v = f(ctx);
      if (v.length <= MAX_KEY_LENGTH) return v;
      let k = long.get(v);
      if (k === undefined) {
        if (long.size >= maxEntries) long = new Map();
        long.set(v, (k = digest(v)));
      }
      return k;
    };
  }
  type Level = Map<string, Level | string>;
  let root: Level = new Map();
  let entries = 0;
  const last = fns.length - 1;
  return (ctx) => {
    let level = root;
    for (let i = 0; i < last; i++) {
      const v = fns[i]!(ctx);
      let next = level.get(v) as Level | undefined;
      if (next === undefined) level.set(v, (next = new Map()));
      level = next;
    }
    const v = fns[last]!(ctx);
    let k = level.get(v) as string | undefined;
    if (k === undefined) {
      k = make(fns.map((f) => f(ctx)));
      if (entries >= maxEntries) {
        root = new Map();
        entries = 0;
      } else {
        level.set(v, k);
        entries++;
      }
    }
    return k;
  };
}

interface RateLimitMetrics {
  readonly refused: Counter<'limit'>;
  readonly mode: Gauge<'limit' | 'mode'>;
}

const unregistered = new WeakMap<object, RateLimitMetrics>();
const NO_REGISTRY = {};

function metricsIn(registry: Registry | undefined): RateLimitMetrics {
  const found = registry ? undefined : unregistered.get(NO_REGISTRY);
  if (found) return found;
  const registers = registry ? [registry] : [];
  const refused =
    (registry?.getSingleMetric('outpost_ratelimit_refused_total') as Counter<'limit'> | undefined) ??
    new Counter({ name: 'outpost_ratelimit_refused_total', help: 'Requests refused by a rate limit.', labelNames: ['limit'], registers });
  const mode =
    (registry?.getSingleMetric('outpost_ratelimit_mode') as Gauge<'limit' | 'mode'> | undefined) ??
    // Every worker reports the node's mode: the node-wide value is their maximum, not their sum.
    new Gauge({ name: 'outpost_ratelimit_mode', help: 'Where a rate limit is counted: 1 on "global" (shared through Redis) or "local" (this node).', labelNames: ['limit', 'mode'], aggregator: 'max', registers });
  const m = { refused, mode };
  if (!registry) unregistered.set(NO_REGISTRY, m);
  return m;
}

/** Buckets in this process only, for a gate used without a node (the warning waits for the first request, not validation). */
function ownChannel(policy: RateLimitPolicy, log: Logger): RateLimitChannel {
  const slots: Array<RateLimitPolicy | undefined> = [];
  slots[policy.index] = policy;
  const inner = new RateLimitAuthority(slots, { log }).channel();
  let warned = !policy.global;
  return {
    ...inner,
    lease(index, key, want) {
      if (!warned) {
        warned = true;
        log.warn('rate limit: no node authority here, so "global" is not applied; counting in this process only');
      }
      return inner.lease(index, key, want);
    },
  };
}

/** A structured-field string (RFC 9651): names are restricted to characters that need no escaping. */
function policyField(name: string, limit: number, perMs: number): string {
  // w is whole seconds; a rate per fraction of a second is advertised per second.
  const perSecond = perMs % 1000 === 0;
  const q = perSecond ? limit : Math.max(1, Math.round((limit * 1000) / perMs));
  const w = perSecond ? perMs / 1000 : 1;
  return `"${name}";q=${q};w=${w}`;
}

export function rateLimit(options: RateLimitOptions, env: RateLimitEnv = {}): EdgeHooks {
  const o = parseRateLimit(options);
  const name = o.name ?? 'default';
  const index = env.index ?? 0;
  const log = gateLogger(o.log, `rate-limit:${name}`);
  const policy = policyOf(o, index, name);
  const scoped = o.hosts !== undefined || o.paths !== undefined;
  const inScope = compileScope(o);
  const parts = o.key;
  const keyOf = compileKey(parts, o.maxKeys);
  const secretKey = parts.some((p) => p.startsWith('header:') || p.startsWith('cookie:'));
  const shown = (key: string) => (secretKey ? `sha256:${digest(key).slice(0, 12)}` : key.replace(/\0/g, ''));

  // Without the node's authority (a gate used on its own), the gate keeps the buckets itself.
  const channel: RateLimitChannel = env.channel ?? ownChannel(policy, log);
  const leases = new LeaseTable({ channel, index, maxLease: policy.maxLease, maxKeys: policy.maxKeys, log });

  const metrics = metricsIn(env.registry);
  const refusedCount = metrics.refused.labels(name);
  channel.watchModes((modes) => {
    const m = modes[index];
    if (!m) return;
    metrics.mode.set({ limit: name, mode: 'global' }, m === 'global' ? 1 : 0);
    metrics.mode.set({ limit: name, mode: 'local' }, m === 'local' ? 1 : 0);
  });

  const policyHeader = policyField(name, policy.limit, policy.perMs);
  const secondsPerToken = 1 / (policy.ratePerMs * 1000);
  const always = o.headers === 'always';
  const allowedVar = `ratelimit.${name}`;

  const refusal = (ctx: RequestContext, key: string) => {
    const secs = Math.max(1, Math.ceil(leases.retryAfterMs(key) / 1000));
    refusedCount.inc();
    log.info({ limit: name, key: shown(key), ip: ctx.clientIp, uri: ctx.path, retryAfter: secs }, 'rate limited');
    return refuse(o.status, `rate limit "${name}" exceeded, retry in ${secs} s`, {
      'retry-after': String(secs),
      'ratelimit-policy': policyHeader,
      ratelimit: `"${name}";r=0;t=${secs}`,
      'x-outpost-error': 'RATE_LIMITED',
    });
  };
  const allowed = always ? (ctx: RequestContext, key: string) => void ctx.vars.set(allowedVar, key) : undefined;

  const hooks: EdgeHooks = {
    name: `rate-limit:${name}`,
    access(ctx) {
      if (scoped && !inScope(ctx)) return;
      const key = keyOf(ctx);
      const r = leases.take(key);
      if (r === true) {
        allowed?.(ctx, key);
        return;
      }
      if (r === false) return refusal(ctx, key);
      return r.then((ok) => {
        if (!ok) return refusal(ctx, key);
        allowed?.(ctx, key);
        return undefined;
      });
    },
  };
  if (!always) return hooks;
  return {
    ...hooks,
    header_filter(ctx, head) {
      const key = ctx.vars.get(allowedVar);
      if (typeof key !== 'string') return;
      const r = Math.max(0, Math.min(policy.burst, leases.remaining(key)));
      const t = Math.ceil((policy.burst - r) * secondsPerToken);
      append(head.headers, 'ratelimit-policy', policyHeader);
      append(head.headers, 'ratelimit', `"${name}";r=${r};t=${t}`);
    },
  };
}

/** Adds a member to a structured-field list header, after what other limits put there. */
function append(headers: Record<string, string | string[]>, name: string, member: string): void {
  const prev = headers[name];
  headers[name] = prev === undefined ? member : `${Array.isArray(prev) ? prev.join(', ') : prev}, ${member}`;
}
