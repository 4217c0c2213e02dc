// Keeps a node's view of its CU store current: one read at start, a re-read on every change
// notification (pub/sub or in-process), and a poll at pollIntervalMs ± 20 % as a backstop for missed
// notifications (jitter keeps a fleet of nodes from reading in step). At most one read is in
// flight; notifications that arrive during a read cause exactly one more read after it.
//
// A failed read never replaces what the node runs: the last good snapshot stays, 'unreachable' is
// reported once, reads go on at the poll interval (and on any notification, such as the
// subscriber's reconnection), and the first good read reports 'ok' and delivers if anything changed.
import type { Logger } from '../log/logger.ts';
import type { CuStore, StoreSnapshot } from './store/store.ts';

export type CuStoreStatus = 'ok' | 'unreachable';

export interface CuWatcherOptions {
  readonly pollIntervalMs: number;
  readonly log: Pick<Logger, 'warn' | 'debug'>;
  /** Called with each snapshot that differs from the last one delivered (ids, versions, settings, invalid records). */
  readonly onSnapshot: (snapshot: StoreSnapshot) => void;
  /** Called when the store's status changes, starting with the outcome of the first read (the caller logs it). */
  readonly onStatus: (status: CuStoreStatus, error?: Error) => void;
}

const JITTER = 0.2;

/** What decides whether a snapshot is news: ids with versions, the settings, the invalid records, document versions. */
export function snapshotFingerprint(s: StoreSnapshot): string {
  const cus = s.cus.map((c) => `${c.id}@${c.version}`).sort();
  const invalid = s.invalid.map((i) => `${i.id}:${i.error}`).sort();
  const docs = s.docs.map((d) => `${d.name}@${d.version}`);
  return JSON.stringify([cus, s.settings.enabled, [...s.settings.skipHosts], invalid, docs]);
}

export class CuWatcher {
  readonly #store: CuStore;
  readonly #opts: CuWatcherOptions;
  #snapshot: StoreSnapshot | undefined;
  #fingerprint: string | undefined;
  #status: CuStoreStatus | undefined;
  #reading: Promise<void> | undefined;
  #again = false;
  #timer: NodeJS.Timeout | undefined;
  #unsubscribe: (() => void) | undefined;
  #subscribing: Promise<void> | undefined;
  #started = false;
  #stopped = false;

  constructor(store: CuStore, opts: CuWatcherOptions) {
    if (!Number.isFinite(opts.pollIntervalMs) || opts.pollIntervalMs <= 0) {
      throw new RangeError(`CuWatcher: pollIntervalMs: expected a positive number, got ${String(opts.pollIntervalMs)}`);
    }
    this.#store = store;
    this.#opts = opts;
  }

  /** Reads once (resolving after that read, whether it succeeded or not), then watches. */
  async start(): Promise<void> {
    if (this.#started) throw new Error('CuWatcher: already started');
    this.#started = true;
    await this.refresh();
    if (this.#stopped) return;
    await this.#subscribe();
    this.#schedule();
  }

  /** The last good snapshot, if any read has succeeded. */
  current(): StoreSnapshot | undefined {
    return this.#snapshot;
  }

  status(): CuStoreStatus | undefined {
    return this.#status;
  }

  /** Asks for a re-read; coalesced with a read in flight. Resolves when the store has been read since the call. */
  refresh(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    if (this.#reading) {
      this.#again = true;
      return this.#reading;
    }
    this.#reading = this.#readLoop().finally(() => {
      this.#reading = undefined;
    });
    return this.#reading;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    await this.#reading?.catch(() => undefined);
  }

  async #readLoop(): Promise<void> {
    // Bounded: each pass clears #again, and another pass runs only if a notification came during it.
    do {
      this.#again = false;
      await this.#readOnce();
    } while (this.#again && !this.#stopped);
  }

  async #readOnce(): Promise<void> {
    let snapshot: StoreSnapshot;
    try {
      snapshot = await this.#store.readAll();
    } catch (err) {
      if (this.#stopped) return;
      const error = err instanceof Error ? err : new Error(String(err));
      if (this.#status !== 'unreachable') {
        this.#status = 'unreachable';
        this.#call(() => this.#opts.onStatus('unreachable', error));
      }
      return;
    }
    if (this.#stopped) return;
    if (this.#status !== 'ok') {
      this.#status = 'ok';
      this.#call(() => this.#opts.onStatus('ok'));
    }
    const fingerprint = snapshotFingerprint(snapshot);
    if (fingerprint === this.#fingerprint) return;
    this.#snapshot = snapshot;
    this.#fingerprint = fingerprint;
    this.#opts.log.debug({ event: 'cu_snapshot', store: this.#store.kind, cus: snapshot.cus.length, invalid: snapshot.invalid.length }, 'CU snapshot');
    this.#call(() => this.#opts.onSnapshot(snapshot));
  }

  /** A failing callback must not stop the watcher (reads are fired from timers and notifications). */
  #call(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#opts.log.warn({ event: 'cu_watcher_callback_failed', err: (err as Error).message }, 'CU watcher callback threw');
    }
  }

  async #subscribe(): Promise<void> {
    if (this.#unsubscribe || this.#stopped) return;
    this.#subscribing ??= this.#store
      .subscribe(() => void this.refresh())
      .then(
        (unsubscribe) => {
          if (this.#stopped) unsubscribe();
          else this.#unsubscribe = unsubscribe;
        },
        (err: unknown) => {
          // Polling still runs; the next tick tries to subscribe again.
          this.#opts.log.warn({ event: 'cu_store_subscribe_failed', store: this.#store.kind, err: (err as Error).message }, 'cannot subscribe to CU changes; polling only');
        },
      )
      .finally(() => {
        this.#subscribing = undefined;
      });
    await this.#subscribing;
  }

  #schedule(): void {
    if (this.#stopped) return;
    const delay = this.#opts.pollIntervalMs * (1 - JITTER + 2 * JITTER * Math.random());
    this.#timer = setTimeout(() => {
      void this.refresh().then(() => this.#subscribe()).finally(() => this.#schedule());
    }, delay);
    this.#timer.unref();
  }
}
