// `outpost rules …`: the rule set through the admin API (get, set, validate, explain).
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parseArgs } from 'node:util';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { OutpostError } from '../errors.ts';
import { loadRules } from './compile.ts';
import type { DescribedRequest, Explanation } from './explain.ts';

export const RULES_HELP = `outpost rules — the rules engine (docs/rules.md)

  outpost rules get [--yaml]           print the stored rule set (JSON, or YAML); its version goes to stderr
  outpost rules set FILE               validate and store a rule set from a .json or .yaml file ("-": stdin, JSON)
  outpost rules validate FILE [--local]
                                       check a rule set without storing it (--local: here, without the node's pools)
  outpost rules explain URL [--method M] [-H 'Name: value']... [--ip A] [--country C] [--rules FILE] [--json]
                                       which rule matches this request, why the others do not, and what it would do
`;

/** What the CLI needs of the admin client (src/control/client.ts). */
export interface RulesClient {
  call<T>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<T>;
}

export interface CliIo {
  out(line: string): void;
  err(line: string): void;
}

const consoleIo: CliIo = { out: (l) => console.log(l), err: (l) => console.error(l) };

const common = { admin: { type: 'string' }, key: { type: 'string' } } as const;

/** Reads a rule set from a .json, .yaml or .yml file ('-' reads JSON from stdin). */
export function readRuleFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new OutpostError('BAD_REQUEST', `cannot read ${file}: ${(err as Error).message}`);
  }
  const yaml = ['.yaml', '.yml'].includes(extname(file).toLowerCase());
  try {
    return yaml ? parseYaml(text) : JSON.parse(text);
  } catch (err) {
    throw new OutpostError('BAD_REQUEST', `${file}: not valid ${yaml ? 'YAML' : 'JSON'}: ${(err as Error).message.split('\n')[0]}`);
  }
}

function headerArgs(values: readonly string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of values ?? []) {
    const i = h.indexOf(':');
    if (i < 1) throw new OutpostError('BAD_REQUEST', `--header ${JSON.stringify(h)}: expected "Name: value"`);
    out[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
  }
  return out;
}

/** The RULES_INVALID lines inside an admin API error, when that is what it is. */
function invalidRules(err: unknown): string | undefined {
  if (!(err instanceof OutpostError)) return undefined;
  if (err.code === 'RULES_INVALID') return err.message;
  const m = /RULES_INVALID: ([\s\S]*)$/.exec(err.message);
  return m?.[1];
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

/** The explanation as people read it; --json prints the API's answer as it is. */
export function formatExplanation(x: Explanation): string {
  const r = x.request;
  const lines = [`${r.method} ${r.scheme}://${r.host}${r.path}${r.query ? `?${r.query}` : ''}   ip ${r.ip}   country ${r.country ?? 'unknown'}`];
  const width = Math.max(8, ...x.rules.map((v) => v.label.length));
  for (const v of x.rules) {
    const tag = v.status === 'matched' ? 'MATCH' : v.status === 'no-match' ? 'no' : v.status === 'disabled' ? 'off' : 'skip';
    lines.push(`  ${pad(tag, 5)} ${pad(`[${v.index}]`, 5)} ${pad(v.label, width)}  ${v.status === 'matched' ? (v.continue ? 'matched, continues' : 'matched') : v.status === 'disabled' ? 'disabled' : (v.reason ?? '')}`);
  }
  if (x.rules.length === 0) lines.push('  (no rules)');
  const o = x.outcome;
  lines.push('outcome:');
  if (o.answer) {
    const loc = o.answer.headers.location;
    lines.push(`  answered at the edge: ${o.answer.status}${loc ? ` → ${String(loc)}` : ''}`);
  }
  lines.push(`  origin request: ${o.path}${o.query ? `?${o.query}` : ''} via pool ${o.pool}`);
  const hdrs = (h: { set: Record<string, string>; removed: string[] }) => [...Object.entries(h.set).map(([k, v]) => `${k}: ${v}`), ...h.removed.map((k) => `-${k}`)].join('; ');
  if (Object.keys(o.requestHeaders.set).length || o.requestHeaders.removed.length) lines.push(`  request headers: ${hdrs(o.requestHeaders)}`);
  if (Object.keys(o.responseHeaders.set).length || o.responseHeaders.removed.length) lines.push(`  response headers: ${hdrs(o.responseHeaders)}`);
  if (o.cache) {
    const c = o.cache;
    lines.push(`  cache: ${[c.ttlMs !== undefined ? `ttl ${c.ttlMs / 1000}s` : '', c.bypass ? 'bypass (not served from cache)' : '', c.noStore ? 'no-store (not stored)' : ''].filter(Boolean).join(', ')}`);
  }
  if (o.ab) lines.push(`  a/b: ${Object.entries(o.ab).map(([k, v]) => `${k}=${v}`).join(', ')}${o.cacheKeyExtra ? ' (in the cache key)' : ''}`);
  if (o.compress !== undefined) lines.push(`  compression: ${o.compress ? 'on' : 'off'}`);
  if (o.wholeBody) lines.push('  whole body with Content-Length (no chunked encoding)');
  if (x.error) lines.push(`  error: ${x.error}`);
  return lines.join('\n');
}

export async function rulesCli(
  args: readonly string[],
  client: RulesClient | ((values: { admin?: string | undefined; key?: string | undefined }) => RulesClient),
  io: CliIo = consoleIo,
): Promise<number> {
  const connect = (values: { admin?: string | undefined; key?: string | undefined }): RulesClient => (typeof client === 'function' ? client(values) : client);
  const [sub = 'help', ...rest] = args;
  switch (sub) {
    case 'get': {
      const { values } = parseArgs({ args: [...rest], options: { ...common, yaml: { type: 'boolean' } } });
      const r = await connect(values).call<{ version: number; updatedAt: string | null; value: unknown; running: { version: number | null } | null }>('GET', '/rules');
      io.err(`version ${r.version}${r.updatedAt ? `, saved ${r.updatedAt}` : ' (nothing saved yet)'}${r.running?.version != null ? `, running version ${r.running.version}` : ''}`);
      io.out(values.yaml ? toYaml(r.value).trimEnd() : JSON.stringify(r.value, null, 2));
      return 0;
    }
    case 'set': {
      const { values, positionals } = parseArgs({ args: [...rest], allowPositionals: true, options: common });
      const file = positionals[0];
      if (!file) throw new OutpostError('BAD_REQUEST', 'rules set: give the file with the rule set (.json or .yaml)');
      const value = readRuleFile(file);
      try {
        const r = await connect(values).call<{ version: number; rules: number }>('PUT', '/rules', value);
        io.out(`saved version ${r.version} (${r.rules} rule${r.rules === 1 ? '' : 's'})`);
        return 0;
      } catch (err) {
        const lines = invalidRules(err);
        if (lines === undefined) throw err;
        io.err(`RULES_INVALID: ${file}:\n${lines}`);
        return 1;
      }
    }
    case 'validate': {
      const { values, positionals } = parseArgs({ args: [...rest], allowPositionals: true, options: { ...common, local: { type: 'boolean' } } });
      const file = positionals[0];
      if (!file) throw new OutpostError('BAD_REQUEST', 'rules validate: give the file with the rule set (.json or .yaml)');
      const value = readRuleFile(file);
      try {
        const n = values.local ? loadRules(value).all.length : (await connect(values).call<{ rules: number }>('POST', '/rules/validate', value)).rules;
        io.out(`${file}: ok (${n} rule${n === 1 ? '' : 's'})`);
        return 0;
      } catch (err) {
        const lines = invalidRules(err);
        if (lines === undefined) throw err;
        io.err(`RULES_INVALID: ${file}:\n${lines}`);
        return 1;
      }
    }
    case 'explain': {
      const { values, positionals } = parseArgs({
        args: [...rest],
        allowPositionals: true,
        options: {
          ...common,
          method: { type: 'string', short: 'X' },
          header: { type: 'string', short: 'H', multiple: true },
          ip: { type: 'string' },
          country: { type: 'string' },
          rules: { type: 'string' },
          json: { type: 'boolean' },
        },
      });
      const url = positionals[0];
      if (!url) throw new OutpostError('BAD_REQUEST', 'rules explain: give the URL of the request (e.g. https://example.com/a.mp4)');
      const request: DescribedRequest = {
        url,
        headers: headerArgs(values.header),
        ...(values.method ? { method: values.method } : {}),
        ...(values.ip ? { ip: values.ip } : {}),
        ...(values.country ? { country: values.country } : {}),
      };
      const body = { request, ...(values.rules ? { rules: readRuleFile(values.rules) } : {}) };
      let x: Explanation;
      try {
        x = await connect(values).call<Explanation>('POST', '/rules/explain', body);
      } catch (err) {
        const lines = invalidRules(err);
        if (lines === undefined) throw err;
        io.err(`RULES_INVALID: ${values.rules}:\n${lines}`);
        return 1;
      }
      io.out(values.json ? JSON.stringify(x, null, 2) : formatExplanation(x));
      return x.error ? 1 : 0;
    }
    default:
      io.out(RULES_HELP.trimEnd());
      return sub === 'help' || sub === '--help' ? 0 : 2;
  }
}
