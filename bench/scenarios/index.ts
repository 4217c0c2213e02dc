// Every scenario, in the order the bench runs them: the 1-worker pinned phase, then the 2-worker phase.
import { hitScenario } from './hit.ts';
import { passThroughScenario } from './passthrough.ts';
import { httpsScenario, h2Scenario } from './tls.ts';
import { memoryScenario } from './memory.ts';
import { herdScenario } from './herd.ts';
import { longTailScenario } from './longtail.ts';
import { cuOverheadScenario, cuPropagationScenario } from './compute.ts';
import { compressionScenario, securityHitScenario } from './security.ts';
import type { Scenario } from './types.ts';

export const SCENARIOS: readonly Scenario[] = [
  hitScenario('1k', 'w1'),
  hitScenario('16k', 'w1'),
  hitScenario('256k', 'w1'),
  passThroughScenario('w1'),
  httpsScenario('w1'),
  h2Scenario('w1'),
  memoryScenario('w1'),
  cuOverheadScenario(0, 'w1'),
  cuOverheadScenario(1, 'w1'),
  cuOverheadScenario(5, 'w1'),
  securityHitScenario('w1'),
  hitScenario('1k', 'w2'),
  hitScenario('16k', 'w2'),
  hitScenario('256k', 'w2'),
  herdScenario('w2'),
  longTailScenario('w2'),
  cuPropagationScenario('w2'),
  compressionScenario('w2'),
];

/** Scenarios selected by --only (ids or prefixes such as `hit` or `hit-1k`). */
export function selectScenarios(only: readonly string[] | undefined): Scenario[] {
  if (only === undefined) return [...SCENARIOS];
  return SCENARIOS.filter((s) => only.some((o) => s.id === o || s.id.startsWith(`${o}-`) || s.id.startsWith(o)));
}
