// Token buckets per key, held by a node's authority (the primary, or the process of an in-process
// node). Memory stays bounded: a bucket that would have refilled completely is no different from
// a missing one, so each entry lives only until then (lru-cache's per-entry TTL), and at most
// `maxKeys` are kept (the least recently used go first; they come back as full buckets).
import { LRUCache } from 'lru-cache';
import type { Bucket } from './policy.ts';

/** What the authority answers a worker: tokens granted, what is left, and when the next one comes. */
export interface Grant {
  readonly granted: number;
  /** Whole tokens left in the bucket after this grant. */
  readonly remaining: number;
  /** ms until the bucket holds a whole token again; 0 when it holds one now. */
  readonly waitMs: number;
}

interface State {
  tokens: number;
  at: number;
}

export class TokenBuckets {
  readonly #bucket: Bucket;
  readonly #clock: () => number;
  readonly #states: LRUCache<string, State>;

  constructor(bucket: Bucket, opts: { maxKeys: number; clock?: () => number }) {
    this.#bucket = bucket;
    this.#clock = opts.clock ?? (() => performance.now());
    // The cache's own TTL clock must be ours, so that tests can move time.
    this.#states = new LRUCache<string, State>({ max: opts.maxKeys, ttlAutopurge: false, ttlResolution: 0, perf: { now: this.#clock } });
  }

  get size(): number {
    return this.#states.size;
  }

  /** Takes up to `want` whole tokens (0 only asks how the bucket stands). */
  take(key: string, want: number): Grant {
    const now = this.#clock();
    const tokens = this.#level(key, now);
    const granted = Math.max(0, Math.min(want, Math.floor(tokens)));
    return this.#store(key, tokens - granted, now, granted);
  }

  /** Puts back tokens a worker did not use (never above the burst). */
  giveBack(key: string, n: number): void {
    const now = this.#clock();
    this.#store(key, Math.min(this.#bucket.burst, this.#level(key, now) + n), now, 0);
  }

  #level(key: string, now: number): number {
    const s = this.#states.get(key);
    if (s === undefined) return this.#bucket.burst;
    return Math.min(this.#bucket.burst, s.tokens + Math.max(0, now - s.at) * this.#bucket.ratePerMs);
  }

  #store(key: string, tokens: number, now: number, granted: number): Grant {
    const { burst, ratePerMs } = this.#bucket;
    if (tokens >= burst) this.#states.delete(key);
    else {
      const s = this.#states.get(key);
      // Kept until it would be full again; after that a missing entry means the same.
      const ttl = Math.max(1, Math.ceil((burst - tokens) / ratePerMs));
      if (s) {
        s.tokens = tokens;
        s.at = now;
        this.#states.set(key, s, { ttl });
      } else this.#states.set(key, { tokens, at: now }, { ttl });
    }
    return { granted, remaining: Math.floor(tokens), waitMs: tokens >= 1 ? 0 : Math.max(1, Math.ceil((1 - tokens) / ratePerMs)) };
  }
}
