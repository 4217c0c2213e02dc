// JSON logs (pino) on stdout: one logger for events, and access lines with seed 003's fields.
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, bindings: Record<string, unknown> = {}): Logger {
  return pino({
    level,
    base: { pid: process.pid, ...bindings },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}

/** One access-log line. Field names follow seed 003's log_format, plus cache and upstream detail. */
export interface AccessRecord {
  readonly method: string;
  readonly uri: string;
  readonly host: string;
  readonly status: number;
  readonly cache: string;
  readonly bytes: number;
  /** Request time in seconds, like nginx $request_time. */
  readonly rt: number;
  /** Upstream response time in seconds, when the origin was asked. */
  readonly urt?: number;
  readonly ip: string;
  readonly ua?: string;
  readonly collapsed?: boolean;
  readonly detail?: string;
}
