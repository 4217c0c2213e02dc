// Purges must not be lost to fills in flight: a fill that started before a purge may commit after
// it. The cache notes recent purges; a fill that commits re-checks them and re-applies any that
// match what it stored.
import { VARIANT_SEPARATOR, type PurgeSpec } from './storage/tier.ts';

export function purgeMatches(spec: PurgeSpec, key: string, tags: readonly string[]): boolean {
  switch (spec.kind) {
    case 'key':
      return key === spec.key || key.startsWith(spec.key + VARIANT_SEPARATOR);
    case 'prefix':
      return key.startsWith(spec.prefix);
    case 'tags':
      return tags.some((t) => spec.tags.includes(t));
    case 'all':
      return true;
  }
}

interface Noted {
  readonly at: number;
  readonly spec: PurgeSpec;
  readonly soft: boolean;
}

export class PurgeLog {
  private readonly entries: Noted[] = [];
  private readonly keepMs: number;

  /** keepMs bounds how long a fill may run and still be caught; fills longer than that are rare. */
  constructor(keepMs = 10 * 60_000) {
    this.keepMs = keepMs;
  }

  note(spec: PurgeSpec, soft: boolean, now = Date.now()): void {
    this.entries.push({ at: now, spec, soft });
    while (this.entries.length && now - this.entries[0]!.at > this.keepMs) this.entries.shift();
  }

  /** The newest hard and soft purges at or after `since` that match an entry (0 when none). */
  since(since: number, key: string, tags: readonly string[]): { hardAt: number; softAt: number } {
    let hardAt = 0;
    let softAt = 0;
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const e = this.entries[i]!;
      if (e.at < since) break;
      if (!purgeMatches(e.spec, key, tags)) continue;
      if (e.soft) softAt ||= e.at;
      else hardAt ||= e.at;
    }
    return { hardAt, softAt };
  }

  get size(): number {
    return this.entries.length;
  }
}
