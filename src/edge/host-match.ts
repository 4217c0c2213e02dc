// Host patterns, shared by every part that scopes itself to hosts (CUs, security gates):
// exact ("example.com"), wildcard for subdomains ("*.example.com") or regex ("/^api\\d\\./i").
// A host may carry a port; exact and wildcard patterns also match the bare name.

/** Compiles host patterns into one predicate; an empty list matches every host. */
export function compileHostMatcher(patterns: readonly string[]): (host: string) => boolean {
  if (patterns.length === 0) return () => true;
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
  return (host) => {
    const h = host.toLowerCase();
    const bare = h.replace(/:\d+$/, '');
    if (exact.has(h) || exact.has(bare)) return true;
    for (const s of suffixes) if (bare.endsWith(s) && bare.length > s.length) return true;
    for (const r of regexes) if (r.test(h)) return true;
    return false;
  };
}
