// The WAF as an access-phase hook set: each inspected request value is normalised once
// (normalize.ts) and the rules aimed at it run against the views they name (rules.ts). In block
// mode the first match answers 403 with the rule id in x-outpost-waf; in detect mode every match
// is logged and the request goes on. Rules can be added and removed at run time, in code or as the
// stored `waf-rules` document (stored.ts) every worker follows; the per-target plan is rebuilt
// then, never per request. Request bodies reach inspectBody through the driver (docs/waf.md).
import type { Logger } from 'pino';
import type { StoredDoc } from '../../compute/store/store.ts';
import { parseSize } from '../../config/units.ts';
import type { DocBoard } from '../../control/doc-board.ts';
import type { EarlyResponse, EdgeHooks, HookResult, RequestContext } from '../../edge/phases.ts';
import { OutpostError } from '../../errors.ts';
import { flagNames, NormalizedInput } from './normalize.ts';
import { BUILTIN_RULES, checkTarget, compileRule, ruleInfo, type Category, type Rule, type RuleInfo, type RuleSpec, type Target } from './rules.ts';
import { compileStoredRules, WAF_RULES_DOC } from './stored.ts';

export type WafMode = 'block' | 'detect';

/** Switches rules off for some requests: the tool for false positives (see docs/waf.md). */
export interface WafExclusion {
  /** Rule ids, or '*' for all. */
  readonly rules: readonly string[];
  /** Only for this host (lower-case, as in ctx.host). */
  readonly host?: string;
  /** Only for paths starting with this. */
  readonly pathPrefix?: string;
  /** Only for these targets ('headers' covers every header); all targets when absent. */
  readonly targets?: readonly Target[];
}

export interface WafOptions {
  readonly mode: WafMode;
  /** Request headers every 'headers' rule inspects. Default: user-agent, referer, cookie, x-forwarded-for. */
  readonly headers?: readonly string[];
  /** Request-body inspection: the first maxBytes (a number or a size such as '64k'; default 64 KiB) of textual bodies. */
  readonly body?: { readonly enabled: boolean; readonly maxBytes?: number | string };
  readonly log: Logger;
  /** Called for every match, in both modes (metrics, alerting). Must not throw. */
  readonly onMatch?: (info: WafMatch) => void;
  /** Rules added after the built-in ones. */
  readonly rules?: readonly RuleSpec[];
  /** Built-in rule ids left out. */
  readonly disable?: readonly string[];
  readonly exclusions?: readonly WafExclusion[];
  /** Hook-set name (default "waf"). */
  readonly name?: string;
  /** Where the rules saved at run time (the `waf-rules` document) come from; absent: none. */
  readonly board?: DocBoard;
}

/** One rule matching one request value. */
export interface WafMatch {
  readonly rule: string;
  readonly category: Category;
  /** path, query, body or header:<name>. */
  readonly where: string;
  /** The normalised text around the match, at most 100 characters. */
  readonly sample: string;
  /** Evasion the decoder undid (nul, overlong-utf8, multi-encoded, …). */
  readonly flags: readonly string[];
  readonly mode: WafMode;
  readonly blocked: boolean;
  readonly ip: string;
  readonly method: string;
  readonly host: string;
  readonly path: string;
}

export const DEFAULT_HEADERS: readonly string[] = ['user-agent', 'referer', 'cookie', 'x-forwarded-for'];
export const DEFAULT_BODY_BYTES = 64 * 1024;

/** ctx.vars key under which the request's matches are left for later phases (log hooks). */
export const WAF_VAR = 'outpost.waf';

/** Headers whose values are URLs with query strings, where '+' means a space. */
const URL_HEADERS = new Set(['referer', 'origin']);
const INSPECTED_TYPES = /^(?:application\/(?:x-www-form-urlencoded|(?:[\w.+-]*\+)?json|(?:[\w.+-]*\+)?xml|graphql|javascript)|text\/)/i;
const SAMPLE_MAX = 100;

/**
 * Values no rule of the plan matched, remembered so that the same User-Agent, Referer or path seen
 * again skips normalising and scanning: on a cache HIT those scans were most of the WAF's cost.
 * Only values with no match at all are kept, so exclusions and detect mode stay exact; the set
 * belongs to one plan and goes with it when the rules change. Bounded: long values are not kept,
 * and a full set is cleared (a flood of unique values only brings back the scan it would pay anyway).
 */
class CleanValues {
  static readonly MAX_ENTRIES = 2048;
  static readonly MAX_LENGTH = 1024;
  readonly #seen = new Set<string>();

  has(value: string): boolean {
    return this.#seen.has(value);
  }

  add(value: string): void {
    if (value.length > CleanValues.MAX_LENGTH) return;
    if (this.#seen.size >= CleanValues.MAX_ENTRIES) this.#seen.clear();
    this.#seen.add(value);
  }
}

interface HeaderPlan {
  readonly name: string;
  readonly where: string;
  readonly plusAsSpace: boolean;
  readonly rules: readonly Rule[];
  readonly clean: CleanValues;
}

interface Plan {
  readonly path: readonly Rule[];
  readonly query: readonly Rule[];
  readonly body: readonly Rule[];
  readonly headers: readonly HeaderPlan[];
  readonly cleanPath: CleanValues;
  readonly cleanQuery: CleanValues;
}

interface Exclusion {
  readonly all: boolean;
  readonly rules: ReadonlySet<string>;
  readonly host?: string;
  readonly pathPrefix?: string;
  readonly targets?: ReadonlySet<string>;
}

interface Hit {
  readonly rule: Rule;
  readonly where: string;
  readonly sample: string;
  readonly flags: number;
}

const HEADER_NAME_RE = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;

function describe(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'string' ? JSON.stringify(v) : typeof v;
}

function bad(setting: string, expected: string, got: unknown): OutpostError {
  return new OutpostError('CONFIG_INVALID', `waf.${setting}: expected ${expected}, got ${describe(got)}`);
}

function sampleOf(text: string, at: number): string {
  const start = Math.max(0, at - 20);
  return text.slice(start, start + SAMPLE_MAX).replace(/[\x00-\x1f\x7f]/g, ' ');
}

function compileExclusion(e: WafExclusion, i: number): Exclusion {
  const where = `exclusions[${i}]`;
  if (typeof e !== 'object' || e === null) throw bad(where, 'an object', e);
  if (!Array.isArray(e.rules) || e.rules.length === 0 || !e.rules.every((r) => typeof r === 'string')) throw bad(`${where}.rules`, "a non-empty array of rule ids or '*'", e.rules);
  if (e.host !== undefined && typeof e.host !== 'string') throw bad(`${where}.host`, 'a string', e.host);
  if (e.pathPrefix !== undefined && (typeof e.pathPrefix !== 'string' || !e.pathPrefix.startsWith('/'))) throw bad(`${where}.pathPrefix`, "a string starting with '/'", e.pathPrefix);
  if (e.targets !== undefined && (!Array.isArray(e.targets) || !e.targets.every(checkTarget))) throw bad(`${where}.targets`, 'an array of path, query, body, headers or header:<name>', e.targets);
  return {
    all: e.rules.includes('*'),
    rules: new Set(e.rules),
    ...(e.host !== undefined ? { host: e.host.toLowerCase() } : {}),
    ...(e.pathPrefix !== undefined ? { pathPrefix: e.pathPrefix } : {}),
    ...(e.targets !== undefined ? { targets: new Set<string>(e.targets) } : {}),
  };
}

function isExcluded(active: readonly Exclusion[], rule: string, where: string): boolean {
  for (const e of active) {
    if (!e.all && !e.rules.has(rule)) continue;
    if (!e.targets || e.targets.has(where) || (where.startsWith('header:') && e.targets.has('headers'))) return true;
  }
  return false;
}

/**
 * The WAF hook set. Only `name` is an own property, which is all the driver's hook check sees:
 * state lives in private fields, hooks and management methods on the prototype.
 */
export class Waf implements EdgeHooks {
  readonly name: string;
  #mode: WafMode;
  readonly #log: Logger;
  readonly #onMatch: ((info: WafMatch) => void) | undefined;
  readonly #headers: readonly string[];
  readonly #body: { readonly enabled: boolean; readonly maxBytes: number };
  readonly #exclusions: readonly Exclusion[];
  /** Built-in, configured and addRule's rules. */
  #rules: readonly Rule[];
  /** The stored `waf-rules` set this process runs, after #rules. */
  #stored: readonly Rule[] = [];
  #storedVersion: number | undefined;
  #failedVersion: number | undefined;
  #plan: Plan;

  constructor(options: WafOptions) {
    const o = options as unknown as Record<string, unknown>;
    if (typeof o !== 'object' || o === null) throw bad('options', 'an object', o);
    if (o.mode !== 'block' && o.mode !== 'detect') throw bad('mode', "'block' or 'detect'", o.mode);
    const log = o.log as Logger | undefined;
    if (!log || typeof log.warn !== 'function') throw bad('log', 'a pino logger', o.log);
    if (o.onMatch !== undefined && typeof o.onMatch !== 'function') throw bad('onMatch', 'a function', o.onMatch);
    const headers = o.headers ?? DEFAULT_HEADERS;
    if (!Array.isArray(headers) || !headers.every((h) => typeof h === 'string' && HEADER_NAME_RE.test(h.toLowerCase()))) throw bad('headers', 'an array of header names', o.headers);
    const body = (o.body ?? { enabled: false }) as { enabled: unknown; maxBytes: unknown };
    if (typeof body !== 'object' || body === null || typeof body.enabled !== 'boolean') throw bad('body.enabled', 'a boolean', body?.enabled);
    const maxBytes = body.maxBytes === undefined ? DEFAULT_BODY_BYTES : parseSize(body.maxBytes);
    if (body.enabled && (maxBytes === undefined || maxBytes < 1)) throw bad('body.maxBytes', "a positive number of bytes or a size such as '64k'", body.maxBytes);
    const board = o.board as DocBoard | undefined;
    if (board !== undefined && (typeof board !== 'object' || board === null || typeof board.watch !== 'function')) throw bad('board', 'a DocBoard', board);
    const disable = o.disable ?? [];
    if (!Array.isArray(disable)) throw bad('disable', 'an array of built-in rule ids', disable);
    for (const id of disable) {
      if (!BUILTIN_RULES.some((r) => r.id === id)) throw bad('disable', `a built-in rule id (${BUILTIN_RULES.map((r) => r.id).join(', ')})`, id);
    }
    const extra = o.rules ?? [];
    if (!Array.isArray(extra)) throw bad('rules', 'an array of rules', extra);
    const exclusions = o.exclusions ?? [];
    if (!Array.isArray(exclusions)) throw bad('exclusions', 'an array', exclusions);

    this.name = typeof o.name === 'string' ? o.name : 'waf';
    this.#mode = o.mode;
    this.#log = log;
    this.#onMatch = o.onMatch as ((info: WafMatch) => void) | undefined;
    this.#headers = headers.map((h: string) => h.toLowerCase());
    this.#body = { enabled: body.enabled, maxBytes: body.enabled ? maxBytes! : 0 };
    this.#exclusions = (exclusions as WafExclusion[]).map(compileExclusion);
    const rules = BUILTIN_RULES.filter((r) => !disable.includes(r.id));
    for (const spec of extra as RuleSpec[]) {
      const r = compileRule(spec);
      if (rules.some((x) => x.id === r.id)) throw new OutpostError('CONFIG_INVALID', `waf rule ${JSON.stringify(r.id)}: a rule with this id already exists`);
      rules.push(r);
    }
    this.#rules = rules;
    this.#plan = this.#buildPlan(rules);
    if (board) {
      this.#applyStored(board.get(WAF_RULES_DOC));
      board.watch((changed) => {
        if (changed.includes(WAF_RULES_DOC)) this.#applyStored(board.get(WAF_RULES_DOC));
      });
    }
  }

  get mode(): WafMode {
    return this.#mode;
  }

  /** Switches between block and detect at run time. */
  setMode(mode: WafMode): void {
    if (mode !== 'block' && mode !== 'detect') throw bad('mode', "'block' or 'detect'", mode);
    this.#mode = mode;
  }

  /** Adds a rule; throws OutpostError CONFIG_INVALID naming the field for a bad rule or a taken id. */
  addRule(spec: RuleSpec): void {
    const r = compileRule(spec);
    if (this.#rules.some((x) => x.id === r.id) || this.#stored.some((x) => x.id === r.id)) {
      throw new OutpostError('CONFIG_INVALID', `waf rule ${JSON.stringify(r.id)}: a rule with this id already exists; remove it first`);
    }
    this.#swap([...this.#rules, r], this.#stored);
  }

  /** Removes a rule, built-in or added; throws OutpostError NOT_FOUND for an unknown id. */
  removeRule(id: string): void {
    if (!this.#rules.some((r) => r.id === id)) {
      const stored = this.#stored.some((r) => r.id === id);
      throw new OutpostError('NOT_FOUND', stored ? `waf rule ${JSON.stringify(id)} comes from the stored ${WAF_RULES_DOC} set: change that (PUT /waf/rules)` : `no waf rule ${JSON.stringify(id)}`);
    }
    this.#swap(
      this.#rules.filter((r) => r.id !== id),
      this.#stored,
    );
  }

  /** Every rule this WAF runs, in order; those of the stored set carry `stored: true`. */
  rules(): Array<RuleInfo & { stored?: true }> {
    return [...this.#rules.map(ruleInfo), ...this.#stored.map((r) => ({ ...ruleInfo(r), stored: true as const }))];
  }

  /** The version of the stored `waf-rules` set running here (undefined: none). */
  get storedVersion(): number | undefined {
    return this.#storedVersion;
  }

  #swap(rules: readonly Rule[], stored: readonly Rule[]): void {
    // Swapped as a whole: a request in flight keeps the plan it started with.
    this.#plan = this.#buildPlan(stored.length ? [...rules, ...stored] : rules);
    this.#rules = rules;
    this.#stored = stored;
  }

  /** Compiles a new version of the stored set; one that does not compile here is logged and the last good set kept. */
  #applyStored(doc: StoredDoc | undefined): void {
    if (!doc) {
      if (this.#storedVersion !== undefined) this.#log.info({ version: this.#storedVersion }, 'waf: the stored rule set was removed');
      this.#storedVersion = undefined;
      this.#failedVersion = undefined;
      if (this.#stored.length) this.#swap(this.#rules, []);
      return;
    }
    if (doc.version === this.#storedVersion || doc.version === this.#failedVersion) return;
    try {
      const stored = compileStoredRules(doc.value, new Set(this.#rules.map((r) => r.id)));
      this.#swap(this.#rules, stored);
      this.#storedVersion = doc.version;
      this.#failedVersion = undefined;
      this.#log.info({ version: doc.version, rules: stored.length }, 'waf: stored rule set applied');
    } catch (err) {
      this.#failedVersion = doc.version;
      this.#log.error({ version: doc.version, err: (err as Error).message }, `waf: stored rule set version ${doc.version} does not compile here; keeping the last good set`);
    }
  }

  access(ctx: RequestContext): HookResult {
    const plan = this.#plan;
    const active = this.#exclusions.length ? this.#activeExclusions(ctx) : undefined;
    // Detect mode collects every match; block mode stops at the first.
    const all: Hit[] | undefined = this.#mode === 'detect' ? [] : undefined;
    let hit: Hit | undefined;
    if (plan.path.length) hit = scanValue(ctx.path, false, plan.path, 'path', plan.cleanPath, active, all);
    if (!hit && ctx.query && plan.query.length) hit = scanValue(ctx.query, true, plan.query, 'query', plan.cleanQuery, active, all);
    for (let i = 0; !hit && i < plan.headers.length; i++) {
      const h = plan.headers[i]!;
      const v = ctx.headers[h.name];
      if (v === undefined || v.length === 0) continue;
      hit = scanValue(typeof v === 'string' ? v : v.join(', '), h.plusAsSpace, h.rules, h.where, h.clean, active, all);
    }
    return this.#answer(ctx, hit, all);
  }

  /**
   * How many bytes of this request's body inspectBody wants (0: none): body.maxBytes when body
   * inspection is on, the method carries a body and the type is textual (forms, JSON, XML, text).
   */
  wantsRequestBody(ctx: RequestContext): number {
    if (!this.#body.enabled || this.#plan.body.length === 0 || ctx.method === 'GET' || ctx.method === 'HEAD') return 0;
    const type = ctx.headers['content-type'];
    return type === undefined || INSPECTED_TYPES.test(type) ? this.#body.maxBytes : 0;
  }

  /** Inspects (the first body.maxBytes of) a request body; answers like access. */
  inspectBody(ctx: RequestContext, body: Buffer): HookResult {
    if (this.wantsRequestBody(ctx) === 0 || body.length === 0) return undefined;
    const type = (ctx.headers['content-type'] ?? '').toLowerCase();
    let text = body.subarray(0, this.#body.maxBytes).toString('utf8');
    // A JSON parser turns \u0027 into a quote before the application sees it.
    if (type.includes('json') && text.includes('\\u')) text = text.replace(/\\u([0-9a-fA-F]{4})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
    const plus = type === '' || type.startsWith('application/x-www-form-urlencoded');
    const active = this.#exclusions.length ? this.#activeExclusions(ctx) : undefined;
    const all: Hit[] | undefined = this.#mode === 'detect' ? [] : undefined;
    const hit = scan(new NormalizedInput(text, plus), this.#plan.body, 'body', active, all);
    return this.#answer(ctx, hit, all);
  }

  #activeExclusions(ctx: RequestContext): readonly Exclusion[] | undefined {
    const active = this.#exclusions.filter((e) => (e.host === undefined || e.host === ctx.host) && (e.pathPrefix === undefined || ctx.path.startsWith(e.pathPrefix)));
    return active.length ? active : undefined;
  }

  #answer(ctx: RequestContext, hit: Hit | undefined, all: Hit[] | undefined): HookResult {
    const hits = all ?? (hit ? [hit] : undefined);
    if (!hits || hits.length === 0) return undefined;
    const blocked = this.#mode === 'block';
    const prior = ctx.vars.get(WAF_VAR) as WafMatch[] | undefined;
    const matches: WafMatch[] = prior ?? [];
    for (const h of hits) {
      const m: WafMatch = {
        rule: h.rule.id,
        category: h.rule.category,
        where: h.where,
        sample: h.sample,
        flags: flagNames(h.flags),
        mode: this.#mode,
        blocked,
        ip: ctx.clientIp,
        method: ctx.method,
        host: ctx.host,
        path: ctx.path.length > 200 ? ctx.path.slice(0, 200) : ctx.path,
      };
      matches.push(m);
      this.#log.warn(m, blocked ? 'waf blocked request' : 'waf match (detect mode)');
      if (this.#onMatch) {
        try {
          this.#onMatch(m);
        } catch (err) {
          this.#log.warn({ err: (err as Error).message }, 'waf onMatch failed');
        }
      }
    }
    if (!prior) ctx.vars.set(WAF_VAR, matches);
    if (!blocked) return undefined;
    return blockedResponse(hits[0]!.rule.id);
  }

  #buildPlan(rules: readonly Rule[]): Plan {
    const on = (t: Target): Rule[] => rules.filter((r) => r.targets.includes(t));
    const names = new Set(this.#headers);
    for (const r of rules) for (const t of r.targets) if (t.startsWith('header:')) names.add(t.slice(7));
    const headers: HeaderPlan[] = [];
    for (const name of names) {
      const listed = this.#headers.includes(name);
      const hr = rules.filter((r) => r.targets.includes(`header:${name}`) || (listed && r.targets.includes('headers')));
      if (hr.length) headers.push({ name, where: `header:${name}`, plusAsSpace: URL_HEADERS.has(name), rules: hr, clean: new CleanValues() });
    }
    return { path: on('path'), query: on('query'), body: on('body'), headers, cleanPath: new CleanValues(), cleanQuery: new CleanValues() };
  }
}

/** scan() for one request value, skipped for a value the plan already found clean. */
function scanValue(value: string, plusAsSpace: boolean, rules: readonly Rule[], where: string, clean: CleanValues, active: readonly Exclusion[] | undefined, all: Hit[] | undefined): Hit | undefined {
  if (clean.has(value)) return undefined;
  const before = all?.length ?? 0;
  const hit = scan(new NormalizedInput(value, plusAsSpace), rules, where, active, all);
  // With exclusions active a match may have been excused; such a value is not clean for everyone.
  if (!hit && !active && (all?.length ?? 0) === before) clean.add(value);
  return hit;
}

function scan(input: NormalizedInput, rules: readonly Rule[], where: string, active: readonly Exclusion[] | undefined, all: Hit[] | undefined): Hit | undefined {
  for (const rule of rules) {
    const at = rule.match(input);
    if (at < 0) continue;
    if (active && isExcluded(active, rule.id, where)) continue;
    const hit: Hit = { rule, where, sample: sampleOf(input.view(rule.view), at), flags: input.flags };
    if (!all) return hit;
    all.push(hit);
  }
  return undefined;
}

function blockedResponse(id: string): EarlyResponse {
  return {
    status: 403,
    headers: { 'x-outpost-waf': id, 'x-outpost-error': 'FORBIDDEN', 'cache-control': 'no-store', 'content-type': 'text/plain; charset=utf-8' },
    body: `403 FORBIDDEN: request blocked by the WAF (rule ${id})\n`,
  };
}

/** The WAF as an access-phase hook set, with run-time rule management. */
export function waf(options: WafOptions): Waf {
  return new Waf(options);
}
