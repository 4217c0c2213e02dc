// Seed 004's experiments as data: which workload, which max-age, which load-balancing policy and
// whether request collapsing is on. One experiment is one fresh mini-CDN measured once per repetition;
// experiments of a group answer one of the seed's questions side by side.
import { OutpostError } from '../../src/errors.ts';
import { describeMix, HOT_ITEM, LONG_TAIL, type Mix } from './load.ts';

export const GROUPS = ['ttl', 'collapsing', 'policy'] as const;
export type Group = (typeof GROUPS)[number];
export type LbPolicy = 'rr' | 'chash' | 'bounded';

export interface Experiment {
  readonly id: string;
  readonly group: Group;
  /** What tells it apart from the others of its group (a table row, a chart bar). */
  readonly label: string;
  readonly mix: Mix;
  readonly maxAgeS: number;
  readonly policy: LbPolicy;
  readonly collapsing: boolean;
}

export interface GroupInfo {
  readonly title: string;
  /** The column naming the variable of the group. */
  readonly variable: string;
  readonly setup: string;
}

// TTL and collapsing run under chash: every item then has one edge cache, as in the seed's
// single-edge setup, so the hit ratio moves with max-age and collapsing only.
export const GROUP_INFO: Record<Group, GroupInfo> = {
  ttl: { title: 'Cache TTL (max-age)', variable: 'max-age', setup: `long tail (${describeMix(LONG_TAIL)}), LB policy chash, collapsing on` },
  collapsing: { title: 'Request collapsing', variable: 'collapsing', setup: `long tail (${describeMix(LONG_TAIL)}), max-age 1 s (a herd on every expiry), LB policy chash` },
  policy: { title: 'Load-balancing policy with one very hot item', variable: 'policy', setup: `hot item (${describeMix(HOT_ITEM)}), max-age 10 s, collapsing on` },
};

const ttl = (s: number): Experiment => ({ id: `ttl-${s}s`, group: 'ttl', label: `${s} s`, mix: LONG_TAIL, maxAgeS: s, policy: 'chash', collapsing: true });
const collapsing = (on: boolean): Experiment => ({ id: `collapsing-${on ? 'on' : 'off'}`, group: 'collapsing', label: on ? 'on' : 'off', mix: LONG_TAIL, maxAgeS: 1, policy: 'chash', collapsing: on });
const policy = (p: LbPolicy): Experiment => ({ id: `policy-${p}`, group: 'policy', label: p, mix: HOT_ITEM, maxAgeS: 10, policy: p, collapsing: true });

export const EXPERIMENTS: readonly Experiment[] = [
  ttl(1),
  ttl(10),
  ttl(60),
  collapsing(true),
  collapsing(false),
  policy('rr'),
  policy('chash'),
  policy('bounded'),
];

/** Experiments whose id equals or starts with one of `only` (`ttl` selects ttl-1s, ttl-10s, ttl-60s). */
export function selectExperiments(only: readonly string[] | undefined): Experiment[] {
  if (only === undefined || only.length === 0) return [...EXPERIMENTS];
  for (const o of only) {
    if (!EXPERIMENTS.some((e) => e.id === o || e.id.startsWith(`${o}-`))) {
      throw new OutpostError('BAD_REQUEST', `--only: no experiment matches "${o}"; experiments: ${EXPERIMENTS.map((e) => e.id).join(', ')}`);
    }
  }
  return EXPERIMENTS.filter((e) => only.some((o) => e.id === o || e.id.startsWith(`${o}-`)));
}
