// Host patterns, shared by every part that scopes itself to hosts (CUs, security gates):
// exact ("example.com"), wildcard for subdomains ("*.example.com") or regex ("/^api\\d\\./i").
// A host may carry a port; exact and wildcard patterns also match the bare name.

/** Compiles host patterns into one predicate; an empty list matches every host. */
export function compileHostMatcher(patterns: readonly string[]): (host: string) => boolean {
  if (patterns.length === 0) return () => true;
  const test = compileHostPatterns(patterns);
  return (host) => {
    const h = host.toLowerCase();
    return test(h, h.replace(/:\d+$/, ''));
  };
}

/**
 * The same patterns over a host already lower-cased and split from its port, for callers that do
 * that once per request rather than once per pattern list (the rules engine). An empty list
 * matches nothing here.
 */
export function compileHostPatterns(patterns: readonly string[]): (host: string, bareHost: string) => boolean {
  const exact = new Set<string>();
  const suffixes: string[] = [];
  const regexes: RegExp[] = [];
  for (const p of patterns) {
    if (p.startsWith('/')) {
      const m = /^\/(.+)\/([a-z]*)$/.exec(p)!;
      regexes.push(new RegExp(m[1]!, m[2]));
    } else if (p.startsWith('*.')) suffixes.push(p.slice(1).toLowerCase());
    else exact.add(p.toLowerCase());
  }
  return (h, bare) => {
    if (exact.has(h) || (bare !== h && exact.has(bare))) return true;
    for (const s of suffixes) if (bare.length > s.length && bare.endsWith(s)) return true;
    for (const r of regexes) if (r.test(h)) return true;
    return false;
  };
}
