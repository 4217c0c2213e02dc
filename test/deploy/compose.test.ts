// The shipped deployment files hang together: docker-compose.yml, the Dockerfile, the role configs in
// deploy/outpost/, Prometheus's and Grafana's files. No Docker engine runs here, so these check what
// compose and the containers would trip over: missing files, names and ports that do not match,
// configs Outpost refuses, and a Prometheus config promtool rejects.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { resolveConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/log/logger.ts';
import { securityHooks } from '../../src/security/cascade.ts';
import { bindMounts, composeDefault, dependsOn, loadCompose, readJson, readYaml, roleConfigOf, ROOT, which, type ComposeService } from './support.ts';

const run = promisify(execFile);
const compose = loadCompose();
const services = compose.services;
const OUTPOST_ROLES = ['origin', 'shield', 'edge-1', 'edge-2', 'edge-3', 'lb'];
const isOutpost = (s: ComposeService) => s.build !== undefined;
const command = (s: ComposeService): string[] => (Array.isArray(s.command) ? s.command : []);
const env = (s: ComposeService): Record<string, string> => (Array.isArray(s.environment) ? Object.fromEntries(s.environment.map((e) => e.split('='))) : (s.environment ?? {}));
const adminKey = composeDefault(env(services.shield!).OUTPOST_ADMIN_KEY ?? '');

type Raw = Record<string, unknown>;
// The nodes (`outpost start`) and the load balancer (`outpost lb`) read role configs from deploy/outpost/.
const roleConfigs = Object.entries(services)
  .filter(([, s]) => command(s)[0] === 'start')
  .map(([name, s]) => ({ name, file: roleConfigOf(s) }))
  .filter((r): r is { name: string; file: string } => r.file !== undefined);
const lbFile = roleConfigOf(services.lb!)!;
const lbRaw = () => readYaml(lbFile) as { lb: { admin: { host: string; port: number; apiKey: string } } };
const rawOf = (file: string) => readYaml(file) as { edge: { port: number; name: string }; admin: { port: number }; upstream: { pools: Record<string, { peers: string[]; headers?: Record<string, string> }> }; compute?: { store?: { nodes?: string[] } }; security?: { originLock?: { header?: string; secrets: string[] } } };

/** The port a service listens on inside the compose network, as its command or role config says. */
function listenPort(service: string): number | undefined {
  const s = services[service];
  if (!s) return undefined;
  const cmd = command(s);
  const file = roleConfigOf(s);
  if (file && cmd[0] === 'start') return rawOf(file).edge.port;
  const flag = cmd.indexOf('--port');
  if (flag >= 0) return Number(cmd[flag + 1]);
  const listen = cmd.indexOf('--listen');
  if (listen >= 0) return Number(cmd[listen + 1]!.split(':').at(-1));
  return undefined;
}

describe('docker-compose.yml', () => {
  it('has the whole CDN: origin, shield, three edges, load balancer, six Redis Cluster nodes and their init, Prometheus, Grafana', () => {
    const expected = [...OUTPOST_ROLES, ...[1, 2, 3, 4, 5, 6].map((n) => `redis-${n}`), 'redis-cluster-init', 'prometheus', 'grafana'];
    expect(Object.keys(services).sort()).toEqual(expected.sort());
  });

  it('builds every Outpost role from the Dockerfile and pins every other image to a version', () => {
    for (const [name, s] of Object.entries(services)) {
      if (OUTPOST_ROLES.includes(name)) {
        expect(s.build, name).toBe('.');
        expect(s.image, name).toBe('outpost:latest');
      } else {
        expect(s.image, name).toMatch(/^[\w./-]+:v?\d+(\.\d+)*(-[\w]+)?$/);
      }
    }
    expect(existsSync(join(ROOT, 'Dockerfile'))).toBe(true);
  });

  it('depends only on services it has, without cycles; a healthy dependency has a health check; the one-shot init does not restart', () => {
    const conditions = new Set(['service_started', 'service_healthy', 'service_completed_successfully']);
    const hasHealthcheck = (name: string) => services[name]!.healthcheck !== undefined || isOutpost(services[name]!); // the Dockerfile's HEALTHCHECK
    for (const [name, s] of Object.entries(services)) {
      for (const [dep, condition] of Object.entries(dependsOn(s))) {
        expect(services[dep], `${name} depends on ${dep}`).toBeDefined();
        expect(conditions.has(condition), `${name} → ${dep}: ${condition}`).toBe(true);
        if (condition === 'service_healthy') expect(hasHealthcheck(dep), `${dep} has a health check`).toBe(true);
        if (condition === 'service_completed_successfully') expect((services[dep] as { restart?: string }).restart, dep).toBe('no');
      }
    }
    const visiting = new Set<string>();
    const done = new Set<string>();
    const visit = (n: string, path: string[]) => {
      if (done.has(n)) return;
      expect(visiting.has(n), `dependency cycle: ${[...path, n].join(' → ')}`).toBe(false);
      visiting.add(n);
      for (const d of Object.keys(dependsOn(services[n]!))) visit(d, [...path, n]);
      visiting.delete(n);
      done.add(n);
    };
    for (const n of Object.keys(services)) visit(n, []);
  });

  it('publishes each host port once, the load balancer\'s traffic port to all, the rest to loopback only', () => {
    const seen = new Map<string, string>();
    for (const [name, s] of Object.entries(services)) {
      for (const p of s.ports ?? []) {
        const parts = p.split(':');
        expect(parts.length, `${name}: ${p}`).toBeGreaterThanOrEqual(2);
        const host = parts.at(-2)!;
        const container = Number(parts.at(-1));
        expect(seen.has(host), `host port ${host} of ${name} is also ${seen.get(host)}'s`).toBe(false);
        seen.set(host, name);
        expect(Number.isInteger(container) && container > 0, `${name}: ${p}`).toBe(true);
        // Only client traffic is public: admin APIs, the origin and the monitoring stay on loopback.
        if (name === 'lb' && container === 8080) expect(parts.length).toBe(2);
        else expect(parts[0], `${name} publishes ${p} beyond loopback`).toBe('127.0.0.1');
      }
    }
    expect(seen.get('8080')).toBe('lb');
  });

  it('mounts only files and folders that exist, and names only declared volumes and configs', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const m of bindMounts(s)) expect(existsSync(join(ROOT, m.host)), `${name} mounts ${m.host}`).toBe(true);
      for (const v of s.volumes ?? []) {
        const src = v.split(':')[0]!;
        if (!src.startsWith('./') && !src.startsWith('/')) expect(compose.volumes, `${name}: volume ${src}`).toHaveProperty(src);
      }
      for (const c of s.configs ?? []) expect(compose.configs, `${name}: config ${c.source}`).toHaveProperty(c.source);
    }
  });

  it('escapes every shell $ as $$, so compose interpolates only the variables meant for it', () => {
    const text = readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')
      .split('\n')
      .filter((l) => !l.trimStart().startsWith('#'))
      .join('\n')
      .replace(/\$\$/g, '');
    const dollars = text.match(/\$\{?[^\s"']*/g) ?? [];
    for (const d of dollars) expect(d, 'unescaped $ in docker-compose.yml').toMatch(/^\$\{OUTPOST_ADMIN_KEY:-[^}]+\}$/);
  });

  it('runs each node role from a role config in deploy/outpost/ that Outpost accepts, security settings included', () => {
    expect(roleConfigs.map((r) => r.name).sort()).toEqual(['edge-1', 'edge-2', 'edge-3', 'shield']);
    const inDeploy = readdirSync(join(ROOT, 'deploy/outpost')).filter((f) => f.endsWith('.yaml'));
    expect([...roleConfigs.map((r) => r.file), lbFile].map((f) => f.replace('deploy/outpost/', '')).sort()).toEqual(inDeploy.sort());
    for (const { name, file } of roleConfigs) {
      // The admin API listens off loopback, so without the key compose sets the config is refused.
      expect(() => resolveConfig(readYaml(file)), `${file} without OUTPOST_ADMIN_KEY`).toThrow(/admin\.apiKey/);
      const config = resolveConfig(readYaml(file), { env: { OUTPOST_ADMIN_KEY: adminKey }, source: file });
      expect(config.admin.apiKey, name).toBe(adminKey);
      expect(config.edge.port, name).toBe(8080);
      expect(config.admin.port, name).toBe(8081);
      securityHooks(config.security, createLogger('silent'));
    }
    expect(new Set(roleConfigs.map((r) => rawOf(r.file).edge.name)).size).toBe(roleConfigs.length);
  });

  it('points every peer at a compose service on the port it listens on: edges → shield → origin', () => {
    for (const { name, file } of roleConfigs) {
      for (const [pool, p] of Object.entries(rawOf(file).upstream.pools)) {
        for (const peer of p.peers) {
          const u = new URL(peer);
          expect(services[u.hostname], `${name} pool ${pool} → ${peer}`).toBeDefined();
          expect(listenPort(u.hostname), `${name} → ${peer}`).toBe(Number(u.port));
          expect(Object.keys(dependsOn(services[name]!)), `${name} waits for ${u.hostname}`).toContain(u.hostname);
        }
      }
    }
    expect(rawOf('deploy/outpost/shield.yaml').upstream.pools.default!.peers).toEqual(['http://origin:9000']);
    for (const n of [1, 2, 3]) expect(rawOf(`deploy/outpost/edge-${n}.yaml`).upstream.pools.default!.peers).toEqual(['http://shield:8080']);
  });

  it('has every edge send the very secret header the shield\'s origin lock asks for', () => {
    const lock = rawOf('deploy/outpost/shield.yaml').security!.originLock!;
    const header = lock.header ?? 'x-origin-secret';
    for (const n of [1, 2, 3]) {
      const headers = rawOf(`deploy/outpost/edge-${n}.yaml`).upstream.pools.default!.headers ?? {};
      expect(lock.secrets, `edge-${n}`).toContain(headers[header]);
    }
  });

  it('stores CUs in the compose Redis Cluster, whose init joins exactly the six nodes', () => {
    const redisNodes = Object.keys(services).filter((n) => /^redis-\d+$/.test(n));
    for (const n of [1, 2, 3]) {
      for (const node of rawOf(`deploy/outpost/edge-${n}.yaml`).compute!.store!.nodes!) {
        const u = new URL(node);
        expect(redisNodes, node).toContain(u.hostname);
        const cmd = command(services[u.hostname]!);
        expect(cmd[cmd.indexOf('--port') + 1], node).toBe(u.port);
        expect(cmd[cmd.indexOf('--cluster-enabled') + 1]).toBe('yes');
      }
    }
    const init = services['redis-cluster-init']!;
    const script = command(init).join('\n');
    const loop = script.match(/for n in ([\d ]+);/)![1]!.trim().split(/\s+/);
    expect(loop.map((n) => `redis-${n}`).sort()).toEqual(redisNodes.sort());
    expect(script).toMatch(/redis-cli --cluster create .* --cluster-replicas 1 --cluster-yes/);
    expect(Object.keys(dependsOn(init)).sort()).toEqual(redisNodes.sort());
  });

  it('runs the load balancer over the three edges on the port they serve, its admin API keyed like the nodes\'', () => {
    const cmd = command(services.lb!);
    expect(cmd[0]).toBe('lb');
    const lb = resolveConfig(readYaml(lbFile), { source: lbFile }).lb;
    expect(lb.admin).toEqual({ host: '0.0.0.0', port: 8001, apiKey: adminKey });
    expect(services.lb!.ports).toContain(`127.0.0.1:${lb.admin.port}:${lb.admin.port}`);
    expect(cmd[cmd.indexOf('--listen') + 1]).toBe('0.0.0.0:8080');
    const edges = cmd.flatMap((a, i) => (cmd[i - 1] === '--edge' ? [a] : []));
    expect(edges.map((e) => e.split('=')[0])).toEqual(['edge-1', 'edge-2', 'edge-3']);
    for (const e of edges) {
      const [name, url] = e.split('=') as [string, string];
      const u = new URL(url);
      expect(u.hostname).toBe(name);
      expect(listenPort(name)).toBe(Number(u.port));
    }
    expect(cmd[cmd.indexOf('--policy') + 1]).toMatch(/^[a-z]+$/);
  });

  it('runs the demo origin on all interfaces with seed 004\'s latency, health-checked on its own port', () => {
    const origin = services.origin!;
    expect(command(origin)).toEqual(['origin', '--host', '0.0.0.0', '--port', '9000', '--latency', 'seed']);
    expect(env(origin).OUTPOST_HEALTH_URL).toBe('http://127.0.0.1:9000/');
  });
});

describe('deploy/prometheus/prometheus.yml', () => {
  const prom = readYaml('deploy/prometheus/prometheus.yml') as {
    global: { scrape_interval: string };
    scrape_configs: Array<{ job_name: string; metrics_path?: string; authorization?: { type: string; credentials_file: string }; static_configs: Array<{ targets: string[]; labels?: Record<string, string> }> }>;
  };
  const job = (name: string) => prom.scrape_configs.find((j) => j.job_name === name)!;

  it('scrapes every Outpost node once, at its admin port, and nothing that is not a service', () => {
    const targets = (j: string) => job(j).static_configs.flatMap((s) => s.targets);
    expect(targets('outpost-edge').sort()).toEqual(['edge-1:8081', 'edge-2:8081', 'edge-3:8081']);
    expect(targets('outpost-shield')).toEqual(['shield:8081']);
    expect(targets('outpost-lb')).toEqual([`lb:${lbRaw().lb.admin.port}`]);
    const scraped = prom.scrape_configs.filter((j) => j.job_name !== 'prometheus').flatMap((j) => j.static_configs.flatMap((s) => s.targets));
    for (const t of scraped) {
      const [host, port] = t.split(':') as [string, string];
      expect(services[host], t).toBeDefined();
      if (host === 'lb') continue;
      expect(resolveConfig(readYaml(roleConfigOf(services[host]!)!), { env: { OUTPOST_ADMIN_KEY: adminKey } }).admin.port).toBe(Number(port));
    }
    expect(new Set(scraped).size).toBe(scraped.length);
    expect(scraped.length).toBe(roleConfigs.length + 1);
  });

  it('labels each node\'s series with the node\'s name, one target per entry', () => {
    for (const j of prom.scrape_configs.filter((c) => c.job_name.startsWith('outpost-'))) {
      for (const sc of j.static_configs) {
        expect(sc.targets).toHaveLength(1);
        expect(sc.labels?.instance).toBe(sc.targets[0]!.split(':')[0]);
        expect(sc.labels?.role).toBe(j.job_name.replace('outpost-', ''));
      }
    }
  });

  it('sends the admin key compose gives Outpost, from the file compose mounts in the Prometheus container', () => {
    const p = services.prometheus!;
    const mounted = p.configs!.find((c) => c.source === 'outpost_admin_key')!;
    expect(composeDefault(compose.configs!.outpost_admin_key!.content!)).toBe(adminKey);
    for (const j of ['outpost-edge', 'outpost-shield', 'outpost-lb']) {
      expect(job(j).metrics_path).toBe('/metrics');
      expect(job(j).authorization).toEqual({ type: 'Bearer', credentials_file: mounted.target });
    }
    const configFlag = command(p).find((a) => a.startsWith('--config.file='))!.split('=')[1];
    expect(bindMounts(p).find((m) => m.container.startsWith(configFlag!))?.host).toBe('deploy/prometheus/prometheus.yml');
  });

  const promtool = which('promtool');
  it.skipIf(!promtool)(`is a configuration promtool accepts${promtool ? '' : ' (skipped: promtool is not installed; apt-get install prometheus)'}`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'outpost-promtool-'));
    try {
      const keyFile = join(dir, 'key');
      writeFileSync(keyFile, adminKey);
      // The same file with the key where this machine has it (promtool opens credentials files).
      const text = readFileSync(join(ROOT, 'deploy/prometheus/prometheus.yml'), 'utf8').replaceAll('/etc/prometheus/outpost-admin-key', keyFile);
      writeFileSync(join(dir, 'prometheus.yml'), text);
      const { stdout } = await run(promtool!, ['check', 'config', join(dir, 'prometheus.yml')], { timeout: 20_000 });
      expect(stdout).toMatch(/SUCCESS/);
      // And it does catch a broken one.
      writeFileSync(join(dir, 'bad.yml'), stringifyYaml({ ...parseYaml(text), scrape_configs: [{ job_name: 'x', scrape_interval: 'often' }] }));
      await expect(run(promtool!, ['check', 'config', join(dir, 'bad.yml')], { timeout: 20_000 })).rejects.toThrow(/FAILED/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  if (!promtool) console.warn('test/deploy: promtool is not installed (apt-get install prometheus); its check is skipped');
});

describe('Grafana provisioning', () => {
  const ds = readYaml('deploy/grafana/provisioning/datasources/prometheus.yml') as { datasources: Array<{ uid: string; type: string; url: string }> };
  const providers = readYaml('deploy/grafana/provisioning/dashboards/outpost.yml') as { providers: Array<{ type: string; options: { path: string } }> };
  const grafana = services.grafana!;

  it('points the data source at the compose Prometheus, under the uid every panel names', () => {
    const [source] = ds.datasources;
    const u = new URL(source!.url);
    expect(services[u.hostname]).toBe(services.prometheus);
    expect(services.prometheus!.ports!.some((p) => p.endsWith(`:${u.port}`))).toBe(true);
    const dashboard = readJson('deploy/grafana/dashboards/outpost.json') as { panels: Array<{ type: string; datasource?: { uid: string }; targets?: Array<{ datasource?: { uid: string } }> }>; templating: { list: Array<{ datasource: { uid: string } }> } };
    const uids = new Set<string>();
    for (const p of dashboard.panels) {
      if (p.type === 'row') continue;
      uids.add(p.datasource!.uid);
      for (const t of p.targets ?? []) uids.add(t.datasource!.uid);
    }
    for (const v of dashboard.templating.list) uids.add(v.datasource.uid);
    expect([...uids]).toEqual([source!.uid]);
  });

  it('loads dashboards from where compose mounts deploy/grafana/dashboards, and opens Outpost\'s at home', () => {
    const mounts = bindMounts(grafana);
    const dashboards = mounts.find((m) => m.host === 'deploy/grafana/dashboards')!;
    expect(providers.providers[0]!.options.path).toBe(dashboards.container);
    expect(mounts.find((m) => m.host === 'deploy/grafana/provisioning')?.container).toBe('/etc/grafana/provisioning');
    const home = env(grafana).GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH!;
    expect(home.startsWith(`${dashboards.container}/`)).toBe(true);
    expect(existsSync(join(ROOT, dashboards.host, home.slice(dashboards.container.length + 1)))).toBe(true);
  });
});

describe('Dockerfile', () => {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const instr = (name: string) => text.split('\n').filter((l) => l.startsWith(`${name} `)).map((l) => l.slice(name.length + 1).trim());

  it('builds on Node 24, installs without dev dependencies or install scripts, runs as a non-root user', () => {
    expect(instr('FROM')).toEqual(['node:24-bookworm-slim']);
    expect(text).toMatch(/npm (ci|install) --omit=dev --ignore-scripts/);
    expect(instr('USER')).toEqual(['node']);
    expect(instr('ENTRYPOINT')).toEqual(['["node", "--no-node-snapshot", "src/cli.ts"]']);
    expect(instr('EXPOSE')[0]!.split(/\s+/)).toEqual(expect.arrayContaining(['8080', '8081', '9000']));
    for (const c of instr('COPY')) {
      for (const src of c.split(/\s+/).slice(0, -1)) expect(existsSync(join(ROOT, src)), `COPY ${src}`).toBe(true);
    }
  });

  it('keeps node_modules and local state out of the build context', () => {
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
    expect(ignored).toEqual(expect.arrayContaining(['node_modules', '.outpost', '.git']));
  });

  it('imports at run time only packages that an install without dev dependencies brings', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    const imported = new Set<string>();
    const walk = (dir: string) => {
      for (const f of readdirSync(dir)) {
        const p = join(dir, f);
        if (statSync(p).isDirectory()) walk(p);
        else if (p.endsWith('.ts') && !p.endsWith('.test.ts') && !p.includes('/testing') && !p.endsWith('-suite.ts')) {
          for (const m of readFileSync(p, 'utf8').matchAll(/^import\s+(?!type\b)[^'"]*?from\s+'([^'.][^']*)'/gm)) {
            const spec = m[1]!;
            if (spec.startsWith('node:')) continue;
            imported.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
          }
        }
      }
    };
    walk(join(ROOT, 'src'));
    expect(imported.size).toBeGreaterThan(3);
    for (const name of imported) expect(pkg.dependencies, `src imports ${name}`).toHaveProperty(name);
  });

  it('has a health check that passes on 200 from OUTPOST_HEALTH_URL and fails otherwise', async () => {
    const args = JSON.parse(text.match(/HEALTHCHECK[^\n]*\\\n\s*CMD (\[.*\])/)![1]!) as string[];
    expect(args[0]).toBe('node');
    expect(instr('ENV').some((e) => e === 'OUTPOST_HEALTH_URL=http://127.0.0.1:8080/health')).toBe(true);
    let status = 200;
    const srv = createServer((req, res) => res.writeHead(req.url === '/health' ? status : 404).end());
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(srv.address() as { port: number }).port}/health`;
    const check = () =>
      run(process.execPath, args.slice(1), { env: { ...process.env, OUTPOST_HEALTH_URL: url }, timeout: 10_000 }).then(
        () => 0,
        (e: { code?: number }) => e.code ?? -1,
      );
    try {
      expect(await check()).toBe(0);
      status = 503;
      expect(await check()).toBe(1);
    } finally {
      await new Promise((r) => srv.close(r));
    }
    // Nothing listening at all.
    expect(await check()).toBe(1);
  });
});

describe('deploy files are self-consistent documents', () => {
  it('every YAML file parses', () => {
    for (const f of ['docker-compose.yml', 'deploy/prometheus/prometheus.yml', 'deploy/grafana/provisioning/datasources/prometheus.yml', 'deploy/grafana/provisioning/dashboards/outpost.yml', lbFile, ...roleConfigs.map((r) => r.file)]) {
      expect(() => readYaml(f), f).not.toThrow();
      expect(typeof readYaml(f), f).toBe('object');
    }
  });

});
