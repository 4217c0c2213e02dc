// Measures the rules engine's cost per request outside the test runner:
//   node src/rules/rules-bench.ts
// 100 rules of mixed kinds (path+extension, host, header, method+cookie) that a browser-like
// request does not match, then the same set with the last rule matching.
import { pino } from 'pino';
import type { RequestContext } from '../edge/phases.ts';
import { newContext } from '../edge/request.ts';
import { loadRules } from './compile.ts';
import { rulesHooks } from './hooks.ts';

const rules = Array.from({ length: 100 }, (_, i) => ({
  name: `r${i}`,
  when:
    i % 4 === 0
      ? { path: `/section${i}/**`, extension: ['mp4', 'm3u8'] }
      : i % 4 === 1
        ? { host: `site${i}.example.com` }
        : i % 4 === 2
          ? { header: { name: 'x-device', equals: `tv${i}` } }
          : { all: [{ method: 'POST' }, { cookie: { name: `c${i}` } }] },
  then: { cacheTtl: 60 },
}));

const ctxOf = (i: number): RequestContext =>
  newContext({
    method: 'GET',
    scheme: 'http',
    httpVersion: '1.1',
    clientIp: '203.0.113.7',
    host: 'shop.example.com',
    path: `/products/item-${i}.html`,
    query: 'ref=home',
    headers: { 'user-agent': 'Mozilla/5.0', cookie: 'session=abc; theme=dark', accept: 'text/html', 'x-geoip-country-code': 'DE' },
  });

/** Median and best of five timed runs (the best shows the engine's own cost on a busy machine). */
function measure(set: unknown): string {
  const compiled = loadRules(set);
  const hooks = rulesHooks({ current: () => compiled }, { log: pino({ level: 'silent' }) });
  const rewrite = hooks.rewrite!.bind(hooks);
  const runs: number[] = [];
  for (let r = 0; r < 6; r++) {
    const ctxs = Array.from({ length: 1024 }, (_, i) => ctxOf(i));
    const n = 100_000;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) rewrite(ctxs[i & 1023]!);
    runs.push(Number(process.hrtime.bigint() - t0) / 1e3 / n);
  }
  runs.shift(); // warm-up
  runs.sort((a, b) => a - b);
  return `${runs[2]!.toFixed(2)} µs per request (best ${runs[0]!.toFixed(2)})`;
}

const none = measure({ rules });
const last = measure({ rules: [...rules, { name: 'last', when: { path: '/products/**', extension: 'html' }, then: { cacheTtl: 60, responseHeaders: { set: { 'x-rule': 'last' } } } }] });
const ab = measure({ rules: [{ then: { ab: { name: 'exp1', key: 'ip', buckets: [{ name: 'a', percent: 50 }, { name: 'b', percent: 50 }] } } }] });
console.log(`100 rules, none matching: ${none}`);
console.log(`101 rules, the last matching (ttl + response header): ${last}`);
console.log(`1 A/B rule (hash of the client address): ${ab}`);
