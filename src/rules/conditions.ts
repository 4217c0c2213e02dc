// Conditions compiled once per rule-set version into small predicates over the request's Facts.
// Each node also keeps a label and a way to show what it saw, so that explain() can say which
// condition failed and why, with the same code the edge runs.
import type { BlockList } from 'node:net';
import type { IncomingHttpHeaders } from 'node:http';
import { isAllowed, parseCidrList } from '../edge/cidr.ts';
import { compileHostPatterns } from '../edge/host-match.ts';
import { compilePathMatcher, hostnameOf, normalizePath } from '../security/gates/scope.ts';
import type { Condition, ValueMatch } from './schema.ts';

/**
 * What conditions read, taken from the request as it reached the rules engine. Derived values
 * (normalised path, extension, cookies, query parameters) are worked out on first use only.
 */
export class Facts {
  readonly method: string;
  readonly scheme: string;
  /** As in ctx.host: lower-case, maybe with a port. */
  readonly host: string;
  /** The raw path, as in ctx.path. */
  readonly rawPath: string;
  readonly query: string;
  readonly headers: IncomingHttpHeaders;
  readonly ip: string;
  /** Upper-case alpha-2, or undefined when unknown. */
  readonly country: string | undefined;
  #bare: string | undefined;
  #path: string | undefined;
  #decoded: string | null | undefined;
  #ext: string | undefined;
  #cookies: Map<string, string> | undefined;
  #params: Map<string, string> | undefined;

  constructor(r: { method: string; scheme: string; host: string; path: string; query: string; headers: IncomingHttpHeaders; ip: string; country: string | undefined }) {
    this.method = r.method;
    this.scheme = r.scheme;
    this.host = r.host;
    this.rawPath = r.path;
    this.query = r.query;
    this.headers = r.headers;
    this.ip = r.ip;
    this.country = r.country;
  }

  /** The host without its port. */
  get bareHost(): string {
    return (this.#bare ??= hostnameOf(this.host));
  }

  /** RFC 3986 normalised (so "/a/../assets/x" and "/%61ssets/x" match "/assets/**"). */
  get path(): string {
    return (this.#path ??= normalizePath(this.rawPath));
  }

  /** The fully percent-decoded path, normalised; null when it has no '%' or does not decode. */
  get decodedPath(): string | null {
    if (this.#decoded === undefined) {
      this.#decoded = null;
      if (this.rawPath.includes('%')) {
        try {
          this.#decoded = normalizePath(decodeURIComponent(this.rawPath));
        } catch {
          // stays null: the normalised form is all there is
        }
      }
    }
    return this.#decoded;
  }

  /** Lower-case extension of the last path segment, '' when it has none. */
  get ext(): string {
    if (this.#ext === undefined) {
      const p = this.path;
      const slash = p.lastIndexOf('/');
      const dot = p.lastIndexOf('.');
      this.#ext = dot > slash + 1 ? p.slice(dot + 1).toLowerCase() : '';
    }
    return this.#ext;
  }

  header(name: string): string | undefined {
    const v = this.headers[name];
    return v === undefined ? undefined : Array.isArray(v) ? v.join(', ') : v;
  }

  cookie(name: string): string | undefined {
    if (this.#cookies === undefined) {
      this.#cookies = new Map();
      const raw = this.header('cookie');
      if (raw) {
        for (const part of raw.split(/;\s*/)) {
          const eq = part.indexOf('=');
          if (eq <= 0) continue;
          const k = part.slice(0, eq).trim();
          // The first of a repeated name wins, as in browsers' document.cookie order.
          if (!this.#cookies.has(k)) this.#cookies.set(k, part.slice(eq + 1).trim());
        }
      }
    }
    return this.#cookies.get(name);
  }

  /** A query parameter, percent-decoded ('+' as space); the first of repeated names. */
  param(name: string): string | undefined {
    if (this.#params === undefined) {
      this.#params = new Map();
      for (const raw of this.query.split('&')) {
        if (raw === '') continue;
        const eq = raw.indexOf('=');
        const k = decode(eq < 0 ? raw : raw.slice(0, eq));
        if (!this.#params.has(k)) this.#params.set(k, eq < 0 ? '' : decode(raw.slice(eq + 1)));
      }
    }
    return this.#params.get(name);
  }
}

function decode(s: string): string {
  if (!s.includes('%') && !s.includes('+')) return s;
  try {
    return decodeURIComponent(s.replaceAll('+', ' '));
  } catch {
    return s;
  }
}

/** A compiled condition: `test` is the hot path; the rest serves explain(). */
export type CondNode =
  | { readonly kind: 'leaf'; readonly label: string; readonly test: (f: Facts) => boolean; readonly seen: (f: Facts) => string }
  | { readonly kind: 'all' | 'any'; readonly label: string; readonly children: readonly CondNode[]; readonly test: (f: Facts) => boolean }
  | { readonly kind: 'not'; readonly label: string; readonly child: CondNode; readonly test: (f: Facts) => boolean };

const show = (v: string | undefined): string => (v === undefined ? 'nothing' : JSON.stringify(v.length > 80 ? `${v.slice(0, 77)}…` : v));
const showList = (l: readonly string[]): string => (l.length === 1 ? JSON.stringify(l[0]) : `one of ${l.map((x) => JSON.stringify(x)).join(', ')}`);

function leaf(label: string, test: (f: Facts) => boolean, seen: (f: Facts) => string): CondNode {
  return { kind: 'leaf', label, test, seen };
}

function valueLeaf(what: 'header' | 'cookie' | 'query', m: ValueMatch, get: (f: Facts) => string | undefined): CondNode {
  const subject = `${what} ${m.name}`;
  const seen = (f: Facts) => show(get(f));
  if (m.equals !== undefined) {
    const values = m.equals;
    if (values.length === 1) {
      const only = values[0]!;
      return leaf(`${subject} is ${JSON.stringify(only)}`, (f) => get(f) === only, seen);
    }
    const set = new Set(values);
    return leaf(`${subject} is ${showList(values)}`, (f) => {
      const v = get(f);
      return v !== undefined && set.has(v);
    }, seen);
  }
  if (m.matches !== undefined) {
    const re = new RegExp(m.matches);
    return leaf(`${subject} matches /${m.matches}/`, (f) => {
      const v = get(f);
      return v !== undefined && re.test(v);
    }, seen);
  }
  if (m.present === false) return leaf(`${subject} is absent`, (f) => get(f) === undefined, seen);
  return leaf(`${subject} is present`, (f) => get(f) !== undefined, seen);
}

/**
 * Host patterns read by src/edge/host-match.ts (exact, "*.example.com", "/regex/flags"; exact
 * and wildcard also match the name without its port), over Facts that lower-cased the host and
 * split off the port once per request rather than once per rule.
 */
function hostTest(patterns: readonly string[]): (f: Facts) => boolean {
  const test = compileHostPatterns(patterns);
  return (f) => test(f.host, f.bareHost);
}

/**
 * compilePathMatcher (src/security/gates/scope.ts) per pattern, each glob behind a check of the
 * literal text before its first '*': most paths fail that, and a startsWith is cheaper than a regex.
 */
function pathTest(patterns: readonly string[]): (path: string) => boolean {
  const prefixes = patterns.filter((p) => !p.includes('*'));
  const globs = patterns.filter((p) => p.includes('*')).map((p) => ({ lit: p.slice(0, p.indexOf('*')), ok: compilePathMatcher([p]) }));
  return (path) => {
    for (const p of prefixes) if (path.startsWith(p)) return true;
    for (const g of globs) if (path.startsWith(g.lit) && g.ok(path)) return true;
    return false;
  };
}

function combine(kind: 'all' | 'any', children: CondNode[]): CondNode {
  const label = `${kind}(${children.map((c) => c.label).join('; ')})`;
  if (children.length === 1) return children[0]!;
  const tests = children.map((c) => c.test);
  const n = tests.length;
  const test =
    kind === 'all'
      ? (f: Facts) => {
          for (let i = 0; i < n; i++) if (!tests[i]!(f)) return false;
          return true;
        }
      : (f: Facts) => {
          for (let i = 0; i < n; i++) if (tests[i]!(f)) return true;
          return false;
        };
  return { kind, label, children, test };
}

/**
 * Compiles one condition object. Its keys must all hold; they are tested cheapest first (method,
 * host, extension, path, country, address, then headers, query and cookies, then nested groups),
 * which is also the order explain() reports the first failure in.
 */
export function compileCondition(c: Condition): CondNode | undefined {
  const parts: CondNode[] = [];
  if (c.method) {
    const set = new Set(c.method);
    parts.push(leaf(`method is ${showList(c.method)}`, (f) => set.has(f.method), (f) => f.method));
  }
  if (c.host) parts.push(leaf(`host is ${showList(c.host)}`, hostTest(c.host), (f) => JSON.stringify(f.host)));
  if (c.extension) {
    const set = new Set(c.extension);
    parts.push(leaf(`extension is ${showList(c.extension)}`, (f) => set.has(f.ext), (f) => (f.ext ? JSON.stringify(f.ext) : 'none')));
  }
  if (c.path) {
    const ok = pathTest(c.path);
    // Fail closed like the security gates: "/%70rivate/x" is "/private/x" to some origins.
    const test = (f: Facts) => {
      if (ok(f.path)) return true;
      const d = f.decodedPath;
      return d !== null && ok(d);
    };
    parts.push(leaf(`path matches ${showList(c.path)}`, test, (f) => JSON.stringify(f.path)));
  }
  if (c.country) {
    const set = new Set(c.country);
    parts.push(leaf(`country is ${showList(c.country)}`, (f) => f.country !== undefined && set.has(f.country), (f) => f.country ?? 'unknown'));
  }
  if (c.ip) {
    const list: BlockList = parseCidrList(c.ip);
    parts.push(leaf(`client address in ${showList(c.ip)}`, (f) => isAllowed(list, f.ip), (f) => f.ip || 'none'));
  }
  if (c.header) {
    const name = c.header.name;
    parts.push(valueLeaf('header', c.header, (f) => f.header(name)));
  }
  if (c.query) {
    const name = c.query.name;
    parts.push(valueLeaf('query', c.query, (f) => f.param(name)));
  }
  if (c.cookie) {
    const name = c.cookie.name;
    parts.push(valueLeaf('cookie', c.cookie, (f) => f.cookie(name)));
  }
  if (c.all) {
    const kids = c.all.map((x) => compileCondition(x)).filter((x) => x !== undefined);
    if (kids.length) parts.push(combine('all', kids));
  }
  if (c.any) {
    // An empty condition inside `any` matches everything, so the whole group does.
    const kids = c.any.map((x) => compileCondition(x));
    if (!kids.includes(undefined)) parts.push(combine('any', kids as CondNode[]));
  }
  if (c.not) {
    const child = compileCondition(c.not);
    if (child === undefined) parts.push(leaf('not(everything)', () => false, () => 'any request'));
    else {
      const t = child.test;
      parts.push({ kind: 'not', label: `not(${child.label})`, child, test: (f) => !t(f) });
    }
  }
  if (parts.length === 0) return undefined;
  return combine('all', parts);
}

/** Why a node did not match: the first failing leaf, with what it saw. */
export function whyNot(node: CondNode, f: Facts): string {
  switch (node.kind) {
    case 'leaf':
      return `${node.label}: got ${node.seen(f)}`;
    case 'all':
      for (const c of node.children) if (!c.test(f)) return whyNot(c, f);
      return 'all matched';
    case 'any':
      return `none of: ${node.children.map((c) => whyNot(c, f)).join(' | ')}`;
    case 'not':
      return `${node.label}: ${whyYes(node.child, f)}`;
  }
}

/** What made a node match (for a failing `not`). */
function whyYes(node: CondNode, f: Facts): string {
  switch (node.kind) {
    case 'leaf':
      return `${node.label} (got ${node.seen(f)})`;
    case 'all':
      return node.children.map((c) => whyYes(c, f)).join(' and ');
    case 'any':
      for (const c of node.children) if (c.test(f)) return whyYes(c, f);
      return 'matched';
    case 'not':
      return `${node.label} (${whyNot(node.child, f)})`;
  }
}
