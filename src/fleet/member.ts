// One node's part in the fleet, run by its primary (or by an in-process node): it sends heartbeats
// to the registry, publishes the purges this node is asked for, and applies every purge other
// nodes publish — including those published while it was down, before it serves again.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { PurgeSpec } from '../cache/storage/tier.ts';
import { OutpostError } from '../errors.ts';
import type { Logger } from '../log/logger.ts';
import { compareIds, type Fleet, type NodeInfo } from './fleet.ts';

export interface FleetMemberOptions {
  readonly fleet: Fleet;
  readonly log: Logger;
  /** This node as the registry shows it, without the fields the member fills in. */
  readonly self: Omit<NodeInfo, 'seenAt' | 'requests' | 'hits' | 'hitRatio' | 'healthy'>;
  /** Requests and cache hits since start, for the hit ratio. */
  readonly stats: () => Promise<{ requests: number; hits: number; healthy: boolean }>;
  readonly heartbeatMs: number;
  /** Purges this node only (its workers and its disk tier). */
  readonly applyLocal: (spec: PurgeSpec, soft: boolean) => Promise<number>;
  /** Where the id of the last applied purge is kept (beside the disk cache); absent: memory only. */
  readonly cursorFile?: string;
  /** Whether this node has cached objects from before this start (a disk tier with entries). */
  readonly hasOldObjects: () => boolean;
}

const BATCH = 500;

export class FleetMember {
  readonly #o: FleetMemberOptions;
  #cursor = '0-0';
  #following: Promise<void> | undefined;
  #again = false;
  #timer: NodeJS.Timeout | undefined;
  #unsubscribe: (() => void) | undefined;
  #closed = false;
  #lastError: string | undefined;
  /** Purges applied because other nodes published them. */
  applied = 0;

  private constructor(o: FleetMemberOptions) {
    this.#o = o;
  }

  get id(): string {
    return this.#o.self.id;
  }

  /** Joins: catches up with purges missed while down (before the node serves), then follows. */
  static async start(o: FleetMemberOptions): Promise<FleetMember> {
    const m = new FleetMember(o);
    if (o.fleet.shared) {
      await m.#initCursor();
      await m.#catchUp();
      m.#unsubscribe = await o.fleet.onPurge(() => void m.#follow());
    }
    await m.#beat();
    m.#timer = setInterval(() => {
      void m.#beat();
      if (o.fleet.shared) void m.#follow();
    }, o.heartbeatMs);
    m.#timer.unref();
    return m;
  }

  async #initCursor(): Promise<void> {
    const file = this.#o.cursorFile;
    let saved: string | undefined;
    if (file) {
      try {
        saved = readFileSync(file, 'utf8').trim() || undefined;
      } catch {
        saved = undefined;
      }
    }
    if (saved) {
      this.#cursor = saved;
      return;
    }
    // No record of what was applied: objects cached before may have missed any purge.
    try {
      this.#cursor = await this.#o.fleet.lastPurgeId();
    } catch (err) {
      this.#o.log.error({ err: (err as Error).message }, 'fleet: cannot read the purge log; purges missed while down are applied once it is reachable');
    }
    if (this.#o.hasOldObjects()) {
      const n = await this.#o.applyLocal({ kind: 'all' }, false);
      this.#o.log.warn({ purged: n }, 'fleet: no purge cursor beside a cache with objects; purged everything to be safe');
    }
    this.#save();
  }

  #save(): void {
    const file = this.#o.cursorFile;
    if (!file) return;
    try {
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(`${file}.tmp`, this.#cursor);
      renameSync(`${file}.tmp`, file);
    } catch (err) {
      this.#o.log.warn({ err: (err as Error).message, file }, 'fleet: cannot save the purge cursor');
    }
  }

  /** One catch-up at a time; calls during one cause exactly one more after it. */
  #follow(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#following) {
      this.#again = true;
      return this.#following;
    }
    this.#following = (async () => {
      do {
        this.#again = false;
        await this.#catchUp();
      } while (this.#again && !this.#closed);
    })().finally(() => {
      this.#following = undefined;
    });
    return this.#following;
  }

  async #catchUp(): Promise<void> {
    const { fleet, log } = this.#o;
    try {
      for (;;) {
        const batch = await fleet.purgesAfter(this.#cursor, BATCH);
        if (batch === 'gap') {
          const n = await this.#o.applyLocal({ kind: 'all' }, false);
          this.#cursor = await fleet.lastPurgeId();
          log.warn({ purged: n }, 'fleet: purges were trimmed from the log while this node was away; purged everything to be safe');
          this.#save();
          return;
        }
        for (const { id, rec } of batch) {
          if (rec.node !== this.id) {
            const n = await this.#o.applyLocal(rec.spec, rec.soft);
            this.applied++;
            log.info({ from: rec.node, spec: rec.spec, soft: rec.soft, purged: n, lagMs: Date.now() - rec.at }, 'fleet: applied a purge from another node');
          }
          if (compareIds(id, this.#cursor) > 0) this.#cursor = id;
        }
        if (batch.length) this.#save();
        if (batch.length < BATCH) break;
      }
      if (this.#lastError) log.info('fleet: purge log reachable again');
      this.#lastError = undefined;
    } catch (err) {
      const msg = (err as Error).message;
      if (this.#lastError !== msg) log.error({ err: msg }, 'fleet: cannot read the purge log; retrying');
      this.#lastError = msg;
    }
  }

  async #beat(): Promise<void> {
    if (this.#closed) return;
    try {
      const s = await this.#o.stats();
      await this.#o.fleet.heartbeat({
        ...this.#o.self,
        seenAt: Date.now(),
        requests: s.requests,
        hits: s.hits,
        hitRatio: s.requests ? s.hits / s.requests : 0,
        healthy: s.healthy,
      });
    } catch {
      // The registry is informative; the next beat retries.
    }
  }

  /**
   * A purge asked of this node: applied here, and published for every other node. Resolves to
   * what was purged here; throws STORE_UNAVAILABLE (after purging here) when the others cannot be told.
   */
  async purge(spec: PurgeSpec, soft: boolean): Promise<number> {
    const n = await this.#o.applyLocal(spec, soft);
    if (!this.#o.fleet.shared) return n;
    try {
      await this.#o.fleet.publishPurge({ spec, soft, node: this.id, at: Date.now() });
    } catch (err) {
      throw new OutpostError('STORE_UNAVAILABLE', `purged ${n} entries on this node, but the purge could not be sent to the other nodes (${(err as Error).message}); retry it`, { cause: err });
    }
    return n;
  }

  nodes(forgetAfterMs: number): Promise<NodeInfo[]> {
    return this.#o.fleet.nodes(forgetAfterMs);
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#unsubscribe?.();
    await this.#following?.catch(() => undefined);
    await this.#o.fleet.leave(this.id).catch(() => undefined);
    await this.#o.fleet.close();
  }
}
