import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { isIP } from 'node:net';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { OutpostError } from '../errors.ts';
import { ConfigSchema, PoolSchema, type ParsedConfig, type PoolConfig } from './schema.ts';

/** The configuration after validation and resolution of 'auto' values. */
export interface OutpostConfig extends Omit<ParsedConfig, 'edge' | 'demoOrigin'> {
  readonly edge: Omit<ParsedConfig['edge'], 'workers'> & { readonly workers: number };
  readonly demoOrigin: Omit<ParsedConfig['demoOrigin'], 'enabled'> & { readonly enabled: boolean };
  /** The file it was read from, if any. */
  readonly source?: string;
}

type Raw = Record<string, unknown>;

/** Environment variables for the common settings; they win over the file. */
const ENV_OVERRIDES: ReadonlyArray<readonly [env: string, path: string]> = [
  ['OUTPOST_HOST', 'edge.host'],
  ['OUTPOST_PORT', 'edge.port'],
  ['OUTPOST_TLS_PORT', 'edge.tlsPort'],
  ['OUTPOST_WORKERS', 'edge.workers'],
  ['OUTPOST_ADMIN_HOST', 'admin.host'],
  ['OUTPOST_ADMIN_PORT', 'admin.port'],
  ['OUTPOST_ADMIN_KEY', 'admin.apiKey'],
  ['OUTPOST_CACHE_DIR', 'cache.disk.path'],
  ['OUTPOST_LOG_LEVEL', 'log.level'],
  ['OUTPOST_ACCESS_LOG', 'log.access'],
  ['OUTPOST_ORIGIN', 'upstream.pools.default.peers'],
  ['OUTPOST_STORE', 'compute.store.kind'],
  ['OUTPOST_REDIS_URL', 'compute.store.url'],
  ['OUTPOST_REDIS_NODES', 'compute.store.nodes'],
];

/** Variables whose value is a comma-separated list. */
const LIST_VARIABLES = new Set(['OUTPOST_ORIGIN', 'OUTPOST_REDIS_NODES']);

export const ENV_VARIABLES: readonly string[] = ENV_OVERRIDES.map(([e]) => e);

function setPath(obj: Raw, path: string, value: unknown): void {
  const parts = path.split('.');
  let cur: Raw = obj;
  for (const p of parts.slice(0, -1)) {
    const next = cur[p];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) cur[p] = {};
    cur = cur[p] as Raw;
  }
  cur[parts.at(-1)!] = value;
}

function formatIssues(issues: readonly z.core.$ZodIssue[], source: string): string {
  const lines = issues.map((i) => {
    const got = 'input' in i && !i.message.includes(' got ') ? ` (got ${JSON.stringify(i.input)})` : '';
    return `  ${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}${got}`;
  });
  return `invalid configuration (${source}):\n${lines.join('\n')}`;
}

export function readConfigFile(file: string): Raw {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new OutpostError('CONFIG_UNREADABLE', `cannot read config file ${file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const parsed: unknown = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
    if (parsed === null || parsed === undefined) return {};
    if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('the top level must be a mapping');
    return parsed as Raw;
  } catch (err) {
    throw new OutpostError('CONFIG_UNREADABLE', `cannot parse config file ${file}: ${(err as Error).message}`, { cause: err });
  }
}

function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

/**
 * Validates raw settings (from a file and/or code), applies environment overrides and resolves
 * defaults that depend on each other. Throws OutpostError CONFIG_INVALID naming every bad setting.
 */
export function resolveConfig(raw: Raw, opts: { env?: NodeJS.ProcessEnv; source?: string } = {}): OutpostConfig {
  const env = opts.env ?? {};
  const source = opts.source ?? 'defaults';
  const merged: Raw = structuredClone(raw);
  for (const [name, path] of ENV_OVERRIDES) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    setPath(merged, path, LIST_VARIABLES.has(name) ? value.split(',').map((s) => s.trim()) : value);
  }

  const result = ConfigSchema.safeParse(merged, { reportInput: true });
  if (!result.success) throw new OutpostError('CONFIG_INVALID', formatIssues(result.error.issues, source));
  const c = result.data;

  const problems: string[] = [];
  const pools: Record<string, PoolConfig> = { ...c.upstream.pools };
  const demoEnabled = c.demoOrigin.enabled === 'auto' ? Object.keys(pools).length === 0 : c.demoOrigin.enabled;
  if (!pools.default) {
    if (Object.keys(pools).length === 0 && demoEnabled) {
      pools.default = PoolSchema.parse({ peers: [`http://${c.demoOrigin.host}:${c.demoOrigin.port}`] });
    } else {
      problems.push('upstream.pools.default: expected a pool named "default" (the origin for requests no rule routes elsewhere)');
    }
  }
  if (!isLoopback(c.admin.host) && c.admin.apiKey === undefined) {
    problems.push(`admin.apiKey: required when admin.host (${c.admin.host}) is not a loopback address`);
  }
  const ports = [
    ['edge.port', c.edge.port],
    ['edge.tlsPort', c.edge.tlsPort],
    ['admin.port', c.admin.port],
    ...(demoEnabled ? [['demoOrigin.port', c.demoOrigin.port] as const] : []),
  ] as const;
  const seen = new Map<number, string>();
  for (const [name, p] of ports) {
    if (p === 0) continue;
    const other = seen.get(p);
    if (other) problems.push(`${name}: port ${p} is already used by ${other}`);
    seen.set(p, name);
  }
  if (c.cache.ram.maxObjectBytes > c.cache.ram.maxBytes) problems.push('cache.ram.maxObjectBytes: must not exceed cache.ram.maxBytes');
  if (c.cache.disk.maxObjectBytes > c.cache.disk.maxBytes) problems.push('cache.disk.maxObjectBytes: must not exceed cache.disk.maxBytes');
  if (problems.length) throw new OutpostError('CONFIG_INVALID', `invalid configuration (${source}):\n  ${problems.join('\n  ')}`);

  return {
    ...c,
    edge: { ...c.edge, workers: c.edge.workers === 'auto' ? availableParallelism() : c.edge.workers },
    upstream: { pools },
    demoOrigin: { ...c.demoOrigin, enabled: demoEnabled },
    ...(opts.source ? { source: opts.source } : {}),
  };
}

/** Loads the config file (if any) and the environment. */
export function loadConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): OutpostConfig {
  const path = file ?? env.OUTPOST_CONFIG;
  const raw = path ? readConfigFile(path) : {};
  return resolveConfig(raw, { env, ...(path ? { source: path } : {}) });
}
