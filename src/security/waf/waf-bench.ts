// Measures the WAF's cost per request outside the test runner:
//   node src/security/waf/waf-bench.ts
// A benign browser-like request (path, query, User-Agent, Referer, Cookie, X-Forwarded-For) and a
// bare one (path only, as wrk sends it), every built-in rule on, block mode; values seen before
// skip the scan (waf.ts CleanValues), so a last line measures one whose query is new every time.
import { pino } from 'pino';
import type { RequestContext } from '../../edge/phases.ts';
import { newContext } from '../../edge/request.ts';
import { waf } from './waf.ts';

const w = waf({ mode: 'block', log: pino({ level: 'silent' }) });

const browser = (): RequestContext =>
  newContext({
    method: 'GET',
    scheme: 'http',
    httpVersion: '1.1',
    clientIp: '203.0.113.7',
    host: 'shop.example.com',
    path: '/products/shoes/running-shoe-42.html',
    query: 'color=blue&size=42&utm_source=newsletter',
    headers: {
      'user-agent': 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
      referer: 'https://www.example.com/search?q=running+shoes&page=2',
      cookie: 'session=8f2b1c0e9a7d; theme=dark; _ga=GA1.2.123456789.1700000000',
      'x-forwarded-for': '203.0.113.7',
    },
  });
const bare = (): RequestContext => newContext({ method: 'GET', scheme: 'http', httpVersion: '1.1', clientIp: '127.0.0.1', host: 'localhost', path: '/static/1024', query: '', headers: {} });

/** Every request a query string never seen before: the scan the clean-value set cannot spare. */
let serial = 0;
const fresh = (): RequestContext => {
  const ctx = browser();
  return newContext({ ...ctx, query: `color=blue&size=42&page=${serial++}` });
};

function measure(make: () => RequestContext, unique = false): number {
  const ctxs = Array.from({ length: 1024 }, make);
  if (unique) {
    // Values the WAF has not seen: rebuilt per request, outside the timed loop's reuse.
    const n = 50_000;
    const all = Array.from({ length: n }, make);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) w.access(all[i]!);
    return Number(process.hrtime.bigint() - t0) / 1e3 / n;
  }
  for (let i = 0; i < 200_000; i++) w.access(ctxs[i & 1023]!);
  const runs: number[] = [];
  for (let r = 0; r < 5; r++) {
    const n = 200_000;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) w.access(ctxs[i & 1023]!);
    runs.push(Number(process.hrtime.bigint() - t0) / 1e3 / n);
  }
  return runs.sort((a, b) => a - b)[2]!;
}

console.log(`rules: ${w.rules().length}`);
console.log(`browser-like request: ${measure(browser).toFixed(2)} µs (median of 5 × 200k)`);
console.log(`bare request:         ${measure(bare).toFixed(2)} µs`);
console.log(`browser-like request with a query never seen before: ${measure(fresh, true).toFixed(2)} µs`);
