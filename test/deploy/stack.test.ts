// The compose CDN on loopback, from the shipped files: the shield and two edges run `outpost start`
// on deploy/outpost/*.yaml (rewritten only for ports, paths and addresses), the edges keep their CUs
// in a real Redis Cluster, and a real Prometheus scrapes them with deploy/prometheus/prometheus.yml
// and answers every query of the Grafana dashboard.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { startDemoOrigin, type DemoOrigin } from '../../src/origin/demo-origin.ts';
import { startRedisCluster, type RedisCluster } from '../support/redis-cluster.ts';
import { freePort } from '../support/redis-server.ts';
import { checkUse, dashboardQueries, metricUses, parseExposition, withGrafanaVariables } from './promql.ts';
import { composeDefault, loadCompose, localize, promQuery, readJson, readYaml, ROOT, startCli, startOutpost, startPrometheus, which, type OutpostProcess, type Prometheus } from './support.ts';

const compose = loadCompose();
const KEY = composeDefault((compose.services.shield!.environment as Record<string, string>).OUTPOST_ADMIN_KEY!);
const auth = { authorization: `Bearer ${KEY}` };
const dashboard = readJson('deploy/grafana/dashboards/outpost.json');
const queries = dashboardQueries(dashboard as never);

let dir: string;
let cluster: RedisCluster;
let origin: DemoOrigin;
let shield: OutpostProcess;
let edges: OutpostProcess[] = [];
let lb: OutpostProcess | undefined;

// The load balancer role (`outpost lb`) may not be in this tree yet; once it is, it runs as compose runs it.
const hasLb = /\boutpost lb\b/.test(readFileSync(join(ROOT, 'src/cli.ts'), 'utf8'));
if (!hasLb) console.warn('test/deploy: `outpost lb` is not in src/cli.ts yet; the load-balancer checks are skipped');
const isLbQuery = (expr: string) => metricUses(expr).every((u) => u.name.startsWith('outpost_lb_'));

/** compose's `outpost lb` command with this machine's addresses: its config localized, edge-3 left out. */
async function startLb(): Promise<OutpostProcess> {
  const cmd = compose.services.lb!.command as string[];
  const port = await freePort();
  const adminPort = await freePort();
  const raw = readYaml('deploy/outpost/lb.yaml') as { lb: { admin: Record<string, unknown> }; log?: unknown };
  raw.lb.admin = { ...raw.lb.admin, host: '127.0.0.1', port: adminPort };
  raw.log = { level: 'warn', access: false };
  const file = join(dir, 'lb.json');
  writeFileSync(file, JSON.stringify(raw));
  const args: string[] = [];
  for (let i = 0; i < cmd.length; i++) {
    const [flag, value] = [cmd[i]!, cmd[i + 1]];
    if (flag === '--config') args.push(flag, file);
    else if (flag === '--listen') args.push(flag, `127.0.0.1:${port}`);
    else if (flag === '--edge') {
      const name = value!.split('=')[0]!;
      const e = edges[Number(name.replace('edge-', '')) - 1];
      if (e) args.push(flag, `${name}=${e.base}`);
    } else {
      args.push(flag);
      continue;
    }
    i++;
  }
  return startCli('lb', args, port, adminPort);
}

async function get(url: string, headers: Record<string, string> = {}, method = 'GET', body?: string) {
  const r = await request(url, { method: method as 'GET', headers, body: body ?? null, headersTimeout: 10_000, bodyTimeout: 10_000 });
  const text = await r.body.text();
  return { status: r.statusCode, headers: r.headers, text };
}
const header = (h: Record<string, string | string[] | undefined>, name: string) => String(h[name] ?? '');

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'outpost-deploy-'));
  [cluster, origin] = await Promise.all([startRedisCluster(3), startDemoOrigin({ port: 0 })]);
  const env = { OUTPOST_ADMIN_KEY: KEY };
  shield = await startOutpost(dir, 'shield', (ports) => localize(readYaml('deploy/outpost/shield.yaml'), join(dir, 'shield'), { peers: { 'http://origin:9000': origin.url }, ...ports }), env);
  edges = await Promise.all(
    [1, 2].map((n) =>
      startOutpost(dir, `edge-${n}`, (ports) => localize(readYaml(`deploy/outpost/edge-${n}.yaml`), join(dir, `edge-${n}`), { peers: { 'http://shield:8080': shield.base }, storeNodes: cluster.nodes, ...ports }), env),
    ),
  );
  if (hasLb) lb = await startLb();
}, 120_000);

afterAll(async () => {
  await lb?.stop();
  await Promise.all(edges.map((e) => e.stop()));
  await shield?.stop();
  await origin?.close();
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('the compose CDN on loopback', () => {
  it('the shield refuses requests without the origin secret; edges reach the origin through it, once for both', async () => {
    const direct = await get(`${shield.base}/item?max_age=60`);
    expect(direct.status).toBe(403);
    expect(origin.stats().byPath['/item?max_age=60'] ?? 0).toBe(0);

    // One Host for both, as behind the load balancer: the shield's cache key includes it.
    const host = { host: 'cdn.test' };
    const a = await get(`${edges[0]!.base}/item?max_age=60`, host);
    expect(a.status).toBe(200);
    expect(header(a.headers, 'x-cache-status')).toBe('MISS');
    expect(header(a.headers, 'cache-status')).toMatch(/edge-1/);
    const b = await get(`${edges[1]!.base}/item?max_age=60`, host);
    expect(b.status).toBe(200);
    expect(header(b.headers, 'x-cache-status')).toBe('MISS');
    // edge-2's miss was the shield's hit: the origin was asked once.
    expect(origin.stats().byPath['/item?max_age=60']).toBe(1);
    expect(header((await get(`${edges[0]!.base}/item?max_age=60`, host)).headers, 'x-cache-status')).toBe('HIT');
  });

  it('the admin API wants the compose key; a CU saved through edge-1 runs on edge-2 (shared Redis Cluster)', async () => {
    const code = readFileSync(join(ROOT, 'examples/cus/token-auth.js'), 'utf8');
    const cu = JSON.stringify({ phase: 'access', code, hosts: ['secure.test'], failure: 'closed' });
    expect((await get(`${edges[0]!.admin}/cus/deploy-auth`, { 'content-type': 'application/json' }, 'PUT', cu)).status).toBe(401);
    const saved = await get(`${edges[0]!.admin}/cus/deploy-auth`, { ...auth, 'content-type': 'application/json' }, 'PUT', cu);
    expect(saved.status, saved.text).toBe(200);
    let status = 0;
    for (let i = 0; i < 100 && status !== 403; i++) {
      status = (await get(`${edges[1]!.base}/private`, { host: 'secure.test' })).status;
      if (status !== 403) await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toBe(403);
    expect((await get(`${edges[1]!.base}/private?token=token`, { host: 'secure.test' })).status).toBe(200);
  });

  it('every metric the dashboard queries is exported by a running edge, with the type its query needs', async () => {
    // Traffic for every per-CU series: a sampled CU (runs and skips) and a broken one (errors, breaker).
    const put = async (id: string, body: object) => {
      const r = await get(`${edges[1]!.admin}/cus/${id}`, { ...auth, 'content-type': 'application/json' }, 'PUT', JSON.stringify(body));
      expect(r.status, r.text).toBe(200);
      return (JSON.parse(r.text) as { version: number }).version;
    };
    const versions = {
      'deploy-sampled': await put('deploy-sampled', { phase: 'header_filter', code: "res.headers['x-sampled'] = '1';", sampling: 50, hosts: ['sampled.test'] }),
      'deploy-broken': await put('deploy-broken', { phase: 'access', code: "throw new Error('broken on purpose');", hosts: ['broken.test'] }),
    };
    // Until edge-2 runs both (the change reaches it through the Redis Cluster).
    const running = (text: string) => Object.entries(versions).every(([id, v]) => text.includes(`outpost_cu_loaded_version{cu="${id}"} ${v}`));
    for (let i = 0; i < 100 && !running((await get(`${edges[1]!.admin}/metrics`, auth)).text); i++) await new Promise((r) => setTimeout(r, 100));
    for (let i = 0; i < 40; i++) await get(`${edges[1]!.base}/s${i % 4}`, { host: 'sampled.test' });
    for (let i = 0; i < 8; i++) await get(`${edges[1]!.base}/b`, { host: 'broken.test' });
    for (let i = 0; i < 3; i++) await get(`${edges[1]!.base}/private`, { host: 'secure.test' });
    await get(`${edges[1]!.base}/err?status=503&cc=no-store`);

    expect((await get(`${edges[1]!.admin}/metrics`)).status).toBe(401);
    const m = await get(`${edges[1]!.admin}/metrics`, auth);
    expect(m.status).toBe(200);
    const families = parseExposition(m.text);
    const problems: string[] = [];
    for (const q of queries.filter((x) => !isLbQuery(x.expr))) {
      for (const use of metricUses(q.expr)) {
        // A variable's label_values() selector only names series; rate() does not apply to it.
        const p = q.where.startsWith('variable') ? (families.has(use.name) ? undefined : `${use.name} is not exported`) : checkUse(use, families);
        if (p) problems.push(`${q.where}: ${p}`);
      }
    }
    expect(problems).toEqual([]);

    // The seed's panels and the per-CU ones have series to draw, not just a declared family.
    const withSamples = [
      'outpost_requests_total',
      'outpost_response_bytes_total',
      'outpost_request_duration_seconds',
      'outpost_upstream_response_seconds',
      'outpost_cu_runs_total',
      'outpost_cu_run_seconds',
      'outpost_cu_skips_total',
      'outpost_cu_exits_total',
      'outpost_cu_errors_total',
      'outpost_cu_breaker_open',
      'outpost_cu_loaded_version',
    ];
    for (const name of withSamples) expect(families.get(name)?.samples ?? 0, name).toBeGreaterThan(0);
    expect(m.text).toMatch(/outpost_cu_exits_total\{cu="deploy-auth",status="403"\} [1-9]/);
    expect(m.text).toMatch(/outpost_cu_breaker_open\{cu="deploy-broken"\} 1/);
  });

  const prometheus = which('prometheus');
  if (!prometheus) console.warn('test/deploy: the prometheus binary is not installed (apt-get install prometheus); the scrape test is skipped');
  it.skipIf(!prometheus)(
    `a real Prometheus scrapes the nodes with deploy/prometheus/prometheus.yml and answers every dashboard query${prometheus ? '' : ' (skipped: prometheus is not installed; apt-get install prometheus)'}`,
    async () => {
      const promDir = join(dir, 'prometheus');
      const keyFile = join(dir, 'admin-key');
      writeFileSync(keyFile, KEY);
      // The shipped file, with compose's addresses swapped for this machine's and a 1 s interval.
      const local: Record<string, string> = { 'edge-1:8081': `127.0.0.1:${edges[0]!.adminPort}`, 'edge-2:8081': `127.0.0.1:${edges[1]!.adminPort}`, 'shield:8081': `127.0.0.1:${shield.adminPort}` };
      if (lb) local['lb:8001'] = `127.0.0.1:${lb.adminPort}`;
      const targets = Object.keys(local).length;
      const config = parseYaml(readFileSync(join(ROOT, 'deploy/prometheus/prometheus.yml'), 'utf8').replaceAll('/etc/prometheus/outpost-admin-key', keyFile)) as {
        global: Record<string, string>;
        scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }>;
      };
      config.global.scrape_interval = '1s';
      config.global.scrape_timeout = '1s';
      config.scrape_configs = config.scrape_configs.filter((j) => j.job_name !== 'prometheus');
      for (const j of config.scrape_configs) {
        j.static_configs = j.static_configs.filter((s) => s.targets.every((t) => local[t]));
        for (const s of j.static_configs) s.targets = s.targets.map((t) => local[t]!);
      }
      writeFileSync(join(dir, 'prometheus.yml'), stringifyYaml(config));
      let prom: Prometheus | undefined;
      try {
        prom = await startPrometheus(prometheus!, join(dir, 'prometheus.yml'), promDir);
        // Until every node was scraped successfully at least three times (rate() needs two points).
        const deadline = Date.now() + 30_000;
        for (;;) {
          const up = await promQuery(prom.url, 'count_over_time(up[1m]) >= 3 and up == 1');
          if (up.data?.result.length === targets) break;
          if (Date.now() > deadline) throw new Error(`targets not up: ${JSON.stringify(up)}\n${prom.output()}`);
          await get(`${(lb ?? edges[0]!).base}/item?max_age=60`);
          await new Promise((r) => setTimeout(r, 300));
        }
        const nodes = await promQuery(prom.url, 'sum by (job, instance, role) (outpost_requests_total)');
        expect(nodes.data!.result.map((r) => `${r.metric.job}/${r.metric.instance}/${r.metric.role}`).sort()).toEqual(['outpost-edge/edge-1/edge', 'outpost-edge/edge-2/edge', 'outpost-shield/shield/shield']);

        const failed: string[] = [];
        const empty: string[] = [];
        for (const q of queries) {
          const expr = withGrafanaVariables(q.expr);
          const r = await promQuery(prom.url, expr);
          if (r.status !== 'success') failed.push(`${q.where}: ${r.error}`);
          else if (r.data!.result.length === 0) empty.push(q.where);
        }
        expect(failed).toEqual([]);
        // Series that need more history than this test has (a 1 h trend), or an event it did not cause.
        const mayBeEmpty = [/Bandwidth forecast" [BC]/, /Origin requests and errors" B/, /Collapsed and stale/, /Refused requests and purges/, /Cache entries and evictions" [CD]/, /LB failures and retries/];
        if (!lb) mayBeEmpty.push(...queries.filter((q) => isLbQuery(q.expr)).map((q) => new RegExp(q.where.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))));
        expect(empty.filter((w) => !mayBeEmpty.some((re) => re.test(w)))).toEqual([]);

        // The forecast's expression gives a value once its subquery has points (a 1 s step here).
        const forecast = (dashboard as { panels: Array<{ title: string; targets?: Array<{ expr: string }> }> }).panels.find((p) => p.title === 'Bandwidth forecast')!.targets![1]!.expr;
        const shortForecast = withGrafanaVariables(forecast).replace('[1h:1m]', '[1m:1s]').replace('[5m]', '[10s]');
        let short = await promQuery(prom.url, shortForecast);
        for (let i = 0; i < 50 && short.status === 'success' && short.data!.result.length === 0; i++) {
          await new Promise((r) => setTimeout(r, 200));
          short = await promQuery(prom.url, shortForecast);
        }
        expect(short.status).toBe('success');
        expect(short.data!.result).toHaveLength(1);
        expect(Number.isFinite(Number(short.data!.result[0]!.value[1]))).toBe(true);
      } finally {
        await prom?.stop();
      }
    },
    60_000,
  );

  it.skipIf(!hasLb)(`the load balancer runs with compose's flags and lb.yaml in front of the edges, and exports what the LB panels query${hasLb ? '' : ' (skipped: no `outpost lb` command yet)'}`, async () => {
    const first = await get(`${lb!.base}/lb-check?max_age=60`, { host: 'cdn.test' });
    expect(first.status).toBe(200);
    const served = header(first.headers, 'cache-status').match(/edge-\d/)?.[0];
    expect(served).toBeDefined();
    // The same URL goes to the same edge (consistent hashing), whose cache now has it.
    for (let i = 0; i < 3; i++) {
      const again = await get(`${lb!.base}/lb-check?max_age=60`, { host: 'cdn.test' });
      expect(header(again.headers, 'cache-status')).toContain(served!);
      expect(header(again.headers, 'x-cache-status')).toBe('HIT');
    }
    for (let i = 0; i < 20; i++) await get(`${lb!.base}/spread-${i}`, { host: 'cdn.test' });

    expect((await get(`${lb!.admin}/metrics`)).status).toBe(401);
    const m = await get(`${lb!.admin}/metrics`, auth);
    expect(m.status).toBe(200);
    const families = parseExposition(m.text);
    const lbQueries = queries.filter((q) => isLbQuery(q.expr));
    expect(lbQueries.length).toBeGreaterThan(3);
    const problems = lbQueries.flatMap((q) => metricUses(q.expr).flatMap((u) => checkUse(u, families) ?? []).map((p) => `${q.where}: ${p}`));
    expect(problems).toEqual([]);
    for (const name of ['outpost_lb_requests_total', 'outpost_lb_request_duration_seconds', 'outpost_lb_member_up']) expect(families.get(name)?.samples ?? 0, name).toBeGreaterThan(0);
    expect(m.text).toMatch(/outpost_lb_member_up\{member="edge-1"\} 1/);
    expect(m.text).toMatch(/outpost_lb_member_up\{member="edge-2"\} 1/);
  }, 30_000);
});
