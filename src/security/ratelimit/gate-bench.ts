// Micro-benchmark of the rate-limit gate's cost per request in one worker (docs/security-gates.md,
// "Rate limiting"): node src/security/ratelimit/gate-bench.ts
// Leases come from an in-process authority, so a refill costs a promise here instead of an IPC
// round trip; with demand-sized leases that is one refill per thousands of requests either way.
import type { EdgeHooks, RequestContext } from '../../edge/phases.ts';
import { newContext } from '../../edge/request.ts';
import { quietLog } from '../gates/testing.ts';
import { rateLimit } from './gate.ts';
import type { RateLimitOptions } from './policy.ts';

function ctxFor(ip: string, headers: Record<string, string> = {}): RequestContext {
  return newContext({ method: 'GET', scheme: 'http', httpVersion: '1.1', clientIp: ip, host: 'example.com', path: '/static/1k', query: '', headers });
}

// Each case in its own process (the default runs them all that way): cases sharing a process
// share the gate's inline caches and slow each other down.
const only = process.argv[2];
let caseNo = 0;

async function run(label: string, options: RateLimitOptions, contexts: RequestContext[], n: number): Promise<void> {
  if (only !== undefined && String(caseNo++) !== only) return;
  const gate: EdgeHooks = rateLimit({ ...options, log: quietLog });
  const access = gate.access!.bind(gate);
  let refused = 0;
  const pass = async (count: number) => {
    for (let i = 0; i < count; i++) {
      let r = access(contexts[i % contexts.length]!);
      if (r instanceof Promise) r = await r;
      if (r) refused++;
    }
  };
  await pass(n / 10); // warm up: JIT and leases sized to the demand
  refused = 0;
  const t0 = process.hrtime.bigint();
  await pass(n);
  const ns = Number(process.hrtime.bigint() - t0) / n;
  console.log(`${label.padEnd(52)} ${ns.toFixed(0).padStart(5)} ns/request  (${refused} refused of ${n})`);
}

if (only === undefined) {
  const { execFileSync } = await import('node:child_process');
  console.log(`rate-limit gate, each case in a fresh process, node ${process.version}`);
  for (let i = 0; i < 6; i++) process.stdout.write(execFileSync(process.execPath, [import.meta.filename, String(i)]));
  process.exit(0);
}
const N = 2_000_000;
const one = [ctxFor('203.0.113.7')];
await run('one client, allowed (lease fast path)', { rate: '10000000/s' }, one, N);
await run('one client, refused (node bucket empty)', { rate: '1/h', burst: 1 }, one, N / 10);
await run('one API key header, allowed', { rate: '10000000/s', key: 'header:X-Api-Key' }, [ctxFor('203.0.113.7', { 'x-api-key': 'k-123456' })], N);
await run('ip + path, allowed', { rate: '10000000/s', key: ['ip', 'path'] }, one, N);
await run('scoped to /api/ (request outside the scope)', { rate: '1/h', paths: ['/api/'] }, one, N);
const many = Array.from({ length: 1000 }, (_, i) => ctxFor(`198.51.${i >> 8}.${i & 255}`));
await run('1000 clients round robin, allowed', { rate: '10000000/s' }, many, N);
