// How a worker's rate-limit gates reach the node's buckets: directly in an in-process node, over
// IPC to the primary in a cluster. Asks made in the same turn of the event loop travel in one
// message, so a burst of new keys costs one round trip, not one per key.
import type { Grant } from './buckets.ts';

/** 'global': the limit is shared through Redis; 'local': this node's own bucket (by design or as fallback). */
export type RateLimitMode = 'global' | 'local';

/** Each configured limit's mode, by position in `security.rateLimit` (null: switched off). */
export type RateLimitModes = ReadonlyArray<RateLimitMode | null>;

export interface RateLimitChannel {
  /** Asks the node for up to `want` tokens of limit `index` for `key`. */
  lease(index: number, key: string, want: number): Promise<Grant>;
  /** Tokens a worker did not use before its lease ran out, back to the node. */
  giveBack(index: number, returns: ReadonlyArray<readonly [key: string, n: number]>): void;
  /** Calls `listener` with the modes as soon as they are known and whenever they change. */
  watchModes(listener: (modes: RateLimitModes) => void): void;
}

export type RateLimitWorkerMessage =
  /** Asks in order; an empty list only asks for the modes. */
  | { readonly t: 'outpost:rl-lease'; readonly id: number; readonly asks: ReadonlyArray<readonly [index: number, key: string, want: number]> }
  | { readonly t: 'outpost:rl-return'; readonly index: number; readonly returns: ReadonlyArray<readonly [key: string, n: number]> };

export type RateLimitPrimaryMessage =
  | {
      readonly t: 'outpost:rl-grant';
      readonly id: number;
      readonly grants: ReadonlyArray<readonly [granted: number, remaining: number, waitMs: number]>;
      readonly modes: RateLimitModes;
    }
  | { readonly t: 'outpost:rl-modes'; readonly modes: RateLimitModes };

/** Past this, a worker stops waiting for the primary and lets the request through (fail open). */
const ASK_TIMEOUT_MS = 2000;

interface Wait {
  resolve(g: Grant): void;
  reject(e: Error): void;
}

/** The worker side of the channel in a multi-process node. */
export class IpcRateLimitChannel implements RateLimitChannel {
  readonly #send: (m: RateLimitWorkerMessage) => void;
  #nextId = 1;
  #asks: Array<readonly [number, string, number]> = [];
  #waits: Wait[] = [];
  #scheduled = false;
  readonly #pending = new Map<number, { waits: Wait[]; timer: NodeJS.Timeout }>();
  readonly #listeners: Array<(modes: RateLimitModes) => void> = [];
  #modes: RateLimitModes | undefined;

  constructor(send: (m: RateLimitWorkerMessage) => void) {
    this.#send = send;
  }

  lease(index: number, key: string, want: number): Promise<Grant> {
    return new Promise((resolve, reject) => {
      this.#asks.push([index, key, want]);
      this.#waits.push({ resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  giveBack(index: number, returns: ReadonlyArray<readonly [string, number]>): void {
    if (returns.length) this.#send({ t: 'outpost:rl-return', index, returns });
  }

  watchModes(listener: (modes: RateLimitModes) => void): void {
    this.#listeners.push(listener);
    if (this.#modes) listener(this.#modes);
    else if (this.#listeners.length === 1) this.#request([], []);
  }

  /** Feeds a message from the primary. */
  receive(m: RateLimitPrimaryMessage): void {
    if (m.t === 'outpost:rl-grant') {
      const p = this.#pending.get(m.id);
      if (p) {
        this.#pending.delete(m.id);
        clearTimeout(p.timer);
        p.waits.forEach((w, i) => {
          const g = m.grants[i];
          if (g) w.resolve({ granted: g[0], remaining: g[1], waitMs: g[2] });
          else w.reject(new Error('no grant in the answer'));
        });
      }
    }
    this.#setModes(m.modes);
  }

  #setModes(modes: RateLimitModes): void {
    const before = this.#modes;
    this.#modes = modes;
    if (before && before.length === modes.length && before.every((m, i) => m === modes[i])) return;
    for (const l of this.#listeners) l(modes);
  }

  #flush(): void {
    this.#scheduled = false;
    const asks = this.#asks;
    const waits = this.#waits;
    this.#asks = [];
    this.#waits = [];
    this.#request(asks, waits);
  }

  #request(asks: Array<readonly [number, string, number]>, waits: Wait[]): void {
    const id = this.#nextId++;
    const timer = setTimeout(() => {
      this.#pending.delete(id);
      for (const w of waits) w.reject(new Error(`the primary did not answer within ${ASK_TIMEOUT_MS} ms`));
    }, ASK_TIMEOUT_MS);
    timer.unref();
    this.#pending.set(id, { waits, timer });
    this.#send({ t: 'outpost:rl-lease', id, asks });
  }
}
