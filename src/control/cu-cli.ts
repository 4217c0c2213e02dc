// `outpost cu …`: computing units through the admin API.
import { readFileSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { parseArgs } from 'node:util';
import type { CuRecord } from '../compute/cu.ts';
import type { DryRunResult } from '../compute/plane.ts';
import { OutpostError } from '../errors.ts';
import type { AdminClient } from './client.ts';
import type { WorkerCuStatus } from './cu-routes.ts';

export const CU_HELP = `outpost cu — computing units

  outpost cu add FILE [--id ID] --phase PHASE [--sampling N] [--hosts H1,H2] [--priority N]
                 [--timeout MS] [--memory MB] [--failure open|closed] [--disabled]
                                   create or replace a CU from a .js or .ts file (id defaults to the file name)
  outpost cu list                  the CUs in the store
  outpost cu get ID                one CU, with its code
  outpost cu rm ID                 delete a CU
  outpost cu enable ID | disable ID
  outpost cu test ID|FILE --url URL [--method M] [-H 'Name: value']... [--phase PHASE]
                                   dry run against a request you describe
  outpost cu status                what every worker runs: versions, errors, breakers
`;

const common = { admin: { type: 'string' }, key: { type: 'string' } } as const;

function headerArgs(values: readonly string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of values ?? []) {
    const i = h.indexOf(':');
    if (i < 1) throw new OutpostError('BAD_REQUEST', `-H ${JSON.stringify(h)}: expected "Name: value"`);
    out[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
  }
  return out;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

export async function cuCommand(argv: string[], client: (values: { admin?: string | undefined; key?: string | undefined }) => AdminClient): Promise<number> {
  const [sub = 'help', ...rest] = argv;
  switch (sub) {
    case 'add': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: {
          ...common,
          id: { type: 'string' },
          phase: { type: 'string' },
          sampling: { type: 'string' },
          hosts: { type: 'string' },
          priority: { type: 'string' },
          timeout: { type: 'string' },
          memory: { type: 'string' },
          failure: { type: 'string' },
          disabled: { type: 'boolean' },
        },
      });
      const file = positionals[0];
      if (!file) throw new OutpostError('BAD_REQUEST', 'cu add: give the file with the code');
      const code = readFileSync(file, 'utf8');
      const id = values.id ?? basename(file, extname(file));
      const body = {
        id,
        phase: values.phase,
        code,
        lang: extname(file) === '.ts' ? 'ts' : 'js',
        ...(values.sampling !== undefined ? { sampling: Number(values.sampling) } : {}),
        ...(values.hosts !== undefined ? { hosts: values.hosts.split(',').map((h) => h.trim()).filter(Boolean) } : {}),
        ...(values.priority !== undefined ? { priority: Number(values.priority) } : {}),
        ...(values.timeout !== undefined ? { timeoutMs: Number(values.timeout) } : {}),
        ...(values.memory !== undefined ? { memoryMb: Number(values.memory) } : {}),
        ...(values.failure !== undefined ? { failure: values.failure } : {}),
        ...(values.disabled ? { enabled: false } : {}),
      };
      const rec = await client(values).call<CuRecord>('PUT', `/cus/${encodeURIComponent(id)}`, body);
      console.log(`saved ${rec.id} (version ${rec.version}, phase ${rec.phase})`);
      return 0;
    }
    case 'list': {
      const { values } = parseArgs({ args: rest, options: common });
      const r = await client(values).call<{ cus: CuRecord[]; invalid: Array<{ id: string; error: string }> }>('GET', '/cus');
      const rows = [['ID', 'PHASE', 'VERSION', 'ENABLED', 'SAMPLING', 'PRIORITY', 'FAILURE', 'HOSTS']];
      for (const c of r.cus) rows.push([c.id, c.phase, String(c.version), c.enabled ? 'yes' : 'no', `${c.sampling}%`, String(c.priority), c.failure, c.hosts.join(',') || '*']);
      console.log(table(rows));
      for (const bad of r.invalid) console.log(`invalid: ${bad.id}: ${bad.error}`);
      return 0;
    }
    case 'get': {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: common });
      const id = positionals[0];
      if (!id) throw new OutpostError('BAD_REQUEST', 'cu get: give the CU id');
      console.log(JSON.stringify(await client(values).call('GET', `/cus/${encodeURIComponent(id)}`), null, 2));
      return 0;
    }
    case 'rm':
    case 'enable':
    case 'disable': {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: common });
      const id = positionals[0];
      if (!id) throw new OutpostError('BAD_REQUEST', `cu ${sub}: give the CU id`);
      const path = `/cus/${encodeURIComponent(id)}`;
      if (sub === 'rm') await client(values).call('DELETE', path);
      else await client(values).call('POST', `${path}/${sub}`);
      console.log(`${sub === 'rm' ? 'deleted' : `${sub}d`} ${id}`);
      return 0;
    }
    case 'test': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: { ...common, url: { type: 'string' }, method: { type: 'string' }, header: { type: 'string', short: 'H', multiple: true }, phase: { type: 'string' } },
      });
      const target = positionals[0];
      if (!target || !values.url) throw new OutpostError('BAD_REQUEST', 'cu test: give a CU id or file, and --url');
      const request = { url: values.url, ...(values.method ? { method: values.method } : {}), headers: headerArgs(values.header) };
      const isFile = /\.(js|ts)$/.test(target);
      const body = isFile
        ? { cu: { id: basename(target, extname(target)), phase: values.phase ?? 'access', code: readFileSync(target, 'utf8'), lang: extname(target) === '.ts' ? 'ts' : 'js' }, request }
        : { id: target, request };
      const r = await client(values).call<DryRunResult>('POST', '/cus/test', body);
      console.log(JSON.stringify(r, null, 2));
      return r.error ? 1 : 0;
    }
    case 'status': {
      const { values } = parseArgs({ args: rest, options: common });
      const r = await client(values).call<{ store: { kind: string; healthy: boolean }; workers: WorkerCuStatus[] }>('GET', '/cus/status');
      console.log(`store: ${r.store.kind} (${r.store.healthy ? 'reachable' : 'UNREACHABLE: running the last good set'})`);
      const rows = [['WORKER', 'CU', 'VERSION', 'RUNNING', 'BREAKER', 'ERROR']];
      for (const w of r.workers) for (const c of w.cus) rows.push([String(w.worker), c.id, String(c.version), c.running === undefined ? '-' : String(c.running), c.breaker, c.error ? `${c.error.kind}: ${c.error.message}` : '']);
      console.log(table(rows));
      return 0;
    }
    default:
      process.stdout.write(CU_HELP);
      return sub === 'help' ? 0 : 2;
  }
}
