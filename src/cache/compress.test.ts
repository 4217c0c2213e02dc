import { PassThrough } from 'node:stream';
import { brotliDecompressSync, gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../config/load.ts';
import {
  CompressingWrite,
  compressBuffer,
  compressedKey,
  compressionFromConfig,
  compressionPlan,
  createDecoder,
  derivedEtag,
  BlockEncoder,
  encodeInto,
  planInputFromList,
  variantHeaders,
  variantMeta,
  wantsCompression,
  withVaryAcceptEncoding,
  type CompressionOptions,
  type PlanInput,
} from './compress.ts';
import { VARIANT_SEPARATOR, type HeaderList, type StoredMeta, type WriteHandle } from './storage/tier.ts';

const opts: CompressionOptions = compressionFromConfig({
  enabled: true,
  types: ['text/html', 'text/plain', 'application/json', 'image/svg+xml', 'font/*'],
  minSize: 1024,
  encodings: ['br', 'gzip'],
  brotliQuality: 5,
  gzipLevel: 6,
  uncached: true,
});

const input = (over: Partial<PlanInput> = {}): PlanInput => ({
  status: 200,
  contentType: 'text/html; charset=utf-8',
  contentEncoding: undefined,
  cacheControl: 'max-age=60',
  contentRange: undefined,
  size: 4096,
  ...over,
});

describe('compressionPlan', () => {
  const table: ReadonlyArray<readonly [string, Partial<PlanInput>, string]> = [
    ['a listed text type', {}, 'compress'],
    ['a listed type whatever its case and parameters', { contentType: 'Application/JSON ; charset=utf-8' }, 'compress'],
    ['a family listed as font/*', { contentType: 'font/woff2' }, 'compress'],
    ['svg, the one image that is text', { contentType: 'image/svg+xml' }, 'compress'],
    ['a text type not listed: only when a rule asks', { contentType: 'text/css' }, 'eligible'],
    ['an image', { contentType: 'image/png' }, 'none'],
    ['video', { contentType: 'video/mp4' }, 'none'],
    ['audio', { contentType: 'audio/mpeg' }, 'none'],
    ['no Content-Type', { contentType: undefined }, 'none'],
    ['below minSize', { size: 1023 }, 'none'],
    ['exactly minSize', { size: 1024 }, 'compress'],
    ['an unknown size (streamed from the origin)', { size: undefined }, 'compress'],
    ['an empty body', { size: 0 }, 'none'],
    ['Cache-Control: no-transform', { cacheControl: 'public, no-transform, max-age=60' }, 'none'],
    ['a 404 page', { status: 404 }, 'compress'],
    ['a redirect', { status: 301 }, 'none'],
    ['a 500', { status: 500 }, 'none'],
    ['a part of a body', { status: 206, contentRange: 'bytes 0-9/100' }, 'none'],
    ['a body the origin compressed', { contentEncoding: 'gzip' }, 'encoded'],
    ['a body the origin compressed, of an image type', { contentEncoding: 'br', contentType: 'image/png' }, 'encoded'],
    ['Content-Encoding: identity', { contentEncoding: 'identity' }, 'compress'],
    ['pre-compressed but no-transform', { contentEncoding: 'gzip', cacheControl: 'no-transform' }, 'none'],
  ];
  it.each(table)('%s → %s', (_what, over, kind) => {
    expect(compressionPlan(opts, input(over)).kind).toBe(kind);
  });

  it('names the codings of a pre-compressed body, x-gzip as gzip', () => {
    expect(compressionPlan(opts, input({ contentEncoding: 'X-Gzip' }))).toEqual({ kind: 'encoded', codings: ['gzip'] });
    expect(compressionPlan(opts, input({ contentEncoding: 'gzip, br' }))).toEqual({ kind: 'encoded', codings: ['gzip', 'br'] });
  });

  it('reads stored headers, every Cache-Control line included', () => {
    const list: HeaderList = [
      ['content-type', 'text/plain'],
      ['cache-control', 'max-age=60'],
      ['cache-control', 'no-transform'],
    ];
    expect(compressionPlan(opts, planInputFromList(200, list, 5000)).kind).toBe('none');
  });
});

describe('wantsCompression', () => {
  const off = { ...opts, enabled: false };
  it('follows the configuration unless a rule says otherwise', () => {
    const compress = compressionPlan(opts, input());
    const eligible = compressionPlan(opts, input({ contentType: 'text/css' }));
    expect(wantsCompression(opts, compress, undefined)).toBe(true);
    expect(wantsCompression(opts, compress, false)).toBe(false);
    expect(wantsCompression(off, compress, undefined)).toBe(false);
    expect(wantsCompression(off, compress, true)).toBe(true);
    expect(wantsCompression(opts, eligible, undefined)).toBe(false);
    expect(wantsCompression(opts, eligible, true)).toBe(true);
  });
});

describe('variant headers', () => {
  it('derives the ETag of each coding, strong or weak, and drops malformed ones', () => {
    expect(derivedEtag('"abc"', 'br')).toBe('"abc-br"');
    expect(derivedEtag(' W/"abc" ', 'gzip')).toBe('W/"abc-gzip"');
    expect(derivedEtag('abc', 'br')).toBeUndefined();
  });

  it('adds Content-Encoding and Vary, and drops what described the identity bytes', () => {
    const identity: HeaderList = [
      ['content-type', 'text/html'],
      ['content-length', '5000'],
      ['etag', '"v1"'],
      ['content-md5', 'x'],
      ['last-modified', 'Mon, 01 Jan 2024 00:00:00 GMT'],
      ['vary', 'Accept-Language'],
    ];
    expect(variantHeaders(identity, 'br')).toEqual([
      ['content-type', 'text/html'],
      ['etag', '"v1-br"'],
      ['last-modified', 'Mon, 01 Jan 2024 00:00:00 GMT'],
      ['vary', 'Accept-Language, Accept-Encoding'],
      ['content-encoding', 'br'],
    ]);
  });

  it('adds Vary: Accept-Encoding only once', () => {
    const list: HeaderList = [['vary', 'accept-encoding']];
    expect(withVaryAcceptEncoding(list)).toBe(list);
    expect(withVaryAcceptEncoding([['vary', '*']])).toEqual([['vary', '*']]);
    expect(withVaryAcceptEncoding([])).toEqual([['vary', 'Accept-Encoding']]);
  });

  it('nests the variant under its object, so purging the object (or its Vary variant) reaches it', () => {
    const key = 'http://h/a';
    expect(compressedKey(key, 'br').startsWith(key + VARIANT_SEPARATOR)).toBe(true);
    const varyVariant = `${key}${VARIANT_SEPARATOR}accept-language=fr`;
    expect(compressedKey(varyVariant, 'gzip').startsWith(varyVariant + VARIANT_SEPARATOR)).toBe(true);
    expect(compressedKey(key, 'br')).not.toBe(compressedKey(key, 'gzip'));
  });
});

const text = Buffer.from(Array.from({ length: 4000 }, (_, i) => `line ${i} of some text that repeats ${i % 17}\n`).join(''));

/** The body cut at `cuts`, each piece arriving after a turn of the event loop (as from a socket). */
async function* arriving(body: Buffer, cuts: readonly number[]): AsyncGenerator<Buffer> {
  let at = 0;
  for (const cut of [...cuts, body.length]) {
    yield body.subarray(at, cut);
    at = cut;
    await new Promise((r) => setImmediate(r));
  }
}

async function encodeInChunks(coding: 'br' | 'gzip', body: Buffer, cuts: readonly number[]): Promise<Buffer> {
  const out: Buffer[] = [];
  await encodeInto(arriving(body, cuts), new BlockEncoder(coding, opts), (c) => {
    out.push(c);
  });
  return Buffer.concat(out);
}

// Big enough for brotli's output to depend on how its input is cut (from about 1 MiB at quality 5).
const bigText = Buffer.from(Array.from({ length: 50_000 }, (_, i) => `{"id":${i},"name":"item ${(i * 7919) % 100_003}","v":${Math.sin(i).toFixed(5)}}\n`).join(''));

describe('codecs', () => {
  it.each(['br', 'gzip'] as const)('%s: streamed in any chunks gives the same bytes as compressing at once (one strong ETag)', async (coding) => {
    for (const body of [text, bigText]) {
      const whole = await compressBuffer(coding, body, opts);
      expect(whole.length).toBeLessThan(body.length / 3);
      const cuttings = [[1], [7, 8, 9, 5000, 65536, 65537], Array.from({ length: 40 }, (_, i) => (i + 1) * 3001), Array.from({ length: Math.floor(body.length / 16384) }, (_, i) => (i + 1) * 16384), [body.length - 1]];
      for (const cuts of cuttings) expect((await encodeInChunks(coding, body, cuts)).equals(whole)).toBe(true);
    }
  }, 30_000);

  it('brotli at quality 1 too, where unblocked streaming gives other bytes at every size', async () => {
    const fast = { ...opts, brotliQuality: 1 };
    const whole = await compressBuffer('br', text, fast);
    const out: Buffer[] = [];
    await encodeInto(arriving(text, [3, 999, 20_000]), new BlockEncoder('br', fast), (c) => {
      out.push(c);
    });
    expect(Buffer.concat(out).equals(whole)).toBe(true);
    expect(brotliDecompressSync(whole).equals(text)).toBe(true);
  });

  it('decodes gzip, br and deflate', async () => {
    for (const [coding, bytes] of [
      ['gzip', await compressBuffer('gzip', text, opts)],
      ['br', await compressBuffer('br', text, opts)],
    ] as const) {
      const d = createDecoder(coding)!;
      const out: Buffer[] = [];
      d.on('data', (c: Buffer) => out.push(c));
      d.end(bytes);
      await new Promise((r) => d.on('end', r));
      expect(Buffer.concat(out).equals(text)).toBe(true);
    }
    expect(createDecoder('deflate')).toBeDefined();
    expect(createDecoder('compress')).toBeUndefined();
  });
});

/** A write handle recording what it was given and when it was committed. */
function recorder(name: string, log: string[]): WriteHandle & { bytes(): Buffer; meta?: StoredMeta } {
  const chunks: Buffer[] = [];
  const h = {
    meta: undefined as StoredMeta | undefined,
    async write(c: Buffer) {
      chunks.push(c);
    },
    async commit(m: StoredMeta) {
      h.meta = m;
      log.push(`commit ${name}`);
      return true;
    },
    async abort() {
      log.push(`abort ${name}`);
    },
    bytes: () => Buffer.concat(chunks),
  };
  return h;
}

const meta = (size: number): StoredMeta => ({
  key: 'http://h/x',
  status: 200,
  headers: [
    ['content-type', 'text/plain'],
    ['etag', '"e"'],
  ],
  requestTime: 1000,
  responseTime: 1001,
  ttlMs: 60_000,
  swrMs: 0,
  sieMs: 0,
  tags: ['t'],
  vary: [],
  size,
});

describe('CompressingWrite', () => {
  it('stores the object and its variant, streams the variant to the client, and commits the variant first', async () => {
    const log: string[] = [];
    const id = recorder('identity', log);
    const v = recorder('variant', log);
    const client = new PassThrough();
    const received: Buffer[] = [];
    client.on('data', (c: Buffer) => received.push(c));
    let counted: [number, number] | undefined;
    const w = new CompressingWrite({ coding: 'gzip', options: opts, identity: [id], variant: [v], client, onCompressed: (i, o) => (counted = [i, o]) });
    for (let i = 0; i < text.length; i += 10_000) await w.write(text.subarray(i, i + 10_000));
    expect(await w.commit(meta(text.length))).toBe(true);
    expect(log).toEqual(['commit variant', 'commit identity']);
    expect(id.bytes().equals(text)).toBe(true);
    expect(gunzipSync(v.bytes()).equals(text)).toBe(true);
    expect(Buffer.concat(received).equals(v.bytes())).toBe(true);
    expect(counted).toEqual([text.length, v.bytes().length]);
    expect(v.meta).toEqual(variantMeta(meta(text.length), 'gzip', v.bytes().length));
    expect(v.meta!.requestTime).toBe(1000);
    expect(v.meta!.tags).toEqual(['t']);
  });

  it('goes on filling when the client has gone away', async () => {
    const log: string[] = [];
    const id = recorder('identity', log);
    const v = recorder('variant', log);
    const client = new PassThrough();
    client.destroy();
    const w = new CompressingWrite({ coding: 'br', options: opts, identity: [id], variant: [v], client, onCompressed: () => undefined });
    await w.write(text);
    expect(await w.commit(meta(text.length))).toBe(true);
    expect(brotliDecompressSync(v.bytes()).equals(text)).toBe(true);
  });

  it('aborts every writer and fails the client when the origin body fails', async () => {
    const log: string[] = [];
    const client = new PassThrough();
    const closed = new Promise<Error | undefined>((r) => client.on('error', (e) => r(e)));
    const w = new CompressingWrite({ coding: 'gzip', options: opts, identity: [recorder('identity', log)], variant: [recorder('variant', log)], client, onCompressed: () => undefined });
    await w.write(gzipSync(text).subarray(0, 100));
    await w.abort();
    expect(log.sort()).toEqual(['abort identity', 'abort variant']);
    expect(await closed).toBeInstanceOf(Error);
  });
});

describe('the compression settings', () => {
  it('default to br and gzip for text types above 1 KiB, and read human sizes', () => {
    const c = resolveConfig({}).compression;
    expect(c).toMatchObject({ enabled: true, minSize: 1024, encodings: ['br', 'gzip'], brotliQuality: 5, gzipLevel: 6, uncached: true });
    expect(c.types).toContain('text/html');
    expect(c.types.some((t) => /^(image\/(?!svg)|video|audio)/.test(t))).toBe(false);
    expect(resolveConfig({ compression: { minSize: '2KB' } }).compression.minSize).toBe(2048);
  });

  it('refuses images, video and audio, and other mistakes, naming the setting', () => {
    expect(() => resolveConfig({ compression: { types: ['text/html', 'image/png'] } })).toThrow(/compression\.types\.1: images, video and audio are never compressed/);
    expect(() => resolveConfig({ compression: { types: ['video/*'] } })).toThrow(/compression\.types\.0/);
    expect(() => resolveConfig({ compression: { types: ['html'] } })).toThrow(/compression\.types\.0: expected a media type/);
    expect(() => resolveConfig({ compression: { encodings: ['zstd'] } })).toThrow(/compression\.encodings\.0: expected "br" or "gzip"/);
    expect(() => resolveConfig({ compression: { encodings: [] } })).toThrow(/compression\.encodings: expected at least one/);
    expect(() => resolveConfig({ compression: { encodings: ['br', 'br'] } })).toThrow(/compression\.encodings: expected each encoding once/);
    expect(() => resolveConfig({ compression: { brotliQuality: 12 } })).toThrow(/compression\.brotliQuality/);
    expect(() => resolveConfig({ compression: { minSize: 'big' } })).toThrow(/compression\.minSize: expected a size/);
    expect(resolveConfig({ compression: { types: ['image/svg+xml', 'text/*'] } }).compression.types).toEqual(['image/svg+xml', 'text/*']);
  });
});
