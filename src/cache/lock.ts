// Request collapsing (cache lock). Two layers:
// - LockTable: the node-wide record of which fills are in progress. It lives in the primary process
//   (workers reach it over IPC) or in-process when the node runs without workers.
// - Collapser: per worker. Concurrent requests for one key in a worker share one place in the queue,
//   so a herd costs one table round trip per worker, not per request.
// Waiters are woken the moment the writer releases — there is no polling interval (nginx's
// proxy_cache_lock re-checks every 500 ms).

import type { StoredMeta } from './storage/tier.ts';

/** How a fill ended, as told to the requests that waited for it. */
export type FillOutcome = 'stored' | 'failed' | 'uncacheable';

/**
 * A small object a writer hands to the other workers' waiters as soon as its own RAM holds it,
 * before the shared disk tier has committed (which syncs to disk): they put it in their RAM and
 * answer at once. The node-wide lock stays held until the disk has it.
 */
export interface SharedFill {
  readonly meta: StoredMeta;
  readonly body: Buffer;
}

export type LockGrant =
  | {
      readonly role: 'writer';
      release(outcome: FillOutcome): void;
      /**
       * The fill is stored where this worker reads first (its RAM): wakes this worker's waiters
       * now, with 'stored', while the node-wide lock is kept until release(), for the workers
       * that can only read it from a shared tier still being written.
       */
      releaseLocal?(): void;
      /** Hands the stored object to the requests other workers queued for it (see SharedFill). */
      share?(fill: SharedFill): void;
    }
  | { readonly role: 'reader'; readonly outcome: FillOutcome | 'timeout'; readonly shared?: SharedFill };

export type RemoteAcquire =
  | { readonly granted: true; readonly token: number }
  | { readonly granted: false; readonly outcome: FillOutcome; readonly shared?: SharedFill };

/** A waiter's answer, with the shared fill when there is one (no `shared: undefined`). */
export function notGranted(outcome: FillOutcome, shared: SharedFill | undefined): RemoteAcquire {
  return shared ? { granted: false, outcome, shared } : { granted: false, outcome };
}

function readerGrant(outcome: FillOutcome | 'timeout', shared: SharedFill | undefined): LockGrant {
  return shared ? { role: 'reader', outcome, shared } : { role: 'reader', outcome };
}

/** Transport from a worker to the node-wide LockTable. */
export interface RemoteLock {
  /** Resolves at once when granted; otherwise when the current writer releases. */
  acquire(key: string): Promise<RemoteAcquire>;
  release(key: string, token: number, outcome: FillOutcome): void;
  /** Wakes the requests queued so far with 'stored' and `fill`; the lock stays held. */
  share?(key: string, token: number, fill: SharedFill): void;
}

interface Held<S> {
  token: number;
  owner: string;
  since: number;
  waiters: Array<(outcome: FillOutcome, shared?: S) => void>;
}

/** The node-wide table; `S` is how a SharedFill travels (the primary keeps it in its wire form). */
export class LockTable<S = SharedFill> {
  private readonly held = new Map<string, Held<S>>();
  private nextToken = 1;
  private readonly maxAgeMs: number;
  private readonly now: () => number;

  /** A lock older than maxAgeMs is taken to be abandoned and handed to the next requester. */
  constructor(opts: { maxAgeMs: number; now?: () => number }) {
    this.maxAgeMs = opts.maxAgeMs;
    this.now = opts.now ?? Date.now;
  }

  /** Grants the lock (returns its token) or queues `onRelease` and returns undefined. */
  acquire(key: string, owner: string, onRelease: (outcome: FillOutcome, shared?: S) => void): number | undefined {
    const h = this.held.get(key);
    const now = this.now();
    if (h && now - h.since < this.maxAgeMs) {
      h.waiters.push(onRelease);
      return undefined;
    }
    // A stale holder's waiters are told it failed; the new writer starts afresh.
    if (h) for (const w of h.waiters) w('failed');
    const token = this.nextToken++;
    this.held.set(key, { token, owner, since: now, waiters: [] });
    return token;
  }

  release(key: string, token: number, outcome: FillOutcome): void {
    const h = this.held.get(key);
    if (!h || h.token !== token) return;
    this.held.delete(key);
    for (const w of h.waiters) w(outcome);
  }

  /** Wakes the requests queued for a held lock with the writer's object; later ones wait for release. */
  share(key: string, token: number, fill: S): void {
    const h = this.held.get(key);
    if (!h || h.token !== token) return;
    const waiters = h.waiters;
    h.waiters = [];
    for (const w of waiters) w('stored', fill);
  }

  /** Releases every lock of an owner that went away (a worker that died mid-fill). */
  releaseOwner(owner: string): void {
    for (const [key, h] of this.held) if (h.owner === owner) this.release(key, h.token, 'failed');
  }

  get size(): number {
    return this.held.size;
  }
}

/** RemoteLock over a LockTable in the same process. */
export class InProcessLock implements RemoteLock {
  private readonly table: LockTable;
  constructor(table: LockTable) {
    this.table = table;
  }
  acquire(key: string): Promise<RemoteAcquire> {
    return new Promise((resolve) => {
      const token = this.table.acquire(key, 'local', (outcome, shared) => resolve(notGranted(outcome, shared)));
      if (token !== undefined) resolve({ granted: true, token });
    });
  }
  release(key: string, token: number, outcome: FillOutcome): void {
    this.table.release(key, token, outcome);
  }
  share(key: string, token: number, fill: SharedFill): void {
    this.table.share(key, token, fill);
  }
}

interface Pending {
  readonly waiters: Set<(outcome: FillOutcome | 'timeout', shared?: SharedFill) => void>;
}

export class Collapser {
  private readonly inflight = new Map<string, Pending>();
  private readonly localInflight = new Map<string, Pending>();
  private readonly remote: RemoteLock;
  private readonly timeoutMs: number;

  constructor(remote: RemoteLock, opts: { timeoutMs: number }) {
    this.remote = remote;
    this.timeoutMs = opts.timeoutMs;
  }

  /** Number of keys this worker is filling or waiting for. */
  get pending(): number {
    return this.inflight.size;
  }

  acquire(key: string): Promise<LockGrant> {
    const p = this.inflight.get(key);
    if (p) return this.waitLocally(p);
    const mine: Pending = { waiters: new Set() };
    this.inflight.set(key, mine);
    const settle = (outcome: FillOutcome | 'timeout', shared?: SharedFill) => {
      if (this.inflight.get(key) === mine) this.inflight.delete(key);
      for (const w of mine.waiters) w(outcome, shared);
      mine.waiters.clear();
    };
    return new Promise<LockGrant>((resolve) => {
      let done = false;
      const timer = setTimeout(() => {
        if (done) return;
        done = true;
        settle('timeout');
        resolve({ role: 'reader', outcome: 'timeout' });
      }, this.timeoutMs);
      timer.unref();
      this.remote.acquire(key).then(
        (r) => {
          if (r.granted) {
            if (done) {
              // We gave up waiting before the grant arrived: hand the lock straight back.
              this.remote.release(key, r.token, 'failed');
              return;
            }
            done = true;
            clearTimeout(timer);
            let released = false;
            resolve({
              role: 'writer',
              release: (outcome) => {
                if (released) return;
                released = true;
                this.remote.release(key, r.token, outcome);
                settle(outcome);
              },
              releaseLocal: () => {
                if (!released) settle('stored');
              },
              share: (fill: SharedFill) => {
                if (!released) this.remote.share?.(key, r.token, fill);
              },
            });
            return;
          }
          if (done) return;
          done = true;
          clearTimeout(timer);
          settle(r.outcome, r.shared);
          resolve(readerGrant(r.outcome, r.shared));
        },
        () => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          settle('failed');
          resolve({ role: 'reader', outcome: 'failed' });
        },
      );
    });
  }

  /**
   * Collapses within this worker only. Used when another worker's fill finished but left nothing
   * this worker can read (no shared tier, or the object only fitted the other worker's RAM): the
   * local waiters then share one origin request instead of each making their own.
   */
  acquireLocal(key: string): Promise<LockGrant> {
    const p = this.localInflight.get(key);
    if (p) return this.waitLocally(p);
    const mine: Pending = { waiters: new Set() };
    this.localInflight.set(key, mine);
    let released = false;
    return Promise.resolve({
      role: 'writer',
      release: (outcome: FillOutcome) => {
        if (released) return;
        released = true;
        if (this.localInflight.get(key) === mine) this.localInflight.delete(key);
        for (const w of mine.waiters) w(outcome);
        mine.waiters.clear();
      },
    });
  }

  private waitLocally(p: Pending): Promise<LockGrant> {
    return new Promise((resolve) => {
      const onDone = (outcome: FillOutcome | 'timeout', shared?: SharedFill) => {
        clearTimeout(timer);
        p.waiters.delete(onDone);
        resolve(readerGrant(outcome, shared));
      };
      const timer = setTimeout(() => onDone('timeout'), this.timeoutMs);
      timer.unref();
      p.waiters.add(onDone);
    });
  }
}
