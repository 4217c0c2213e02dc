// Turns a CU's stored code into the JavaScript function a sandbox compiles: TypeScript types are
// stripped (positions kept), the API names the code mentions are noted, and sync vs async is decided.
// Shared by every runtime so that they all accept and refuse the same code.
import module from 'node:module';
import type { CuRecord } from '../cu.ts';
import { CuError } from '../runtime.ts';

/** The names in scope of a CU, in the order the runner passes them. */
export const CU_PARAMS = ['req', 'res', 'exit', 'vars', 'log', 'timings', 'shared', 'redis', 'crypto'] as const;
export type CuParam = (typeof CU_PARAMS)[number];

/** Bit of each name in `PreparedCu.uses` (the runner builds only what the code mentions). */
export const USE_BIT: Readonly<Record<CuParam, number>> = Object.freeze({
  req: 1,
  res: 2,
  exit: 4,
  vars: 8,
  log: 16,
  timings: 32,
  shared: 64,
  redis: 128,
  crypto: 256,
});
/**
 * Set when the code may read the request headers (it says `headers` other than as `res.headers`):
 * only then are they serialised for the run. Code that reaches them without naming them
 * (`req[name]`, `JSON.stringify(req)`) still gets them, fetched from the host on first use.
 */
export const USE_REQ_HEADERS = 512;
const ALL_USES = 1023;
const RES_HEADERS = /\bres\s*(?:\.\s*headers\b|\[\s*(['"`])headers\1\s*\])/g;

export interface PreparedCu {
  readonly id: string;
  /** JavaScript function body (types stripped); line N is line N of the user's code. */
  readonly body: string;
  /** Compiled as an async function: the code awaits, or names redis/shared (whose calls are async). */
  readonly async: boolean;
  /** USE_BIT mask of the API names the code mentions, plus USE_REQ_HEADERS. */
  readonly uses: number;
  /** Lines of the user's code, to place "unexpected end of input" on its last line. */
  readonly lines: number;
  /** Name the code has in stack traces. */
  readonly filename: string;
}

const AWAITS = /\bawait\b|\bredis\b|\bshared\b/;
// `eval` or `arguments` can reach any parameter without naming it: assume every name is used.
const DYNAMIC = /\beval\b|\barguments\b/;
const NAME_RES: ReadonlyArray<readonly [CuParam, RegExp]> = CU_PARAMS.map((p) => [p, new RegExp(`\\b${p}\\b`)] as const);

export function prepareCu(cu: Pick<CuRecord, 'id' | 'code' | 'lang'>): PreparedCu {
  const body = cu.lang === 'ts' ? stripTypes(cu.id, cu.code) : cu.code;
  let uses = 0;
  if (DYNAMIC.test(body)) uses = ALL_USES;
  else {
    for (const [name, re] of NAME_RES) if (re.test(body)) uses |= USE_BIT[name];
    if (uses & USE_BIT.req && /\bheaders\b/.test(body.replace(RES_HEADERS, ''))) uses |= USE_REQ_HEADERS;
  }
  return {
    id: cu.id,
    body,
    async: AWAITS.test(body),
    uses,
    lines: countLines(cu.code),
    filename: `cu/${cu.id}.js`,
  };
}

/**
 * The script a runtime compiles: a function expression whose first line is the wrapper, so a
 * compile with lineOffset -1 reports the user's own line numbers (columns are untouched).
 */
export function wrapperSource(p: PreparedCu): string {
  return `(${p.async ? 'async ' : ''}function (${CU_PARAMS.join(', ')}) { 'use strict';\n${p.body}\n})`;
}
export const WRAPPER_LINE_OFFSET = -1;

/** A compile error at a position the user can find: past-the-end positions move to the last line. */
export function compileError(p: Pick<PreparedCu, 'id' | 'lines'> & { readonly lastLineLength?: number }, message: string, line?: number, column?: number): CuError {
  let l = line;
  let c = column;
  let msg = message;
  if (l !== undefined && l > p.lines) {
    // The parser reached the wrapper's closing line: the user's code ended too early.
    l = p.lines;
    c = (p.lastLineLength ?? 0) + 1;
    msg = 'SyntaxError: Unexpected end of input';
  }
  if (l !== undefined && l < 1) {
    l = 1;
    c = 1;
  }
  const where = l === undefined ? '' : c === undefined ? ` (line ${l})` : ` (line ${l}, column ${c})`;
  return new CuError('compile', p.id, `${msg}${where}`, { line: l, column: c });
}

/** Reads "file:LINE\nsource…\n   ^" — the position Node prints above SyntaxErrors (TS ones may show several source lines). */
export function arrowPosition(stack: string | undefined): { line: number; column: number } | undefined {
  if (stack === undefined) return undefined;
  const lines = stack.split('\n', 12);
  const head = /:(\d+)$/.exec(lines[0] ?? '');
  if (!head) return undefined;
  for (let i = 2; i < lines.length; i++) {
    const caret = /^([ \t]*)\^+\s*$/.exec(lines[i]!);
    if (caret) return { line: Number(head[1]), column: caret[1]!.length + 1 };
    if (lines[i] === '') break;
  }
  return undefined;
}

export function lastLineLength(code: string): number {
  const nl = code.lastIndexOf('\n');
  return code.length - nl - 1;
}

function countLines(code: string): number {
  let n = 1;
  for (let i = code.indexOf('\n'); i !== -1; i = code.indexOf('\n', i + 1)) n++;
  return n;
}

const TS_HEAD = 'async function __cu() {\n';
const TS_TAIL = '\n}';

/**
 * Strips TypeScript types with Node's own stripper (strip mode keeps every position). The code is
 * wrapped in an async function because a CU may `return` and `await` at its top level.
 */
function stripTypes(id: string, code: string): string {
  let out: string;
  try {
    out = quietStrip(TS_HEAD + code + TS_TAIL);
  } catch (e) {
    const err = e as Error & { code?: string };
    const pos = arrowPosition(err.stack);
    const p = { id, lines: countLines(code), lastLineLength: lastLineLength(code) };
    const what = err.code === 'ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX' ? 'TypeScript syntax that cannot be stripped' : 'TypeScript syntax error';
    throw compileError(p, `${what}: ${err.message}`, pos === undefined ? undefined : pos.line - 1, pos?.column);
  }
  if (!out.startsWith(TS_HEAD) || !out.endsWith(TS_TAIL)) throw new CuError('compile', id, 'the code must be a function body');
  return out.slice(TS_HEAD.length, out.length - TS_TAIL.length);
}

let warned = false;

/** module.stripTypeScriptTypes warns once per process that it is experimental; that one warning is expected here. */
function quietStrip(code: string): string {
  if (warned) return module.stripTypeScriptTypes(code, { mode: 'strip' });
  const emit = process.emitWarning;
  process.emitWarning = function (this: NodeJS.Process, warning: string | Error, ...rest: unknown[]): void {
    const text = typeof warning === 'string' ? warning : warning.message;
    if (text.includes('stripTypeScriptTypes')) return;
    (emit as (...a: unknown[]) => void).call(this, warning, ...rest);
  } as typeof process.emitWarning;
  try {
    return module.stripTypeScriptTypes(code, { mode: 'strip' });
  } finally {
    process.emitWarning = emit;
    warned = true;
  }
}
