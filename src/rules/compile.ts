// A validated rule set compiled once per version: globs, regexes, CIDR lists, host patterns and
// value templates are built here, so evaluating a request only calls small predicates.
// First match wins; a rule with `continue: true` lets the rules after it match as well.
import { OutpostError } from '../errors.ts';
import { compileActions, type CompiledActions } from './actions.ts';
import { compileCondition, type CondNode, type Facts } from './conditions.ts';
import { parseRuleSet, type Rule, type RuleSet } from './schema.ts';

export interface CompiledRule {
  /** Position in the set as written (disabled rules count). */
  readonly index: number;
  /** `name`, or `#index` when the rule has none. */
  readonly label: string;
  readonly name: string | undefined;
  readonly enabled: boolean;
  readonly continue: boolean;
  /** undefined: matches every request. */
  readonly cond: CondNode | undefined;
  readonly test: (f: Facts) => boolean;
  readonly actions: CompiledActions;
  readonly source: Rule;
}

export interface CompiledRules {
  /** Enabled rules in order: what the edge evaluates. */
  readonly rules: readonly CompiledRule[];
  /** Every rule, disabled ones included (for explain). */
  readonly all: readonly CompiledRule[];
  /** The stored version this was compiled from, when the caller said. */
  readonly version: number | undefined;
  /** Whether some rule has conditions or routes on the country (so the header must be read). */
  readonly usesCountry: boolean;
}

export interface CompileOptions {
  /** Configured upstream pool names: routing to any other pool is refused here. */
  readonly pools?: readonly string[] | undefined;
  readonly version?: number | undefined;
}

const always = (): boolean => true;

function readsCountry(c: Rule['when']): boolean {
  if (!c) return false;
  return c.country !== undefined || (c.all ?? []).some(readsCountry) || (c.any ?? []).some(readsCountry) || readsCountry(c.not);
}

export function compileRules(set: RuleSet, opts: CompileOptions = {}): CompiledRules {
  const known = opts.pools ? new Set(opts.pools) : undefined;
  const all: CompiledRule[] = set.rules.map((r, index) => {
    const cond = r.when ? compileCondition(r.when) : undefined;
    const actions = compileActions(r.then);
    const label = r.name ?? `#${index}`;
    if (known) {
      for (const p of actions.pools) {
        if (!known.has(p)) throw new OutpostError('RULES_INVALID', `rules[${index}].then: pool ${JSON.stringify(p)} is not configured (upstream.pools has ${[...known].map((k) => JSON.stringify(k)).join(', ') || 'none'})`);
      }
    }
    return { index, label, name: r.name, enabled: r.enabled, continue: r.continue, cond, test: cond ? cond.test : always, actions, source: r };
  });
  return {
    rules: all.filter((r) => r.enabled),
    all,
    version: opts.version,
    usesCountry: set.rules.some((r) => r.enabled && (readsCountry(r.when) || r.then.routeByCountry !== undefined)),
  };
}

/** parseRuleSet then compileRules: what a node runs on a stored value. */
export function loadRules(value: unknown, opts: CompileOptions = {}): CompiledRules {
  return compileRules(parseRuleSet(value), opts);
}

/**
 * The rules that match, in order: the first match, then more only while the matched rules say
 * `continue`. A deny or redirect ends the list. Undefined when nothing matches (no allocation).
 */
export function matchRules(c: CompiledRules, f: Facts): CompiledRule | CompiledRule[] | undefined {
  const rules = c.rules;
  let first: CompiledRule | undefined;
  let more: CompiledRule[] | undefined;
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i]!;
    if (!r.test(f)) continue;
    if (first === undefined) first = r;
    else (more ??= [first]).push(r);
    if (!r.continue || r.actions.early) break;
  }
  return more ?? first;
}
