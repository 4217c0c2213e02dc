// A worker's leases on one limit: tokens per key taken from the node's authority in small
// batches and spent here without asking, so an allowed request costs a Map lookup and a
// decrement. When a lease runs dry the request waits for one round trip to the authority; when
// the authority has none left, requests are refused here, without asking again, until its next
// token is due. A lease lives 200–300 ms; what is left then goes back, so a worker that stops
// receiving a key's requests does not sit on tokens another worker needs. Lease sizes follow the
// key's recent demand (100 ms of it), capped by the policy's maxLease (about 2 % of the limit), which
// bounds what idle leases can hold back or add to a burst; requests already waiting are asked for
// on top, since their tokens are spent at once.
import type { Logger } from 'pino';
import type { Grant } from './buckets.ts';
import type { RateLimitChannel } from './channel.ts';

export const LEASE_TTL_MS = 200;
const SWEEP_MS = 100;
/** A lease is sized for this much of the key's recent demand. */
const DEMAND_WINDOW_MS = 100;
const FAILURE_LOG_INTERVAL_MS = 10_000;

interface Lease {
  tokens: number;
  /** Until then the authority had no token: refuse without asking. */
  deniedUntil: number;
  expires: number;
  /** Whole tokens the authority had left at the last grant. */
  remaining: number;
  /** Tokens spent since the last grant, and when it came: the key's demand here. */
  used: number;
  grantedAt: number;
  asking: boolean;
  waiters: Array<(allowed: boolean) => void> | undefined;
}

export interface LeaseTableOptions {
  readonly channel: RateLimitChannel;
  readonly index: number;
  readonly maxLease: number;
  /** Keys tracked at most; past it the oldest idle ones are dropped. */
  readonly maxKeys: number;
  readonly log: Logger;
  readonly clock?: () => number;
  /** false: no timer; tests call sweep() themselves. */
  readonly autoSweep?: boolean;
}

export class LeaseTable {
  readonly #leases = new Map<string, Lease>();
  readonly #o: LeaseTableOptions;
  readonly #clock: () => number;
  #timer: NodeJS.Timeout | undefined;
  #lastFailureLog = -Infinity;

  constructor(o: LeaseTableOptions) {
    this.#o = o;
    this.#clock = o.clock ?? (() => performance.now());
  }

  get size(): number {
    return this.#leases.size;
  }

  /** true: allowed now; false: refused now; a promise: the answer after asking the node. */
  take(key: string): boolean | Promise<boolean> {
    const l = this.#leases.get(key);
    if (l !== undefined && l.tokens > 0) {
      l.tokens--;
      l.used++;
      return true;
    }
    return this.#slow(key, l);
  }

  /** ms until the node expects a token for this key (0 when unknown or now). */
  retryAfterMs(key: string): number {
    const l = this.#leases.get(key);
    return l ? Math.max(0, l.deniedUntil - this.#clock()) : 0;
  }

  /** Tokens this key has left, as far as this worker knows (its lease and the node's bucket at the last grant). */
  remaining(key: string): number {
    const l = this.#leases.get(key);
    return l ? l.tokens + l.remaining : 0;
  }

  /** Gives back what expired leases did not spend and forgets idle keys. */
  sweep(): void {
    const now = this.#clock();
    let returns: Array<[string, number]> | undefined;
    for (const [key, l] of this.#leases) {
      if (l.asking || now < l.expires) continue;
      if (l.tokens > 0) {
        (returns ??= []).push([key, l.tokens]);
        l.tokens = 0;
      }
      if (now >= l.deniedUntil) this.#leases.delete(key);
    }
    if (returns) this.#o.channel.giveBack(this.#o.index, returns);
    if (this.#leases.size === 0 && this.#timer) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  /** Stops the sweep timer and gives every unspent token back. */
  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    const returns: Array<[string, number]> = [];
    for (const [key, l] of this.#leases) if (l.tokens > 0) returns.push([key, l.tokens]);
    this.#leases.clear();
    if (returns.length) this.#o.channel.giveBack(this.#o.index, returns);
  }

  #slow(key: string, found: Lease | undefined): boolean | Promise<boolean> {
    const now = this.#clock();
    let l = found;
    if (l === undefined) {
      if (this.#leases.size >= this.#o.maxKeys) this.#trim();
      l = { tokens: 0, deniedUntil: 0, expires: 0, remaining: 0, used: 0, grantedAt: now, asking: false, waiters: undefined };
      this.#leases.set(key, l);
      if (this.#timer === undefined && this.#o.autoSweep !== false) this.#timer = setInterval(() => this.sweep(), SWEEP_MS).unref();
    }
    if (l.deniedUntil > now) return false;
    const lease = l;
    return new Promise<boolean>((resolve) => {
      (lease.waiters ??= []).push(resolve);
      if (!lease.asking) this.#ask(key, lease, now);
    });
  }

  #ask(key: string, l: Lease, now: number): void {
    l.asking = true;
    const elapsed = now - l.grantedAt;
    const demand = l.used > 0 ? Math.ceil((l.used * DEMAND_WINDOW_MS) / Math.max(1, elapsed)) : 0;
    // Tokens for the requests waiting now are spent at once, so only the reserve for requests to
    // come is capped; otherwise a slow round trip would cap a worker at maxLease per round trip.
    const want = Math.max(l.waiters?.length ?? 1, Math.min(this.#o.maxLease, demand));
    this.#o.channel.lease(this.#o.index, key, want).then(
      (g) => this.#granted(key, l, g),
      (err: unknown) => this.#failed(l, err),
    );
  }

  #granted(key: string, l: Lease, g: Grant): void {
    const now = this.#clock();
    l.asking = false;
    l.tokens += g.granted;
    l.remaining = g.remaining;
    l.used = 0;
    l.grantedAt = now;
    l.expires = now + LEASE_TTL_MS;
    // The node's bucket is dry: what this lease holds is all there is until the next token is due.
    if (g.waitMs > 0) l.deniedUntil = now + g.waitMs;
    const waiters = l.waiters ?? [];
    l.waiters = undefined;
    let i = 0;
    for (; i < waiters.length && l.tokens > 0; i++) {
      l.tokens--;
      l.used++;
      waiters[i]!(true);
    }
    if (i === waiters.length) return;
    if (g.waitMs > 0 || g.granted === 0) {
      if (l.deniedUntil <= now) l.deniedUntil = now + 1;
      for (; i < waiters.length; i++) waiters[i]!(false);
      return;
    }
    // More requests came while asking, and the node has more: ask again for them.
    l.waiters = waiters.slice(i);
    this.#ask(key, l, now);
  }

  /** The authority did not answer: let the waiting requests through (a limiter must not become an outage). */
  #failed(l: Lease, err: unknown): void {
    l.asking = false;
    const waiters = l.waiters ?? [];
    l.waiters = undefined;
    for (const w of waiters) w(true);
    const now = this.#clock();
    if (now - this.#lastFailureLog >= FAILURE_LOG_INTERVAL_MS) {
      this.#lastFailureLog = now;
      this.#o.log.warn({ err: (err as Error).message }, 'rate limit: no answer from the node; letting requests through');
    }
  }

  /** Drops the oldest idle tenth of the keys (their unspent tokens go back). */
  #trim(): void {
    const target = Math.floor(this.#o.maxKeys * 0.9);
    const returns: Array<[string, number]> = [];
    for (const [key, l] of this.#leases) {
      if (this.#leases.size <= target) break;
      if (l.asking) continue;
      if (l.tokens > 0) returns.push([key, l.tokens]);
      this.#leases.delete(key);
    }
    if (returns.length) this.#o.channel.giveBack(this.#o.index, returns);
  }
}
