// Option validation shared by the gates: each factory validates its options once, when it is
// built, and a mistake becomes one CONFIG_INVALID error whose lines name the option and say
// "expected X, got Y". Secrets never appear in those messages (only their length).
import { isIP } from 'node:net';
import { pino, type Logger } from 'pino';
import { z } from 'zod';
import { OutpostError } from '../../errors.ts';

/** Options whose values are secrets: messages about them give a string's length, never its text. */
const SECRET_OPTIONS: ReadonlySet<string> = new Set(['secret', 'secrets', 'tokens']);

/** A short, safe description of a value for error messages. */
export function describe(v: unknown, secret = false): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (typeof v === 'string' && secret) return `a string of ${v.length} characters`;
  if (typeof v === 'string') return v.length > 60 ? `${JSON.stringify(v.slice(0, 57))}…` : JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === 'function') return 'a function';
  return `a ${typeof v}`;
}

const describeValue = (v: unknown, secret: boolean): string => describe(v, secret);

function plural(n: number | bigint, one: string, many: string): string {
  return `${n} ${Number(n) === 1 ? one : many}`;
}

function lengthOf(v: unknown): number {
  return typeof v === 'string' || Array.isArray(v) ? v.length : 0;
}

/** Rewrites zod's default messages as "expected X, got Y". Schema-level messages take precedence. */
const errorMap: z.core.$ZodErrorMap = (iss) => {
  const hide = (iss.path ?? []).some((p) => SECRET_OPTIONS.has(String(p)));
  const describe = (v: unknown): string => describeValue(v, hide);
  switch (iss.code) {
    case 'invalid_type':
      return `expected ${iss.expected === 'int' ? 'a whole number' : iss.expected}, got ${describe(iss.input)}`;
    case 'too_small':
      if (iss.origin === 'array') return `expected at least ${plural(iss.minimum, 'entry', 'entries')}, got ${lengthOf(iss.input)}`;
      if (iss.origin === 'string') return `expected at least ${plural(iss.minimum, 'character', 'characters')}, got ${lengthOf(iss.input)}`;
      return `expected a number ${iss.inclusive ? '>=' : '>'} ${String(iss.minimum)}, got ${describe(iss.input)}`;
    case 'too_big':
      if (iss.origin === 'array') return `expected at most ${plural(iss.maximum, 'entry', 'entries')}, got ${lengthOf(iss.input)}`;
      if (iss.origin === 'string') return `expected at most ${plural(iss.maximum, 'character', 'characters')}, got ${lengthOf(iss.input)}`;
      return `expected a number ${iss.inclusive ? '<=' : '<'} ${String(iss.maximum)}, got ${describe(iss.input)}`;
    case 'invalid_value':
      return `expected one of ${iss.values.map((v) => JSON.stringify(v)).join(', ')}, got ${describe(iss.input)}`;
    case 'invalid_format': {
      const what = iss.format === 'starts_with' ? `a value starting with ${JSON.stringify((iss as { prefix?: string }).prefix)}` : iss.format === 'url' ? 'a URL' : `a ${iss.format}`;
      return `expected ${what}, got ${describe(iss.input)}`;
    }
    case 'unrecognized_keys':
      return `unknown option${iss.keys.length === 1 ? '' : 's'} ${iss.keys.map((k) => JSON.stringify(k)).join(', ')}`;
    default:
      return undefined;
  }
};

/** Validates a gate's options; throws CONFIG_INVALID naming every wrong option. */
export function parseOptions<S extends z.ZodType>(gate: string, schema: S, input: unknown): z.output<S> {
  const r = schema.safeParse(input, { error: errorMap });
  if (r.success) return r.data;
  const lines = r.error.issues.map((i) => `  ${i.path.length ? i.path.join('.') : '(options)'}: ${i.message}`);
  throw new OutpostError('CONFIG_INVALID', `invalid ${gate} options:\n${lines.join('\n')}`);
}

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** An HTTP header name, lower-cased (ctx.headers keys are lower-case). */
export const headerName = z
  .string()
  .refine((v) => HEADER_NAME.test(v), { error: (iss) => `expected an HTTP header name such as "x-origin-secret", got ${describe(iss.input)}` })
  .transform((v) => v.toLowerCase());

/** A query parameter or cookie name: URL- and cookie-safe characters only. */
export const paramName = z
  .string()
  .refine((v) => /^[A-Za-z0-9_\-.~]+$/.test(v), { error: (iss) => `expected a name of letters, digits, "-", "_", "." or "~", got ${describe(iss.input)}` });

const PATH_PATTERN = /^\/[^\s?#]*$/;
const HOST_PATTERN = /^(?:\*\.)?[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$/i;

/** A path prefix ("/private/") or glob ("/videos/*\/hd/**"). */
export const pathPattern = z.string().refine((v) => PATH_PATTERN.test(v), {
  error: (iss) => `expected a path prefix or glob starting with "/" (like "/private/" or "/v/*/hd/**"), got ${describe(iss.input)}`,
});

/** A host name, or "*.example.com" for any subdomain of example.com. */
export const hostPattern = z
  .string()
  .refine((v) => HOST_PATTERN.test(v), { error: (iss) => `expected a host name or "*.example.com", got ${describe(iss.input)}` })
  .transform((v) => v.toLowerCase());

/** An IPv4/IPv6 address or CIDR. */
export const cidr = z.string().refine(
  (v) => {
    const [addr, bits, extra] = v.split('/');
    if (extra !== undefined || addr === undefined) return false;
    const family = isIP(addr);
    if (family === 0) return false;
    if (bits === undefined) return true;
    return /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 6 ? 128 : 32);
  },
  { error: (iss) => `expected an address or CIDR such as "10.0.0.0/8" or "::1/128", got ${describe(iss.input)}` },
);

export const logger = z.custom<Logger>(
  (v) => typeof v === 'object' && v !== null && typeof (v as { child?: unknown }).child === 'function' && typeof (v as { warn?: unknown }).warn === 'function',
  { error: (iss) => `expected a pino Logger, got ${describe(iss.input)}` },
);

/** The options every gate shares: where it applies, what it is called, where it logs. */
export const common = {
  /** Hook-set name (also the log's `gate` field). */
  name: z.string().min(1).optional(),
  /** Host names or "*.example.com"; default every host. */
  hosts: z.array(hostPattern).min(1).optional(),
  /** Path prefixes or globs; default every path. */
  paths: z.array(pathPattern).min(1).optional(),
  log: logger.optional(),
};

let silent: Logger | undefined;

/** The gate's logger: the given one (or a silent one) with the gate's name bound. */
export function gateLogger(log: Logger | undefined, gate: string): Logger {
  return (log ?? (silent ??= pino({ level: 'silent' }))).child({ gate });
}
