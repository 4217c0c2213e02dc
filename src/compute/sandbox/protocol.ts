// The host side of the runner protocol (prelude.js is the other side): request data goes in as JSON
// strings the runner parses only when the CU touches them; what the CU did comes back as one JSON
// string, validated here before the host applies any of it. Measured on this machine for a typical
// request: a JSON string in and parsed inside beat isolated-vm's structured-clone copy (5.3 vs
// 6.0 µs per call) and a JSON string out beat a copied object (2.7 vs 3.6 µs); parsing only the
// parts a CU touches (request fields apart from headers) saves most of the rest.
import { createHash, createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { CU_PHASES, type CuPhase } from '../cu.ts';
import { CuError, type CuHostServices, type CuRequestView, type CuRunInput, type CuRunOutput } from '../runtime.ts';
import { USE_BIT, USE_REQ_HEADERS } from './source.ts';

/** The runner's source; evaluated inside each sandbox as a function body taking `$0` (host crypto). */
export const PRELUDE_SOURCE: string = readFileSync(new URL('./prelude.js', import.meta.url), 'utf8');

export const EMPTY_OUTPUT: CuRunOutput = Object.freeze({});

const PHASE_INDEX: Readonly<Record<CuPhase, number>> = Object.freeze(
  Object.fromEntries(CU_PHASES.map((p, i) => [p, i])) as Record<CuPhase, number>,
);

/** Arguments of the runner's start(), after the run id. */
export type StartArgs = [phase: number, req: string, headers: string, vars: string, timings: string, response: string, body: string | null];

// Views are immutable by contract (readonly) and the edge hands the same view to every CU of a
// request until one changes the request, so the last serialisation is kept (one slot: cheaper
// than a WeakMap entry per request, and CUs of one request run one after another).
let lastRequest: CuRequestView | undefined;
let lastMeta = '';
let lastHeaders: string | undefined;
let lastResponse: object | undefined;
let lastResponseJson = '';

function requestMeta(r: CuRequestView): string {
  if (r !== lastRequest) {
    lastRequest = r;
    // NUL cannot occur in any of these fields (Node's parser refuses it; JSON escapes it), so it
    // separates them: the runner splits instead of parsing, and parses args/cookies only if read.
    lastMeta = `${r.method}\0${r.uri}\0${r.path}\0${r.query}\0${r.ip}\0${r.host}\0${r.scheme}\0${JSON.stringify(r.args)}\0${JSON.stringify(r.cookies)}`;
    lastHeaders = undefined;
  }
  return lastMeta;
}

/** The request headers as JSON; also what a runner fetches when the CU reached them without naming them. */
export function requestHeadersJson(r: CuRequestView): string {
  requestMeta(r);
  return (lastHeaders ??= JSON.stringify(r.headers));
}

export function encodeInput(input: CuRunInput, uses: number): StartArgs {
  let req = '';
  let headers = '';
  if (uses & USE_BIT.req) {
    req = requestMeta(input.request);
    // '' tells the runner the headers were not sent (see USE_REQ_HEADERS).
    if (uses & USE_REQ_HEADERS) headers = requestHeadersJson(input.request);
  }
  let response = '';
  if (input.response !== undefined && uses & USE_BIT.res) {
    if (input.response !== lastResponse) {
      lastResponse = input.response;
      lastResponseJson = JSON.stringify(input.response);
    }
    response = lastResponseJson;
  }
  return [
    PHASE_INDEX[input.phase],
    req,
    headers,
    uses & USE_BIT.vars ? JSON.stringify(input.vars) : '',
    uses & USE_BIT.timings ? JSON.stringify(input.timings) : '',
    response,
    input.body !== undefined && uses & USE_BIT.res ? input.body : null,
  ];
}

/** What the runner reported. */
export interface RunnerReport {
  readonly output?: CuRunOutput;
  readonly error?: { readonly m: string; readonly l?: number; readonly c?: number };
  readonly logs?: CuRunOutput['logs'];
  readonly waiting?: boolean;
  readonly calls?: readonly ServiceCall[];
}

export interface ServiceCall {
  readonly i: number;
  readonly t: 'r' | 's';
  readonly n: string;
  readonly a: readonly unknown[];
}

type Logs = NonNullable<CuRunOutput['logs']>;

export function decodeReport(cuId: string, phase: CuPhase, raw: unknown): RunnerReport {
  if (raw === undefined) return { output: EMPTY_OUTPUT };
  if (typeof raw !== 'string') throw invalid(cuId, 'the runner returned no report');
  const r = JSON.parse(raw) as Record<string, unknown>;
  const calls = r.c === undefined ? undefined : decodeCalls(cuId, r.c);
  if (r.e !== undefined) {
    const e = r.e as Record<string, unknown>;
    const m = typeof e.m === 'string' ? e.m : 'unknown error';
    const l = typeof e.l === 'number' ? e.l : undefined;
    const c = typeof e.c === 'number' ? e.c : undefined;
    const logs = r.l === undefined ? undefined : decodeLogs(cuId, r.l);
    return { error: l === undefined ? { m } : { m, l, c }, logs, calls };
  }
  if (r.w !== undefined) return { waiting: true, calls };
  return { output: r.o === null || r.o === undefined ? EMPTY_OUTPUT : decodeOutput(cuId, phase, r.o), calls };
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;
const BAD_VALUE = /[\r\n\0]/;
const LEVELS = new Set(['debug', 'info', 'warn', 'error']);

function invalid(cuId: string, what: string): CuError {
  return new CuError('runtime', cuId, `invalid CU result: ${what}`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function status(cuId: string, v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 100 || v > 599) throw invalid(cuId, `${what} is not a status`);
  return v;
}

function headers(cuId: string, v: unknown, nullable: boolean, what: string): Record<string, string | null> {
  if (!isRecord(v)) throw invalid(cuId, `${what} is not an object`);
  const out: Record<string, string | null> = {};
  for (const name of Object.keys(v)) {
    const value = v[name];
    if (!TOKEN.test(name) || name === '__proto__') throw invalid(cuId, `${what} has an invalid name ${JSON.stringify(name)}`);
    if (value === null && nullable) out[name] = null;
    else if (typeof value === 'string' && !BAD_VALUE.test(value)) out[name] = value;
    else throw invalid(cuId, `${what}.${name} is not a valid header value`);
  }
  return out;
}

function decodeLogs(cuId: string, v: unknown): Logs {
  if (!Array.isArray(v) || v.length > 101) throw invalid(cuId, 'logs');
  return v.map((l: unknown) => {
    if (!isRecord(l) || typeof l.level !== 'string' || !LEVELS.has(l.level) || typeof l.msg !== 'string') throw invalid(cuId, 'a log line');
    return { level: l.level as Logs[number]['level'], msg: l.msg };
  });
}

function decodeCalls(cuId: string, v: unknown): ServiceCall[] {
  if (!Array.isArray(v)) throw invalid(cuId, 'calls');
  return v.map((c: unknown) => {
    if (!isRecord(c) || typeof c.i !== 'number' || (c.t !== 'r' && c.t !== 's') || typeof c.n !== 'string' || !Array.isArray(c.a)) throw invalid(cuId, 'a service call');
    return { i: c.i, t: c.t, n: c.n, a: c.a as unknown[] };
  });
}

/** Validates everything the sandbox says it changed: a CU can subvert the in-sandbox checks (toJSON). */
export function decodeOutput(cuId: string, phase: CuPhase, o: unknown): CuRunOutput {
  if (!isRecord(o)) throw invalid(cuId, 'not an object');
  const out: {
    exit?: CuRunOutput['exit'];
    request?: CuRunOutput['request'];
    response?: CuRunOutput['response'];
    body?: string;
    vars?: Record<string, unknown>;
    logs?: Logs;
  } = {};
  if (o.exit !== undefined) {
    if (phase === 'body_filter' || phase === 'log') throw invalid(cuId, `exit in ${phase}`);
    const e = o.exit;
    if (!isRecord(e)) throw invalid(cuId, 'exit');
    if (e.body !== undefined && typeof e.body !== 'string') throw invalid(cuId, 'exit body');
    const exit: { status: number; body?: string; headers?: Record<string, string> } = { status: status(cuId, e.status, 'exit status') };
    if (e.body !== undefined) exit.body = e.body as string;
    if (e.headers !== undefined) exit.headers = headers(cuId, e.headers, false, 'exit headers') as Record<string, string>;
    out.exit = exit;
  }
  if (o.request !== undefined) {
    if (phase !== 'rewrite' && phase !== 'access') throw invalid(cuId, `request changes in ${phase}`);
    const r = o.request;
    if (!isRecord(r)) throw invalid(cuId, 'request');
    const req: { path?: string; query?: string; headers?: Record<string, string | null> } = {};
    if (r.path !== undefined) {
      if (typeof r.path !== 'string' || !r.path.startsWith('/') || /[\s\0]/.test(r.path)) throw invalid(cuId, 'request path');
      req.path = r.path;
    }
    if (r.query !== undefined) {
      if (typeof r.query !== 'string' || /[\s\0#]/.test(r.query)) throw invalid(cuId, 'request query');
      req.query = r.query;
    }
    if (r.headers !== undefined) req.headers = headers(cuId, r.headers, true, 'request headers');
    out.request = req;
  }
  if (o.response !== undefined) {
    if (phase === 'body_filter' || phase === 'log') throw invalid(cuId, `response changes in ${phase}`);
    const r = o.response;
    if (!isRecord(r)) throw invalid(cuId, 'response');
    const res: { status?: number; headers?: Record<string, string | null> } = {};
    if (r.status !== undefined) {
      if (phase !== 'header_filter') throw invalid(cuId, `response status in ${phase}`);
      res.status = status(cuId, r.status, 'response status');
    }
    if (r.headers !== undefined) res.headers = headers(cuId, r.headers, true, 'response headers');
    out.response = res;
  }
  if (o.body !== undefined) {
    if (phase !== 'body_filter' || typeof o.body !== 'string') throw invalid(cuId, 'body');
    out.body = o.body;
  }
  if (o.vars !== undefined) {
    if (!isRecord(o.vars)) throw invalid(cuId, 'vars');
    out.vars = o.vars;
  }
  if (o.logs !== undefined) out.logs = decodeLogs(cuId, o.logs);
  return out;
}

/** The error a CU's own exception becomes, with its line when the stack names one. */
export function runtimeError(cuId: string, e: NonNullable<RunnerReport['error']>): CuError {
  const where = e.l === undefined ? '' : ` (line ${e.l}${e.c === undefined ? '' : `, column ${e.c}`})`;
  return new CuError('runtime', cuId, `${e.m}${where}`, { line: e.l, column: e.c });
}

const ENCODINGS = new Set(['hex', 'base64', 'base64url']);

/** crypto for CUs: the sandbox has no crypto of its own, so these run on the host, synchronously. */
export function hostCrypto(op: unknown, a: unknown, b: unknown, enc: unknown): string | boolean {
  const str = (v: unknown): string => {
    if (typeof v !== 'string') throw new TypeError('expected a string');
    return v;
  };
  const encoding = (): 'hex' | 'base64' | 'base64url' => {
    if (typeof enc !== 'string' || !ENCODINGS.has(enc)) throw new TypeError('expected hex, base64 or base64url');
    return enc as 'hex' | 'base64' | 'base64url';
  };
  switch (op) {
    case 'hmac':
      return createHmac('sha256', str(a)).update(str(b)).digest(encoding());
    case 'sha256':
      return createHash('sha256').update(str(a)).digest(encoding());
    case 'uuid':
      return randomUUID();
    case 'eq':
      // Digests have equal lengths, so the comparison time reveals neither content nor length.
      return timingSafeEqual(createHash('sha256').update(str(a)).digest(), createHash('sha256').update(str(b)).digest());
    default:
      throw new TypeError('unknown crypto operation');
  }
}

/** Redis commands a CU may send (docs/cu-api.md); anything else is refused on the host as well. */
export const CU_REDIS_COMMANDS: ReadonlySet<string> = new Set([
  'get', 'set', 'incr', 'incrby', 'decr', 'expire', 'pexpire', 'ttl', 'del', 'exists',
  'hget', 'hset', 'hincrby', 'hgetall', 'sadd', 'srem', 'smembers', 'sismember',
]);
const SHARED_OPS: ReadonlySet<string> = new Set(['get', 'set', 'incr', 'delete']);

type Scalar = string | number;
const isScalar = (v: unknown): v is Scalar => typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v));

function perform(services: CuHostServices, c: ServiceCall): Promise<unknown> {
  if (c.t === 'r') {
    if (!CU_REDIS_COMMANDS.has(c.n) || !c.a.every(isScalar)) return Promise.reject(new Error(`redis ${c.n}: not allowed`));
    return services.redis(c.n, c.a as Scalar[]);
  }
  const [k, v, ttl] = c.a;
  if (!SHARED_OPS.has(c.n) || typeof k !== 'string' || (v !== undefined && v !== null && !isScalar(v)) || (ttl !== undefined && ttl !== null && typeof ttl !== 'number')) {
    return Promise.reject(new Error(`shared.${c.n}: invalid call`));
  }
  return services.shared(c.n as 'get' | 'set' | 'incr' | 'delete', k, v ?? undefined, ttl ?? undefined);
}

const callLabel = (c: ServiceCall): string => (c.t === 'r' ? `redis ${c.n}` : `shared.${c.n}`);
const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** Runs the calls a CU made, all at once; the JSON answer is what the runner's resume() takes. */
export async function performCalls(services: CuHostServices, calls: readonly ServiceCall[]): Promise<string> {
  const results = await Promise.all(
    calls.map(async (c) => {
      try {
        const v = await perform(services, c);
        return { i: c.i, v: v === undefined ? null : v };
      } catch (e) {
        const msg = message(e);
        // The store's own messages already name the command ("redis.get: …").
        return { i: c.i, x: /^(redis|shared)\b/.test(msg) ? msg : `${callLabel(c)}: ${msg}` };
      }
    }),
  );
  return JSON.stringify(results);
}

/** Calls the CU made but did not wait for (fire and forget): performed, failures reported. */
export function performDetached(services: CuHostServices, calls: readonly ServiceCall[], onError: (msg: string) => void): void {
  for (const c of calls) perform(services, c).catch((e: unknown) => onError(`${callLabel(c)} (not awaited) failed: ${message(e)}`));
}
