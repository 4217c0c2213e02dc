// The request-phase diagram in docs/architecture.md, generated from PHASES so the two cannot drift
// (a test compares them). Print it with `node src/edge/phase-diagram.ts`.
import { HOOK_PHASES, PHASES } from './phases.ts';

const NOTES: Record<(typeof PHASES)[number], string> = {
  rewrite: 'change host, path, query, headers, pool',
  access: 'allow, deny, answer early',
  cache: 'key, lookup, freshness, collapsing',
  upstream: 'origin pool: keep-alive, retries, timeouts',
  header_filter: 'change status and headers to the client',
  body_filter: 'change the body to the client',
  log: 'after the response: metrics, logs',
};

export function phaseDiagram(): string {
  const hookable = new Set<string>(HOOK_PHASES);
  const width = Math.max(...PHASES.map((p) => p.length)) + 2;
  const lines = ['client request', '    │'];
  PHASES.forEach((p, i) => {
    const label = p.padEnd(width);
    const kind = hookable.has(p) ? 'hooks' : 'built-in';
    lines.push(`    ▼  ${label} [${kind.padEnd(8)}] ${NOTES[p]}`);
    if (p === 'access') lines.push('    │     └─ any hook may answer early ─────────────┐');
    if (p === 'upstream') lines.push('    │  ◄─────────────────────────────────────────────┘ (early answers rejoin here)');
    if (i < PHASES.length - 1) lines.push('    │');
  });
  lines.push('    ▼', 'done');
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(phaseDiagram());
