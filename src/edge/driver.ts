// The one place that runs the phases in order: rewrite → access → cache → upstream → header_filter
// → body_filter → log. A hook that answers early skips to header_filter; errors from any phase
// become one response here.
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Http2ServerResponse } from 'node:http2';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { RealIp } from './real-ip.ts';
import type { Logger } from 'pino';
import type { Outgoing } from '../cache/http-cache.ts';
import { withVariant } from '../cache/key.ts';
import { OutpostError, toOutpostError } from '../errors.ts';
import type { AccessRecord } from '../log/logger.ts';
import type { EdgeMetrics } from '../metrics/metrics.ts';
import { HOOK_PHASES, type EarlyResponse, type EdgeHooks, type HookPhase, type HookResult, type RequestContext, type ResponseHead } from './phases.ts';
import { FastRequest, FastResponse } from './fast-http1.ts';
import { clientAddress, createContext, type NodeRequest, type StreamRequest } from './request.ts';

export type NodeResponse = ServerResponse | Http2ServerResponse | FastResponse;

/** The built-in stages the driver calls between access and header_filter. */
export interface Stages {
  /** Computes ctx.cacheKey after rewrite. */
  cacheKey(ctx: RequestContext): string;
  /** Built-in answers before the cache (PURGE, /health); undefined to go on. */
  builtin?(ctx: RequestContext): Promise<Outgoing | undefined> | Outgoing | undefined;
  /** Cache lookup and, on a miss, the upstream request. */
  serve(ctx: RequestContext, body: Readable | null, refresh: boolean): Outgoing | Promise<Outgoing>;
}

export interface DriverOptions {
  readonly hooks: readonly EdgeHooks[];
  readonly stages: Stages;
  readonly metrics: EdgeMetrics;
  readonly log: Logger;
  /** Access log sink; undefined when access logging is off. */
  readonly access?: Logger;
  readonly maxBodyBytes: number;
  /** Requests carrying this token in x-outpost-prefetch refresh the cache (prefetch). */
  readonly prefetchToken: string;
  /** True while draining for shutdown: responses carry Connection: close. */
  readonly draining: () => boolean;
  /** The client address behind trusted proxies (edge.trustedProxies); absent: the connection's peer. */
  readonly realIp?: RealIp | undefined;
}

type HookFn<P extends HookPhase> = NonNullable<EdgeHooks[P]>;

/** Validates hook sets once at start: unknown phase names are refused (Fastify-style). */
export function checkHooks(hooks: readonly EdgeHooks[]): void {
  const allowed = new Set<string>(['name', 'wantsBody', 'wantsRequestBody', 'inspectBody', ...HOOK_PHASES]);
  for (const h of hooks) {
    for (const k of Object.keys(h)) {
      if (!allowed.has(k)) throw new OutpostError('CONFIG_INVALID', `hooks "${h.name}": unknown phase "${k}" (phases: ${HOOK_PHASES.join(', ')})`);
    }
    if (h.inspectBody && !h.wantsRequestBody) throw new OutpostError('CONFIG_INVALID', `hooks "${h.name}": inspectBody needs wantsRequestBody (how many bytes of which bodies it wants)`);
  }
}

function earlyToOutgoing(e: EarlyResponse): Outgoing {
  const headers: Record<string, string | string[]> = {};
  if (e.headers) for (const k in e.headers) headers[k.toLowerCase()] = e.headers[k]!;
  const body = e.body === undefined ? null : Buffer.isBuffer(e.body) ? e.body : Buffer.from(e.body);
  if (body && !headers['content-type']) headers['content-type'] = 'text/plain; charset=utf-8';
  return { status: e.status, headers, body };
}

/**
 * Hooks and stages may answer synchronously. Awaiting a plain value still costs a microtask turn,
 * which on a cache HIT is a visible share of the request (docs/performance.md), so only promises
 * (and other thenables) are awaited.
 */
function isPromiseLike<T>(x: T | PromiseLike<T>): x is PromiseLike<T> {
  return typeof (x as { then?: unknown } | null | undefined)?.then === 'function';
}

export function errorResponse(err: OutpostError): Outgoing {
  const body = Buffer.from(`${err.status} ${err.code}: ${err.message.split('\n')[0]}\n`);
  return { status: err.status, headers: { 'content-type': 'text/plain; charset=utf-8', 'x-outpost-error': err.code, 'cache-control': 'no-store' }, body };
}

/** Counts request body bytes and fails the stream past the limit (for bodies without Content-Length). */
function limitBody(limit: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _e, cb) {
      seen += chunk.length;
      if (seen > limit) cb(new OutpostError('BODY_TOO_LARGE', `request body exceeds limits.maxBodyBytes (${limit})`));
      else cb(null, chunk);
    },
  });
}

async function collect(body: Buffer | Readable | null, limit: number): Promise<Buffer> {
  if (body === null) return Buffer.alloc(0);
  if (Buffer.isBuffer(body)) return body;
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > limit) {
      body.destroy();
      throw new OutpostError('INTERNAL', `response body exceeds limits.maxBodyBytes (${limit}) and cannot pass a body_filter`);
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

/**
 * Reads a streamed body whole so it can go out with Content-Length (ctx.wholeBody: some devices
 * fail on chunked responses). Past `limit` it gives up and hands back a stream of what was read
 * followed by the rest, so the client still gets the whole body, chunked.
 */
async function wholeBody(body: Readable, limit: number, tooLarge: () => void): Promise<Buffer | Readable> {
  const chunks: Buffer[] = [];
  let n = 0;
  const it = (body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  for (;;) {
    const r = await it.next();
    if (r.done) return Buffer.concat(chunks, n);
    chunks.push(r.value);
    n += r.value.length;
    if (n > limit) {
      tooLarge();
      return Readable.from(
        (async function* () {
          try {
            yield* chunks;
            for (let x = await it.next(); !x.done; x = await it.next()) yield x.value;
          } finally {
            await it.return?.();
          }
        })(),
        { objectMode: false },
      );
    }
  }
}

/**
 * Reads at least `want` bytes of a request body (fewer if it is shorter) and leaves the rest
 * unread in the stream. `req` is watched because `pipe` does not pass on a client that went away.
 */
function readPrefix(req: StreamRequest, body: Readable, want: number): Promise<{ chunks: Buffer[]; size: number; ended: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const off = () => {
      body.off('readable', onReadable);
      body.off('end', onEnd);
      body.off('error', onError);
      req.off('close', onClose);
    };
    const onReadable = () => {
      for (let c = body.read() as Buffer | null; c !== null; c = body.read() as Buffer | null) {
        chunks.push(c);
        size += c.length;
        if (size >= want) {
          off();
          resolve({ chunks, size, ended: false });
          return;
        }
      }
    };
    const onEnd = () => {
      off();
      resolve({ chunks, size, ended: true });
    };
    const onError = (err: Error) => {
      off();
      reject(err);
    };
    const onClose = () => {
      if (req.complete) return;
      off();
      reject(new OutpostError('BAD_REQUEST', 'the client went away while sending the request body'));
    };
    body.on('readable', onReadable);
    body.once('end', onEnd);
    body.once('error', onError);
    req.once('close', onClose);
  });
}

/**
 * Reads and drops the rest of a refused request's body so that a keep-alive connection can carry
 * the next request; past limits.maxBodyBytes the request (and its connection) is dropped instead.
 */
function discardBody(req: StreamRequest, body: Readable): void {
  body.once('error', () => req.destroy());
  body.resume();
}

export class Driver {
  private readonly o: DriverOptions;
  private readonly rewrite: HookFn<'rewrite'>[];
  private readonly access: HookFn<'access'>[];
  /** rewrite then access: the driver treats them alike, in this order. */
  private readonly requestHooks: Array<HookFn<'rewrite'> | HookFn<'access'>>;
  private readonly headerFilter: HookFn<'header_filter'>[];
  private readonly bodyFilter: Array<{ filter: HookFn<'body_filter'>; wants?: (ctx: RequestContext, head: ResponseHead) => boolean }>;
  private readonly bodyInspect: Array<{ wants: NonNullable<EdgeHooks['wantsRequestBody']>; inspect: NonNullable<EdgeHooks['inspectBody']> }>;
  private readonly logHooks: HookFn<'log'>[];

  constructor(o: DriverOptions) {
    checkHooks(o.hooks);
    this.o = o;
    // Bound once at start, so a request pays only for the phases that have hooks.
    this.rewrite = o.hooks.flatMap((h) => (h.rewrite ? [h.rewrite.bind(h)] : []));
    this.access = o.hooks.flatMap((h) => (h.access ? [h.access.bind(h)] : []));
    this.requestHooks = [...this.rewrite, ...this.access];
    this.headerFilter = o.hooks.flatMap((h) => (h.header_filter ? [h.header_filter.bind(h)] : []));
    this.bodyFilter = o.hooks.flatMap((h) => (h.body_filter ? [{ filter: h.body_filter.bind(h), ...(h.wantsBody ? { wants: h.wantsBody.bind(h) } : {}) }] : []));
    this.logHooks = o.hooks.flatMap((h) => (h.log ? [h.log.bind(h)] : []));
    this.bodyInspect = o.hooks.flatMap((h) => (h.inspectBody && h.wantsRequestBody ? [{ wants: h.wantsRequestBody.bind(h), inspect: h.inspectBody.bind(h) }] : []));
  }

  /** The request listener for both the cleartext and the TLS server. */
  readonly handle = (req: NodeRequest, res: NodeResponse): void => {
    void this.run(req, res);
  };

  private async run(req: NodeRequest, res: NodeResponse): Promise<void> {
    const scheme = (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http';
    let ctx: RequestContext;
    try {
      const peer = clientAddress(req.socket.remoteAddress);
      ctx = createContext(req, scheme, this.o.realIp ? this.o.realIp(peer, req.headers) : peer);
    } catch (err) {
      const e = toOutpostError(err, 'BAD_REQUEST');
      this.o.metrics.clientErrors.inc({ code: e.code });
      this.o.log.info({ code: e.code, ip: clientAddress(req.socket.remoteAddress), msg0: e.message }, 'request refused');
      req.resume();
      this.send(res, errorResponse(e), req.method === 'HEAD', true);
      return;
    }
    let out: Outgoing;
    try {
      const p = this.phases(ctx, req);
      out = isPromiseLike(p) ? await p : p;
    } catch (err) {
      const e = toOutpostError(err);
      if (e.source === 'client') this.o.metrics.clientErrors.inc({ code: e.code });
      if (e.source !== 'client') this.o.log.warn({ code: e.code, err: e.message, uri: ctx.path, host: ctx.host }, 'request failed');
      ctx.cacheOutcome ??= 'MISS';
      out = errorResponse(e);
    }
    try {
      const head: ResponseHead = { status: out.status, headers: out.headers };
      for (const f of this.headerFilter) {
        const r = f(ctx, head);
        if (isPromiseLike(r)) await r;
      }
      ctx.response = head;
      let body = out.body;
      // Built only when some body_filter wants this body: most responses allocate nothing here.
      let filters: typeof this.bodyFilter | undefined;
      if (this.bodyFilter.length && body !== null && ctx.method !== 'HEAD') {
        for (const f of this.bodyFilter) if (!f.wants || f.wants(ctx, head)) (filters ??= []).push(f);
      }
      if (filters) {
        let buf = await collect(body, this.o.maxBodyBytes);
        for (const f of filters) buf = await f.filter(ctx, buf);
        head.headers['content-length'] = String(buf.length);
        delete head.headers['content-range'];
        body = buf;
      }
      if (ctx.wholeBody && body !== null && !Buffer.isBuffer(body) && head.headers['content-length'] === undefined && ctx.method !== 'HEAD' && head.status !== 204 && head.status !== 304) {
        body = await wholeBody(body, this.o.maxBodyBytes, () => this.o.log.warn({ uri: ctx.path, limit: this.o.maxBodyBytes }, 'body larger than limits.maxBodyBytes: sent chunked despite wholeBody'));
        if (Buffer.isBuffer(body)) head.headers['content-length'] = String(body.length);
      }
      ctx.response = head;
      // Only a streamed body needs waiting for; a cache HIT's Buffer is written at once.
      const streaming = this.write(ctx, res, head, body, req);
      if (streaming) await streaming;
    } catch (err) {
      const e = toOutpostError(err);
      this.o.log.warn({ code: e.code, err: e.message, uri: ctx.path }, 'response failed');
      if (!res.headersSent) this.send(res, errorResponse(e), ctx.method === 'HEAD', false);
      else res.destroy();
    }
    this.finish(ctx);
  }

  /**
   * rewrite and access hooks, the built-in stages, then the cache. Synchronous as long as every step
   * answers synchronously (a cache HIT with no CU to run): such a request costs no promise.
   */
  private phases(ctx: RequestContext, req: NodeRequest): Outgoing | Promise<Outgoing> {
    const hooks = this.requestHooks;
    for (let i = 0; i < hooks.length; i++) {
      const r = hooks[i]!(ctx);
      if (isPromiseLike(r)) return this.hooksFrom(ctx, req, i, r);
      if (r && r !== 'continue') ctx.early = r;
      if (ctx.early) return earlyToOutgoing(ctx.early);
    }
    return this.afterHooks(ctx, req);
  }

  /** phases() from the hook whose answer is a promise on. */
  private async hooksFrom(ctx: RequestContext, req: NodeRequest, i: number, pending: PromiseLike<HookResult>): Promise<Outgoing> {
    const hooks = this.requestHooks;
    for (let p: HookResult | PromiseLike<HookResult> = pending; ; ) {
      const r = isPromiseLike(p) ? await p : p;
      if (r && r !== 'continue') ctx.early = r;
      if (ctx.early) return earlyToOutgoing(ctx.early);
      if (++i >= hooks.length) break;
      p = hooks[i]!(ctx);
    }
    return await this.afterHooks(ctx, req);
  }

  private afterHooks(ctx: RequestContext, req: NodeRequest): Outgoing | Promise<Outgoing> {
    ctx.cacheKey = this.o.stages.cacheKey(ctx);
    if (ctx.cacheKeyExtra) ctx.cacheKey = withVariant(ctx.cacheKey, ctx.cacheKeyExtra);
    const b = this.o.stages.builtin?.(ctx);
    if (isPromiseLike(b)) return this.afterBuiltin(ctx, req, b);
    if (b) return b;
    return this.toCache(ctx, req);
  }

  private async afterBuiltin(ctx: RequestContext, req: NodeRequest, pending: PromiseLike<Outgoing | undefined>): Promise<Outgoing> {
    const builtin = await pending;
    return builtin ?? (await this.toCache(ctx, req));
  }

  /** The cache stage, with the request body (if any) shown to the hooks that inspect bodies first. */
  private toCache(ctx: RequestContext, req: NodeRequest): Outgoing | Promise<Outgoing> {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return this.withBody(ctx, req);
    return this.serve(ctx, null);
  }

  private async withBody(ctx: RequestContext, req: NodeRequest): Promise<Outgoing> {
    let body: Readable | null = null;
    const len = Number(req.headers['content-length'] ?? 0);
    if (len > this.o.maxBodyBytes) throw new OutpostError('BODY_TOO_LARGE', `request body of ${len} bytes exceeds limits.maxBodyBytes (${this.o.maxBodyBytes})`);
    const hasBody = len > 0 || req.headers['transfer-encoding'] !== undefined || (req.httpVersionMajor === 2 && !req.readableEnded);
    // The fast lane takes only body-less requests (fast-http1.ts), so a body is a stream's.
    if (hasBody && !(req instanceof FastRequest)) {
      body = (req as Readable).pipe(limitBody(this.o.maxBodyBytes));
      if (this.bodyInspect.length) {
        const r = await this.inspectBody(ctx, req, body);
        if (!(r instanceof Readable)) return r;
        body = r;
      }
    }
    return await this.serve(ctx, body);
  }

  private serve(ctx: RequestContext, body: Readable | null): Outgoing | Promise<Outgoing> {
    const refresh = ctx.headers['x-outpost-prefetch'] === this.o.prefetchToken;
    if (refresh) delete ctx.headers['x-outpost-prefetch'];
    return this.o.stages.serve(ctx, body, refresh);
  }

  /**
   * Shows the first bytes of the request body to the hooks that want them. Returns the body for
   * the origin — the same stream with what was read put back — or the early answer of a hook.
   */
  private async inspectBody(ctx: RequestContext, req: StreamRequest, body: Readable): Promise<Readable | Outgoing> {
    let want = 0;
    let inspectors: typeof this.bodyInspect | undefined;
    for (const b of this.bodyInspect) {
      const n = b.wants(ctx);
      if (n > 0) {
        (inspectors ??= []).push(b);
        if (n > want) want = n;
      }
    }
    if (!inspectors) return body;
    const { chunks, size, ended } = await readPrefix(req, body, Math.min(want, this.o.maxBodyBytes));
    const read = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
    const prefix = read.length > want ? read.subarray(0, want) : read;
    for (const b of inspectors) {
      const p = b.inspect(ctx, prefix);
      const r = isPromiseLike(p) ? await p : p;
      if (r && r !== 'continue') ctx.early = r;
      if (ctx.early) {
        discardBody(req, body);
        return earlyToOutgoing(ctx.early);
      }
    }
    // A stream cannot take data back after its 'end': a body read to the end starts afresh.
    if (ended) return Readable.from([read], { objectMode: false });
    if (read.length) body.unshift(read);
    return body;
  }

  /** Writes the response; returns a promise only when the body is a stream still being piped. */
  private write(ctx: RequestContext, res: NodeResponse, head: ResponseHead, body: Buffer | Readable | null, req: NodeRequest): Promise<void> | undefined {
    if (this.o.draining() && req.httpVersionMajor === 1) head.headers.connection = 'close';
    const noBody = ctx.method === 'HEAD' || head.status === 304 || head.status === 204;
    if (noBody && body !== null && !Buffer.isBuffer(body)) body.destroy();
    (res as ServerResponse).writeHead(head.status, head.headers as OutgoingHttpHeaders);
    if (noBody || body === null) {
      (res as ServerResponse).end();
      return undefined;
    }
    if (Buffer.isBuffer(body)) {
      ctx.bytesSent = body.length;
      (res as ServerResponse).end(body);
      return undefined;
    }
    return this.pipeBody(ctx, res, body);
  }

  private async pipeBody(ctx: RequestContext, res: NodeResponse, body: Readable): Promise<void> {
    body.on('data', (c: Buffer) => {
      ctx.bytesSent += c.length;
    });
    try {
      await pipeline(body, res instanceof FastResponse ? res.sink() : (res as NodeJS.WritableStream));
    } catch (err) {
      // The client went away or the origin broke off mid-body: nothing more can be sent.
      if (!res.destroyed) res.destroy();
      const code = (err as { code?: string }).code;
      if (code !== 'ERR_STREAM_PREMATURE_CLOSE') this.o.log.info({ uri: ctx.path, err: (err as Error).message }, 'response stream ended early');
    }
  }

  private send(res: NodeResponse, out: Outgoing, head: boolean, close: boolean): void {
    if (res.headersSent || res.destroyed) return;
    const headers = { ...out.headers };
    if (close && 'shouldKeepAlive' in res) headers.connection = 'close';
    if (Buffer.isBuffer(out.body)) headers['content-length'] = String(out.body.length);
    (res as ServerResponse).writeHead(out.status, headers);
    if (head || !Buffer.isBuffer(out.body)) (res as ServerResponse).end();
    else (res as ServerResponse).end(out.body);
  }

  private finish(ctx: RequestContext): void {
    const status = ctx.response?.status ?? 500;
    const cache = ctx.cacheOutcome ?? 'NONE';
    const seconds = Number(process.hrtime.bigint() - ctx.timings.start) / 1e9;
    this.o.metrics.observeRequest(status, cache, ctx.bytesSent, seconds);
    for (const h of this.logHooks) {
      try {
        h(ctx);
      } catch (err) {
        this.o.log.warn({ err: (err as Error).message }, 'log hook failed');
      }
    }
    if (this.o.access) {
      const rec: AccessRecord = {
        method: ctx.method,
        uri: ctx.query ? `${ctx.path}?${ctx.query}` : ctx.path,
        host: ctx.host,
        status,
        cache,
        bytes: ctx.bytesSent,
        rt: Math.round(seconds * 1e6) / 1e6,
        ...(ctx.timings.upstreamResponseMs !== undefined ? { urt: Math.round(ctx.timings.upstreamResponseMs * 1000) / 1e6 } : {}),
        ip: ctx.clientIp,
        ...(typeof ctx.headers['user-agent'] === 'string' ? { ua: ctx.headers['user-agent'] } : {}),
        ...(ctx.collapsed ? { collapsed: true } : {}),
        ...(ctx.cacheDetail ? { detail: ctx.cacheDetail } : {}),
      };
      this.o.access.info(rec);
    }
  }
}

