// What a CU sandbox implements. The request data crosses into the sandbox as plain values; what
// the CU did comes back as a plain description that the host applies (so nothing of the host is
// reachable from CU code). One conformance suite runs against every runtime.
import type { CuPhase, CuRecord } from './cu.ts';

export type CuErrorKind = 'compile' | 'runtime' | 'timeout' | 'memory' | 'breaker';

/** Raised for anything a CU does wrong; `line`/`column` locate compile errors in the CU's own code. */
export class CuError extends Error {
  readonly kind: CuErrorKind;
  readonly cuId: string;
  readonly line?: number;
  readonly column?: number;
  constructor(kind: CuErrorKind, cuId: string, message: string, where?: { line?: number | undefined; column?: number | undefined }) {
    super(message);
    this.name = 'CuError';
    this.kind = kind;
    this.cuId = cuId;
    if (where?.line !== undefined) this.line = where.line;
    if (where?.column !== undefined) this.column = where.column;
  }
}

/** The request as a CU sees it. Header names are lower-case; repeated headers joined with ", ". */
export interface CuRequestView {
  readonly method: string;
  /** Path and query as received (after rewrite CUs that ran before). */
  readonly uri: string;
  readonly path: string;
  /** Raw query string without '?'. */
  readonly query: string;
  /** Decoded query arguments (first value wins). */
  readonly args: Readonly<Record<string, string>>;
  readonly headers: Readonly<Record<string, string>>;
  readonly cookies: Readonly<Record<string, string>>;
  readonly ip: string;
  readonly host: string;
  readonly scheme: 'http' | 'https';
}

export interface CuTimings {
  /** ms since the request arrived. */
  readonly requestMs: number;
  readonly upstreamConnectMs?: number;
  readonly upstreamResponseMs?: number;
  readonly cacheStatus?: string;
  readonly bytesSent?: number;
}

export interface CuRunInput {
  readonly phase: CuPhase;
  readonly request: CuRequestView;
  /** header_filter, body_filter, log: the response as it stands. */
  readonly response?: { readonly status: number; readonly headers: Readonly<Record<string, string>> };
  /** body_filter: the whole response body as UTF-8 text (binary bodies are not passed to CUs). */
  readonly body?: string;
  /** Values shared by the CUs of one request across phases (JSON values only). */
  readonly vars: Readonly<Record<string, unknown>>;
  readonly timings: CuTimings;
}

/** What a CU asked for. Absent fields mean "no change". */
export interface CuRunOutput {
  /** exit(status, body?, headers?) — answer now. */
  readonly exit?: { readonly status: number; readonly body?: string; readonly headers?: Readonly<Record<string, string>> };
  /** rewrite/access: request changes. A header set to null is removed. */
  readonly request?: {
    readonly path?: string;
    readonly query?: string;
    readonly headers?: Readonly<Record<string, string | null>>;
  };
  /** header_filter: response changes. A header set to null is removed. */
  readonly response?: { readonly status?: number; readonly headers?: Readonly<Record<string, string | null>> };
  /** body_filter: the replacement body. */
  readonly body?: string;
  /** The vars after the CU ran. */
  readonly vars?: Readonly<Record<string, unknown>>;
  readonly logs?: ReadonlyArray<{ readonly level: 'debug' | 'info' | 'warn' | 'error'; readonly msg: string }>;
}

/** Host services a CU may call; all async, all bounded by their own timeouts. */
export interface CuHostServices {
  /** A safe subset of Redis commands (see docs/cu-api.md); works against the embedded store too. */
  redis(command: string, args: readonly (string | number)[]): Promise<unknown>;
  /** The node-local shared dictionary (like lua_shared_dict). */
  shared(op: 'get' | 'set' | 'incr' | 'delete', key: string, value?: string | number, ttlMs?: number): Promise<unknown>;
}

/** A CU compiled and ready to run; one per (id, version) per worker. */
export interface LoadedCu {
  readonly id: string;
  readonly version: number;
  /** True when the code awaits (host services); async runs cost more than sync ones. */
  readonly async: boolean;
  /** Runs once; throws CuError (runtime, timeout, memory). */
  run(input: CuRunInput): CuRunOutput | Promise<CuRunOutput>;
  dispose(): void;
}

export interface CuRuntime {
  readonly name: string;
  /** Compiles; throws CuError('compile') with line and column on bad code. */
  load(cu: CuRecord): LoadedCu;
  dispose(): void;
}
