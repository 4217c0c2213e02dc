// Where a gate applies: host patterns and path prefixes/globs, compiled once. Paths are matched
// after normalisation (dot segments, repeated slashes, percent-encoding) so that "/a/../private/x",
// "//private/x" or "/%70rivate/x" cannot walk around a gate scoped to "/private/".
import type { RequestContext } from '../../edge/phases.ts';

import { compileHostMatcher } from '../../edge/host-match.ts';

export { compileHostMatcher };

/** ctx.host without its port ("example.com:8080" → "example.com", "[::1]:80" → "[::1]"). */
export function hostnameOf(host: string): string {
  const colon = host.lastIndexOf(':');
  if (colon < 0 || host.endsWith(']')) return host;
  return host.charCodeAt(0) === 91 /* '[' */ && !host.includes(']') ? host : host.slice(0, colon);
}

function globToRegExp(glob: string): RegExp {
  let re = '^';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        re += '.*';
        i++;
      } else re += '[^/]*';
    } else re += /[\\^$.|?+()[\]{}]/.test(c) ? `\\${c}` : c;
  }
  return new RegExp(`${re}$`);
}

/** Prefixes (no '*': literal prefix, nginx-style) and globs ('*' within a segment, '**' across). */
export function compilePathMatcher(patterns: readonly string[]): (path: string) => boolean {
  const prefixes = patterns.filter((p) => !p.includes('*'));
  const globs = patterns.filter((p) => p.includes('*')).map(globToRegExp);
  return (path) => {
    for (const p of prefixes) if (path.startsWith(p)) return true;
    for (const g of globs) if (g.test(path)) return true;
    return false;
  };
}

const UNRESERVED = /[A-Za-z0-9\-._~]/;

function removeDotSegments(path: string): string {
  const segs = path.split('/');
  const out: string[] = [];
  for (let i = 1; i < segs.length; i++) {
    const s = segs[i]!;
    const last = i === segs.length - 1;
    if (s === '.' || s === '..') {
      if (s === '..') out.pop();
      if (last) out.push('');
      continue;
    }
    out.push(s);
  }
  return `/${out.join('/')}`;
}

/**
 * RFC 3986 §6.2.2 normalisation for matching: percent-encoded unreserved characters decoded,
 * repeated slashes collapsed, dot segments removed. Plain paths return as they are.
 */
export function normalizePath(raw: string): string {
  if (!raw.includes('%') && !raw.includes('//') && !raw.includes('/.')) return raw;
  const decoded = raw.replace(/%([0-9a-fA-F]{2})/g, (m, hex: string) => {
    const c = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED.test(c) ? c : m.toUpperCase();
  });
  return removeDotSegments(decoded.replace(/\/{2,}/g, '/'));
}

function fullyDecoded(raw: string): string | undefined {
  try {
    return decodeURIComponent(raw);
  } catch {
    return undefined;
  }
}

export type Scope = (ctx: Pick<RequestContext, 'host' | 'path'>) => boolean;

/**
 * Whether a request falls under a gate. Fail closed: with '%' in the path, the fully decoded form
 * is matched too, since some origins decode "%2F" as a separator.
 */
export function compileScope(o: { readonly hosts?: readonly string[] | undefined; readonly paths?: readonly string[] | undefined }): Scope {
  const hostOk = o.hosts ? compileHostMatcher(o.hosts) : undefined;
  const pathOk = o.paths ? compilePathMatcher(o.paths) : undefined;
  if (!hostOk && !pathOk) return () => true;
  return (ctx) => {
    if (hostOk && !hostOk(hostnameOf(ctx.host))) return false;
    if (!pathOk) return true;
    if (pathOk(normalizePath(ctx.path))) return true;
    if (!ctx.path.includes('%')) return false;
    const dec = fullyDecoded(ctx.path);
    return dec !== undefined && pathOk(normalizePath(dec));
  };
}
