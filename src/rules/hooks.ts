// The rules engine at the edge: one EdgeHooks set that evaluates the current compiled rule set in
// rewrite (before the security cascade, the cache and the CUs) and applies response header edits
// in header_filter. The rule set is read through `source.current()` on every request, so a new
// version takes effect for the next request without a restart.
import type { BlockList } from 'node:net';
import type { Logger } from 'pino';
import type { OutpostConfig } from '../config/load.ts';
import { isAllowed, parseCidrList } from '../edge/cidr.ts';
import type { EdgeHooks, RequestContext } from '../edge/phases.ts';
import { applyRequest, applyResponse, type CompiledActions } from './actions.ts';
import { matchRules, type CompiledRule, type CompiledRules } from './compile.ts';
import { Facts } from './conditions.ts';

/** ctx.vars key holding the label of the matched rule (a string) or labels (an array). */
export const RULES_MATCHED_VAR = 'rules.matched';
const RESPONSE_VAR = 'rules.response';

/** The header the geo gate reads by default (src/security/gates/geo.ts). */
export const DEFAULT_COUNTRY_HEADER = 'x-geoip-country-code';

export interface RulesHookOptions {
  readonly log: Logger;
  /** Request header carrying the client's country code; default x-geoip-country-code, as the geo gate. */
  readonly countryHeader?: string | undefined;
  /** When set, the country header is believed only from these addresses/CIDRs (as the geo gate's trustFrom). */
  readonly trustCountryFrom?: readonly string[] | undefined;
  /** Configured pools: a rule routing elsewhere fails the request with 502 NO_UPSTREAM, naming the rule. */
  readonly pools?: readonly string[] | undefined;
  readonly name?: string | undefined;
}

/** The hook options a node's configuration implies: the geo gate's header and trust list, the pools. */
export function rulesHookOptions(config: Pick<OutpostConfig, 'security' | 'upstream'>, log: Logger): RulesHookOptions {
  const geo = config.security.geo ?? {};
  const header = typeof geo.header === 'string' ? geo.header.toLowerCase() : undefined;
  const trust = Array.isArray(geo.trustFrom) ? geo.trustFrom.filter((x): x is string => typeof x === 'string') : undefined;
  return { log, countryHeader: header, trustCountryFrom: trust, pools: Object.keys(config.upstream.pools) };
}

interface ResponseState {
  readonly facts: Facts;
  readonly actions: CompiledActions[];
}

export interface CountryReader {
  (headers: RequestContext['headers'], ip: string): string | undefined;
}

/** Reads the country code from the configured header: upper-case alpha-2, undefined when unknown or untrusted. */
export function countryReader(header = DEFAULT_COUNTRY_HEADER, trustFrom?: readonly string[]): CountryReader {
  const name = header.toLowerCase();
  const trusted: BlockList | undefined = trustFrom && trustFrom.length ? parseCidrList(trustFrom) : undefined;
  return (headers, ip) => {
    const raw = headers[name];
    if (typeof raw !== 'string') return undefined;
    if (trusted && !isAllowed(trusted, ip)) return undefined;
    const code = raw.trim().toUpperCase();
    return code.length === 2 && code !== 'XX' && /^[A-Z]{2}$/.test(code) ? code : undefined;
  };
}

export function factsOf(ctx: RequestContext, country: string | undefined): Facts {
  return new Facts({ method: ctx.method, scheme: ctx.scheme, host: ctx.host, path: ctx.path, query: ctx.query, headers: ctx.headers, ip: ctx.clientIp, country });
}

/**
 * Applies matched rules in order. Returns the early answer of a deny or redirect (the rules before
 * it have applied; response header edits of every matched rule still apply in header_filter).
 */
export function applyMatched(m: CompiledRule | CompiledRule[], ctx: RequestContext, f: Facts, known: ReadonlySet<string> | undefined) {
  const list = Array.isArray(m) ? m : [m];
  let response: CompiledActions[] | undefined;
  ctx.vars.set(RULES_MATCHED_VAR, Array.isArray(m) ? m.map((r) => r.label) : m.label);
  for (const r of list) {
    if (r.actions.response) (response ??= []).push(r.actions);
    const early = applyRequest(r.actions, r.label, ctx, f, known);
    if (early) {
      if (response) ctx.vars.set(RESPONSE_VAR, { facts: f, actions: response } satisfies ResponseState);
      return early;
    }
  }
  if (response) ctx.vars.set(RESPONSE_VAR, { facts: f, actions: response } satisfies ResponseState);
  return undefined;
}

export function rulesHooks(source: { current(): CompiledRules | undefined }, opts: RulesHookOptions): EdgeHooks {
  const country = countryReader(opts.countryHeader, opts.trustCountryFrom);
  const known = opts.pools ? new Set(opts.pools) : undefined;
  return {
    name: opts.name ?? 'rules',
    rewrite(ctx) {
      const c = source.current();
      if (c === undefined || c.rules.length === 0) return;
      const f = factsOf(ctx, country(ctx.headers, ctx.clientIp));
      const m = matchRules(c, f);
      if (m === undefined) return;
      return applyMatched(m, ctx, f, known);
    },
    header_filter(ctx, head) {
      const st = ctx.vars.get(RESPONSE_VAR) as ResponseState | undefined;
      if (st === undefined) return;
      for (const a of st.actions) applyResponse(a, head, st.facts);
    },
  };
}
