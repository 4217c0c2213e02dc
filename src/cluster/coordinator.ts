// What a worker needs from the rest of its node: the node-wide cache lock, and purges that reach
// every worker's RAM tier and the shared disk tier. In-process for a single-process node (tests,
// embedding); over IPC to the primary for a multi-worker node (src/cluster/ipc.ts).
import { InProcessLock, LockTable, type RemoteLock } from '../cache/lock.ts';
import type { PurgeSpec } from '../cache/storage/tier.ts';
import type { RateLimitChannel } from '../security/ratelimit/channel.ts';

/** Applies a purge to the tiers a process owns; resolves to the number of entries affected. */
export type PurgeHandler = (spec: PurgeSpec, soft: boolean) => Promise<number>;

export interface Coordinator {
  readonly lock: RemoteLock;
  /** Purges node-wide. */
  purge(spec: PurgeSpec, soft: boolean): Promise<number>;
  /** Registers this process's own purge handler (its RAM tier, and the disk tier where it owns it). */
  onPurge(handler: PurgeHandler): void;
  /** The node's rate-limit buckets (security.rateLimit), when it holds any. */
  readonly rateLimit?: RateLimitChannel;
}

export class InProcessCoordinator implements Coordinator {
  readonly lock: RemoteLock;
  private readonly handlers: PurgeHandler[] = [];
  readonly rateLimit?: RateLimitChannel;

  constructor(opts: { lockMaxAgeMs: number; rateLimit?: RateLimitChannel }) {
    this.lock = new InProcessLock(new LockTable({ maxAgeMs: opts.lockMaxAgeMs }));
    if (opts.rateLimit) this.rateLimit = opts.rateLimit;
  }

  async purge(spec: PurgeSpec, soft: boolean): Promise<number> {
    const counts = await Promise.all(this.handlers.map((h) => h(spec, soft)));
    return counts.reduce((a, b) => a + b, 0);
  }

  onPurge(handler: PurgeHandler): void {
    this.handlers.push(handler);
  }
}
