// What one synchronous call into an isolated-vm isolate costs a server on this machine: a minimal
// node:http server answering 1 KB from memory, with 0, 1 and 5 empty calls per request (with no
// time limit, and with a 50 ms limit on Outpost's grid), under the bench's wrk load (server pinned to CPU 0, wrk to CPU 1), interleaved, median of the rounds.
// The CU bar of issue 4 (≤ 8 µs per CU) assumes such a call costs 4–7 µs; this measures it here.
//
//   node bench/isolate-floor.ts [--rounds 5] [--seconds 5]
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { findTools } from './machine.ts';
import { runWrk } from './load/wrk.ts';
import { freePort, startProcess, waitUntil, httpGet, stopAll } from './proc.ts';
import { median } from './stats.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' }, seconds: { type: 'string', default: '5' } } });
  const tools = await findTools();
  if (!tools.wrk) throw new Error('wrk is required (apt-get install wrk)');
  const variants: Array<{ name: string; calls: number; limit: 'none' | 'grid' }> = [
    { name: 'no call', calls: 0, limit: 'none' },
    { name: '1 call, no time limit', calls: 1, limit: 'none' },
    { name: '1 call, 50 ms limit on the grid', calls: 1, limit: 'grid' },
    { name: '5 calls, 50 ms limit on the grid', calls: 5, limit: 'grid' },
  ];
  const rps = new Map<string, number[]>(variants.map((v) => [v.name, []]));
  try {
    for (let round = 1; round <= Number(values.rounds); round++) {
      for (const v of round % 2 ? variants : [...variants].reverse()) {
        const port = await freePort();
        const proc = startProcess(join(root, 'node_modules/.bin/node'), [join(root, 'bench/floor/server.ts'), String(port), String(v.calls), v.limit], { cpus: '0', cwd: root });
        await waitUntil('floor server', proc, 15_000, async () => (await httpGet(port, '/', { timeoutMs: 500 })).status === 200);
        const r = await runWrk(tools.wrk, { url: `http://127.0.0.1:${port}/`, threads: 1, connections: 50, durationS: Number(values.seconds), cpus: '1' });
        await proc.stop();
        rps.get(v.name)!.push(r.rps);
        console.log(`round ${round}  ${v.name.padEnd(34)} ${Math.round(r.rps).toLocaleString('en')} req/s`);
      }
    }
  } finally {
    await stopAll();
  }
  const base = median(rps.get('no call')!);
  console.log('\n| empty isolate calls per request | req/s (median) | µs added per call |\n| --- | --- | --- |');
  for (const v of variants) {
    const m = median(rps.get(v.name)!);
    const added = v.calls === 0 ? '—' : (((1 / m - 1 / base) * 1e6) / v.calls).toFixed(1);
    console.log(`| ${v.name} | ${Math.round(m).toLocaleString('en')} | ${added} |`);
  }
}

await main();
