// Runs the demo origin on its own: `node src/origin/main.ts --port 9000 --host 127.0.0.1 --latency seed`.
// Prints exactly one line once listening, so scripts and tests can wait for it.

import { parseArgs } from 'node:util';
import { OutpostError, toOutpostError } from '../errors.ts';
import { parseLatency, startDemoOrigin } from './demo-origin.ts';
import type { DemoOrigin, DemoOriginOptions } from './demo-origin.ts';

export const ORIGIN_USAGE = `Usage: origin [--port 9000] [--host 127.0.0.1] [--latency off|seed|P:MIN-MAX,...]

  --port      port to listen on, 0 for any free one (default 9000)
  --host      address to listen on (default 127.0.0.1)
  --latency   simulated work: off (default), seed (seed 004's model) or bands like 50:1-20,99:21-500
`;

const DEFAULT_PORT = 9000;
// Busy connections get this long to finish after SIGTERM/SIGINT before they are cut.
const SHUTDOWN_GRACE_MS = 1000;

export function parseOriginArgs(argv: readonly string[]): DemoOriginOptions {
  let values: { port?: string; host?: string; latency?: string };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: { port: { type: 'string' }, host: { type: 'string' }, latency: { type: 'string' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new OutpostError('CONFIG_INVALID', `origin: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  let port = DEFAULT_PORT;
  if (values.port !== undefined) {
    port = /^\d{1,5}$/.test(values.port) ? Number(values.port) : Number.NaN;
    if (!(port <= 65535)) throw new OutpostError('CONFIG_INVALID', `--port: expected an integer 0-65535, got '${values.port}'`);
  }
  return {
    port,
    host: values.host ?? '127.0.0.1',
    latency: values.latency === undefined ? false : parseLatency(values.latency),
  };
}

/** Starts the origin from command-line arguments and prints `origin listening on <url>`. */
export async function runOriginCli(argv: string[]): Promise<DemoOrigin> {
  const origin = await startDemoOrigin(parseOriginArgs(argv));
  process.stdout.write(`origin listening on ${origin.url}\n`);
  return origin;
}

/** First SIGTERM/SIGINT closes gracefully and lets the process exit; a second one exits at once. */
export function closeOnSignals(origin: DemoOrigin, graceMs = SHUTDOWN_GRACE_MS): void {
  let stopping = false;
  const onSignal = (): void => {
    if (stopping) process.exit(1);
    stopping = true;
    origin.close(graceMs).then(
      () => {
        process.exitCode = 0;
      },
      (err: unknown) => {
        process.stderr.write(`origin: ${toOutpostError(err).message}\n`);
        process.exitCode = 1;
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

if (import.meta.main) {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(ORIGIN_USAGE);
  } else {
    runOriginCli(argv).then(closeOnSignals, (err: unknown) => {
      process.stderr.write(`origin: ${toOutpostError(err).message}\n`);
      process.exitCode = 1;
    });
  }
}
