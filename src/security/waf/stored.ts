// WAF rules saved at run time: the `waf-rules` document of the node's store holds
// {"rules": [RuleSpec, …]}. It is checked when saved (admin API, `outpost waf rules set`) and again
// in every worker when a new version arrives (waf.ts); the rules run after the built-in and
// configured ones. Every mistake is named by its place: `rules[2].pattern: …`.
import type { CuStore, StoredDoc } from '../../compute/store/store.ts';
import { OutpostError } from '../../errors.ts';
import { BUILTIN_RULES, tryCompileRule, type Rule, type RuleSpec } from './rules.ts';

export const WAF_RULES_DOC = 'waf-rules';
/** Most rules one stored set may hold: every rule costs a regex per inspected value. */
export const MAX_STORED_RULES = 500;

export interface WafRulesValue {
  readonly rules: readonly RuleSpec[];
}

const BUILTIN_IDS: ReadonlySet<string> = new Set(BUILTIN_RULES.map((r) => r.id));

function describe(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v;
}

/**
 * Compiles a stored set. `taken` holds ids of the rules it runs beside (configured ones); built-in
 * ids are always taken. Throws BAD_REQUEST listing every problem, one per line.
 */
export function compileStoredRules(value: unknown, taken: ReadonlySet<string> = new Set()): Rule[] {
  const v = value as { rules?: unknown } | null;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new OutpostError('BAD_REQUEST', `waf rules: expected an object {"rules": [...]}, got ${describe(v)}`);
  for (const k of Object.keys(v)) if (k !== 'rules') throw new OutpostError('BAD_REQUEST', `waf rules: ${k}: unknown field (expected only "rules")`);
  if (!Array.isArray(v.rules)) throw new OutpostError('BAD_REQUEST', `waf rules: rules: expected an array of rules, got ${describe(v.rules)}`);
  if (v.rules.length > MAX_STORED_RULES) throw new OutpostError('BAD_REQUEST', `waf rules: rules: expected at most ${MAX_STORED_RULES} rules, got ${v.rules.length}`);
  const problems: string[] = [];
  const rules: Rule[] = [];
  const seen = new Map<string, number>();
  (v.rules as unknown[]).forEach((spec, i) => {
    const r = tryCompileRule(spec);
    const at = `rules[${i}]`;
    if ('field' in r) {
      problems.push(`${at}${r.field === 'spec' ? '' : `.${r.field}`}: ${r.message}`);
      return;
    }
    if (BUILTIN_IDS.has(r.id)) problems.push(`${at}.id: ${JSON.stringify(r.id)} is a built-in rule; give yours another id`);
    else if (taken.has(r.id)) problems.push(`${at}.id: ${JSON.stringify(r.id)} is a rule of the configuration (security.waf.rules); give yours another id`);
    else if (seen.has(r.id)) problems.push(`${at}.id: ${JSON.stringify(r.id)} is also the id of rules[${seen.get(r.id)}]`);
    else {
      seen.set(r.id, i);
      rules.push(r);
    }
  });
  if (problems.length) throw new OutpostError('BAD_REQUEST', `waf rules refused:\n${problems.join('\n')}`);
  return rules;
}

/** The `waf-rules` document of a store, as the admin routes read and write it. */
export interface WafRulesDoc {
  get(): Promise<StoredDoc | undefined>;
  put(value: WafRulesValue): Promise<StoredDoc>;
}

export function wafRulesDoc(store: CuStore): WafRulesDoc {
  return {
    get: async () => (await store.readAll()).docs.find((d) => d.name === WAF_RULES_DOC),
    put: (value) => store.putDoc(WAF_RULES_DOC, value),
  };
}
