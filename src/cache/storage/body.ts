// Helpers shared by the storage tiers: byte ranges, in-memory body streams, option checks.
import { Readable } from 'node:stream';
import { OutpostError } from '../../errors.ts';
import type { StoredMeta } from './tier.ts';

/**
 * Clamps an inclusive byte range to a body of `size` bytes; `end < start` means "nothing to send".
 * The HTTP layer validates ranges against the size; clamping here only keeps a tier from reading
 * past its own body.
 */
export function clampRange(size: number, range?: { start: number; end: number }): { start: number; end: number } {
  if (range === undefined) return { start: 0, end: size - 1 };
  return { start: Math.max(0, range.start), end: Math.min(size - 1, range.end) };
}

/** A byte-mode stream of one buffer (Readable.from would make an object-mode stream). */
export function bufferStream(chunk: Buffer): Readable {
  return new Readable({
    read() {
      if (chunk.length > 0) this.push(chunk);
      this.push(null);
    },
  });
}

/** A stream that fails with `err` once the caller has had a chance to listen. */
export function failedStream(err: Error): Readable {
  const stream = new Readable({ read() {} });
  stream.destroy(err);
  return stream;
}

/** Thrown by commit/updateMeta when the meta names another key than the one written: a caller bug. */
export function checkMetaKey(tier: string, key: string, meta: StoredMeta): void {
  if (meta.key !== key) {
    throw new OutpostError(
      'INTERNAL',
      `${tier} tier: meta.key must equal the entry key: expected ${JSON.stringify(key)}, got ${JSON.stringify(meta.key)}`,
    );
  }
}

export function checkSizeOptions(tier: string, opts: { maxBytes: number; maxObjectBytes: number }): void {
  const { maxBytes, maxObjectBytes } = opts;
  if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) {
    throw new OutpostError('CONFIG_INVALID', `${tier} tier: maxBytes: expected a positive integer, got ${String(maxBytes)}`);
  }
  if (!Number.isSafeInteger(maxObjectBytes) || maxObjectBytes <= 0 || maxObjectBytes > maxBytes) {
    throw new OutpostError(
      'CONFIG_INVALID',
      `${tier} tier: maxObjectBytes: expected a positive integer no larger than maxBytes (${maxBytes}), got ${String(maxObjectBytes)}`,
    );
  }
}
