// Runs a worker's CUs in the request phases, as one EdgeHooks set. Per CU: host filter, sampling,
// breaker, then the run; its output is applied by the host (CU code never touches the request).
// A CU that fails is fail-open (the request goes on) or fail-closed (503), as it declares.
import type { Logger } from 'pino';
import type { EarlyResponse, EdgeHooks, HookResult, RequestContext, ResponseHead } from '../edge/phases.ts';
import { sampled, type CuPhase } from './cu.ts';
import type { CuMetrics } from './metrics.ts';
import type { CuEntry, CuRegistry } from './registry.ts';
import { CuError, type CuRequestView, type CuRunInput, type CuRunOutput } from './runtime.ts';

/** Per-request CU state, kept in ctx.vars under this key. */
const STATE = 'outpost.cu';

interface CuState {
  vars: Record<string, unknown>;
  /** Response headers set by rewrite/access CUs, applied when the response head is known. */
  resHeaders?: Record<string, string | null>;
  /** A fail-closed CU failed after the response head was chosen: the response becomes a 503. */
  failClosed?: string;
  view?: CuRequestView;
}

/** A CU's result that lets the phase go on to the next CU; DONE ends the phase. */
const NEXT = Symbol('next');
const DONE = Symbol('done');

const TEXTUAL = /^(text\/|application\/(json|javascript|xml|x-javascript|vnd\.apple\.mpegurl|x-mpegurl|ld\+json)|image\/svg\+xml)/i;

function stateOf(ctx: RequestContext): CuState {
  let s = ctx.vars.get(STATE) as CuState | undefined;
  if (!s) {
    s = { vars: {} };
    ctx.vars.set(STATE, s);
  }
  return s;
}

function flatHeaders(h: Readonly<Record<string, string | string[] | undefined>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k in h) {
    const v = h[k];
    if (v === undefined || k.charCodeAt(0) === 58) continue;
    out[k] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!header) return out;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 1) continue;
    const name = part.slice(0, eq).trim();
    if (!name || name in out) continue;
    let value = part.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    try {
      out[name] = decodeURIComponent(value);
    } catch {
      out[name] = value;
    }
  }
  return out;
}

function parseArgs(query: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!query) return out;
  for (const [k, v] of new URLSearchParams(query)) if (!(k in out)) out[k] = v;
  return out;
}

/**
 * The request as CUs see it. Headers, cookies and args are built on first use: the runtime only
 * serialises what a CU's code touches, and most CUs never read every header.
 */
class LazyRequestView implements CuRequestView {
  readonly method: string;
  readonly uri: string;
  readonly path: string;
  readonly query: string;
  readonly ip: string;
  readonly host: string;
  readonly scheme: 'http' | 'https';
  private readonly source: RequestContext['headers'];
  private _headers?: Record<string, string>;
  private _cookies?: Record<string, string>;
  private _args?: Record<string, string>;

  constructor(ctx: RequestContext) {
    this.method = ctx.method;
    this.uri = ctx.query ? `${ctx.path}?${ctx.query}` : ctx.path;
    this.path = ctx.path;
    this.query = ctx.query;
    this.ip = ctx.clientIp;
    this.host = ctx.host;
    this.scheme = ctx.scheme;
    this.source = ctx.headers;
  }

  get headers(): Readonly<Record<string, string>> {
    return (this._headers ??= flatHeaders(this.source));
  }

  get cookies(): Readonly<Record<string, string>> {
    if (!this._cookies) {
      const c = this.source.cookie;
      this._cookies = parseCookies(Array.isArray(c) ? c.join('; ') : c);
    }
    return this._cookies;
  }

  get args(): Readonly<Record<string, string>> {
    return (this._args ??= parseArgs(this.query));
  }

  /** JSON.stringify of a view gives the plain fields, as a plain object would. */
  toJSON(): CuRequestView {
    const { method, uri, path, query, ip, host, scheme, headers, cookies, args } = this;
    return { method, uri, path, query, ip, host, scheme, headers, cookies, args };
  }
}

export function requestView(ctx: RequestContext): CuRequestView {
  return new LazyRequestView(ctx);
}

function applyHeaderChanges(target: Record<string, string | string[] | undefined>, changes: Readonly<Record<string, string | null>>): void {
  for (const [name, value] of Object.entries(changes)) {
    const k = name.toLowerCase();
    if (value === null) delete target[k];
    else target[k] = value;
  }
}

function failClosedResponse(id: string): EarlyResponse {
  return { status: 503, headers: { 'x-outpost-error': 'CU_FAILED', 'cache-control': 'no-store' }, body: `503 CU_FAILED: computing unit ${id} failed\n` };
}

/** Labelled metric children, bound once per CU entry (label lookups cost more than the increment). */
const bound = new WeakMap<CuEntry, { runs: { inc(): void }; duration: { observe(v: number): void } }>();
function boundMetrics(e: CuEntry, metrics: CuMetrics) {
  let b = bound.get(e);
  if (!b) {
    const id = e.cu.id;
    b = { runs: metrics.runCounter(id, e.cu.phase), duration: { observe: (v: number) => metrics.duration.observeFor(id, v) } };
    bound.set(e, b);
  }
  return b;
}

export interface CuHooksOptions {
  readonly log: Logger;
  readonly metrics?: CuMetrics;
  /** Where a CU's log() lines go. */
  readonly cuLog?: Logger;
  readonly random?: () => number;
}

export function cuHooks(registry: CuRegistry, opts: CuHooksOptions): EdgeHooks {
  const { log, metrics } = opts;
  const cuLog = opts.cuLog ?? log;
  const random = opts.random ?? Math.random;

  /** The CUs of a phase that run for this request, after host filter and sampling. */
  const selected = (phase: CuPhase, ctx: RequestContext): CuEntry[] => {
    const all = registry.phase(phase);
    if (all.length === 0 || registry.skipped(ctx.host)) return [];
    const out: CuEntry[] = [];
    for (const e of all) {
      if (!e.hosts(ctx.host)) continue;
      if (!sampled(e.cu.sampling, random() * 100)) {
        metrics?.skips.inc({ cu: e.cu.id, reason: 'sampling' });
        continue;
      }
      out.push(e);
    }
    return out;
  };

  /** Whether some body_filter CU may run for this host (before sampling). */
  const bodyFilterFor = (host: string): boolean => {
    const all = registry.phase('body_filter');
    if (all.length === 0 || registry.skipped(host)) return false;
    for (const e of all) if (e.hosts(host)) return true;
    return false;
  };

  type RunResult = CuRunOutput | 'failed' | 'skipped';

  const succeeded = (e: CuEntry, phase: CuPhase, out: CuRunOutput, t0: number): RunResult => {
    e.breaker.success();
    if (metrics) {
      const m = boundMetrics(e, metrics);
      m.runs.inc();
      m.duration.observe((performance.now() - t0) / 1000);
    }
    if (out.logs) for (const l of out.logs) cuLog[l.level]({ cu: e.cu.id, phase }, l.msg);
    return out;
  };

  const failed = (e: CuEntry, phase: CuPhase, err: unknown): RunResult => {
    const id = e.cu.id;
    const kind = err instanceof CuError ? err.kind : 'runtime';
    e.breaker.failure();
    if (metrics) {
      boundMetrics(e, metrics).runs.inc();
      metrics.errors.inc({ cu: id, kind });
    }
    log.warn({ cu: id, phase, kind, err: (err as Error).message, policy: e.cu.failure }, `CU ${id} failed (${kind})`);
    return 'failed';
  };

  /**
   * Runs one CU: its output, or 'failed' after recording why. Synchronous CUs (most) answer without
   * a promise, so a phase whose CUs are all synchronous costs no turn of the microtask queue.
   */
  const runOne = (e: CuEntry, input: CuRunInput): RunResult | Promise<RunResult> => {
    if (!e.breaker.allow()) {
      metrics?.skips.inc({ cu: e.cu.id, reason: 'breaker' });
      return e.cu.failure === 'closed' ? 'failed' : 'skipped';
    }
    const t0 = performance.now();
    let run: CuRunOutput | Promise<CuRunOutput>;
    try {
      run = e.loaded.run(input);
    } catch (err) {
      return failed(e, input.phase, err);
    }
    if (run instanceof Promise) {
      return run.then(
        (out) => succeeded(e, input.phase, out, t0),
        (err: unknown) => failed(e, input.phase, err),
      );
    }
    return succeeded(e, input.phase, run, t0);
  };

  const timings = (ctx: RequestContext) => ({
    requestMs: Number(process.hrtime.bigint() - ctx.timings.start) / 1e6,
    ...(ctx.timings.upstreamConnectMs !== undefined ? { upstreamConnectMs: ctx.timings.upstreamConnectMs } : {}),
    ...(ctx.timings.upstreamResponseMs !== undefined ? { upstreamResponseMs: ctx.timings.upstreamResponseMs } : {}),
    ...(ctx.cacheOutcome ? { cacheStatus: ctx.cacheOutcome } : {}),
    bytesSent: ctx.bytesSent,
  });

  /** What a rewrite/access CU's result does to the request: NEXT, or the phase's answer. */
  const applyRequestResult = (e: CuEntry, out: RunResult, ctx: RequestContext, st: CuState): HookResult | typeof NEXT => {
    if (out === 'skipped') return NEXT;
    if (out === 'failed') return e.cu.failure === 'closed' ? failClosedResponse(e.cu.id) : NEXT;
    if (out.vars) st.vars = { ...out.vars };
    if (out.request) {
      if (out.request.headers) applyHeaderChanges(ctx.headers, out.request.headers);
      if (out.request.path !== undefined) ctx.path = out.request.path.startsWith('/') ? out.request.path : `/${out.request.path}`;
      if (out.request.query !== undefined) ctx.query = out.request.query.replace(/^\?/, '');
      st.view = undefined;
    }
    if (out.response?.headers) st.resHeaders = { ...st.resHeaders, ...out.response.headers };
    if (out.exit) {
      metrics?.exits.inc({ cu: e.cu.id, status: String(out.exit.status) });
      return { status: out.exit.status, ...(out.exit.body !== undefined ? { body: out.exit.body } : {}), ...(out.exit.headers ? { headers: out.exit.headers } : {}) };
    }
    return NEXT;
  };

  /** rewrite and access: request changes, exit, response headers for later. Runs list[from…]. */
  const requestPhase = (phase: 'rewrite' | 'access', ctx: RequestContext, list: CuEntry[], from = 0): HookResult | Promise<HookResult> => {
    const st = stateOf(ctx);
    for (let i = from; i < list.length; i++) {
      const e = list[i]!;
      st.view ??= requestView(ctx);
      const out = runOne(e, { phase, request: st.view, vars: st.vars, timings: timings(ctx) });
      if (out instanceof Promise) {
        return out.then((o) => {
          const r = applyRequestResult(e, o, ctx, st);
          return r === NEXT ? requestPhase(phase, ctx, list, i + 1) : r;
        });
      }
      const r = applyRequestResult(e, out, ctx, st);
      if (r !== NEXT) return r;
    }
    return undefined;
  };

  /** What a header_filter CU's result does to the response head: NEXT, or DONE to stop the phase. */
  const applyHeadResult = (e: CuEntry, out: RunResult, ctx: RequestContext, head: ResponseHead, s: CuState): typeof NEXT | typeof DONE => {
    if (out === 'skipped') return NEXT;
    if (out === 'failed') {
      if (e.cu.failure !== 'closed') return NEXT;
      s.failClosed = e.cu.id;
      head.status = 503;
      head.headers = { 'content-type': 'text/plain; charset=utf-8', 'x-outpost-error': 'CU_FAILED', 'cache-control': 'no-store' };
      return DONE;
    }
    if (out.vars) s.vars = { ...out.vars };
    if (out.response?.status !== undefined) head.status = out.response.status;
    if (out.response?.headers) applyHeaderChanges(head.headers, out.response.headers);
    if (out.exit) {
      // exit() here replaces the response head; the body follows in body_filter.
      head.status = out.exit.status;
      if (out.exit.headers) applyHeaderChanges(head.headers, out.exit.headers);
      if (out.exit.body !== undefined) {
        s.failClosed = undefined;
        ctx.vars.set(`${STATE}.body`, out.exit.body);
      }
      return DONE;
    }
    return NEXT;
  };

  /** header_filter with CUs to run; runs list[from…]. */
  const headerFilter = (ctx: RequestContext, head: ResponseHead, list: CuEntry[], from = 0): void | Promise<void> => {
    const s = stateOf(ctx);
    for (let i = from; i < list.length; i++) {
      const e = list[i]!;
      s.view ??= requestView(ctx);
      const out = runOne(e, { phase: 'header_filter', request: s.view, response: { status: head.status, headers: flatHeaders(head.headers) }, vars: s.vars, timings: timings(ctx) });
      if (out instanceof Promise) {
        return out.then((o) => {
          if (applyHeadResult(e, o, ctx, head, s) === NEXT) return headerFilter(ctx, head, list, i + 1);
        });
      }
      if (applyHeadResult(e, out, ctx, head, s) === DONE) return;
    }
  };

  return {
    name: 'computing-units',
    // Phases without CUs answer synchronously: the driver then skips a promise turn.
    rewrite(ctx) {
      const list = selected('rewrite', ctx);
      return list.length === 0 ? undefined : requestPhase('rewrite', ctx, list);
    },
    access(ctx) {
      // body_filter CUs see bodies as the origin sent them: a response they may rewrite is not
      // compressed by the edge (a rule can still say otherwise, having set ctx.compress first).
      if (ctx.compress === undefined && bodyFilterFor(ctx.host)) ctx.compress = false;
      const list = selected('access', ctx);
      return list.length === 0 ? undefined : requestPhase('access', ctx, list);
    },

    header_filter(ctx, head) {
      const st = ctx.vars.get(STATE) as CuState | undefined;
      if (st?.resHeaders) applyHeaderChanges(head.headers, st.resHeaders);
      const list = selected('header_filter', ctx);
      if (list.length === 0) return;
      return headerFilter(ctx, head, list);
    },
    wantsBody(ctx, head) {
      if (ctx.vars.has(`${STATE}.body`)) return true;
      if ((ctx.vars.get(STATE) as CuState | undefined)?.failClosed) return true;
      if (registry.phase('body_filter').length === 0 || registry.skipped(ctx.host)) return false;
      const type = head.headers['content-type'];
      const enc = head.headers['content-encoding'];
      return typeof type === 'string' && TEXTUAL.test(type) && (enc === undefined || enc === 'identity');
    },

    async body_filter(ctx, body) {
      const replaced = ctx.vars.get(`${STATE}.body`);
      if (typeof replaced === 'string') return Buffer.from(replaced);
      const st = ctx.vars.get(STATE) as CuState | undefined;
      if (st?.failClosed) return Buffer.from(failClosedResponse(st.failClosed).body as string);
      const list = selected('body_filter', ctx);
      if (list.length === 0) return body;
      const s = stateOf(ctx);
      let text = body.toString('utf8');
      for (const e of list) {
        s.view ??= requestView(ctx);
        const head = ctx.response;
        const out = await runOne(e, {
          phase: 'body_filter',
          request: s.view,
          ...(head ? { response: { status: head.status, headers: flatHeaders(head.headers) } } : {}),
          body: text,
          vars: s.vars,
          timings: timings(ctx),
        });
        if (out === 'skipped' || out === 'failed') continue;
        if (out.vars) s.vars = { ...out.vars };
        if (out.body !== undefined) text = out.body;
      }
      return Buffer.from(text);
    },

    log(ctx) {
      const list = selected('log', ctx);
      if (list.length === 0) return;
      const s = stateOf(ctx);
      const view = s.view ?? requestView(ctx);
      const head = ctx.response;
      // Log CUs run after the response; nothing waits for them.
      void (async () => {
        for (const e of list) {
          const out = await runOne(e, { phase: 'log', request: view, ...(head ? { response: { status: head.status, headers: flatHeaders(head.headers) } } : {}), vars: s.vars, timings: timings(ctx) });
          if (out !== 'failed' && out !== 'skipped' && out.vars) s.vars = { ...out.vars };
        }
      })();
    },
  };
}
