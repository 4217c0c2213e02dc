// A closer look at the thundering herd than `npm run bench` gives: 200 clients at once on one cold
// key (200 ms origin), Outpost with 2 workers as in the bench, repeated; with several checkouts
// (--roots) their runs are interleaved, for A/B comparisons of the collapsing path. --histogram
// prints each run's latencies in 2 ms buckets.
//   node bench/herd-timeline.ts [--runs 10] [--roots DIR,DIR] [--clients 200] [--histogram]
import { mkdtempSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startOrigin } from './servers/origin.ts';
import * as outpost from './servers/outpost.ts';
import { runHerd } from './load/herd.ts';
import { percentile, round } from './stats.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '10' },
    roots: { type: 'string' },
    clients: { type: 'string', default: '200' },
    histogram: { type: 'boolean', default: false },
  },
});
const here = join(import.meta.dirname, '..');
const roots = values.roots?.split(',') ?? [here];
const nodePath = join(here, 'node_modules/.bin/node');
const clients = Number(values.clients);

const dir = mkdtempSync(join(tmpdir(), 'herd-timeline-'));
const origin = await startOrigin(here, nodePath);
const servers = await Promise.all(
  roots.map((root, i) => {
    mkdirSync(join(dir, String(i)));
    return outpost.start(origin.port, 2, { dir: join(dir, String(i)), bin: nodePath, root });
  }),
);
const p99s = roots.map((): number[] => []);
try {
  for (let run = 0; run <= Number(values.runs); run++) {
    for (let i = 0; i < servers.length; i++) {
      const { latenciesMs: lat } = await runHerd({ port: servers[i]!.port, path: `/herd/t${Date.now()}-${run}?delay=200&max_age=60`, clients, timeoutMs: 10_000 });
      if (run === 0) continue; // warms the path, as the bench does
      if (lat.length === 0) {
        console.log(`${roots[i]} run ${run}: no client was answered`);
        continue;
      }
      p99s[i]!.push(percentile(lat, 99));
      console.log(`${roots[i]} run ${run}: min ${round(lat[0]!)} p50 ${round(percentile(lat, 50))} p99 ${round(percentile(lat, 99))} max ${round(lat.at(-1)!)} ms`);
      if (values.histogram) {
        const buckets = new Map<number, number>();
        for (const l of lat) buckets.set(Math.floor(l / 2) * 2, (buckets.get(Math.floor(l / 2) * 2) ?? 0) + 1);
        for (const [b, n] of [...buckets].sort((x, y) => x[0] - y[0])) console.log(`  ${b}–${b + 2} ms ${'#'.repeat(Math.ceil(n / 2))} ${n}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  for (let i = 0; i < roots.length; i++) console.log(`${roots[i]}: median p99 ${round(percentile(p99s[i]!, 50))} ms over ${p99s[i]!.length} runs`);
} finally {
  await Promise.all(servers.map((s) => s.stop()));
  await origin.stop();
}
