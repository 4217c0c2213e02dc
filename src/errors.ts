// One error type for all of Outpost. Every code is listed once here, with who is at fault
// and the HTTP status it maps to; docs/errors.md is the catalogue users read.

export type ErrorSource = 'client' | 'upstream' | 'internal' | 'config' | 'cu';

interface CodeSpec {
  readonly source: ErrorSource;
  readonly status: number;
  readonly summary: string;
}

export const ERROR_CODES = {
  // client
  BAD_REQUEST: { source: 'client', status: 400, summary: 'The request is malformed.' },
  BAD_HOST: { source: 'client', status: 400, summary: 'The Host header is missing, repeated or not a valid host.' },
  AMBIGUOUS_LENGTH: {
    source: 'client',
    status: 400,
    summary: 'The request has both Content-Length and Transfer-Encoding, or conflicting Content-Length headers.',
  },
  HEADERS_TOO_LARGE: { source: 'client', status: 431, summary: 'The request headers exceed limits.maxHeaderBytes.' },
  BODY_TOO_LARGE: { source: 'client', status: 413, summary: 'The request body exceeds limits.maxBodyBytes.' },
  CLIENT_TIMEOUT: { source: 'client', status: 408, summary: 'The client was too slow sending the request.' },
  METHOD_NOT_ALLOWED: { source: 'client', status: 405, summary: 'The method is not allowed here.' },
  RANGE_NOT_SATISFIABLE: { source: 'client', status: 416, summary: 'The requested range lies outside the object.' },
  FORBIDDEN: { source: 'client', status: 403, summary: 'The client may not do this.' },
  UNAUTHORIZED: { source: 'client', status: 401, summary: 'The admin API key is missing or wrong.' },
  NOT_FOUND: { source: 'client', status: 404, summary: 'No such resource.' },
  RATE_LIMITED: { source: 'client', status: 429, summary: 'A rate limit (security.rateLimit) refused the request; Retry-After says when to try again.' },
  // upstream
  UPSTREAM_CONNECT: { source: 'upstream', status: 502, summary: 'No origin peer accepted a connection.' },
  UPSTREAM_TIMEOUT: { source: 'upstream', status: 504, summary: 'The origin did not answer within upstream.pools.<name>.readTimeout.' },
  UPSTREAM_PROTOCOL: { source: 'upstream', status: 502, summary: 'The origin sent an invalid response.' },
  UPSTREAM_ABORTED: { source: 'upstream', status: 502, summary: 'The origin closed the connection mid-response.' },
  NO_UPSTREAM: { source: 'upstream', status: 502, summary: 'No origin pool is configured for this request.' },
  NO_MEMBER: { source: 'upstream', status: 503, summary: 'The load balancer has no edge to send the request to (none configured, or all removed).' },
  // internal
  INTERNAL: { source: 'internal', status: 500, summary: 'An unexpected internal error.' },
  STORAGE: { source: 'internal', status: 500, summary: 'A cache storage tier failed.' },
  SHUTTING_DOWN: { source: 'internal', status: 503, summary: 'The worker is draining for shutdown.' },
  // cu
  CU_FAILED: { source: 'cu', status: 503, summary: 'A fail-closed computing unit failed (error, timeout, memory limit or open breaker).' },
  CU_INVALID: { source: 'client', status: 400, summary: 'A computing unit was refused: invalid fields or code that does not compile (line and column given).' },
  CU_NOT_FOUND: { source: 'client', status: 404, summary: 'No computing unit with that id.' },
  STORE_UNAVAILABLE: { source: 'internal', status: 503, summary: 'The CU store (Redis, Redis Cluster or embedded) cannot be reached.' },
  // rules
  RULES_INVALID: { source: 'client', status: 400, summary: 'A rule set was refused: the message names each mistake by its path (rules[3].when.header.name: …).' },
  // config
  CONFIG_INVALID: { source: 'config', status: 500, summary: 'A setting is invalid; the message names it.' },
  CONFIG_UNREADABLE: { source: 'config', status: 500, summary: 'The configuration file cannot be read or parsed.' },
} as const satisfies Record<string, CodeSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class OutpostError extends Error {
  readonly code: ErrorCode;
  readonly source: ErrorSource;
  readonly status: number;

  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown; status?: number }) {
    const spec: CodeSpec = ERROR_CODES[code];
    super(message ?? spec.summary, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'OutpostError';
    this.code = code;
    this.source = spec.source;
    this.status = options?.status ?? spec.status;
  }

  toJSON(): { error: ErrorCode; message: string } {
    return { error: this.code, message: this.message };
  }
}

/** Wraps anything thrown into an OutpostError, keeping the original as `cause`. */
export function toOutpostError(err: unknown, fallback: ErrorCode = 'INTERNAL'): OutpostError {
  if (err instanceof OutpostError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new OutpostError(fallback, message, { cause: err });
}
