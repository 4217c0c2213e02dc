// `outpost` — the command line. Every admin command talks to a running node's admin API.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfig, ENV_VARIABLES } from './config/load.ts';
import { AdminClient } from './control/client.ts';
import { cuCommand } from './control/cu-cli.ts';
import { lbCommand } from './lb/cli.ts';
import { listCommand } from './lists/list-cli.ts';
import { nodesCommand } from './fleet/nodes-cli.ts';
import { rulesCli } from './rules/rules-cli.ts';
import { signCommand } from './security/sign-cli.ts';
import { wafCommand } from './security/waf/waf-cli.ts';
import { OutpostError } from './errors.ts';
import { createLogger } from './log/logger.ts';
import { runPrimary } from './node/primary.ts';
import { serveUntilSignal } from './node/serve-until-signal.ts';
import { runOriginCli } from './origin/main.ts';
import { upCommand } from './up/up-cli.ts';

const HELP = `outpost — a programmable CDN

Usage:
  outpost start [--config FILE] [--workers N] [--port N]   run a node: edge workers, admin API, demo origin
  outpost up [--redis URL] [--policy bounded|chash|rr|leastconn] [--latency-scale F] [--origin-latency seed|off]
                                                           a whole CDN here: origin, shield, 3 PoPs, load balancer, control plane
  outpost origin [--port 9000] [--latency off|seed|SPEC]   run only the demo origin
  outpost bench experiments [--quick] [--only NAME] [--duration 20s]
                                                           seed 004's experiments on the mini-CDN (docs/experiments.md)
  outpost purge URL... [--prefix] [--tag] [--all] [--soft] [--file LIST]
                                                           purge by URL (default), URL prefix, tag, or everything
  outpost prefetch URL... [--file LIST]                    load URLs into the cache
  outpost config [--config FILE]                           validate the configuration and print it resolved
  outpost cu add|list|get|rm|enable|disable|test|status    computing units (outpost cu help)
  outpost lb --edge NAME=URL... [--listen HOST:PORT] [--policy bounded|chash|rr|leastconn]
                                                           run a load balancer in front of edge nodes (outpost lb --help)
  outpost rules get|set FILE|validate FILE|explain URL    the rules engine (outpost rules help)
  outpost nodes [--json]                                   the nodes of the fleet: role, state, version, hit ratio
  outpost list ls|show|add|remove|load|rm|check           IP lists for security.ipLists (outpost list help)
  outpost waf rules get|set FILE|validate FILE · waf test URL
                                                           WAF rules saved at run time, dry runs (outpost waf help)
  outpost sign URL --ttl 1h [--key-id ID] [--secret S]     print a signed URL (secret also from OUTPOST_SIGNING_SECRET)
  outpost help

Admin commands reach http://127.0.0.1:8081 unless --admin URL or OUTPOST_ADMIN_URL says otherwise;
the API key comes from --key or OUTPOST_ADMIN_KEY.
Environment overrides: ${ENV_VARIABLES.join(', ')}, OUTPOST_CONFIG.
`;

function readList(file: string | undefined, positionals: readonly string[]): string[] {
  const fromFile = file
    ? readFileSync(file === '-' ? 0 : file, 'utf8')
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith('#'))
    : [];
  return [...positionals, ...fromFile];
}

function adminClient(values: { admin?: string | undefined; key?: string | undefined }): AdminClient {
  return new AdminClient(values.admin ?? process.env.OUTPOST_ADMIN_URL ?? 'http://127.0.0.1:8081', values.key ?? process.env.OUTPOST_ADMIN_KEY);
}

async function main(argv: string[]): Promise<number> {
  const [command = 'help', ...rest] = argv;
  switch (command) {
    case 'start': {
      const { values } = parseArgs({ args: rest, options: { config: { type: 'string', short: 'c' }, workers: { type: 'string' }, port: { type: 'string' } } });
      const env = { ...process.env };
      if (values.workers) env.OUTPOST_WORKERS = values.workers;
      if (values.port) env.OUTPOST_PORT = values.port;
      const config = loadConfig(values.config, env);
      const log = createLogger(config.log.level);
      const node = await runPrimary(config, log);
      const tls = node.tlsPort ? `, https://localhost:${node.tlsPort} (h2)` : '';
      log.info(
        { edge: node.edgePort, tls: node.tlsPort, admin: node.adminPort, origin: node.originPort, workers: config.edge.workers },
        `outpost ready: edge http://localhost:${node.edgePort}${tls}; admin http://${config.admin.host}:${node.adminPort}` +
          (node.originPort ? `; demo origin http://127.0.0.1:${node.originPort}` : ''),
      );
      return serveUntilSignal(node, log);
    }
    case 'up':
      return upCommand(rest);
    case 'bench':
      // Loaded on demand: the experiments live under bench/ and are not part of a node's start-up.
      return (await import('../bench/experiments/cli.ts')).benchCommand(rest);
    case 'origin':
      await runOriginCli(rest);
      return new Promise<number>(() => undefined);
    case 'purge': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: {
          prefix: { type: 'boolean' },
          tag: { type: 'boolean' },
          all: { type: 'boolean' },
          soft: { type: 'boolean' },
          file: { type: 'string', short: 'f' },
          admin: { type: 'string' },
          key: { type: 'string' },
        },
      });
      const items = readList(values.file, positionals);
      const soft = values.soft ?? false;
      const client = adminClient(values);
      if (values.all) {
        const r = await client.purge({ all: true, soft });
        console.log(`purged ${r.purged} entries${soft ? ' (soft: marked stale)' : ''}`);
        return 0;
      }
      if (items.length === 0) throw new OutpostError('BAD_REQUEST', 'purge: give URLs, prefixes (--prefix) or tags (--tag), or --all');
      const field = values.prefix ? 'prefixes' : values.tag ? 'tags' : 'urls';
      const purged = await client.inBatches(items, 500, (batch) => client.purge({ [field]: batch, soft }).then((r) => r.purged), 'purge');
      console.log(`purged ${purged} entries for ${items.length} ${field}${soft ? ' (soft: marked stale)' : ''}`);
      return 0;
    }
    case 'prefetch': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: { file: { type: 'string', short: 'f' }, admin: { type: 'string' }, key: { type: 'string' } },
      });
      const urls = readList(values.file, positionals);
      if (urls.length === 0) throw new OutpostError('BAD_REQUEST', 'prefetch: give URLs or --file LIST');
      const client = adminClient(values);
      let failed = 0;
      await client.inBatches(
        urls,
        20,
        async (batch) => {
          const r = await client.prefetch(batch);
          for (const x of r.results) {
            if (x.error || x.status >= 400) {
              failed++;
              process.stderr.write(`\r\x1b[K  ${x.url}: ${x.error ?? `status ${x.status}`}\n`);
            }
          }
          return r.results.length;
        },
        'prefetch',
      );
      console.log(`prefetched ${urls.length - failed} of ${urls.length} URLs${failed ? `, ${failed} failed` : ''}`);
      return failed ? 1 : 0;
    }
    case 'cu':
      return cuCommand(rest, adminClient);
    case 'lb':
      return lbCommand(rest);
    case 'nodes':
      return nodesCommand(rest, adminClient);
    case 'rules':
      return rulesCli(rest, adminClient);
    case 'list':
    case 'lists':
      return listCommand(rest, adminClient);
    case 'sign':
      return signCommand(rest);
    case 'waf':
      return wafCommand(rest, adminClient);
    case 'config': {
      const { values } = parseArgs({ args: rest, options: { config: { type: 'string', short: 'c' } } });
      console.log(JSON.stringify(loadConfig(values.config), null, 2));
      return 0;
    }
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(HELP);
      return 0;
    default:
      process.stderr.write(`unknown command "${command}"\n\n${HELP}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    const msg = err instanceof OutpostError ? `${err.code}: ${err.message}` : err instanceof Error ? err.message : String(err);
    process.stderr.write(`outpost: ${msg}\n`);
    process.exit(err instanceof OutpostError && err.source === 'config' ? 78 : 1);
  },
);
