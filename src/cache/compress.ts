// Edge compression (docs/compression.md): which responses may be compressed, what a compressed
// variant's headers are, the codecs (node:zlib), and the write handle that compresses an object
// into its variant while the object itself is filled from the origin.
import type { PassThrough, Transform, Writable } from 'node:stream';
import zlib from 'node:zlib';
import { listFirst } from './cache-control.ts';
import type { ContentCoding } from './compress-negotiate.ts';
import type { HeaderMap } from './policy.ts';
import { VARIANT_SEPARATOR, type HeaderList, type StoredMeta, type WriteHandle } from './storage/tier.ts';

export interface CompressionOptions {
  /** Off: only requests a rule switched compression on for (ctx.compress) get it. */
  readonly enabled: boolean;
  /** Codings produced, in the server's order of preference (used when a client's qvalues tie). */
  readonly encodings: readonly ContentCoding[];
  /** Whether a media type (lower-case, without parameters) is one to compress. */
  readonly compressible: (mediaType: string) => boolean;
  /** Bodies smaller than this are sent as they are. */
  readonly minSize: number;
  readonly brotliQuality: number;
  readonly gzipLevel: number;
  /** Also compress responses that are not stored, on the fly. */
  readonly uncached: boolean;
}

/** The compression section of the configuration, as schema.ts produces it. */
export interface CompressionConfig {
  readonly enabled: boolean;
  readonly types: readonly string[];
  readonly minSize: number;
  readonly encodings: readonly ContentCoding[];
  readonly brotliQuality: number;
  readonly gzipLevel: number;
  readonly uncached: boolean;
}

/** Options for the HTTP cache, checked once at start. */
export function compressionFromConfig(c: CompressionConfig): CompressionOptions {
  const exact = new Set<string>();
  const majors = new Set<string>();
  for (const t of c.types) {
    const type = t.trim().toLowerCase();
    if (type.endsWith('/*')) majors.add(type.slice(0, -2));
    else exact.add(type);
  }
  return {
    enabled: c.enabled,
    encodings: [...new Set(c.encodings)],
    compressible: (mediaType) => exact.has(mediaType) || (majors.size > 0 && majors.has(mediaType.slice(0, mediaType.indexOf('/')))),
    minSize: c.minSize,
    brotliQuality: c.brotliQuality,
    gzipLevel: c.gzipLevel,
    uncached: c.uncached,
  };
}

/**
 * What the edge may do with a response body:
 * - none: send it as it is;
 * - compress: an identity body of a listed type, big enough: compressed for clients that ask;
 * - eligible: the same, but of a type not listed: compressed only where a rule asks (ctx.compress);
 * - encoded: the origin already applied content codings (listed, lower-case); it passes through,
 *   and is decoded only for a client that does not accept them.
 */
export type CompressionPlan =
  | { readonly kind: 'none' }
  | { readonly kind: 'compress' }
  | { readonly kind: 'eligible' }
  | { readonly kind: 'encoded'; readonly codings: readonly string[] };

export const PLAN_NONE: CompressionPlan = Object.freeze({ kind: 'none' });
const PLAN_COMPRESS: CompressionPlan = Object.freeze({ kind: 'compress' });
const PLAN_ELIGIBLE: CompressionPlan = Object.freeze({ kind: 'eligible' });

/** Already compressed, or binary: never compressed, whatever the configuration or a rule says. */
const NEVER = /^(?:image|video|audio)\/(?!svg\+xml$)/;

/** Statuses whose bodies are compressed, as nginx's gzip module does (error pages included). */
const COMPRESSIBLE_STATUS: ReadonlySet<number> = new Set([200, 403, 404, 410]);

/** The response fields a plan depends on. */
export interface PlanInput {
  readonly status: number;
  readonly contentType: string | undefined;
  readonly contentEncoding: string | undefined;
  readonly cacheControl: string | undefined;
  readonly contentRange: string | undefined;
  /** Body size when known (stored objects always; responses streamed from the origin when they have Content-Length). */
  readonly size: number | undefined;
}

/** planInputFromList for headers straight from the origin (size from Content-Length). */
export function planInputFromMap(status: number, h: HeaderMap): PlanInput {
  const one = (name: string): string | undefined => {
    const v = h[name];
    return v === undefined || typeof v === 'string' ? v : v[0];
  };
  const cc = h['cache-control'];
  const length = one('content-length');
  const size = length !== undefined && /^\d+$/.test(length.trim()) ? Number(length) : undefined;
  return {
    status,
    contentType: one('content-type'),
    contentEncoding: one('content-encoding'),
    cacheControl: cc === undefined || typeof cc === 'string' ? cc : cc.join(', '),
    contentRange: one('content-range'),
    size,
  };
}

export function planInputFromList(status: number, list: HeaderList, size: number | undefined): PlanInput {
  let cacheControl: string | undefined;
  for (const [n, v] of list) if (n === 'cache-control') cacheControl = cacheControl === undefined ? v : `${cacheControl}, ${v}`;
  return {
    status,
    contentType: listFirst(list, 'content-type'),
    contentEncoding: listFirst(list, 'content-encoding'),
    cacheControl,
    contentRange: listFirst(list, 'content-range'),
    size,
  };
}

/** A media type without parameters, lower-cased. */
export function mediaType(contentType: string): string {
  const semi = contentType.indexOf(';');
  return (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
}

/**
 * The plan for a response. `Cache-Control: no-transform` (RFC 9110 §7.7, RFC 9111 §5.2.2.6) rules
 * out both compressing and decoding. Part of a body (Content-Range) is never touched. An unknown
 * size only allows compression where the caller can stream (responses not stored).
 */
export function compressionPlan(opts: CompressionOptions, r: PlanInput): CompressionPlan {
  if (r.cacheControl !== undefined && /(?:^|[\s,])no-transform(?:$|[\s,])/i.test(r.cacheControl)) return PLAN_NONE;
  // Part of a body, or none: nothing to code.
  if (r.contentRange !== undefined || r.size === 0 || r.status === 204 || r.status === 304 || r.status < 200) return PLAN_NONE;
  if (r.contentEncoding !== undefined) {
    const codings = r.contentEncoding
      .split(',')
      .map((c) => {
        const coding = c.trim().toLowerCase();
        return coding === 'x-gzip' ? 'gzip' : coding;
      })
      .filter((c) => c !== '' && c !== 'identity');
    if (codings.length > 0) return { kind: 'encoded', codings };
  }
  if (!COMPRESSIBLE_STATUS.has(r.status) || r.contentType === undefined) return PLAN_NONE;
  if (r.size !== undefined && r.size < opts.minSize) return PLAN_NONE;
  const type = mediaType(r.contentType);
  if (type === '' || NEVER.test(type)) return PLAN_NONE;
  return opts.compressible(type) ? PLAN_COMPRESS : PLAN_ELIGIBLE;
}

/**
 * Whether this request gets a compressed body, given the plan: a rule's ctx.compress wins (true
 * compresses any eligible type, false none), else the configuration decides.
 */
export function wantsCompression(opts: CompressionOptions, plan: CompressionPlan, ruled: boolean | undefined): boolean {
  if (plan.kind === 'compress') return ruled ?? opts.enabled;
  return plan.kind === 'eligible' && ruled === true;
}

/** Whether the edge may decode a pre-compressed body for this request (ctx.compress false: no coding changes). */
export function mayDecode(opts: CompressionOptions, ruled: boolean | undefined): boolean {
  return ruled ?? opts.enabled;
}

/** Whether responses under this plan can differ by Accept-Encoding (so they carry Vary: Accept-Encoding). */
export function variesByEncoding(opts: CompressionOptions, plan: CompressionPlan): boolean {
  return opts.enabled && (plan.kind === 'compress' || plan.kind === 'encoded');
}

/** Whether the request itself asks intermediaries not to transform the response (RFC 9111 §5.2.1.6). */
export function requestForbidsTransform(cacheControl: string | string[] | undefined): boolean {
  if (cacheControl === undefined) return false;
  const s = typeof cacheControl === 'string' ? cacheControl : cacheControl.join(',');
  return /(?:^|[\s,])no-transform(?:$|[\s,])/i.test(s);
}

// ---------------------------------------------------------------------------------------------
// Variants: the storage key and headers of a compressed copy.

/**
 * The storage key of an object's compressed variant: nested under the object's own key, so purging
 * the URL (or the Vary variant) reaches it. `:` cannot start a Vary suffix (those begin with a
 * header name), so a compressed variant never collides with a Vary variant.
 */
export function compressedKey(storageKey: string, coding: ContentCoding): string {
  return `${storageKey}${VARIANT_SEPARATOR}:ce=${coding}`;
}

/** `"abc"` → `"abc-br"`, `W/"abc"` → `W/"abc-br"`; undefined for a malformed tag (then none is sent). */
export function derivedEtag(etag: string, suffix: string): string | undefined {
  const m = /^(W\/)?"([^"]*)"$/.exec(etag.trim());
  return m ? `${m[1] ?? ''}"${m[2]}-${suffix}"` : undefined;
}

/** A weak form of an entity-tag, for a body that is equivalent but not byte-identical (a decoded one). */
export function weakEtag(etag: string): string {
  const t = etag.trim();
  return t.startsWith('W/') ? t : `W/${t}`;
}

function variesOnAcceptEncoding(value: string): boolean {
  for (const part of value.split(',')) {
    const name = part.trim().toLowerCase();
    if (name === 'accept-encoding' || name === '*') return true;
  }
  return false;
}

/** Adds `Vary: Accept-Encoding` to response headers about to be sent, unless already there. */
export function addVaryAcceptEncoding(h: Record<string, string | string[]>): void {
  const v = h.vary;
  if (v === undefined) {
    h.vary = 'Accept-Encoding';
    return;
  }
  const s = typeof v === 'string' ? v : v.join(', ');
  if (!variesOnAcceptEncoding(s)) h.vary = s.trim() === '' ? 'Accept-Encoding' : `${s}, Accept-Encoding`;
}

/** Turns response headers about to be sent into those of their `coding` variant (streamed: no Content-Length). */
export function encodeHeaders(h: Record<string, string | string[]>, coding: ContentCoding): void {
  for (const n of BYTE_FIELDS) delete h[n];
  delete h['accept-ranges'];
  const etag = h.etag;
  const tag = typeof etag === 'string' ? derivedEtag(etag, coding) : undefined;
  if (tag === undefined) delete h.etag;
  else h.etag = tag;
  h['content-encoding'] = coding;
  addVaryAcceptEncoding(h);
}

/**
 * Turns response headers about to be sent into those of the decoded body: no Content-Encoding,
 * no Content-Length (it is streamed), no Accept-Ranges (ranges of it are not served), and a weak
 * ETag: the decoded body is equivalent to the stored one, not byte-identical.
 */
export function decodeHeaders(h: Record<string, string | string[]>): void {
  for (const n of BYTE_FIELDS) delete h[n];
  delete h['content-encoding'];
  delete h['accept-ranges'];
  const etag = h.etag;
  if (typeof etag === 'string') h.etag = weakEtag(etag);
  else delete h.etag;
  addVaryAcceptEncoding(h);
}

/** The list with `Vary: Accept-Encoding` added (to the last Vary line); the same list when already there. */
export function withVaryAcceptEncoding(list: HeaderList): HeaderList {
  let last = -1;
  for (let i = 0; i < list.length; i++) {
    const [n, v] = list[i]!;
    if (n !== 'vary') continue;
    if (variesOnAcceptEncoding(v)) return list;
    last = i;
  }
  const out: HeaderList = list.map(([n, v]) => [n, v]);
  if (last < 0) out.push(['vary', 'Accept-Encoding']);
  else out[last] = ['vary', out[last]![1].trim() === '' ? 'Accept-Encoding' : `${out[last]![1]}, Accept-Encoding`];
  return out;
}

/** Fields that describe the bytes of one particular encoding, so they cannot follow a body into another. */
const BYTE_FIELDS: ReadonlySet<string> = new Set(['content-length', 'content-md5', 'content-digest', 'repr-digest', 'digest']);

/**
 * The headers of the `coding` variant of an identity object: Content-Encoding added, a derived ETag,
 * `Vary: Accept-Encoding`, and no field that describes the identity bytes (Content-Length, digests).
 */
export function variantHeaders(identity: HeaderList, coding: ContentCoding): HeaderList {
  const out: HeaderList = [];
  for (const [n, v] of identity) {
    if (BYTE_FIELDS.has(n) || n === 'content-encoding') continue;
    if (n === 'etag') {
      const tag = derivedEtag(v, coding);
      if (tag !== undefined) out.push(['etag', tag]);
      continue;
    }
    out.push([n, v]);
  }
  out.push(['content-encoding', coding]);
  return withVaryAcceptEncoding(out);
}

/**
 * The stored meta of a variant made from an identity object. It keeps the object's times, so the
 * cache can tell it was made from this very copy (requestTime), and so a purge, tag or soft
 * purge treats it as the object does.
 */
export function variantMeta(identity: StoredMeta, coding: ContentCoding, size: number): StoredMeta {
  const { invalidatedAt: _dropped, varyMarker: _marker, ...rest } = identity;
  return { ...rest, key: compressedKey(identity.key, coding), headers: variantHeaders(identity.headers, coding), size };
}

// ---------------------------------------------------------------------------------------------
// Codecs.

function brotliParams(opts: CompressionOptions): zlib.BrotliOptions {
  return { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: opts.brotliQuality, [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_TEXT } };
}

/** The zlib stream of a coding. Use it through BlockEncoder. */
export function createEncoder(coding: ContentCoding, opts: CompressionOptions): zlib.BrotliCompress | zlib.Gzip {
  return coding === 'br' ? zlib.createBrotliCompress(brotliParams(opts)) : zlib.createGzip({ level: opts.gzipLevel });
}

/** Input is handed to the encoder in blocks of exactly this size (the last one excepted). */
export const ENCODE_BLOCK = 64 * 1024;

/**
 * An encoder whose output depends only on the bytes it is given, not on how they arrived. Brotli's
 * output changes with the pieces its input comes in (from about 1 MiB at quality 5; at every size
 * at quality 0-1), and Node's zlib streams finish on the last chunk or on an empty one depending
 * on timing. So the input is re-cut into fixed blocks, each written only once the previous one was
 * consumed, and the stream is ended only after the last block: a variant compressed while its
 * object streams in from the origin has the same bytes as one compressed later from the stored
 * copy, and both can carry the same strong ETag (compress.test.ts checks this).
 */
export class BlockEncoder {
  /** The compressed bytes; read it (or its writes stall). */
  readonly output: zlib.BrotliCompress | zlib.Gzip;
  bytesIn = 0;
  #pending: Buffer[] = [];
  #pendingBytes = 0;

  constructor(coding: ContentCoding, opts: CompressionOptions) {
    this.output = createEncoder(coding, opts);
  }

  async write(chunk: Buffer): Promise<void> {
    this.bytesIn += chunk.length;
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
    if (this.#pendingBytes < ENCODE_BLOCK) return;
    let all = this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending, this.#pendingBytes);
    while (all.length >= ENCODE_BLOCK) {
      await this.#block(all.subarray(0, ENCODE_BLOCK));
      all = all.subarray(ENCODE_BLOCK);
    }
    this.#pending = all.length ? [all] : [];
    this.#pendingBytes = all.length;
  }

  async end(): Promise<void> {
    if (this.#pendingBytes > 0) await this.#block(this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending, this.#pendingBytes));
    this.#pending = [];
    this.#pendingBytes = 0;
    if (!this.output.destroyed) this.output.end();
  }

  /** Resolves once the encoder consumed the block; rejects when the encoder is gone. */
  #block(b: Buffer): Promise<void> {
    const out = this.output;
    if (out.destroyed) return Promise.reject(new Error('the encoder was closed'));
    return new Promise((resolve, reject) => {
      out.write(b, (err) => (err ? reject(err) : resolve()));
    });
  }
}

/**
 * Feeds `source` through `enc`, handing each compressed chunk to `sink` (awaited, so a slow sink
 * slows the source); resolves with the compressed size. Fails if either side fails.
 */
export async function encodeInto(source: AsyncIterable<Buffer> | Iterable<Buffer>, enc: BlockEncoder, sink: (chunk: Buffer) => Promise<void> | void): Promise<number> {
  const feeding = (async () => {
    for await (const chunk of source) await enc.write(chunk);
    await enc.end();
  })();
  // A failed source ends the output with its error, which stops the loop below.
  feeding.catch((err: unknown) => enc.output.destroy(err instanceof Error ? err : new Error(String(err))));
  let size = 0;
  for await (const chunk of enc.output as AsyncIterable<Buffer>) {
    size += chunk.length;
    const r = sink(chunk);
    if (r) await r;
  }
  await feeding;
  return size;
}

/** Compresses a whole body (the zlib work runs in libuv's thread pool; the event loop only waits). */
export async function compressBuffer(coding: ContentCoding, body: Buffer, opts: CompressionOptions): Promise<Buffer> {
  const out: Buffer[] = [];
  const size = await encodeInto([body], new BlockEncoder(coding, opts), (c) => {
    out.push(c);
  });
  return Buffer.concat(out, size);
}

/** The codings createDecoder handles. */
export function canDecode(coding: string): boolean {
  return coding === 'gzip' || coding === 'x-gzip' || coding === 'br' || coding === 'deflate' || (coding === 'zstd' && typeof zlib.createZstdDecompress === 'function');
}

/** A decoder for a single content coding, or undefined when Node cannot decode it. */
export function createDecoder(coding: string): Transform | undefined {
  switch (coding) {
    case 'gzip':
    case 'x-gzip':
      return zlib.createGunzip();
    case 'br':
      return zlib.createBrotliDecompress();
    case 'deflate':
      // HTTP's "deflate" is the zlib format (RFC 9110 §8.4.1.2); createUnzip also reads gzip.
      return zlib.createUnzip();
    case 'zstd':
      return typeof zlib.createZstdDecompress === 'function' ? zlib.createZstdDecompress() : undefined;
    default:
      return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Compressing while filling.

/** Resolves when a stream can take more, or is gone. */
function drainOrClose(s: Writable): Promise<void> {
  if (s.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      s.off('drain', done);
      s.off('close', done);
      resolve();
    };
    s.once('drain', done);
    s.once('close', done);
  });
}

export interface CompressingWriteOptions {
  readonly coding: ContentCoding;
  readonly options: CompressionOptions;
  /** The object's own (identity) writers, one per tier. */
  readonly identity: readonly WriteHandle[];
  /** The variant's writers, one per tier. */
  readonly variant: readonly WriteHandle[];
  /** Gets the compressed bytes as they come; ended once they are complete (destroyed on failure). */
  readonly client: PassThrough | null;
  /** Called once the variant's bytes are complete. */
  readonly onCompressed: (inBytes: number, outBytes: number) => void;
}

/**
 * One write handle over an object's fill that also compresses it into a variant and streams the
 * compressed bytes to the client that asked. On commit the variant is committed first, then the
 * object: whoever sees the new object (this process or another, through the shared disk tier)
 * already sees its variant, so nobody compresses it a second time. A variant whose object is not
 * committed in the end is never served: the cache only serves a variant made from the copy it
 * found (same requestTime).
 */
export class CompressingWrite implements WriteHandle {
  readonly #o: CompressingWriteOptions;
  readonly #enc: BlockEncoder;
  readonly #pump: Promise<number | Error>;
  /** Set once the encoder failed: the object's fill goes on without its variant. */
  #failed = false;

  constructor(o: CompressingWriteOptions) {
    this.#o = o;
    this.#enc = new BlockEncoder(o.coding, o.options);
    this.#pump = this.#run().catch((err: unknown) => {
      this.#failed = true;
      this.#enc.output.destroy();
      return err instanceof Error ? err : new Error(String(err));
    });
  }

  async #run(): Promise<number> {
    let size = 0;
    const variant = this.#o.variant;
    for await (const chunk of this.#enc.output as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (variant.length === 1) await variant[0]!.write(chunk);
      else if (variant.length > 1) await Promise.all(variant.map((w) => w.write(chunk)));
      const c = this.#o.client;
      if (c && !c.destroyed && !c.write(chunk)) await drainOrClose(c);
    }
    return size;
  }

  async write(chunk: Buffer): Promise<void> {
    const id = this.#o.identity;
    if (id.length === 1) await id[0]!.write(chunk);
    else await Promise.all(id.map((w) => w.write(chunk)));
    // A failed encoder costs the variant (and this client's response), never the object.
    if (!this.#failed) await this.#enc.write(chunk).catch(() => undefined);
  }

  async commit(meta: StoredMeta): Promise<boolean> {
    if (!this.#failed) await this.#enc.end().catch(() => undefined);
    const size = await this.#pump;
    const client = this.#o.client;
    if (typeof size === 'number') {
      this.#o.onCompressed(this.#enc.bytesIn, size);
      const vmeta = variantMeta(meta, this.#o.coding, size);
      await Promise.all(this.#o.variant.map((w) => w.commit(vmeta).catch(() => false)));
    } else {
      client?.destroy(size);
      await Promise.all(this.#o.variant.map((w) => w.abort()));
    }
    const committed = await Promise.all(this.#o.identity.map((w) => w.commit(meta).catch(() => false)));
    // As fillFromOrigin does: a client that has the whole body finds the object stored.
    if (client && !client.destroyed) client.end();
    return committed.some(Boolean);
  }

  async abort(): Promise<void> {
    this.#failed = true;
    this.#enc.output.destroy();
    this.#o.client?.destroy(new Error('the origin body failed'));
    await Promise.all([...this.#o.identity, ...this.#o.variant].map((w) => w.abort()));
  }
}
