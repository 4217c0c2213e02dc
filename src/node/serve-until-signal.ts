// The foreground life of a server command (`outpost start`, `outpost lb`): run until SIGINT or
// SIGTERM, then close gracefully (draining connections) and exit 0, or 1 if closing failed.
import type { Logger } from 'pino';

export function serveUntilSignal(server: { close(): Promise<void> }, log: Logger): Promise<number> {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down: draining connections');
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'error during shutdown');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  // Never resolves: the process ends in stop().
  return new Promise<number>(() => undefined);
}
