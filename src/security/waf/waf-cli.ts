// `outpost waf …`: the WAF rules saved at run time, and a dry run of a request, through the admin API.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { stringify as toYaml } from 'yaml';
import { OutpostError } from '../../errors.ts';
import { readRuleFile } from '../../rules/rules-cli.ts';
import type { WafTestResult } from './routes.ts';
import { compileStoredRules } from './stored.ts';

export const WAF_HELP = `outpost waf — WAF rules saved at run time (docs/waf.md)

  outpost waf rules get [--yaml]          print the stored set {"rules": [...]}; its version goes to stderr
  outpost waf rules set FILE              validate and store the set in a .json or .yaml file ("-": stdin, JSON);
                                          every worker applies it within a second
  outpost waf rules validate FILE [--local]
                                          check a set without storing it (--local: here, without the node's config rules)
  outpost waf test URL [-X METHOD] [-H 'Name: value']... [-d BODY | --data-file FILE] [--json]
                                          which rules (built-in, configured, stored) match this request
`;

/** What the CLI needs of the admin client (src/control/client.ts). */
export interface WafClient {
  call<T>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<T>;
}

type Connect = (values: { admin?: string | undefined; key?: string | undefined }) => WafClient;

const common = { admin: { type: 'string' }, key: { type: 'string' } } as const;

/** A file holds {"rules": [...]} or, for short, the array alone. */
function readSet(file: string): unknown {
  const v = readRuleFile(file);
  return Array.isArray(v) ? { rules: v } : v;
}

/** The problem lines of a refused set, from the API's error or a local check. */
function refusal(err: unknown): string | undefined {
  if (!(err instanceof OutpostError)) return undefined;
  const m = /waf rules(?: refused)?:\s*([\s\S]*)$/.exec(err.message);
  return m?.[1];
}

export async function wafCommand(argv: readonly string[], connect: Connect): Promise<number> {
  const [sub = 'help', ...rest] = argv;
  if (sub === 'rules') {
    const [action = 'help', ...args] = rest;
    switch (action) {
      case 'get': {
        const { values } = parseArgs({ args: [...args], options: { ...common, yaml: { type: 'boolean' } } });
        const r = await connect(values).call<{ version: number; updatedAt: string | null; value: unknown; wafEnabled: boolean }>('GET', '/waf/rules');
        console.error(`version ${r.version}${r.updatedAt ? `, saved ${r.updatedAt}` : ' (nothing saved yet)'}${r.wafEnabled ? '' : '; security.waf is off on this node'}`);
        console.log(values.yaml ? toYaml(r.value).trimEnd() : JSON.stringify(r.value, null, 2));
        return 0;
      }
      case 'set':
      case 'validate': {
        const { values, positionals } = parseArgs({ args: [...args], allowPositionals: true, options: { ...common, local: { type: 'boolean' } } });
        const file = positionals[0];
        if (!file) throw new OutpostError('BAD_REQUEST', `waf rules ${action}: give the file with the rules (.json or .yaml)`);
        const value = readSet(file);
        try {
          if (action === 'validate') {
            const n = values.local ? compileStoredRules(value).length : (await connect(values).call<{ rules: number }>('POST', '/waf/rules/validate', value)).rules;
            console.log(`${file}: ok (${n} rule${n === 1 ? '' : 's'})`);
          } else {
            const r = await connect(values).call<{ version: number; rules: number; wafEnabled: boolean }>('PUT', '/waf/rules', value);
            console.log(`saved version ${r.version} (${r.rules} rule${r.rules === 1 ? '' : 's'})`);
            if (!r.wafEnabled) console.error('note: security.waf is off on this node: the rules are stored but not applied here');
          }
          return 0;
        } catch (err) {
          const lines = refusal(err);
          if (lines === undefined) throw err;
          console.error(`${file}: refused:\n${lines}`);
          return 1;
        }
      }
      default:
        process.stdout.write(WAF_HELP);
        return action === 'help' ? 0 : 2;
    }
  }
  if (sub === 'test') {
    const { values, positionals } = parseArgs({
      args: [...rest],
      allowPositionals: true,
      options: {
        ...common,
        method: { type: 'string', short: 'X' },
        header: { type: 'string', short: 'H', multiple: true },
        data: { type: 'string', short: 'd' },
        'data-file': { type: 'string' },
        json: { type: 'boolean' },
      },
    });
    const url = positionals[0];
    if (!url) throw new OutpostError('BAD_REQUEST', "waf test: give the request's URL (e.g. 'https://shop.example/search?q=1')");
    const headers: Record<string, string> = {};
    for (const h of values.header ?? []) {
      const i = h.indexOf(':');
      if (i < 1) throw new OutpostError('BAD_REQUEST', `--header ${JSON.stringify(h)}: expected "Name: value"`);
      headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
    }
    const body = values['data-file'] !== undefined ? readFileSync(values['data-file'] === '-' ? 0 : values['data-file'], 'utf8') : values.data;
    const r = await connect(values).call<WafTestResult>('POST', '/waf/test', {
      url,
      headers,
      ...(values.method ? { method: values.method } : {}),
      ...(body !== undefined ? { body } : {}),
    });
    if (values.json) console.log(JSON.stringify(r, null, 2));
    else {
      for (const m of r.matches) console.log(`MATCH ${m.rule.padEnd(24)} ${m.where.padEnd(20)} ${JSON.stringify(m.sample)}${m.flags.length ? `  [${m.flags.join(', ')}]` : ''}`);
      if (r.matches.length === 0) console.log('no rule matches');
      const mode = r.mode === null ? 'security.waf is off on this node' : r.mode === 'detect' ? 'detect mode: would be logged and passed' : r.blockedBy ? `block mode: would answer 403 (rule ${r.blockedBy})` : 'block mode: would pass';
      console.log(mode);
      if (body !== undefined && !r.bodyInspection) console.log('note: this node does not inspect bodies (security.waf.body.enabled is off)');
    }
    return r.blockedBy ? 1 : 0;
  }
  process.stdout.write(WAF_HELP);
  return sub === 'help' || sub === '--help' ? 0 : 2;
}
