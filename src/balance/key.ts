// The key consistent hashing places on the ring, chosen by a setting compiled once at start:
//   uri (default)   path and query, as sent        path         path without the query
//   host            the Host header                ip           the client address
//   header:NAME     a request header               cookie:NAME  one cookie
//   query:NAME      one query parameter
// A request without the part (no such header, cookie, parameter) hashes the empty string: all such
// requests go to one member, which is what pinning by that part means.

export interface KeySource {
  /** Path and query. */
  readonly url: string;
  readonly host: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly ip: string;
}

export type KeyFn = (s: KeySource) => string;

export const HASH_KEY_PATTERN = /^(uri|path|host|ip|header:[!#$%&'*+.^_`|~0-9A-Za-z-]+|cookie:[^\s;=,]+|query:[^\s&=#]+)$/;

function first(v: string | string[] | undefined): string {
  return v === undefined ? '' : Array.isArray(v) ? (v[0] ?? '') : v;
}

export function compileHashKey(spec: string): KeyFn {
  if (!HASH_KEY_PATTERN.test(spec)) throw new Error(`expected uri, path, host, ip, header:NAME, cookie:NAME or query:NAME (got ${JSON.stringify(spec)})`);
  const colon = spec.indexOf(':');
  const kind = colon < 0 ? spec : spec.slice(0, colon);
  const name = colon < 0 ? '' : spec.slice(colon + 1);
  switch (kind) {
    case 'uri':
      return (s) => s.url;
    case 'path':
      return (s) => {
        const q = s.url.indexOf('?');
        return q < 0 ? s.url : s.url.slice(0, q);
      };
    case 'host':
      return (s) => s.host;
    case 'ip':
      return (s) => s.ip;
    case 'header': {
      const lower = name.toLowerCase();
      return (s) => first(s.headers[lower]);
    }
    case 'cookie': {
      const prefix = `${name}=`;
      return (s) => {
        const header = s.headers.cookie;
        const all = Array.isArray(header) ? header.join('; ') : (header ?? '');
        for (const part of all.split(';')) {
          const p = part.trim();
          if (p.startsWith(prefix)) return p.slice(prefix.length);
        }
        return '';
      };
    }
    default: {
      return (s) => {
        const q = s.url.indexOf('?');
        return q < 0 ? '' : (new URLSearchParams(s.url.slice(q + 1)).get(name) ?? '');
      };
    }
  }
}
