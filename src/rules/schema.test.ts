import { describe, expect, it } from 'vitest';
import { OutpostError } from '../errors.ts';
import { compileRules, loadRules } from './compile.ts';
import { parseRuleSet } from './schema.ts';

function refusal(input: unknown): string {
  try {
    parseRuleSet(input);
  } catch (err) {
    expect(err).toBeInstanceOf(OutpostError);
    expect((err as OutpostError).code).toBe('RULES_INVALID');
    expect((err as OutpostError).status).toBe(400);
    return (err as OutpostError).message;
  }
  throw new Error('accepted');
}

const rule = (r: Record<string, unknown>) => ({ rules: [{ then: { noStore: true }, ...r }] });

describe('rule set validation', () => {
  it('names the exact path of a mistake deep inside a condition', () => {
    expect(refusal({ rules: [{ then: { noStore: true } }, { when: { all: [{ method: 'GET' }, { not: { header: { name: 'bad name' } } }] }, then: { noStore: true } }] })).toBe(
      'rules[1].when.all[1].not.header.name: expected an HTTP header name such as "x-device", got "bad name"',
    );
  });

  it('suggests the nearest name for a misspelt action, condition or rule field', () => {
    expect(refusal({ rules: [{ then: { redirct: { location: '/x' } } }] })).toBe('rules[0].then: unknown action "redirct" (did you mean "redirect"?)');
    expect(refusal(rule({ when: { hots: 'a.example' } }))).toBe('rules[0].when: unknown condition "hots" (did you mean "host"?)');
    expect(refusal(rule({ contineu: true }))).toBe('rules[0]: unknown rule field "contineu" (did you mean "continue"?)');
    expect(refusal(rule({ when: { colour: 'red' } }))).toMatch(/^rules\[0\]\.when: unknown condition "colour" \(expected one of host, path, /);
  });

  it('reports every mistake, one line each', () => {
    const lines = refusal({
      rules: [
        { then: { deny: 705, cacheTtl: 'soon' } },
        { name: 'x', then: { compress: 'yes' } },
        { name: 'x', when: { country: 'DEU', ip: '10.0.0.0/33' }, then: { requestHeaders: { set: { Host: 'x', 'X-A': 'a\r\nb' } } } },
      ],
    }).split('\n');
    expect(lines).toEqual([
      'rules[0].then.cacheTtl: expected a duration such as "30s", "10m", "1d" or a number of seconds, got "soon"',
      'rules[0].then.deny.status: expected a status from 400 to 599, got 705',
      'rules[1].then.compress: expected boolean, got "yes"',
      'rules[2].when.country[0]: expected an ISO 3166-1 alpha-2 country code such as "DE", got "DEU"',
      'rules[2].when.ip[0]: expected an address or CIDR such as "10.0.0.0/8" or "2001:db8::/32", got "10.0.0.0/33"',
      'rules[2].then.requestHeaders.set.X-A: expected a header value without control characters (CR, LF, NUL…)',
      'rules[2].then.requestHeaders.set.Host: "host" is managed by the edge and cannot be changed by a request rule',
    ]);
    expect(refusal({ rules: [{ name: 'x', then: { noStore: true } }, { name: 'x', then: { noStore: true } }] })).toBe('rules[1].name: "x" is already the name of rules[0]');
  });

  it('checks regular expressions, paths, statuses and experiment percentages', () => {
    expect(refusal(rule({ when: { header: { name: 'user-agent', matches: '(' } } }))).toBe('rules[0].when.header.matches: not a valid regular expression: /(/: Unterminated group');
    expect(refusal(rule({ when: { host: '/[/' } }))).toMatch(/^rules\[0\]\.when\.host\[0\]: not a valid regular expression/);
    expect(refusal(rule({ when: { path: 'assets/*' } }))).toMatch(/^rules\[0\]\.when\.path\[0\]: expected a path prefix or glob starting with "\/"/);
    expect(refusal({ rules: [{ then: { rewritePath: { to: 'x' } } }] })).toMatch(/^rules\[0\]\.then\.rewritePath\.to: expected a path starting with "\/"/);
    expect(refusal({ rules: [{ then: { redirect: { location: '/x', status: 305 } } }] })).toBe('rules[0].then.redirect.status: expected 301, 302, 303, 307 or 308, got 305');
    expect(refusal({ rules: [{ then: { ab: { name: 'e', key: 'ip', buckets: [{ name: 'a', percent: 50 }, { name: 'b', percent: 40 }] } } }] })).toBe('rules[0].then.ab.buckets: expected percentages adding up to 100, got 90');
    expect(refusal({ rules: [{ then: { ab: { name: 'e', key: 'session', buckets: [{ name: 'a', percent: 50 }, { name: 'a', percent: 50 }] } } }] }).split('\n')).toEqual([
      'rules[0].then.ab.key: expected "ip", "cookie:NAME" or "header:NAME", got "session"',
      'rules[0].then.ab.buckets[1].name: bucket "a" is named twice',
    ]);
  });

  it('takes percentages with two decimals and refuses finer ones', () => {
    const ab = (percents: number[]) => ({ rules: [{ then: { ab: { name: 'e', key: 'ip', buckets: percents.map((percent, i) => ({ name: `b${i}`, percent })) } } }] });
    expect(parseRuleSet(ab([33.33, 33.33, 33.34])).rules).toHaveLength(1);
    expect(parseRuleSet(ab([0.07, 14.57, 85.36])).rules).toHaveLength(1);
    expect(refusal(ab([33.333, 66.667]))).toBe('rules[0].then.ab.buckets[0].percent: expected a percentage from 0 to 100 with at most 2 decimals, got 33.333\nrules[0].then.ab.buckets[1].percent: expected a percentage from 0 to 100 with at most 2 decimals, got 66.667');
  });

  it('refuses contradictions: no action, deny with redirect, two ways of choosing the pool, several value tests', () => {
    expect(refusal({ rules: [{ then: {} }] })).toMatch(/^rules\[0\]\.then: expected at least one action \(cacheTtl, /);
    expect(refusal({ rules: [{ then: { deny: 403, redirect: { location: '/' } } }] })).toBe('rules[0].then.redirect: expected redirect or deny, not both');
    expect(refusal({ rules: [{ then: { pool: 'a', routeByCountry: { DE: 'b' } } }] })).toBe('rules[0].then.pool: pool and routeByCountry all choose the pool: give one per rule');
    expect(refusal(rule({ when: { cookie: { name: 'uid', present: true, equals: '1' } } }))).toBe('rules[0].when.cookie: expected one of present, equals or matches, not several');
    expect(refusal({ rules: [{ then: { routeByCountry: { USA: 'us' } } }] })).toBe('rules[0].then.routeByCountry.USA: expected a country code such as "DE" or "default", got "USA"');
  });

  it('refuses what is not a rule set at all', () => {
    expect(refusal('rules')).toBe('(rule set): expected object, got "rules"');
    expect(refusal({ rules: {} })).toBe('rules: expected array, got an object');
    expect(refusal({ rules: [], extra: 1 })).toBe('(rule set): unknown field "extra" (expected one of rules)');
  });

  it('normalises what it accepts: single values become lists, names and codes change case, durations become ms', () => {
    const set = parseRuleSet({
      rules: [{ when: { method: 'get', extension: '.MP4', country: 'de', header: { name: 'X-Device' } }, then: { cacheTtl: '1h', requestHeaders: { set: { 'X-Foo': 'bar' } }, routeByCountry: { de: 'eu', default: 'default' } } }],
    });
    expect(set.rules[0]).toEqual({
      when: { method: ['GET'], extension: ['mp4'], country: ['DE'], header: { name: 'x-device' } },
      then: { cacheTtl: 3_600_000, requestHeaders: { set: { 'x-foo': 'bar' } }, routeByCountry: { DE: 'eu', default: 'default' } },
      continue: false,
      enabled: true,
    });
  });

  it('refuses routing to a pool the node does not configure, when it is told the pools', () => {
    const set = parseRuleSet({ rules: [{ then: { noStore: true } }, { then: { routeByCountry: { DE: 'eu', default: 'default' } } }] });
    expect(() => compileRules(set, { pools: ['default'] })).toThrow('rules[1].then: pool "eu" is not configured (upstream.pools has "default")');
    expect(compileRules(set, { pools: ['default', 'eu'] }).rules).toHaveLength(2);
    expect(loadRules({ rules: [] }).rules).toHaveLength(0);
  });
});
