import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { SCENARIOS, selectScenarios } from './scenarios/index.ts';
import { parseWrkJson } from './load/wrk.ts';
import { parseH2load } from './load/h2load.ts';
import { responseReader } from './load/http1-reader.ts';
import { runHerd } from './load/herd.ts';
import { openIdleConnections } from './load/idle-connections.ts';
import { benchRecord } from './report-fixtures.ts';
import { evaluateBars, summarise } from './report.ts';
import type { RunRecord } from './runner.ts';
import { nginxConfig } from './servers/nginx.ts';
import { outpostConfig } from './servers/outpost.ts';
import { summarise as memorySummary } from './scenarios/memory.ts';
import { pssBytes } from './machine.ts';
import { summariseProfile, type CpuProfile } from './profile-summary.ts';
import { percentile, median } from './stats.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

function bench(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['bench/run.ts', ...args], { cwd: root, timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      resolve(typeof a === 'object' && a !== null ? a.port : 0);
    });
  });
}

describe('bench --quick --dry-run', () => {
  it('exits 0 and lists every scenario without measuring', async () => {
    const r = await bench(['--quick', '--dry-run']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    for (const s of SCENARIOS) expect(r.stdout).toContain(s.id);
    expect(r.stdout).toMatch(/measured runs, about \d+ s/);
    expect(r.stdout).toContain('dry run, nothing is started');
  });

  it('plans only the scenarios and servers asked for', async () => {
    const r = await bench(['--quick', '--dry-run', '--only', 'herd', '--servers', 'nginx,varnish']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('herd-w2');
    expect(r.stdout).not.toContain('hit-1k-w1');
    expect(r.stdout).toMatch(/herd-w2\s+1× \[nginx, varnish\]/);
  });

  it('rejects an unknown server or scenario with exit code 2', async () => {
    expect((await bench(['--dry-run', '--servers', 'apache'])).code).toBe(2);
    expect((await bench(['--dry-run', '--only', 'nope'])).code).toBe(2);
  });
});

describe('scenario selection', () => {
  it('selects by id prefix', () => {
    expect(selectScenarios(['hit-1k']).map((s) => s.id)).toEqual(['hit-1k-w1', 'hit-1k-w2']);
    expect(selectScenarios(undefined)).toHaveLength(SCENARIOS.length);
  });
});

describe('load result parsing', () => {
  it('reads the JSON line of the wrk done() hook', () => {
    const r = parseWrkJson('{"requests":300000,"duration_us":3000000,"bytes":314572800,"connect":0,"read":1,"write":0,"status":2,"timeout":0,"p50":450,"p99":1234,"max":9000}');
    expect(r).toMatchObject({ rps: 100_000, p50Ms: 0.45, p99Ms: 1.23, maxMs: 9, errors: 3, durationS: 3, mibPerS: 100 });
  });

  it('reads h2load summary lines', () => {
    const out = `finished in 3.00s, 68885.00 req/s, 69.18MB/s
requests: 137770 total, 137770 started, 137770 done, 137770 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 137770 2xx, 0 3xx, 0 4xx, 0 5xx
                     min         max         mean         sd        +/- sd
time for request:      280us     17.98ms       576us       804us    98.69%`;
    expect(parseH2load(out)).toMatchObject({ rps: 68885, requests: 137770, errors: 0, maxMs: 17.98, p50Ms: 0.58, mibPerS: 69.2 });
  });

  it('frames content-length and chunked responses', () => {
    const a = responseReader();
    expect(a.push(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab'))).toBeUndefined();
    expect(a.push(Buffer.from('cde'))).toBe(200);
    const b = responseReader();
    expect(b.push(Buffer.from('HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n'))).toBeUndefined();
    expect(b.push(Buffer.from('0\r\n\r\n'))).toBe(404);
  });

  it('computes nearest-rank percentiles and medians', () => {
    expect(percentile([5, 1, 4, 2, 3], 50)).toBe(3);
    expect(percentile([1, 2, 3, 4], 99)).toBe(4);
    expect(median([3, 1, 2, 10])).toBe(2.5);
  });
});

describe('bench load generators on a real socket', () => {
  it('writes the herd at once and times every client', async () => {
    let hits = 0;
    const server = createServer((_req, res) => {
      hits++;
      setTimeout(() => res.end('ok'), 50);
    });
    const port = await listen(server);
    try {
      const r = await runHerd({ port, path: '/cold', clients: 50, timeoutMs: 5_000 });
      expect(r).toMatchObject({ clients: 50, ok: 50, errors: 0 });
      expect(hits).toBe(50);
      expect(r.p50Ms).toBeGreaterThanOrEqual(45);
      expect(r.maxMs).toBeGreaterThanOrEqual(r.p99Ms);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it('holds idle keep-alive connections after one request each', async () => {
    const server = createServer((_req, res) => res.end('x'));
    server.keepAliveTimeout = 30_000;
    const port = await listen(server);
    const conns = await openIdleConnections({ port, path: '/', count: 100, parallel: 20, deadlineMs: 10_000 });
    try {
      expect(conns.open()).toBe(100);
    } finally {
      conns.close();
      server.closeAllConnections();
      server.close();
    }
  });
});

describe('report', () => {
  const rec = (scenario: string, server: RunRecord['server'], metrics: Record<string, number>, extra: Partial<RunRecord> = {}): RunRecord =>
    benchRecord(scenario, server, metrics, { phase: 'w1', ...extra });

  it('takes the median of kept runs and ignores discarded ones', () => {
    const s = summarise([
      rec('hit-1k-w1', 'nginx', { rps: 100 }),
      rec('hit-1k-w1', 'nginx', { rps: 300 }),
      rec('hit-1k-w1', 'nginx', { rps: 200 }),
      rec('hit-1k-w1', 'nginx', { rps: 1 }, { discarded: true }),
    ]);
    expect(s[0]?.metrics['rps']).toEqual({ median: 200, min: 100, max: 300 });
    expect(s[0]?.discarded).toBe(1);
  });

  it('passes or fails the bars from ratios measured in the same run', () => {
    const bars = evaluateBars(
      summarise([
        rec('hit-1k-w1', 'outpost', { rps: 75 }),
        rec('hit-1k-w1', 'nginx', { rps: 100 }),
        rec('hit-1k-w1', 'varnish', { rps: 80 }),
        rec('herd-w2', 'outpost', { originRequests: 2, p99Ms: 210 }),
      ]),
    );
    const by = (prefix: string): boolean | undefined => bars.find((b) => b.bar.startsWith(prefix))?.pass;
    expect(by('HIT 1 KB, 1 worker pinned: Outpost ÷ nginx')).toBe(true);
    expect(by('HIT 1 KB, 1 worker pinned: Outpost ÷ Varnish')).toBe(false);
    expect(by('HIT 16 KB, 1 worker pinned: Outpost ÷ nginx')).toBeUndefined();
    expect(by('Herd, 2 workers: Outpost origin requests')).toBe(false);
    expect(by('Herd, 2 workers: Outpost p99')).toBe(true);
  });
});

describe('nginx configuration', () => {
  it('has the cache lock, stale updating, upstream keep-alive and no access log', () => {
    const conf = nginxConfig({ dir: '/tmp/x', port: 1, originPort: 2, workers: 2, sendfile: false, maxFiles: 20_000, root: false });
    for (const line of ['proxy_cache_lock on;', 'proxy_cache_use_stale updating', 'proxy_cache_background_update on;', 'keepalive 64;', 'access_log off;', 'sendfile off;', 'worker_processes 2;']) {
      expect(conf).toContain(line);
    }
  });
});

describe('Outpost configuration', () => {
  it('puts a disk tier behind the RAM tier, like the disk cache nginx keeps, in the scratch folder', () => {
    const conf = outpostConfig({ port: 1, tlsPort: 0, adminPort: 2, originPort: 3, workers: 1, dir: '/tmp/x' }) as { cache: { disk: { enabled: boolean; path: string } } };
    expect(conf.cache.disk).toMatchObject({ enabled: true, path: '/tmp/x/cache' });
  });
});

describe('memory accounting', () => {
  it('reads the proportional set size of a live process', () => {
    const pss = pssBytes(process.pid);
    expect(pss).toBeGreaterThan(0);
    expect(pss).toBeLessThanOrEqual(process.memoryUsage().rss * 1.1);
  });

  it('reports PSS next to RSS, for all processes and for the largest worker', () => {
    const s = memorySummary([
      { pid: 1, role: 'main', rssMiB: 120, pssMiB: 40 },
      { pid: 2, role: 'worker', rssMiB: 200, pssMiB: 120 },
      { pid: 3, role: 'worker', rssMiB: 180, pssMiB: 130 },
    ]);
    expect(s).toEqual({ totalMiB: 500, workerMiB: 200, totalPssMiB: 290, workerPssMiB: 120 });
  });
});

describe('CPU profile summary', () => {
  it('sums self and inclusive time by function and leaves idle time out', () => {
    const frame = (functionName: string, url = '') => ({ functionName, url, lineNumber: 0 });
    const profile: CpuProfile = {
      nodes: [
        { id: 1, callFrame: frame('(root)'), children: [2, 4] },
        { id: 2, callFrame: frame('run', 'file:///app/src/edge/driver.ts'), children: [3] },
        { id: 3, callFrame: frame('writev'), children: [] },
        { id: 4, callFrame: frame('(idle)'), children: [] },
      ],
      startTime: 0,
      endTime: 4000,
      samples: [2, 3, 3, 4],
      timeDeltas: [1000, 1000, 1000, 1000],
    };
    const s = summariseProfile(profile, '/app/');
    expect(s.busyMs).toBe(3);
    expect(s.idleMs).toBe(1);
    const run = s.functions.find((f) => f.name === 'run');
    expect(run).toMatchObject({ where: 'src/edge/driver.ts:1', selfMs: 1, totalMs: 3 });
    expect(s.functions.find((f) => f.name === 'writev')).toMatchObject({ selfMs: 2, totalMs: 2 });
    expect(s.areas.map((a) => a.area)).toEqual(['native / V8 / libuv (no JS frame)', 'src/edge']);
  });
});
