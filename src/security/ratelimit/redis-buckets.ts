// The buckets of global limits, in Redis, shared by every node. A small Lua token bucket rather
// than rate-limiter-flexible: its Redis limiters count fixed windows (twice the limit can pass
// across a window edge) and consume all-or-nothing, while a node needs "up to n tokens" in one
// round trip to hand batches to its workers, with the same semantics as its local buckets (so the
// fallback changes nothing but the scope). Redis's own clock (TIME) is the only clock, so nodes
// whose clocks disagree still share one bucket exactly; one key per bucket, so it works on Redis
// Cluster too. Nodes call it per batch, never per request.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { redisClient, type Client } from '../../compute/store/redis.ts';
import type { Grant } from './buckets.ts';
import type { Bucket } from './policy.ts';

/**
 * KEYS[1]: the bucket. ARGV: tokens per ms, burst, tokens wanted, tokens given back.
 * Returns { granted, whole tokens left, ms until a whole token }.
 */
const TAKE_SCRIPT = `
if redis.replicate_commands then pcall(redis.replicate_commands) end
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local give = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local s = redis.call('HMGET', KEYS[1], 'n', 't')
local n = burst
if s[1] then
  n = tonumber(s[1])
  local dt = now - tonumber(s[2])
  if dt > 0 then n = math.min(burst, n + dt * rate) end
end
n = math.min(burst, n + give)
local g = math.max(0, math.min(want, math.floor(n)))
n = n - g
if n >= burst then
  redis.call('DEL', KEYS[1])
else
  redis.call('HSET', KEYS[1], 'n', string.format('%.17g', n), 't', string.format('%.17g', now))
  redis.call('PEXPIRE', KEYS[1], math.ceil((burst - n) / rate) + 1000)
end
local wait = 0
if n < 1 then wait = math.max(1, math.ceil((1 - n) / rate)) end
return {g, math.floor(n), wait}
`;

type TakeCommand = (key: string, ratePerMs: string, burst: number, want: number, give: number) => Promise<[number, number, number]>;

const PROBE_INTERVAL_MS = 1000;
/** A bucket nobody uses: asking it for nothing shows that scripts run. */
const PROBE_KEY = 'outpost:rl:probe';

export interface RedisBucketsOptions {
  readonly kind: 'redis' | 'redis-cluster';
  readonly urls: readonly string[];
  readonly timeoutMs: number;
  readonly log: Logger;
  /** Called when Redis becomes reachable (true) or unreachable (false). */
  readonly onState: (up: boolean) => void;
}

/** One Redis (or Redis Cluster) connection holding the buckets of the global limits that use it. */
export class RedisBuckets {
  readonly #client: Client;
  readonly #take: TakeCommand;
  readonly #o: RedisBucketsOptions;
  #up = false;
  #closed = false;
  #probe: NodeJS.Timeout | undefined;

  constructor(o: RedisBucketsOptions) {
    this.#o = o;
    this.#client = redisClient({ kind: o.kind, urls: o.urls, commandTimeoutMs: o.timeoutMs, name: 'outpost-ratelimit' });
    this.#client.defineCommand('outpostRateTake', { numberOfKeys: 1, lua: TAKE_SCRIPT });
    this.#take = (this.#client as unknown as { outpostRateTake: TakeCommand }).outpostRateTake.bind(this.#client);
    this.#client.on('error', () => undefined); // reported through failed calls and 'close'
    this.#client.on('ready', () => void this.#check());
    this.#client.on('close', () => this.#down('connection closed'));
    this.#probe = setInterval(() => void this.#check(), PROBE_INTERVAL_MS).unref();
  }

  get up(): boolean {
    return this.#up;
  }

  /** Resolves once Redis answers, or with false after `ms`. */
  async ready(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.#up && !this.#closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return this.#up;
  }

  /** Redis key of a bucket: the client key is hashed, since it may be an API key or a session. */
  static keyOf(prefix: string, limit: string, key: string): string {
    return `${prefix}:${limit}:${createHash('sha256').update(key).digest('base64url').slice(0, 22)}`;
  }

  async take(redisKey: string, bucket: Bucket, want: number): Promise<Grant> {
    try {
      const [granted, remaining, waitMs] = await this.#take(redisKey, String(bucket.ratePerMs), bucket.burst, want, 0);
      return { granted, remaining, waitMs };
    } catch (err) {
      this.#down((err as Error).message);
      throw err;
    }
  }

  giveBack(redisKey: string, bucket: Bucket, n: number): void {
    if (!this.#up) return;
    this.#take(redisKey, String(bucket.ratePerMs), bucket.burst, 0, n).catch((err: unknown) => this.#down((err as Error).message));
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#probe);
    this.#client.disconnect();
  }

  /** Up once a real bucket call succeeds (a connection alone is not enough on a cluster). */
  async #check(): Promise<void> {
    if (this.#up || this.#closed) return;
    try {
      await this.#take(PROBE_KEY, '1', 1, 0, 0);
    } catch {
      return;
    }
    if (this.#up || this.#closed) return;
    this.#up = true;
    clearInterval(this.#probe);
    this.#probe = undefined;
    this.#o.onState(true);
  }

  #down(why: string): void {
    if (this.#closed) return;
    if (this.#up) {
      this.#up = false;
      this.#o.log.debug({ why }, 'rate-limit Redis call failed');
      this.#o.onState(false);
    }
    this.#probe ??= setInterval(() => void this.#check(), PROBE_INTERVAL_MS).unref();
  }
}
