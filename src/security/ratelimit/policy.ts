// The options of one rate limit (`security.rateLimit`), validated once, and the policy both sides
// of a node derive from them: the gate in every worker and the authority in the primary read the
// same configuration, so a limit is known to both by its position in the list.
import type { Logger } from 'pino';
import { z } from 'zod';
import { parseDuration } from '../../config/units.ts';
import { OutpostError } from '../../errors.ts';
import { common, describe, headerName, paramName, parseOptions } from '../gates/options.ts';

/** A rate as written: "100/s", "6000/min", "30r/m", "5/10s", or { limit: 100, per: "1s" }. */
export type RateInput = string | { limit: number; per: string | number };

/** One part of a limit's key: the client address, a request header, a cookie, the path or the host. */
export type KeyPart = 'ip' | 'path' | 'host' | `header:${string}` | `cookie:${string}`;

export interface GlobalOptions {
  /** A redis:// URL; default: compute.store's Redis (kind redis or redis-cluster). */
  url?: string;
  /** Redis Cluster seed nodes. */
  nodes?: string[];
  /** Key prefix in Redis; default "outpost:rl". */
  prefix?: string;
  /** Timeout of each Redis call; past it the node falls back to its local bucket. Default "250ms". */
  timeout?: string | number;
  /** This node's own limit while Redis is unreachable; default the global rate and burst. */
  localRate?: RateInput;
  localBurst?: number;
}

export interface RateLimitOptions {
  /** Policy name, in the RateLimit headers, logs and metrics. Default "default" (or "limit-<n>" in a list). */
  name?: string;
  hosts?: string[];
  paths?: string[];
  rate: RateInput;
  /** Bucket size: how many requests may come at once. Default the rate's count ("100/s" → 100). */
  burst?: number;
  /** Default 'ip'. Several parts make one key ("ip" and "path": per client and path). */
  key?: KeyPart | KeyPart[];
  /** 429 (default) or 503. */
  status?: 429 | 503;
  /** 'refused' (default): RateLimit headers on refusals only; 'always': on every response in scope. */
  headers?: 'refused' | 'always';
  /** Keys tracked per limit in the node's buckets; the least recently used beyond it are forgotten. Default 100000. */
  maxKeys?: number;
  /** Share the limit across nodes through Redis; `true` uses compute.store's Redis. */
  global?: true | GlobalOptions;
  log?: Logger;
}

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  sec: 1000,
  second: 1000,
  m: 60_000,
  min: 60_000,
  minute: 60_000,
  h: 3_600_000,
  hour: 3_600_000,
  d: 86_400_000,
  day: 86_400_000,
};

/** Parses "100/s"-style rates; undefined when it is not one. */
export function parseRate(v: unknown): { limit: number; perMs: number } | undefined {
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    const o = v as { limit?: unknown; per?: unknown };
    const perMs = parseDuration(o.per);
    if (!Number.isInteger(o.limit) || (o.limit as number) < 1 || perMs === undefined || perMs <= 0) return undefined;
    return { limit: o.limit as number, perMs };
  }
  if (typeof v !== 'string') return undefined;
  const m = /^\s*(\d+)\s*r?\s*\/\s*(\d+(?:\.\d+)?)?\s*([a-z]+)\s*$/i.exec(v);
  if (!m) return undefined;
  const limit = Number(m[1]);
  const word = m[3]!.toLowerCase();
  const unit = UNIT_MS[word] ?? UNIT_MS[word.replace(/s$/, '')];
  const perMs = (m[2] === undefined ? 1 : Number(m[2])) * (unit ?? NaN);
  if (!(limit >= 1) || !(perMs > 0)) return undefined;
  return { limit, perMs };
}

const rate = z.unknown().transform((v, ctx) => {
  const r = parseRate(v);
  if (!r) {
    ctx.addIssue({ code: 'custom', message: `expected a rate such as "100/s", "6000/min", "5/10s" or { limit: 100, per: "1s" }, got ${describe(v)}` });
    return z.NEVER;
  }
  return r;
});

const keyPart = z.string().transform((v, ctx): KeyPart => {
  if (v === 'ip' || v === 'path' || v === 'host') return v;
  const m = /^(header|cookie):(.*)$/i.exec(v);
  const name = m?.[2] ?? '';
  const kind = m?.[1]?.toLowerCase();
  if (kind === 'header' && headerName.safeParse(name).success) return `header:${name.toLowerCase()}`;
  if (kind === 'cookie' && paramName.safeParse(name).success) return `cookie:${name}`;
  ctx.addIssue({ code: 'custom', message: `expected "ip", "path", "host", "header:<Name>" or "cookie:<name>", got ${describe(v)}` });
  return z.NEVER;
});

const redisUrl = z.string().regex(/^rediss?:\/\/[^/]/, { error: (iss) => `expected a redis:// or rediss:// URL, got ${describe(iss.input)}` });

const duration = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const ms = parseDuration(v);
  if (ms === undefined || ms <= 0) {
    ctx.addIssue({ code: 'custom', message: `expected a duration such as "250ms" or "1s", got ${describe(v)}` });
    return z.NEVER;
  }
  return ms;
});

const GlobalSchema = z.strictObject({
  url: redisUrl.optional(),
  nodes: z.array(redisUrl).min(1).optional(),
  prefix: z.string().min(1).max(100).default('outpost:rl'),
  timeout: duration.default(250),
  localRate: rate.optional(),
  localBurst: z.int().min(1).optional(),
});

export const RateLimitSchema = z.strictObject({
  ...common,
  name: z
    .string()
    .refine((v) => /^[A-Za-z0-9_.:-]{1,64}$/.test(v), { error: (iss) => `expected a name of letters, digits, "_", ".", ":" or "-", got ${describe(iss.input)}` })
    .optional(),
  rate,
  burst: z.int().min(1).optional(),
  key: z.preprocess((v) => (typeof v === 'string' ? [v] : v), z.array(keyPart).min(1).max(4)).default(['ip']),
  status: z.union([z.literal(429), z.literal(503)], { error: (iss) => `expected 429 or 503, got ${describe(iss.input)}` }).default(429),
  headers: z.enum(['refused', 'always']).default('refused'),
  maxKeys: z.int().min(100).max(10_000_000).default(100_000),
  global: z.preprocess((v) => (v === true ? {} : v), GlobalSchema).optional(),
});

export type ParsedRateLimit = z.output<typeof RateLimitSchema>;

export interface Bucket {
  /** Tokens per millisecond. */
  readonly ratePerMs: number;
  readonly burst: number;
}

/** What the node's authority needs of one limit; the gate's own options stay in the gate. */
export interface RateLimitPolicy extends Bucket {
  readonly index: number;
  readonly name: string;
  /** The rate as configured, for the RateLimit-Policy header. */
  readonly limit: number;
  readonly perMs: number;
  /**
   * Most tokens one worker may hold at once: 2 % of the burst or of a second's worth of the rate,
   * whichever is larger, within the burst, at least 1. Small enough that what idle leases hold back
   * stays within the tests' 5 %; large enough that a busy key asks rarely.
   */
  readonly maxLease: number;
  readonly maxKeys: number;
  /** The node's bucket while Redis is unreachable (global limits), or always (the others). */
  readonly local: Bucket;
  readonly global?: { readonly url?: string; readonly nodes?: readonly string[]; readonly prefix: string; readonly timeoutMs: number };
}

/** The policy of a limit from its parsed options. */
export function policyOf(o: ParsedRateLimit, index: number, name: string): RateLimitPolicy {
  const ratePerMs = o.rate.limit / o.rate.perMs;
  const burst = o.burst ?? o.rate.limit;
  const g = o.global;
  const localRate = g?.localRate;
  return {
    index,
    name,
    limit: o.rate.limit,
    perMs: o.rate.perMs,
    ratePerMs,
    burst,
    maxLease: Math.max(1, Math.floor(Math.min(burst, 0.02 * Math.max(burst, ratePerMs * 1000)))),
    maxKeys: o.maxKeys,
    local: localRate ? { ratePerMs: localRate.limit / localRate.perMs, burst: g?.localBurst ?? localRate.limit } : { ratePerMs, burst: g?.localBurst ?? burst },
    ...(g ? { global: { ...(g.url ? { url: g.url } : {}), ...(g.nodes ? { nodes: g.nodes } : {}), prefix: g.prefix, timeoutMs: g.timeout } } : {}),
  };
}

export type Raw = Record<string, unknown>;

/** One configured limit: where it sits in the settings and its position, the id both sides use. */
export interface RateLimitSetting {
  readonly setting: string;
  readonly index: number;
  readonly options: Raw;
}

/** The limits `security.rateLimit` switches on (one object or a list), with their default names. */
export function rateLimitSettings(value: Raw | readonly Raw[] | undefined): RateLimitSetting[] {
  if (value === undefined) return [];
  const list = Array.isArray(value) ? value : [value];
  const out: RateLimitSetting[] = [];
  const names = new Map<unknown, string>();
  list.forEach((raw, index) => {
    const setting = Array.isArray(value) ? `rateLimit.${index}` : 'rateLimit';
    if (raw.enabled === false) return;
    const { enabled: _e, ...options } = raw;
    const name = options.name ?? (Array.isArray(value) ? `limit-${index}` : 'default');
    const other = names.get(name);
    if (other !== undefined) throw new OutpostError('CONFIG_INVALID', `security.${setting}.name: expected a name no other limit uses, got ${describe(name)} (as ${other})`);
    names.set(name, `security.${setting}`);
    out.push({ setting, index, options: { ...options, name } });
  });
  return out;
}

/** Parses a limit's options (CONFIG_INVALID naming each wrong option). */
export function parseRateLimit(options: unknown): ParsedRateLimit {
  return parseOptions('rateLimit', RateLimitSchema, options);
}
