// `outpost nodes`: the nodes of the fleet as the registry shows them.
import { parseArgs } from 'node:util';
import type { AdminClient } from '../control/client.ts';
import type { NodeInfo } from './fleet.ts';

type Row = NodeInfo & { up: boolean; self: boolean };

function ago(ms: number): string {
  return ms < 1000 ? `${ms} ms ago` : ms < 120_000 ? `${Math.round(ms / 1000)} s ago` : `${Math.round(ms / 60_000)} min ago`;
}

export async function nodesCommand(argv: string[], client: (values: { admin?: string | undefined; key?: string | undefined }) => AdminClient): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { admin: { type: 'string' }, key: { type: 'string' }, json: { type: 'boolean' } } });
  const { nodes } = await client(values).call<{ nodes: Row[] }>('GET', '/nodes');
  if (values.json) {
    console.log(JSON.stringify(nodes, null, 2));
    return 0;
  }
  const now = Date.now();
  const rows = [
    ['NAME', 'ROLE', 'STATE', 'VERSION', 'HIT RATIO', 'REQUESTS', 'EDGE', 'LAST SEEN'],
    ...nodes.map((n) => [
      `${n.name}${n.self ? '*' : ''}`,
      n.role,
      n.up ? (n.healthy ? 'up' : 'unhealthy') : 'down',
      n.version,
      `${(n.hitRatio * 100).toFixed(1)}%`,
      String(n.requests),
      n.edge ?? '-',
      ago(now - n.seenAt),
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd());
  return 0;
}
