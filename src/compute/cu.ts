// The computing unit (CU): what an operator writes and stores. Validated here once, when it is
// saved through the API or read from a store; docs/cu-api.md and docs/cu-store.md describe it.
import { z } from 'zod';
import { HOOK_PHASES, type HookPhase } from '../edge/phases.ts';
export { compileHostMatcher } from '../edge/host-match.ts';

export type CuPhase = HookPhase;
export const CU_PHASES: readonly CuPhase[] = HOOK_PHASES;

/** nginx/OpenResty directive names accepted for the phase, as the seeds write them. */
export const PHASE_ALIASES: Readonly<Record<string, CuPhase>> = Object.freeze({
  set_by_lua_block: 'rewrite',
  rewrite_by_lua_block: 'rewrite',
  rewrite_by_lua: 'rewrite',
  access_by_lua_block: 'access',
  access_by_lua: 'access',
  header_filter_by_lua_block: 'header_filter',
  header_filter_by_lua: 'header_filter',
  body_filter_by_lua_block: 'body_filter',
  body_filter_by_lua: 'body_filter',
  log_by_lua_block: 'log',
  log_by_lua: 'log',
  'header-filter': 'header_filter',
  'body-filter': 'body_filter',
});

export function resolvePhase(value: string): CuPhase | undefined {
  const v = value.trim();
  if ((CU_PHASES as readonly string[]).includes(v)) return v as CuPhase;
  return PHASE_ALIASES[v];
}

export const CU_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
export const MAX_CODE_BYTES = 256 * 1024;

/** A host pattern: exact ("example.com"), wildcard ("*.example.com") or regex ("/^api\\./i"). */
const hostPattern = z.string().min(1).max(512).refine((p) => {
  if (p.startsWith('/')) {
    const m = /^\/(.+)\/([a-z]*)$/.exec(p);
    if (!m) return false;
    try {
      new RegExp(m[1]!, m[2]);
      return true;
    } catch {
      return false;
    }
  }
  return /^(\*\.)?[A-Za-z0-9.-]+(:\d+)?$/.test(p);
}, 'expected a host ("example.com"), a wildcard ("*.example.com") or a regex ("/^api\\./")');

/** What the API accepts (and what a store holds, plus version fields). */
export const CuInputSchema = z
  .object({
    id: z.string().regex(CU_ID_RE, 'expected 1–128 letters, digits, ".", "_" or "-", starting with a letter or digit'),
    phase: z.string().transform((v, ctx) => {
      const p = resolvePhase(v);
      if (!p) {
        ctx.addIssue({ code: 'custom', message: `expected one of ${CU_PHASES.join(', ')} (or an nginx name such as access_by_lua_block), got ${JSON.stringify(v)}` });
        return z.NEVER;
      }
      return p;
    }),
    code: z.string().min(1, 'expected code').refine((c) => Buffer.byteLength(c) <= MAX_CODE_BYTES, `expected at most ${MAX_CODE_BYTES} bytes of code`),
    lang: z.enum(['js', 'ts']).default('js'),
    /** Percent of requests the CU runs for (0–100). */
    sampling: z.number().min(0).max(100).default(100),
    hosts: z.array(hostPattern).max(1000).default([]),
    /** Lower runs first; ties are broken by id. */
    priority: z.int().min(-1_000_000).max(1_000_000).default(100),
    enabled: z.boolean().default(true),
    timeoutMs: z.number().min(1).max(10_000).default(50),
    memoryMb: z.int().min(8).max(1024).default(16),
    /** open: the request goes on when the CU fails; closed: the request is answered 503. */
    failure: z.enum(['open', 'closed']).default('open'),
    description: z.string().max(2000).optional(),
  })
  .strict();

export type CuInput = z.input<typeof CuInputSchema>;
export type CuSpec = z.output<typeof CuInputSchema>;

/** A stored CU: the spec plus what the control plane adds. */
export interface CuRecord extends CuSpec {
  /** Increases with every write of this id; workers compile once per (id, version). */
  readonly version: number;
  readonly updatedAt: string;
}

/** Global switches stored beside the CUs. */
export const CuSettingsSchema = z
  .object({
    enabled: z.boolean().default(true),
    /** Hosts (same patterns as CU hosts) for which no CU runs. */
    skipHosts: z.array(hostPattern).max(10_000).default([]),
  })
  .strict();
export type CuSettings = z.output<typeof CuSettingsSchema>;
export const DEFAULT_CU_SETTINGS: CuSettings = Object.freeze({ enabled: true, skipHosts: [] }) as CuSettings;

/** Execution order: priority, then id — deterministic on every worker of every node. */
export function compareCus(a: Pick<CuSpec, 'priority' | 'id'>, b: Pick<CuSpec, 'priority' | 'id'>): number {
  return a.priority - b.priority || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/**
 * Sampling: the CU runs when a uniform draw in [0, 100) falls below `sampling` — so sampling 30
 * runs for about 30 % of requests (the seed's first version had the comparison inverted).
 */
export function sampled(sampling: number, draw: number = Math.random() * 100): boolean {
  return sampling >= 100 || (sampling > 0 && draw < sampling);
}
