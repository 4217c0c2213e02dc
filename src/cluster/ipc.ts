// The messages between a node's primary and its workers, and the worker side of the coordinator.
import { notGranted, type FillOutcome, type RemoteAcquire, type RemoteLock, type SharedFill } from '../cache/lock.ts';
import type { PurgeSpec, StoredMeta } from '../cache/storage/tier.ts';
import type { CuStatus } from '../compute/registry.ts';
import type { CuHostServices } from '../compute/runtime.ts';
import type { StoreSnapshot } from '../compute/store/store.ts';
import { IpcRateLimitChannel, type RateLimitPrimaryMessage, type RateLimitWorkerMessage } from '../security/ratelimit/channel.ts';
import type { Coordinator, PurgeHandler } from './coordinator.ts';

/** A SharedFill as it crosses the IPC channel (JSON): the body in base64. */
export interface WireFill {
  readonly meta: StoredMeta;
  readonly body: string;
}

export const toWire = (f: SharedFill): WireFill => ({ meta: f.meta, body: f.body.toString('base64') });
export const fromWire = (w: WireFill): SharedFill => ({ meta: w.meta, body: Buffer.from(w.body, 'base64') });

export type WorkerMessage =
  | { readonly t: 'outpost:ready'; readonly port: number; readonly tlsPort?: number }
  /** Sent once the worker listens to the primary; answered with the current CU snapshot. */
  | { readonly t: 'outpost:hello' }
  | { readonly t: 'outpost:lock'; readonly id: number; readonly key: string }
  | { readonly t: 'outpost:unlock'; readonly key: string; readonly token: number; readonly outcome: FillOutcome }
  | { readonly t: 'outpost:lock-share'; readonly key: string; readonly token: number; readonly fill: WireFill }
  | { readonly t: 'outpost:purge'; readonly id: number; readonly spec: PurgeSpec; readonly soft: boolean }
  | { readonly t: 'outpost:purged-local'; readonly id: number; readonly count: number }
  | { readonly t: 'outpost:svc'; readonly id: number; readonly kind: 'redis' | 'shared'; readonly name: string; readonly args: readonly unknown[] }
  | { readonly t: 'outpost:cu-status'; readonly id: number; readonly cus: readonly CuStatus[] }
  | RateLimitWorkerMessage;

export type PrimaryMessage =
  | { readonly t: 'outpost:lock-res'; readonly id: number; readonly granted: true; readonly token: number }
  | { readonly t: 'outpost:lock-res'; readonly id: number; readonly granted: false; readonly outcome: FillOutcome; readonly fill?: WireFill }
  | { readonly t: 'outpost:purge-res'; readonly id: number; readonly count: number; readonly error?: string }
  | { readonly t: 'outpost:purge-local'; readonly id: number; readonly spec: PurgeSpec; readonly soft: boolean }
  | { readonly t: 'outpost:shutdown' }
  | { readonly t: 'outpost:cus'; readonly snapshot: StoreSnapshot }
  | { readonly t: 'outpost:svc-res'; readonly id: number; readonly value?: unknown; readonly error?: string }
  | { readonly t: 'outpost:cu-status-req'; readonly id: number }
  | RateLimitPrimaryMessage;

export function isOutpostMessage(m: unknown): m is { t: string } {
  return typeof m === 'object' && m !== null && typeof (m as { t?: unknown }).t === 'string' && (m as { t: string }).t.startsWith('outpost:');
}

type Send = (m: WorkerMessage) => void;

/** The coordinator of a cluster worker: every call is a message to the primary. */
export class WorkerCoordinator implements Coordinator {
  readonly lock: RemoteLock;
  private readonly send: Send;
  private nextId = 1;
  private readonly lockWaits = new Map<number, (r: RemoteAcquire) => void>();
  private readonly purgeWaits = new Map<number, { resolve: (n: number) => void; reject: (e: Error) => void }>();
  private handler: PurgeHandler | undefined;
  private readonly svcWaits = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  /** Called with each snapshot of CUs the primary pushes, and asked for this worker's CU status. */
  onCus?: (snapshot: StoreSnapshot) => void;
  cuStatus?: () => readonly CuStatus[];
  /** Leases of rate-limit tokens from the primary's buckets. */
  readonly rateLimit: IpcRateLimitChannel;

  constructor(send: Send) {
    this.send = send;
    this.rateLimit = new IpcRateLimitChannel(send);
    this.lock = {
      acquire: (key) =>
        new Promise<RemoteAcquire>((resolve) => {
          const id = this.nextId++;
          this.lockWaits.set(id, resolve);
          this.send({ t: 'outpost:lock', id, key });
        }),
      release: (key, token, outcome) => this.send({ t: 'outpost:unlock', key, token, outcome }),
      share: (key, token, fill) => this.send({ t: 'outpost:lock-share', key, token, fill: toWire(fill) }),
    };
  }

  purge(spec: PurgeSpec, soft: boolean): Promise<number> {
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      this.purgeWaits.set(id, { resolve, reject });
      this.send({ t: 'outpost:purge', id, spec, soft });
    });
  }

  onPurge(handler: PurgeHandler): void {
    this.handler = handler;
  }

  /** CU services that live in the primary (shared dictionary, embedded store data), over IPC. */
  services(timeoutMs: number): CuHostServices {
    const call = (kind: 'redis' | 'shared', name: string, args: readonly unknown[]) =>
      new Promise<unknown>((resolve, reject) => {
        const id = this.nextId++;
        const timer = setTimeout(() => {
          this.svcWaits.delete(id);
          reject(new Error(`${kind}.${name}: no answer within ${timeoutMs} ms`));
        }, timeoutMs);
        this.svcWaits.set(id, { resolve, reject, timer });
        this.send({ t: 'outpost:svc', id, kind, name, args });
      });
    return {
      redis: (name, args) => call('redis', name, args),
      shared: (op, key, value, ttlMs) => call('shared', op, [key, value, ttlMs]),
    };
  }

  /** Feeds a message from the primary. */
  receive(m: PrimaryMessage): void {
    switch (m.t) {
      case 'outpost:lock-res': {
        const w = this.lockWaits.get(m.id);
        this.lockWaits.delete(m.id);
        if (m.granted) w?.({ granted: true, token: m.token });
        else w?.(notGranted(m.outcome, m.fill && fromWire(m.fill)));
        break;
      }
      case 'outpost:purge-res': {
        const w = this.purgeWaits.get(m.id);
        this.purgeWaits.delete(m.id);
        if (m.error) w?.reject(new Error(m.error));
        else w?.resolve(m.count);
        break;
      }
      case 'outpost:purge-local': {
        const h = this.handler;
        const id = m.id;
        void (h ? h(m.spec, m.soft) : Promise.resolve(0)).then(
          (count) => this.send({ t: 'outpost:purged-local', id, count }),
          () => this.send({ t: 'outpost:purged-local', id, count: 0 }),
        );
        break;
      }
      case 'outpost:cus':
        this.onCus?.(m.snapshot);
        break;
      case 'outpost:cu-status-req':
        this.send({ t: 'outpost:cu-status', id: m.id, cus: this.cuStatus?.() ?? [] });
        break;
      case 'outpost:svc-res': {
        const w = this.svcWaits.get(m.id);
        if (!w) break;
        this.svcWaits.delete(m.id);
        clearTimeout(w.timer);
        if (m.error !== undefined) w.reject(new Error(m.error));
        else w.resolve(m.value);
        break;
      }
      case 'outpost:rl-grant':
      case 'outpost:rl-modes':
        this.rateLimit.receive(m);
        break;
      case 'outpost:shutdown':
        break;
    }
  }
}
