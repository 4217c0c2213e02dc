// The rules engine: declarative conditions and actions, stored and propagated like CUs, evaluated
// in the rewrite phase. docs/rules.md is the user's guide.
export { parseRuleSet, formatPath, type RuleSet, type RuleSetInput, type Rule, type Condition, type Actions } from './schema.ts';
export { compileRules, loadRules, matchRules, type CompiledRules, type CompiledRule, type CompileOptions } from './compile.ts';
export { rulesHooks, rulesHookOptions, countryReader, RULES_MATCHED_VAR, DEFAULT_COUNTRY_HEADER, type RulesHookOptions } from './hooks.ts';
export { explain, type DescribedRequest, type Explanation, type ExplainOptions, type RuleVerdict } from './explain.ts';
export { rulesRoutes, type RulesDoc, type RulesRoutesOptions } from './routes.ts';
export { rulesCli, readRuleFile, formatExplanation, RULES_HELP, type RulesClient } from './rules-cli.ts';
