// Log lines kept in memory, parsed, for tests that check what was logged: a real pino logger over a
// sink that collects each JSON line.
import { Writable } from 'node:stream';
import { pino, type Logger, type LoggerOptions } from 'pino';

export type LogLine = Record<string, unknown>;

/** A sink for pino that parses every line into `lines`. */
export function captureLines(): { sink: Writable; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l) as LogLine);
      cb();
    },
  });
  return { sink, lines };
}

/** A pino logger (level info unless `options` say otherwise) whose lines are kept, parsed. */
export function capturedLog(options: LoggerOptions = {}): { log: Logger; lines: LogLine[] } {
  const { sink, lines } = captureLines();
  return { log: pino({ level: 'info', ...options }, sink), lines };
}
