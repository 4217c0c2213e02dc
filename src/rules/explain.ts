// The dry run: which rules match a request you describe, why the others do not (their first
// failing condition), and what the matched ones would do. It runs the edge's own compiled
// predicates and actions on a context built from the description, so it cannot disagree with them.
import type { IncomingHttpHeaders } from 'node:http';
import type { ResponseHead } from '../edge/phases.ts';
import { newContext, normalizeHost } from '../edge/request.ts';
import { OutpostError, toOutpostError } from '../errors.ts';
import { applyResponse } from './actions.ts';
import { matchRules, type CompiledRule, type CompiledRules } from './compile.ts';
import { Facts, whyNot } from './conditions.ts';
import { applyMatched, countryReader } from './hooks.ts';
import type { Actions } from './schema.ts';

export interface DescribedRequest {
  method?: string;
  /** "https://example.com/a/b?c=1", or a path ("/a/b?c=1") with the host from headers.host (else "localhost"). */
  url: string;
  headers?: Record<string, string>;
  /** Client address; default 127.0.0.1. */
  ip?: string;
  /** Country code, instead of reading the country header. */
  country?: string;
}

export interface RuleVerdict {
  readonly index: number;
  readonly label: string;
  /** matched; no-match (reason says which condition failed); disabled; not-reached (an earlier match ended evaluation). */
  readonly status: 'matched' | 'no-match' | 'disabled' | 'not-reached';
  readonly reason?: string;
  readonly continue: boolean;
}

export interface Explanation {
  readonly request: { method: string; scheme: string; host: string; path: string; query: string; ip: string; country: string | null };
  /** The matched rules in the order their actions apply. */
  readonly matched: ReadonlyArray<{ index: number; label: string; then: Actions }>;
  readonly rules: readonly RuleVerdict[];
  /** What the request would become. */
  readonly outcome: {
    /** A deny or redirect answered at the edge. */
    readonly answer?: { status: number; headers: Record<string, string | string[]>; body?: string };
    readonly path: string;
    readonly query: string;
    readonly pool: string;
    readonly requestHeaders: { set: Record<string, string>; removed: string[] };
    readonly responseHeaders: { set: Record<string, string>; removed: string[] };
    readonly cache?: { ttlMs?: number; bypass?: boolean; noStore?: boolean };
    readonly cacheKeyExtra?: string;
    readonly compress?: boolean;
    readonly wholeBody?: boolean;
    /** Experiment name → bucket. */
    readonly ab?: Record<string, string>;
  };
  /** Set when applying the actions failed (e.g. a pool this node does not configure). */
  readonly error?: string;
}

export interface ExplainOptions {
  readonly countryHeader?: string | undefined;
  readonly trustCountryFrom?: readonly string[] | undefined;
  readonly pools?: readonly string[] | undefined;
}

const ABSOLUTE = /^(https?):\/\/([^/?#]+)([^?#]*)(?:\?([^#]*))?/i;

function parseTarget(url: string, hostHeader: string | undefined): { scheme: 'http' | 'https'; host: string; path: string; query: string } {
  let scheme: 'http' | 'https' = 'http';
  let host = hostHeader ?? 'localhost';
  let rest: string;
  const m = ABSOLUTE.exec(url);
  if (m) {
    scheme = m[1]!.toLowerCase() as 'http' | 'https';
    host = m[2]!;
    rest = (m[3] || '/') + (m[4] !== undefined ? `?${m[4]}` : '');
  } else if (url.startsWith('/')) rest = url.split('#')[0]!;
  else throw new OutpostError('BAD_REQUEST', `request.url: expected an http(s) URL or a path starting with "/", got ${JSON.stringify(url)}`);
  const h = normalizeHost(host, scheme);
  if (h === undefined) throw new OutpostError('BAD_REQUEST', `request.url: invalid host ${JSON.stringify(host)}`);
  const q = rest.indexOf('?');
  return { scheme, host: h, path: q < 0 ? rest : rest.slice(0, q), query: q < 0 ? '' : rest.slice(q + 1) };
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return v === undefined ? undefined : Array.isArray(v) ? v.join(', ') : v;
}

export function explain(compiled: CompiledRules, req: DescribedRequest, opts: ExplainOptions = {}): Explanation {
  const headers: IncomingHttpHeaders = {};
  for (const [k, v] of Object.entries(req.headers ?? {})) headers[k.toLowerCase()] = v;
  const t = parseTarget(req.url, headers.host);
  headers.host ??= t.host;
  const method = (req.method ?? 'GET').toUpperCase();
  const ip = req.ip ?? '127.0.0.1';
  const country = req.country !== undefined ? (/^[A-Za-z]{2}$/.test(req.country) ? req.country.toUpperCase() : undefined) : countryReader(opts.countryHeader, opts.trustCountryFrom)(headers, ip);
  const facts = () => new Facts({ method, scheme: t.scheme, host: t.host, path: t.path, query: t.query, headers, ip, country });
  const f = facts();

  const m = matchRules(compiled, f);
  const matched: CompiledRule[] = m === undefined ? [] : Array.isArray(m) ? m : [m];
  const matchedSet = new Set(matched);
  const last = matched.at(-1);
  const rules: RuleVerdict[] = compiled.all.map((r) => {
    const base = { index: r.index, label: r.label, continue: r.continue };
    if (!r.enabled) return { ...base, status: 'disabled' };
    if (matchedSet.has(r)) return { ...base, status: 'matched' };
    if (last !== undefined && r.index > last.index && (!last.continue || last.actions.early)) {
      return { ...base, status: 'not-reached', reason: `${last.label} matched${last.actions.early ? ' and answers the request' : ''}` };
    }
    return { ...base, status: 'no-match', reason: r.cond ? whyNot(r.cond, f) : 'matched nothing' };
  });

  // The outcome: the real actions on a context made from the description, with a copy of its headers.
  const ctx = newContext({ method, scheme: t.scheme, httpVersion: '1.1', clientIp: ip, host: t.host, path: t.path, query: t.query, headers: { ...headers } });
  let error: string | undefined;
  let early;
  try {
    if (m !== undefined) early = applyMatched(m, ctx, facts(), opts.pools ? new Set(opts.pools) : undefined);
  } catch (err) {
    error = toOutpostError(err).message;
  }
  const reqSet: Record<string, string> = {};
  const reqRemoved: string[] = [];
  for (const k of new Set([...Object.keys(headers), ...Object.keys(ctx.headers)])) {
    const before = headerValue(headers[k]);
    const after = headerValue(ctx.headers[k]);
    if (after === undefined && before !== undefined) reqRemoved.push(k);
    else if (after !== undefined && after !== before) reqSet[k] = after;
  }
  const head: ResponseHead = { status: 200, headers: {} };
  const responseRemoved = new Set<string>();
  const sentinel = '\u0000present';
  for (const r of matched) {
    // Removal shows only on a header that exists: give every header a rule removes a placeholder.
    for (const h of r.actions.removeResponse ?? []) head.headers[h] ??= sentinel;
    applyResponse(r.actions, head, f);
    for (const h of r.actions.removeResponse ?? []) if (head.headers[h] === undefined) responseRemoved.add(h);
  }
  const responseSet: Record<string, string> = {};
  for (const [k, v] of Object.entries(head.headers)) {
    if (v !== sentinel) {
      responseSet[k] = headerValue(v)!;
      responseRemoved.delete(k);
    }
  }
  const ab: Record<string, string> = {};
  for (const [k, v] of ctx.vars) if (k.startsWith('ab.')) ab[k.slice(3)] = String(v);

  return {
    request: { method, scheme: t.scheme, host: t.host, path: t.path, query: t.query, ip, country: country ?? null },
    matched: matched.map((r) => ({ index: r.index, label: r.label, then: r.source.then })),
    rules,
    outcome: {
      ...(early ? { answer: { status: early.status, headers: { ...(early.headers ?? {}) }, ...(early.body !== undefined ? { body: String(early.body) } : {}) } } : {}),
      path: ctx.path,
      query: ctx.query,
      pool: ctx.pool,
      requestHeaders: { set: reqSet, removed: reqRemoved },
      responseHeaders: { set: responseSet, removed: [...responseRemoved] },
      ...(ctx.cacheOverride ? { cache: { ...ctx.cacheOverride } } : {}),
      ...(ctx.cacheKeyExtra ? { cacheKeyExtra: ctx.cacheKeyExtra } : {}),
      ...(ctx.compress !== undefined ? { compress: ctx.compress } : {}),
      ...(ctx.wholeBody !== undefined ? { wholeBody: ctx.wholeBody } : {}),
      ...(Object.keys(ab).length ? { ab } : {}),
    },
    ...(error !== undefined ? { error } : {}),
  };
}
