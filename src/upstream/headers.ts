// What the origin receives: the client's headers less hop-by-hop ones, plus forwarding headers.
import type { IncomingHttpHeaders } from 'node:http';
import type { UpstreamHeaders } from './pool.ts';

/** Never forwarded (RFC 9110 §7.6.1), and headers undici refuses to send itself. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect', 'host', 'http2-settings', 'proxy-authorization']);
/** Stripped when the cache fetches a whole object on the client's behalf. */
const CONDITIONAL = new Set(['if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since', 'if-range', 'range']);

export interface ForwardingOptions {
  readonly xForwardedFor: boolean;
  readonly via: boolean;
  /** Name in the Via header. */
  readonly name: string;
}

export function upstreamHeaders(
  headers: IncomingHttpHeaders,
  client: { readonly ip: string; readonly scheme: string; readonly httpVersion: string },
  opts: ForwardingOptions,
  mode: 'pass' | 'fill',
): UpstreamHeaders {
  const out: UpstreamHeaders = {};
  const connectionListed = typeof headers.connection === 'string' ? headers.connection.toLowerCase().split(',').map((s) => s.trim()) : [];
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || HOP_BY_HOP.has(name) || name.charCodeAt(0) === 58 /* ':' h2 pseudo-header */) continue;
    if (mode === 'fill' && CONDITIONAL.has(name)) continue;
    if (connectionListed.includes(name)) continue;
    out[name] = value;
  }
  if (opts.xForwardedFor) {
    const prior = headers['x-forwarded-for'];
    out['x-forwarded-for'] = prior ? `${Array.isArray(prior) ? prior.join(', ') : prior}, ${client.ip}` : client.ip;
    out['x-forwarded-proto'] = client.scheme;
  }
  if (opts.via) {
    const hop = `${client.httpVersion === '2.0' ? '2' : client.httpVersion} ${opts.name}`;
    const prior = headers.via;
    out.via = prior ? `${Array.isArray(prior) ? prior.join(', ') : prior}, ${hop}` : hop;
  }
  return out;
}
