// The compression stage of the HTTP cache: negotiation memoised per Accept-Encoding value, the
// compressed variants of stored objects (made once per object and coding, node-wide: concurrent
// requests share one compression through the cache lock), and the streaming encoders and decoders
// for responses that are not stored. http-cache.ts decides when; this module does the work.
import { Readable, Transform, pipeline } from 'node:stream';
import type { Logger } from 'pino';
import type { EdgeMetrics } from '../metrics/metrics.ts';
import { BlockEncoder, compressBuffer, compressedKey, createDecoder, encodeInto, variantMeta, type CompressionOptions } from './compress.ts';
import { codingQ, negotiateEncoding, parseAcceptEncoding, type AcceptedEncodings, type ContentCoding } from './compress-negotiate.ts';
import type { Collapser, LockGrant } from './lock.ts';
import type { StorageTier, StoredBody, StoredEntry, StoredMeta } from './storage/tier.ts';

export interface CompressionDeps {
  readonly options: CompressionOptions;
  /** Fastest first, as the cache's. */
  readonly tiers: readonly StorageTier[];
  /** Shares one compression per variant between the node's workers; absent when collapsing is off. */
  readonly collapser?: Collapser;
  readonly metrics: EdgeMetrics;
  readonly log: Logger;
}

// Clients send a handful of distinct Accept-Encoding values; the memo is cleared when full.
const MEMO_MAX = 1024;
// Variants that could not be stored, remembered so that they are not compressed again per request.
const FAILED_MAX = 4096;

/** A body held in memory (a variant just compressed). */
export function bufferBody(buffer: Buffer): StoredBody {
  return {
    size: buffer.length,
    buffer,
    stream: (range) => Readable.from([range ? buffer.subarray(range.start, range.end + 1) : buffer]),
  };
}

export class Compression {
  readonly options: CompressionOptions;
  readonly #d: CompressionDeps;
  readonly #negotiated = new Map<string, ContentCoding | 'identity'>();
  readonly #parsed = new Map<string, AcceptedEncodings>();
  /** variant key + requestTime of its object → the compression under way. */
  readonly #inflight = new Map<string, Promise<StoredEntry | undefined>>();
  /** variant key → requestTime of the object whose variant no tier would take. */
  readonly #failed = new Map<string, number>();

  constructor(d: CompressionDeps) {
    this.#d = d;
    this.options = d.options;
  }

  /** The coding to send a client (memoised per Accept-Encoding value). */
  negotiate(acceptEncoding: string | string[] | undefined): ContentCoding | 'identity' {
    if (acceptEncoding === undefined) return 'identity';
    const key = typeof acceptEncoding === 'string' ? acceptEncoding : acceptEncoding.join(',');
    let c = this.#negotiated.get(key);
    if (c === undefined) {
      c = negotiateEncoding(key, this.options.encodings);
      if (this.#negotiated.size >= MEMO_MAX) this.#negotiated.clear();
      this.#negotiated.set(key, c);
    }
    return c;
  }

  /** Whether the client takes every one of these codings (a pre-compressed body as it is). */
  accepts(acceptEncoding: string | string[] | undefined, codings: readonly string[]): boolean {
    if (acceptEncoding === undefined) return false;
    const key = typeof acceptEncoding === 'string' ? acceptEncoding : acceptEncoding.join(',');
    let parsed = this.#parsed.get(key);
    if (parsed === undefined) {
      parsed = parseAcceptEncoding(key);
      if (this.#parsed.size >= MEMO_MAX) this.#parsed.clear();
      this.#parsed.set(key, parsed);
    }
    for (const c of codings) if (codingQ(parsed, c) <= 0) return false;
    return true;
  }

  /** The stored variant made from the object copy whose requestTime is given, and the tier holding it. */
  find(vkey: string, requestTime: number): { entry: StoredEntry; tier: number } | undefined {
    const tiers = this.#d.tiers;
    for (let i = 0; i < tiers.length; i++) {
      const e = tiers[i]!.get(vkey);
      if (e !== undefined && e.meta.requestTime === requestTime) return { entry: e, tier: i };
    }
    return undefined;
  }

  /** True when this variant of this copy was already found impossible to store. */
  failedBefore(vkey: string, requestTime: number): boolean {
    return this.#failed.get(vkey) === requestTime;
  }

  /**
   * The `coding` variant of a stored object: compressed now and stored in every tier that takes
   * it, unless another request (here or in another worker) is already doing it, in which case
   * this one waits and reads the result. Undefined when no variant can be had (then the caller
   * serves the object unencoded).
   */
  variant(identity: StoredEntry, coding: ContentCoding): Promise<StoredEntry | undefined> {
    const vkey = compressedKey(identity.meta.key, coding);
    const id = `${vkey}\n${identity.meta.requestTime}`;
    let p = this.#inflight.get(id);
    if (p === undefined) {
      p = this.#lockAndMake(identity, coding, vkey).finally(() => this.#inflight.delete(id));
      this.#inflight.set(id, p);
    }
    return p;
  }

  async #lockAndMake(identity: StoredEntry, coding: ContentCoding, vkey: string): Promise<StoredEntry | undefined> {
    const rt = identity.meta.requestTime;
    let grant: LockGrant | undefined;
    if (this.#d.collapser) {
      grant = await this.#d.collapser.acquire(vkey);
      // Made meanwhile, by the writer we waited for or by another worker before we asked: read
      // past any snapshot that predates that worker's write.
      for (const t of this.#d.tiers) t.refresh?.();
      const done = this.find(vkey, rt);
      if (done) {
        if (grant.role === 'writer') grant.release('stored');
        return done.entry;
      }
      // The writer failed, timed out, or made a variant of another copy: compress without the lock.
      if (grant.role === 'reader') grant = undefined;
    }
    const writer = grant?.role === 'writer' ? grant : undefined;
    try {
      const made = await this.#make(identity, coding, vkey);
      writer?.release(made.stored ? 'stored' : 'uncacheable');
      if (!made.stored) {
        if (this.#failed.size >= FAILED_MAX) this.#failed.clear();
        this.#failed.set(vkey, rt);
      }
      return made.entry;
    } catch (err) {
      writer?.release('failed');
      this.#d.log.warn({ key: vkey, err: (err as Error).message }, 'compression failed; serving the object unencoded');
      return undefined;
    }
  }

  async #make(identity: StoredEntry, coding: ContentCoding, vkey: string): Promise<{ stored: boolean; entry: StoredEntry | undefined }> {
    const writers = this.#d.tiers.map((t) => t.openWrite(vkey)).filter((w) => w !== undefined);
    if (writers.length === 0) return { stored: false, entry: undefined };
    const source = identity.body;
    try {
      if (source.buffer) {
        const out = await compressBuffer(coding, source.buffer, this.options);
        this.counted(coding, source.buffer.length, out.length);
        const meta = variantMeta(identity.meta, coding, out.length);
        await Promise.all(writers.map((w) => w.write(out)));
        const stored = (await Promise.all(writers.map((w) => w.commit(meta).catch(() => false)))).some(Boolean);
        // Served from the buffer just made, whatever the tiers did with it.
        return { stored, entry: { meta, body: bufferBody(out) } };
      }
      // Leaving the loop over the stored body early (a failed write) closes its stream.
      const size = await encodeInto(source.stream() as AsyncIterable<Buffer>, new BlockEncoder(coding, this.options), (chunk) =>
        Promise.all(writers.map((w) => w.write(chunk))).then(() => undefined),
      );
      this.counted(coding, source.size, size);
      const meta = variantMeta(identity.meta, coding, size);
      const stored = (await Promise.all(writers.map((w) => w.commit(meta).catch(() => false)))).some(Boolean);
      return { stored, entry: stored ? this.find(vkey, identity.meta.requestTime)?.entry : undefined };
    } catch (err) {
      await Promise.all(writers.map((w) => w.abort()));
      throw err;
    }
  }

  /**
   * After a 304 refreshed an object, gives its variants the new meta too (they still hold the
   * same bytes). Only variants made from the copy that was revalidated: one made from an older
   * body must not be passed off as this one.
   */
  async refreshVariants(before: StoredMeta, after: StoredMeta): Promise<void> {
    const work: Promise<unknown>[] = [];
    for (const coding of this.options.encodings) {
      const vkey = compressedKey(after.key, coding);
      for (const t of this.#d.tiers) {
        const cur = t.get(vkey);
        if (cur === undefined || cur.meta.requestTime !== before.requestTime) continue;
        work.push(t.updateMeta(vkey, variantMeta(after, coding, cur.meta.size)).catch(() => false));
      }
    }
    await Promise.all(work);
  }

  /** Counts one compression in the metrics. */
  counted(coding: ContentCoding, inBytes: number, outBytes: number): void {
    const m = this.#d.metrics;
    m.compressions.inc({ encoding: coding });
    m.compressionBytesIn.inc({ encoding: coding }, inBytes);
    m.compressionBytesOut.inc({ encoding: coding }, outBytes);
  }

  /** `source` compressed on the fly (a response that is not stored); counted once it ends. */
  encodeStream(source: Readable, coding: ContentCoding): Readable {
    const enc = new BlockEncoder(coding, this.options);
    let out = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _e, cb) {
        out += chunk.length;
        cb(null, chunk);
      },
    });
    const feed = async () => {
      for await (const chunk of source as AsyncIterable<Buffer>) await enc.write(chunk);
      await enc.end();
    };
    feed().catch((err: unknown) => enc.output.destroy(err instanceof Error ? err : new Error(String(err))));
    // Whoever consumes `counter` destroying it (a client gone) closes the encoder, and so the source.
    enc.output.once('close', () => source.destroy());
    pipeline(enc.output, counter, (err) => {
      if (!err) this.counted(coding, enc.bytesIn, out);
    });
    return counter;
  }

  /** `source` decoded from `coding`, or undefined when Node cannot decode that coding. */
  decodeStream(source: Readable, coding: string): Readable | undefined {
    const decoder = createDecoder(coding);
    if (decoder === undefined) return undefined;
    this.#d.metrics.decompressions.inc({ encoding: coding });
    pipeline(source, decoder, () => undefined);
    return decoder;
  }
}
