import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { phaseDiagram } from './phase-diagram.ts';
import { HOOK_PHASES, PHASES } from './phases.ts';

describe('phase diagram', () => {
  it('is the one docs/architecture.md shows', () => {
    const doc = readFileSync(new URL('../../docs/architecture.md', import.meta.url), 'utf8');
    const block = /<!-- phases:begin -->\n```\n([\s\S]*?)\n```\n<!-- phases:end -->/.exec(doc);
    expect(block?.[1]).toBe(phaseDiagram());
  });

  it('lists every phase in the fixed order, hooks only where hooks are allowed', () => {
    const d = phaseDiagram();
    const order = PHASES.map((p) => d.indexOf(`▼  ${p} `));
    expect(order.every((x, i) => x > 0 && (i === 0 || x > order[i - 1]!))).toBe(true);
    for (const p of HOOK_PHASES) expect(d).toMatch(new RegExp(`${p}\\s+\\[hooks`));
  });
});
