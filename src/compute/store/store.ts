// Where CUs live. Every node's primary reads the whole set from its store and pushes it to its
// workers; workers never ask the store per request. docs/cu-store.md documents the stored format
// (so operators can write CUs with redis-cli, as the seeds do).
import type { CuRecord, CuSettings, CuSpec } from '../cu.ts';

export type StoreKind = 'embedded' | 'redis' | 'redis-cluster';

/**
 * A named document kept beside the CUs and propagated the same way: the rules (`rules`), IP lists
 * (`iplist:<name>`). Versions come from the same counter as CU versions, so a (name, version) pair
 * never repeats and nodes can skip re-reading a document whose version they already hold.
 */
export interface StoredDoc {
  readonly name: string;
  readonly version: number;
  readonly updatedAt: string;
  readonly value: unknown;
}

/** Document names: lower-case letters, digits, '-', '_', '.', ':'; at most 200 characters. */
export const DOC_NAME_RE = /^[a-z0-9][a-z0-9_.:-]{0,199}$/;

export interface StoreSnapshot {
  readonly cus: readonly CuRecord[];
  /** Every document, sorted by name. */
  readonly docs: readonly StoredDoc[];
  readonly settings: CuSettings;
  /** Records that are in the store but not valid CUs (bad JSON, bad fields): skipped, reported. */
  readonly invalid: ReadonlyArray<{ readonly id: string; readonly error: string }>;
}

export interface CuStore {
  readonly kind: StoreKind;
  /** Reads every CU and the settings in a bounded number of round trips (never one per CU). */
  readAll(): Promise<StoreSnapshot>;
  /** Writes a CU with the next version, and announces the change to every node. */
  put(spec: CuSpec): Promise<CuRecord>;
  delete(id: string): Promise<boolean>;
  putSettings(settings: CuSettings): Promise<void>;
  /** Writes a document (JSON-serialisable value) with the next version, and announces it. */
  putDoc(name: string, value: unknown): Promise<StoredDoc>;
  /** Removes a document; false when there was none. */
  deleteDoc(name: string): Promise<boolean>;
  /** Calls `onChange` whenever any node changes the CUs (pub/sub or in-process). Resolves to an unsubscribe. */
  subscribe(onChange: () => void): Promise<() => void>;
  /**
   * Runs one command of the CU data API (a safe subset of Redis, see kv-commands.ts) for CU code.
   * Keys are confined to the CU namespace.
   */
  command(name: string, args: readonly (string | number)[]): Promise<unknown>;
  close(): Promise<void>;
}
