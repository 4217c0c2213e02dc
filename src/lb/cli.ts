// `outpost lb`: runs the load balancer node from flags and/or the `lb:` section of a config file
// (flags win). Every value goes through the config schema, so mistakes name the setting.
import { parseArgs } from 'node:util';
import { readConfigFile, resolveConfig } from '../config/load.ts';
import { OutpostError } from '../errors.ts';
import { createLogger } from '../log/logger.ts';
import { startLoadBalancer } from './lb.ts';
import { serveUntilSignal } from '../node/serve-until-signal.ts';

export const LB_HELP = `outpost lb — an HTTP load balancer in front of edge nodes

Usage:
  outpost lb --edge NAME=URL[,weight=N] ... [options]

Options:
  --config FILE            read the lb: section (and limits:, log:) of a config file
  --listen HOST:PORT       where clients connect (default 0.0.0.0:8000)
  --admin HOST:PORT        admin API: /members, /metrics, /health (default 127.0.0.1:8001)
  --edge NAME=URL          an edge, e.g. a=http://10.0.0.1:8080 or b=http://10.0.0.2:8080,weight=2 (repeat)
  --policy P               bounded (default) | chash | rr | leastconn
  --hash-key K             uri (default) | path | host | ip | header:NAME | cookie:NAME | query:NAME
  --load-factor C          bounded loads: no edge above C × the average load (default 1.25)
  --health-path PATH       active check path (default /health); --no-health turns checks off
  --health-interval D      time between checks (default 2s)
  --retries N              further edges tried when a connection fails (default 2)
`;

function hostPort(flag: string, v: string): Record<string, string> {
  const m = /^(?:(\[[^\]]+\]|[^:]+):)?(\d+)$/.exec(v);
  if (!m) throw new OutpostError('CONFIG_INVALID', `${flag}: expected HOST:PORT or PORT (got ${JSON.stringify(v)})`);
  return m[1] ? { host: m[1].replace(/^\[|\]$/g, ''), port: m[2]! } : { port: m[2]! };
}

function edgeSpec(v: string): { name: string; url: string; weight?: number } {
  const eq = v.indexOf('=');
  const [target = '', ...params] = (eq < 0 ? v : v.slice(eq + 1)).split(',');
  let name = eq < 0 ? '' : v.slice(0, eq);
  if (!name) {
    try {
      name = new URL(target).host;
    } catch {
      name = target;
    }
  }
  const spec: { name: string; url: string; weight?: number } = { name, url: target };
  for (const p of params) {
    const w = /^weight=(.+)$/.exec(p.trim());
    if (!w) throw new OutpostError('CONFIG_INVALID', `--edge ${v}: expected NAME=URL or NAME=URL,weight=N`);
    spec.weight = Number(w[1]);
  }
  return spec;
}

export async function lbCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: 'string', short: 'c' },
      listen: { type: 'string' },
      admin: { type: 'string' },
      edge: { type: 'string', multiple: true },
      policy: { type: 'string' },
      'hash-key': { type: 'string' },
      'load-factor': { type: 'string' },
      'health-path': { type: 'string' },
      'health-interval': { type: 'string' },
      'no-health': { type: 'boolean' },
      retries: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(LB_HELP);
    return 0;
  }
  const path = values.config ?? process.env.OUTPOST_CONFIG;
  const raw = path ? readConfigFile(path) : {};
  const lb: Record<string, unknown> = { ...((raw.lb as Record<string, unknown> | undefined) ?? {}) };
  if (values.listen) Object.assign(lb, hostPort('--listen', values.listen));
  if (values.admin) lb.admin = { ...((lb.admin as object | undefined) ?? {}), ...hostPort('--admin', values.admin) };
  if (values.edge?.length) lb.edges = values.edge.map(edgeSpec);
  if (values.policy) lb.policy = values.policy;
  if (values['hash-key']) lb.hashKey = values['hash-key'];
  if (values['load-factor']) lb.loadFactor = Number(values['load-factor']);
  if (values.retries) lb.retries = Number(values.retries);
  const hc: Record<string, unknown> = { ...((lb.healthCheck as object | undefined) ?? {}) };
  if (values['health-path']) hc.path = values['health-path'];
  if (values['health-interval']) hc.interval = values['health-interval'];
  if (values['no-health']) hc.enabled = false;
  lb.healthCheck = hc;
  const config = resolveConfig({ ...raw, lb }, { env: process.env, ...(path ? { source: path } : { source: 'command line' }) });
  if (config.lb.edges.length === 0) throw new OutpostError('CONFIG_INVALID', 'lb.edges: expected at least one edge (--edge NAME=URL, or lb.edges in the config file)');

  const log = createLogger(config.log.level, { role: 'lb' });
  const node = await startLoadBalancer(config, { log });
  log.info(
    { port: node.port, admin: node.adminPort, policy: config.lb.policy, edges: config.lb.edges.map((e) => `${e.name}=${e.url}`) },
    `outpost lb ready: http://${config.lb.host}:${node.port} → ${config.lb.edges.length} edges (${config.lb.policy}); admin http://${config.lb.admin.host}:${node.adminPort}/members`,
  );
  return serveUntilSignal(node, log);
}
