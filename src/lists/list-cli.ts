// `outpost list …`: IP lists through the admin API.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { AdminClient } from '../control/client.ts';
import { OutpostError } from '../errors.ts';

export const LIST_HELP = `outpost list — IP lists (allow/deny lists for security.ipLists)

  outpost list ls                           the lists: names, sizes, versions
  outpost list show NAME                    one list's entries, one per line
  outpost list add NAME ENTRY... [--file F] add addresses or CIDR blocks (creates the list)
  outpost list remove NAME ENTRY... [--file F]
  outpost list load NAME FILE [--description TEXT]
                                            replace the list with FILE (one entry per line, # comments; - = stdin)
  outpost list rm NAME                      delete the list
  outpost list check NAME IP                whether IP is on the list
`;

interface Summary {
  name: string;
  entries: number;
  version: number;
  updatedAt: string;
  description?: string;
}

function readEntries(file: string): string[] {
  return readFileSync(file === '-' ? 0 : file, 'utf8')
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter(Boolean);
}

export async function listCommand(argv: string[], client: (values: { admin?: string | undefined; key?: string | undefined }) => AdminClient): Promise<number> {
  const [sub = 'help', ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: { admin: { type: 'string' }, key: { type: 'string' }, file: { type: 'string', short: 'f' }, description: { type: 'string' } },
  });
  const api = client(values);
  const name = positionals[0];
  const need = (what: string): string => {
    if (!name) throw new OutpostError('BAD_REQUEST', `list ${sub}: give ${what}`);
    return encodeURIComponent(name);
  };
  switch (sub) {
    case 'ls': {
      const { lists } = await api.call<{ lists: Summary[] }>('GET', '/lists');
      if (lists.length === 0) console.log('no IP lists');
      for (const l of lists) console.log(`${l.name.padEnd(24)} ${String(l.entries).padStart(9)} entries  v${l.version}  ${l.updatedAt}${l.description ? `  ${l.description}` : ''}`);
      return 0;
    }
    case 'show': {
      const l = await api.call<Summary & { entries: string[] }>('GET', `/lists/${need('a list name')}`);
      for (const e of l.entries) console.log(e);
      return 0;
    }
    case 'add':
    case 'remove': {
      const path = need('a list name and entries');
      const entries = [...positionals.slice(1), ...(values.file ? readEntries(values.file) : [])];
      if (entries.length === 0) throw new OutpostError('BAD_REQUEST', `list ${sub}: give addresses or CIDR blocks (or --file)`);
      const r = await api.call<Summary & { added?: number; removed?: number }>('POST', `/lists/${path}/${sub}`, { entries });
      console.log(`${name}: ${sub === 'add' ? `added ${r.added}` : `removed ${r.removed}`}; ${r.entries} entries (version ${r.version})`);
      return 0;
    }
    case 'load': {
      const path = need('a list name and a file');
      const file = positionals[1] ?? values.file;
      if (!file) throw new OutpostError('BAD_REQUEST', 'list load: give a file (one entry per line, - for stdin)');
      const entries = readEntries(file);
      const r = await api.call<Summary>('PUT', `/lists/${path}`, { entries, ...(values.description ? { description: values.description } : {}) });
      console.log(`${name}: ${r.entries} entries (version ${r.version})`);
      return 0;
    }
    case 'rm': {
      await api.call('DELETE', `/lists/${need('a list name')}`);
      console.log(`${name}: deleted`);
      return 0;
    }
    case 'check': {
      const ip = positionals[1];
      if (!ip) throw new OutpostError('BAD_REQUEST', 'list check: give a list name and an address');
      const r = await api.call<{ listed: boolean }>('GET', `/lists/${need('a list name')}/check?ip=${encodeURIComponent(ip)}`);
      console.log(`${ip} is ${r.listed ? '' : 'not '}on ${name}`);
      return r.listed ? 0 : 1;
    }
    default:
      process.stdout.write(LIST_HELP);
      return sub === 'help' ? 0 : 2;
  }
}
