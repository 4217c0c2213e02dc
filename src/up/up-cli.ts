// `outpost up`: starts the mini-CDN (src/up/up.ts), prints what runs where, stops on Ctrl-C.
import { parseArgs } from 'node:util';
import { OutpostError } from '../errors.ts';
import { createLogger } from '../log/logger.ts';
import { startMiniCdn } from './up.ts';

export async function upCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      redis: { type: 'string' },
      policy: { type: 'string' },
      'latency-scale': { type: 'string' },
      'origin-latency': { type: 'string' },
      'base-port': { type: 'string' },
      dir: { type: 'string' },
      'log-level': { type: 'string' },
    },
  });
  const policy = values.policy ?? 'bounded';
  if (!['rr', 'leastconn', 'chash', 'bounded'].includes(policy)) throw new OutpostError('BAD_REQUEST', `--policy: expected rr, leastconn, chash or bounded, got ${JSON.stringify(policy)}`);
  const scale = values['latency-scale'] === undefined ? 1 : Number(values['latency-scale']);
  if (!Number.isFinite(scale) || scale < 0) throw new OutpostError('BAD_REQUEST', `--latency-scale: expected a number >= 0, got ${JSON.stringify(values['latency-scale'])}`);
  const originLatency = values['origin-latency'] ?? 'off';
  if (originLatency !== 'seed' && originLatency !== 'off') throw new OutpostError('BAD_REQUEST', `--origin-latency: expected seed or off, got ${JSON.stringify(originLatency)}`);
  const basePort = values['base-port'] === undefined ? 8000 : Number(values['base-port']);
  const log = createLogger((values['log-level'] ?? 'warn') as 'warn');
  process.stderr.write('starting origin, shield, 3 PoPs, load balancer and control plane…\n');
  const t0 = performance.now();
  const cdn = await startMiniCdn({
    log,
    dir: values.dir ?? '.outpost/up',
    latencyScale: scale,
    originLatency,
    lbPolicy: policy as 'bounded',
    basePort,
    ...(values.redis ? { redis: values.redis } : {}),
  });
  const rows = cdn.table();
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd());
  console.log(`\nup in ${((performance.now() - t0) / 1000).toFixed(1)} s — try:
  curl -i ${cdn.lbUrl}/api/item?max_age=10
  curl '${cdn.controlUrl}/route?url=http://cdn.local/api/item&client=eu-west'
  outpost nodes --admin ${cdn.controlUrl}
  outpost purge --admin ${cdn.controlUrl} http://127.0.0.1:${new URL(cdn.lbUrl).port}/api/item?max_age=10
Ctrl-C stops everything.`);
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      process.stderr.write('\nstopping…\n');
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await cdn.close();
  return 0;
}
