// Turns a Node request (HTTP/1.1 or HTTP/2) into a RequestContext, refusing input that could
// confuse the cache key or the origin: bad or repeated Host, absolute-form targets naming another
// host, malformed targets.
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import { OutpostError } from '../errors.ts';
import type { FastRequest } from './fast-http1.ts';
import type { RequestContext } from './phases.ts';

/** A request whose body is a stream; the fast lane's requests have none. */
export type StreamRequest = IncomingMessage | Http2ServerRequest;
export type NodeRequest = StreamRequest | FastRequest;

// reg-name (letters, digits, '-', '.'), IPv4, or [IPv6], then an optional port.
const HOST_RE = /^(?:[a-z0-9](?:[a-z0-9-]{0,62})(?:\.[a-z0-9](?:[a-z0-9-]{0,62}))*\.?|\[[0-9a-f:.]+\])(?::(\d{1,5}))?$/i;

/** Lower-cases a Host value and drops the scheme's default port; undefined when it is not a valid host. */
export function normalizeHost(value: string, scheme: 'http' | 'https'): string | undefined {
  if (value.length > 255) return undefined;
  const m = HOST_RE.exec(value);
  if (!m) return undefined;
  const port = m[1];
  let host = value.toLowerCase();
  if (port !== undefined) {
    const n = Number(port);
    if (n < 1 || n > 65535) return undefined;
    if ((scheme === 'http' && n === 80) || (scheme === 'https' && n === 443)) host = host.slice(0, -(port.length + 1));
  }
  return host.endsWith('.') ? host.slice(0, -1) : host;
}

/**
 * Valid Host values seen recently, per scheme, and what they normalize to: clients send the same
 * few values over and over, and the check above was a visible share of a cache HIT's CPU. Bounded:
 * cleared when full, so many distinct hosts cost what they did without it.
 */
const knownHosts = { http: new Map<string, string>(), https: new Map<string, string>() };
const KNOWN_HOSTS_MAX = 1024;

function normalizeHostCached(value: string, scheme: 'http' | 'https'): string | undefined {
  const known = knownHosts[scheme];
  const hit = known.get(value);
  if (hit !== undefined) return hit;
  const host = normalizeHost(value, scheme);
  if (host !== undefined) {
    if (known.size >= KNOWN_HOSTS_MAX) known.clear();
    known.set(value, host);
  }
  return host;
}

function singleHeader(headers: IncomingHttpHeaders, rawHeaders: readonly string[], name: string): string | undefined | null {
  let count = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.length === name.length && rawHeaders[i]!.toLowerCase() === name) count++;
  if (count > 1) return null;
  const v = headers[name];
  return typeof v === 'string' ? v : undefined;
}

/** Characters allowed in a request target (RFC 3986 plus '%'); anything else is refused. */
const TARGET_RE = /^\/[A-Za-z0-9\-._~!$&'()*+,;=:@/%?]*$/;

export function createContext(req: NodeRequest, scheme: 'http' | 'https', clientIp: string): RequestContext {
  const isH2 = req.httpVersionMajor === 2;
  let target = req.url ?? '/';
  let host: string | undefined;
  if (isH2) {
    const authority = (req as Http2ServerRequest).authority || (req.headers.host as string | undefined);
    host = authority ? normalizeHostCached(authority, scheme) : undefined;
    if (!host) throw new OutpostError('BAD_HOST', `invalid :authority ${JSON.stringify(authority ?? '')}`);
  } else {
    const raw = singleHeader(req.headers, req.rawHeaders, 'host');
    if (raw === null) throw new OutpostError('BAD_HOST', 'more than one Host header');
    if (raw === undefined) throw new OutpostError('BAD_HOST', 'missing Host header');
    host = normalizeHostCached(raw, scheme);
    if (!host) throw new OutpostError('BAD_HOST', `invalid Host header ${JSON.stringify(raw.slice(0, 100))}`);
  }
  if (target.charCodeAt(0) !== 47 /* '/' */) {
    // absolute-form (RFC 9112 §3.2.2): accepted only when it names the same host as Host, so the
    // cache key and the origin can never disagree about which site this is.
    let url: URL;
    try {
      url = new URL(target);
    } catch {
      throw new OutpostError('BAD_REQUEST', `invalid request target ${JSON.stringify(target.slice(0, 100))}`);
    }
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.username || url.password) {
      throw new OutpostError('BAD_REQUEST', 'absolute-form request target must be an http(s) URL without userinfo');
    }
    const fromUrl = normalizeHost(url.host, url.protocol === 'https:' ? 'https' : 'http');
    if (fromUrl !== host) throw new OutpostError('BAD_HOST', `absolute-form target names host ${JSON.stringify(url.host)} but Host is ${JSON.stringify(host)}`);
    target = url.pathname + url.search;
  }
  if (!TARGET_RE.test(target)) throw new OutpostError('BAD_REQUEST', `invalid request target ${JSON.stringify(target.slice(0, 100))}`);
  const q = target.indexOf('?');
  const headers: IncomingHttpHeaders = isH2 ? stripPseudo(req.headers) : req.headers;
  return newContext({
    method: req.method ?? 'GET',
    scheme,
    httpVersion: req.httpVersion,
    clientIp,
    host,
    path: q === -1 ? target : target.slice(0, q),
    query: q === -1 ? '' : target.slice(q + 1),
    headers,
  });
}

/** A fresh context for a request described by these fields (also used for dry runs). */
export function newContext(f: Pick<RequestContext, 'method' | 'scheme' | 'httpVersion' | 'clientIp' | 'host' | 'path' | 'query' | 'headers'>): RequestContext {
  return { ...f, pool: 'default', collapsed: false, timings: { start: process.hrtime.bigint() }, vars: new Map(), bytesSent: 0 };
}

function stripPseudo(h: IncomingHttpHeaders): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (const k in h) if (k.charCodeAt(0) !== 58) out[k] = h[k];
  return out;
}

/** Strips the IPv4-mapped IPv6 prefix so that lists and logs see 127.0.0.1, not ::ffff:127.0.0.1. */
export function clientAddress(remote: string | undefined): string {
  if (!remote) return '';
  return remote.startsWith('::ffff:') && remote.includes('.') ? remote.slice(7) : remote;
}
