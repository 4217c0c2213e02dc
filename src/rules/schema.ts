// The shape of a rule set, validated when it is saved and again when a node loads it. Every
// mistake becomes one RULES_INVALID error whose lines name the exact place
// ("rules[3].when.header.name: expected an HTTP header name …"), so a bad set never reaches a node.
import { isIP } from 'node:net';
import { z } from 'zod';
import { parseDuration } from '../config/units.ts';
import { OutpostError } from '../errors.ts';
import { describe as describeValue } from '../security/gates/options.ts';

// ---------------------------------------------------------------------------------------------
// Output types (what compile.ts sees).

export interface ValueMatch {
  /** Lower-case for headers; as written for cookies and query parameters. */
  readonly name: string;
  /** true: must be there; false: must not be. Default true when nothing else is given. */
  readonly present?: boolean | undefined;
  /** Any of these values, exactly. */
  readonly equals?: readonly string[] | undefined;
  /** A regular expression (JavaScript syntax; `(?i:…)` for case-insensitive parts). */
  readonly matches?: string | undefined;
}

export interface Condition {
  readonly host?: readonly string[] | undefined;
  readonly path?: readonly string[] | undefined;
  /** Lower-case, without the dot. */
  readonly extension?: readonly string[] | undefined;
  /** Upper-case. */
  readonly method?: readonly string[] | undefined;
  readonly header?: ValueMatch | undefined;
  readonly cookie?: ValueMatch | undefined;
  readonly query?: ValueMatch | undefined;
  /** Upper-case ISO 3166-1 alpha-2. */
  readonly country?: readonly string[] | undefined;
  readonly ip?: readonly string[] | undefined;
  readonly all?: readonly Condition[] | undefined;
  readonly any?: readonly Condition[] | undefined;
  readonly not?: Condition | undefined;
}

export interface HeaderEdits {
  /** Lower-case name → value template. */
  readonly set?: Readonly<Record<string, string>> | undefined;
  readonly remove?: readonly string[] | undefined;
}

export interface AbBucket {
  readonly name: string;
  readonly percent: number;
  readonly pool?: string | undefined;
}

export interface AbSplit {
  readonly name: string;
  /** 'ip', 'cookie:NAME' or 'header:name'. */
  readonly key: string;
  readonly buckets: readonly AbBucket[];
  /** Lower-case; the origin receives the bucket name in it. */
  readonly header: string;
  /** Whether the bucket is part of the cache key (default true). */
  readonly cacheKey: boolean;
}

export interface Actions {
  readonly cacheTtl?: number | undefined;
  readonly cacheBypass?: boolean | undefined;
  readonly noStore?: boolean | undefined;
  readonly requestHeaders?: HeaderEdits | undefined;
  readonly responseHeaders?: HeaderEdits | undefined;
  readonly redirect?: { readonly location: string; readonly status: 301 | 302 | 303 | 307 | 308 } | undefined;
  readonly deny?: { readonly status: number; readonly message?: string | undefined } | undefined;
  readonly pool?: string | undefined;
  /** Country code (upper-case) or 'default' → pool name. */
  readonly routeByCountry?: Readonly<Record<string, string>> | undefined;
  readonly rewritePath?: { readonly match?: string | undefined; readonly to: string } | undefined;
  readonly ab?: AbSplit | undefined;
  readonly compress?: boolean | undefined;
  readonly wholeBody?: boolean | undefined;
}

export interface Rule {
  readonly name?: string | undefined;
  readonly when?: Condition | undefined;
  readonly then: Actions;
  readonly continue: boolean;
  readonly enabled: boolean;
}

export interface RuleSet {
  readonly rules: readonly Rule[];
}

/** JSON as stored and as sent to the admin API. */
export type RuleSetInput = unknown;

// ---------------------------------------------------------------------------------------------
// Field schemas.

/** A short description of a value for messages ("an object", "an array of 3", "\"abc\""). */
function describe(v: unknown): string {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? 'an object' : describeValue(v);
}

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const PARAM_NAME = /^[A-Za-z0-9_\-.~!$'()*+,;:@[\]]+$/;
const NAME = /^[A-Za-z0-9_.-]{1,100}$/;
const POOL_NAME = /^[A-Za-z0-9_-]+$/;
/** What a header value may hold: no CR, LF or other control characters but tab. */
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\uffff]*$/;
/** A path as the edge accepts it (src/edge/request.ts), plus '$' captures. */
const PATH_TARGET = /^\/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*(\?[A-Za-z0-9\-._~!$&'()*+,;=:@/%?]*)?$/;

/** Request headers the edge owns: setting them from a rule would break framing or routing. */
const FIXED_REQUEST_HEADERS = new Set(['host', 'connection', 'content-length', 'transfer-encoding', 'keep-alive', 'upgrade', 'te', 'trailer', 'expect']);
const FIXED_RESPONSE_HEADERS = new Set(['connection', 'content-length', 'transfer-encoding', 'keep-alive', 'upgrade', 'trailer']);

/** A string, or a list of them ("GET" and ["GET", "HEAD"] both work). */
function list<T extends z.ZodType>(item: T) {
  return z.preprocess((v) => (typeof v === 'string' ? [v] : v), z.array(item).min(1));
}

const headerName = z
  .string()
  .refine((v) => HEADER_NAME.test(v), { error: (iss) => `expected an HTTP header name such as "x-device", got ${describe(iss.input)}` })
  .transform((v) => v.toLowerCase());

const paramName = z
  .string()
  .refine((v) => v.length > 0 && PARAM_NAME.test(v), { error: (iss) => `expected a cookie or query parameter name, got ${describe(iss.input)}` });

const regex = z.string().superRefine((v, ctx) => {
  try {
    new RegExp(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `not a valid regular expression: ${(err as Error).message.replace(/^Invalid regular expression: /, '')}` });
  }
});

const headerValue = z.string().refine((v) => HEADER_VALUE.test(v), { error: 'expected a header value without control characters (CR, LF, NUL…)' });

const hostPattern = z.string().superRefine((v, ctx) => {
  if (v.startsWith('/')) {
    const m = /^\/(.+)\/([a-z]*)$/.exec(v);
    if (!m) return void ctx.addIssue({ code: 'custom', message: `expected a regular expression written as "/…/flags", got ${describe(v)}` });
    try {
      new RegExp(m[1]!, m[2]);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `not a valid regular expression: ${(err as Error).message.replace(/^Invalid regular expression: /, '')}` });
    }
    return;
  }
  if (!/^(?:\*\.)?[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::\d{1,5})?$/.test(v)) {
    ctx.addIssue({ code: 'custom', message: `expected a host name, "*.example.com" or "/regex/", got ${describe(v)}` });
  }
});

const pathPattern = z.string().refine((v) => /^\/[^\s?#]*$/.test(v), {
  error: (iss) => `expected a path prefix or glob starting with "/" (like "/assets/" or "/v/*/hd/**"), got ${describe(iss.input)}`,
});

const extension = z
  .string()
  .refine((v) => /^\.?[A-Za-z0-9_-]{1,20}$/.test(v), { error: (iss) => `expected a file extension such as "mp4" or ".m3u8", got ${describe(iss.input)}` })
  .transform((v) => (v.startsWith('.') ? v.slice(1) : v).toLowerCase());

const method = z
  .string()
  .refine((v) => /^[A-Za-z]{1,20}$/.test(v), { error: (iss) => `expected an HTTP method such as "GET", got ${describe(iss.input)}` })
  .transform((v) => v.toUpperCase());

const country = z
  .string()
  .refine((v) => /^[A-Za-z]{2}$/.test(v), { error: (iss) => `expected an ISO 3166-1 alpha-2 country code such as "DE", got ${describe(iss.input)}` })
  .transform((v) => v.toUpperCase());

const cidr = z.string().refine(
  (v) => {
    const [addr, bits, extra] = v.split('/');
    if (extra !== undefined || addr === undefined) return false;
    const family = isIP(addr);
    if (family === 0) return false;
    return bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 6 ? 128 : 32));
  },
  { error: (iss) => `expected an address or CIDR such as "10.0.0.0/8" or "2001:db8::/32", got ${describe(iss.input)}` },
);

const poolName = z.string().refine((v) => POOL_NAME.test(v), { error: (iss) => `expected a pool name of letters, digits, _ or -, got ${describe(iss.input)}` });

const duration = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const ms = parseDuration(v);
  if (ms === undefined || ms < 0) {
    ctx.addIssue({ code: 'custom', message: `expected a duration such as "30s", "10m", "1d" or a number of seconds, got ${describe(v)}` });
    return z.NEVER;
  }
  return ms;
});

function valueMatch<T extends z.ZodType<string>>(name: T) {
  return z
    .strictObject({
      name,
      present: z.boolean().optional(),
      equals: list(z.string()).optional(),
      matches: regex.optional(),
    })
    .superRefine((m, ctx) => {
      const given = [m.present !== undefined, m.equals !== undefined, m.matches !== undefined].filter(Boolean).length;
      if (given > 1) ctx.addIssue({ code: 'custom', path: [], message: 'expected one of present, equals or matches, not several' });
    });
}

const ConditionSchema: z.ZodType<Condition> = z.lazy(() =>
  z.strictObject({
    host: list(hostPattern).optional(),
    path: list(pathPattern).optional(),
    extension: list(extension).optional(),
    method: list(method).optional(),
    header: valueMatch(headerName).optional(),
    cookie: valueMatch(paramName).optional(),
    query: valueMatch(paramName).optional(),
    country: list(country).optional(),
    ip: list(cidr).optional(),
    all: z.array(ConditionSchema).min(1).optional(),
    any: z.array(ConditionSchema).min(1).optional(),
    not: ConditionSchema.optional(),
  }),
);

function headerEdits(fixed: ReadonlySet<string>, side: string) {
  const name = headerName.refine((v) => !fixed.has(v), { error: (iss) => `${describe(iss.input)} is managed by the edge and cannot be changed by a ${side} rule` });
  return z
    .strictObject({
      set: z.record(z.string(), headerValue).optional(),
      remove: z.array(name).min(1).optional(),
    })
    .superRefine((e, ctx) => {
      if (e.set === undefined && e.remove === undefined) ctx.addIssue({ code: 'custom', message: 'expected set or remove' });
      for (const k of Object.keys(e.set ?? {})) {
        const r = name.safeParse(k);
        if (!r.success) ctx.addIssue({ code: 'custom', path: ['set', k], message: r.error.issues[0]!.message });
      }
    })
    .transform((e) => {
      const set: Record<string, string> | undefined = e.set ? {} : undefined;
      for (const [k, v] of Object.entries(e.set ?? {})) set![k.toLowerCase()] = v;
      return { set, remove: e.remove };
    });
}

const status = (allowed: string, ok: (n: number) => boolean) =>
  z.number().refine((n) => Number.isInteger(n) && ok(n), { error: (iss) => `expected ${allowed}, got ${describe(iss.input)}` });

const AbSchema = z
  .strictObject({
    name: z.string().refine((v) => NAME.test(v), { error: (iss) => `expected a name of letters, digits, "_", "." or "-", got ${describe(iss.input)}` }),
    key: z.string().superRefine((v, ctx) => {
      if (v === 'ip') return;
      const m = /^(cookie|header):(.+)$/.exec(v);
      const ok = m && (m[1] === 'cookie' ? PARAM_NAME.test(m[2]!) : HEADER_NAME.test(m[2]!));
      if (!ok) ctx.addIssue({ code: 'custom', message: `expected "ip", "cookie:NAME" or "header:NAME", got ${describe(v)}` });
    }),
    buckets: z
      .array(
        z.strictObject({
          name: z.string().refine((v) => v.length > 0 && HEADER_VALUE.test(v) && v.length <= 100, { error: (iss) => `expected a bucket name (1 to 100 printable characters), got ${describe(iss.input)}` }),
          percent: z.number().refine((n) => n >= 0 && n <= 100 && Math.abs(Math.round(n * 100) - n * 100) < 1e-6, { error: (iss) => `expected a percentage from 0 to 100 with at most 2 decimals, got ${describe(iss.input)}` }),
          pool: poolName.optional(),
        }),
      )
      .min(2),
    header: headerName.refine((v) => !FIXED_REQUEST_HEADERS.has(v), { error: (iss) => `${describe(iss.input)} is managed by the edge` }).default('x-ab-bucket'),
    cacheKey: z.boolean().default(true),
  })
  .superRefine((ab, ctx) => {
    const sum = ab.buckets.reduce((a, b) => a + Math.round(b.percent * 100), 0);
    if (sum !== 10_000) ctx.addIssue({ code: 'custom', path: ['buckets'], message: `expected percentages adding up to 100, got ${sum / 100}` });
    const seen = new Set<string>();
    ab.buckets.forEach((b, i) => {
      if (seen.has(b.name)) ctx.addIssue({ code: 'custom', path: ['buckets', i, 'name'], message: `bucket ${JSON.stringify(b.name)} is named twice` });
      seen.add(b.name);
    });
  });

const ActionsSchema = z.preprocess(
  (v, ctx) => {
    // Checked here, on the input: an object holding only unknown keys is reported for those alone.
    if (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0) {
      ctx.addIssue({ code: 'custom', message: `expected at least one action (${ACTION_KEYS.join(', ')})`, input: v });
    }
    return v;
  },
  z
  .strictObject({
    cacheTtl: duration.optional(),
    cacheBypass: z.boolean().optional(),
    noStore: z.boolean().optional(),
    requestHeaders: headerEdits(FIXED_REQUEST_HEADERS, 'request').optional(),
    responseHeaders: headerEdits(FIXED_RESPONSE_HEADERS, 'response').optional(),
    redirect: z
      .strictObject({
        location: z.string().min(1).pipe(headerValue),
        status: z
          .number()
          .refine((n) => [301, 302, 303, 307, 308].includes(n), { error: (iss) => `expected 301, 302, 303, 307 or 308, got ${describe(iss.input)}` })
          .default(302),
      })
      .optional(),
    deny: z
      .preprocess(
        (v) => (typeof v === 'number' ? { status: v } : v),
        z.strictObject({ status: status('a status from 400 to 599', (n) => n >= 400 && n <= 599).default(403), message: z.string().max(1000).pipe(headerValue).optional() }),
      )
      .optional(),
    pool: poolName.optional(),
    routeByCountry: z
      .record(z.string(), poolName)
      .superRefine((m, ctx) => {
        if (Object.keys(m).length === 0) ctx.addIssue({ code: 'custom', message: 'expected at least one country' });
        for (const k of Object.keys(m)) {
          if (k !== 'default' && !/^[A-Za-z]{2}$/.test(k)) ctx.addIssue({ code: 'custom', path: [k], message: `expected a country code such as "DE" or "default", got ${describe(k)}` });
        }
      })
      .transform((m) => {
        const out: Record<string, string> = {};
        for (const [k, v] of Object.entries(m)) out[k === 'default' ? k : k.toUpperCase()] = v;
        return out;
      })
      .optional(),
    rewritePath: z
      .strictObject({
        match: regex.optional(),
        to: z.string().refine((v) => PATH_TARGET.test(v), { error: (iss) => `expected a path starting with "/" (with an optional ?query; $1… for captures), got ${describe(iss.input)}` }),
      })
      .optional(),
    ab: AbSchema.optional(),
    compress: z.boolean().optional(),
    wholeBody: z.boolean().optional(),
  })
  .superRefine((a, ctx) => {
    if (a.redirect && a.deny) ctx.addIssue({ code: 'custom', path: ['redirect'], message: 'expected redirect or deny, not both' });
    const routes = [a.pool !== undefined && 'pool', a.routeByCountry !== undefined && 'routeByCountry', a.ab?.buckets.some((b) => b.pool !== undefined) && 'ab bucket pools'].filter(Boolean);
    if (routes.length > 1) ctx.addIssue({ code: 'custom', path: [a.pool !== undefined ? 'pool' : 'routeByCountry'], message: `${routes.join(' and ')} all choose the pool: give one per rule` });
  }),
);

const RuleSchema = z.strictObject({
  name: z.string().refine((v) => NAME.test(v), { error: (iss) => `expected a name of letters, digits, "_", "." or "-" (up to 100), got ${describe(iss.input)}` }).optional(),
  when: ConditionSchema.optional(),
  then: ActionsSchema,
  continue: z.boolean().default(false),
  enabled: z.boolean().default(true),
});

const RuleSetSchema = z
  .strictObject({ rules: z.array(RuleSchema).max(10_000) })
  .superRefine((set, ctx) => {
    const names = new Map<string, number>();
    set.rules.forEach((r, i) => {
      if (r.name === undefined) return;
      const prev = names.get(r.name);
      if (prev !== undefined) ctx.addIssue({ code: 'custom', path: ['rules', i, 'name'], message: `${JSON.stringify(r.name)} is already the name of rules[${prev}]` });
      else names.set(r.name, i);
    });
  });

// ---------------------------------------------------------------------------------------------
// Messages.

export const CONDITION_KEYS = ['host', 'path', 'extension', 'method', 'header', 'cookie', 'query', 'country', 'ip', 'all', 'any', 'not'] as const;
export const ACTION_KEYS = [
  'cacheTtl', 'cacheBypass', 'noStore', 'requestHeaders', 'responseHeaders', 'redirect', 'deny', 'pool', 'routeByCountry', 'rewritePath', 'ab', 'compress', 'wholeBody',
] as const;
const RULE_KEYS = ['name', 'when', 'then', 'continue', 'enabled'];

/** rules[3].when.all[0].header.name */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out || '(rule set)';
}

/** Edits (insert, delete, change, swap two neighbours) from a to b, ignoring case. */
function editDistance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  const d: number[][] = Array.from({ length: x.length + 1 }, (_, i) => Array.from({ length: y.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= x.length; i++) {
    for (let j = 1; j <= y.length; j++) {
      const cost = x[i - 1] === y[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && x[i - 1] === y[j - 2] && x[i - 2] === y[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[x.length]![y.length]!;
}

/** "unknown action "redirct" (did you mean "redirect"?)": the known keys depend on where the object sits. */
function unknownKeys(path: readonly PropertyKey[], keys: readonly string[]): string {
  const last = path.at(-1);
  const where = path.length === 0 ? { what: 'field', known: ['rules'] } : last === 'then' ? { what: 'action', known: ACTION_KEYS as readonly string[] } : path.includes('when') && !['header', 'cookie', 'query'].includes(String(last)) ? { what: 'condition', known: CONDITION_KEYS as readonly string[] } : typeof last === 'number' && path.length === 2 ? { what: 'rule field', known: RULE_KEYS } : { what: 'field', known: [] as string[] };
  return keys
    .map((k) => {
      const near = where.known.map((c) => [c, editDistance(k, c)] as const).sort((x, y) => x[1] - y[1])[0];
      const hint = near && near[1] <= Math.max(1, Math.floor(k.length / 3)) ? ` (did you mean "${near[0]}"?)` : where.known.length ? ` (expected one of ${where.known.join(', ')})` : '';
      return `unknown ${where.what} ${JSON.stringify(k)}${hint}`;
    })
    .join('; ');
}

const errorMap: z.core.$ZodErrorMap = (iss) => {
  switch (iss.code) {
    case 'invalid_type':
      return `expected ${iss.expected === 'int' ? 'a whole number' : iss.expected === 'record' ? 'an object' : iss.expected}, got ${describe(iss.input)}`;
    case 'too_small':
      if (iss.origin === 'array') return `expected at least ${String(iss.minimum)} ${iss.minimum === 1 ? 'entry' : 'entries'}, got ${Array.isArray(iss.input) ? iss.input.length : 0}`;
      if (iss.origin === 'string') return `expected at least ${String(iss.minimum)} character${iss.minimum === 1 ? '' : 's'}`;
      return `expected a number >= ${String(iss.minimum)}, got ${describe(iss.input)}`;
    case 'too_big':
      if (iss.origin === 'array') return `expected at most ${String(iss.maximum)} entries`;
      if (iss.origin === 'string') return `expected at most ${String(iss.maximum)} characters`;
      return `expected a number <= ${String(iss.maximum)}, got ${describe(iss.input)}`;
    case 'unrecognized_keys':
      return unknownKeys(iss.path ?? [], iss.keys);
    case 'invalid_union':
      return `expected a number or a string, got ${describe(iss.input)}`;
    default:
      return undefined;
  }
};

/**
 * Validates a rule set as stored or sent to the admin API. Throws RULES_INVALID whose message has
 * one line per mistake (at most 20), each starting with the exact path.
 */
export function parseRuleSet(input: unknown): RuleSet {
  const r = RuleSetSchema.safeParse(input, { error: errorMap });
  if (r.success) return r.data as RuleSet;
  const lines = r.error.issues.slice(0, 20).map((i) => `${formatPath(i.path)}: ${i.message}`);
  if (r.error.issues.length > 20) lines.push(`… and ${r.error.issues.length - 20} more`);
  throw new OutpostError('RULES_INVALID', lines.join('\n'));
}
