// The whole configuration, validated once at start. Every setting has a default; the README's
// configuration reference mirrors this file. Durations come out in milliseconds and sizes in bytes whatever unit was written.
import { z } from 'zod';
import { parseDuration, parseSize } from './units.ts';
import { HASH_KEY_PATTERN } from '../balance/key.ts';
import { POLICIES } from '../balance/policies.ts';
import { HTTP_TOKEN } from '../edge/http-token.ts';

const duration = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const ms = parseDuration(v);
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: `expected a duration such as "500ms", "10s", "5m" or a number of seconds, got ${JSON.stringify(v)}` });
    return z.NEVER;
  }
  return ms;
});

const size = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const bytes = parseSize(v);
  if (bytes === undefined) {
    ctx.addIssue({ code: 'custom', message: `expected a size such as "512k", "256m", "1g" or a number of bytes, got ${JSON.stringify(v)}` });
    return z.NEVER;
  }
  return bytes;
});

const port = z
  .union([z.number(), z.string().regex(/^\d+$/, 'expected a port number')])
  .transform(Number)
  .pipe(z.int('expected a whole port number').min(0, 'expected a port from 0 to 65535').max(65535, 'expected a port from 0 to 65535'));

const httpUrl = z.string().refine((v) => {
  try {
    const u = new URL(v);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.pathname === '/' && !u.search;
  } catch {
    return false;
  }
}, 'expected an origin URL such as "http://127.0.0.1:9000" (scheme, host and port only)');

const cidr = z.string().refine((v) => {
  const [addr, bits, extra] = v.split('/');
  if (extra !== undefined || addr === undefined) return false;
  const isV6 = addr.includes(':');
  const max = isV6 ? 128 : 32;
  if (bits !== undefined && !(/^\d+$/.test(bits) && Number(bits) <= max)) return false;
  return isV6 ? /^[0-9a-f:.]+$/i.test(addr) : /^(\d{1,3}\.){3}\d{1,3}$/.test(addr);
}, 'expected an address or CIDR such as "10.0.0.0/8" or "::1/128"');

const bool = z.union([z.boolean(), z.enum(['true', 'false', 'on', 'off', '1', '0'])]).transform((v) =>
  typeof v === 'boolean' ? v : v === 'true' || v === 'on' || v === '1',
);

/** Load balancing (src/balance), shared by origin pools and the load balancer node (docs/load-balancing.md). */
const balancePolicy = z.enum(POLICIES, { error: `expected one of ${POLICIES.join(', ')}` });
const hashKey = z.string().regex(HASH_KEY_PATTERN, 'expected uri, path, host, ip, header:NAME, cookie:NAME or query:NAME');
/** Bounded loads' c: no member above c × the average load. */
const loadFactor = z.number().min(1, 'expected a factor of at least 1').max(10, 'expected a factor of at most 10');
const healthCheck = z
  .object({
    enabled: bool.default(true),
    path: z.string().regex(/^\/\S*$/, 'expected a path starting with "/"').default('/health'),
    interval: duration.prefault('2s'),
    timeout: duration.prefault('1s'),
    /** Good checks in a row that bring a member back. */
    rise: z.int().min(1).max(100).default(2),
    /** Failed checks in a row that take a member out. */
    fall: z.int().min(1).max(100).default(2),
    expect: z.array(z.int().min(100).max(599)).min(1).default([200]),
  })
  .strict();
const passiveHealth = z
  .object({
    enabled: bool.default(true),
    /** Failures in a row (connection errors, timeouts, listed statuses) that eject a member. */
    failures: z.int().min(1).max(1000).default(3),
    coolDown: duration.prefault('10s'),
    statuses: z.array(z.union([z.int().min(100).max(599), z.string().regex(/^([1-5]\d\d|[1-5]xx)$/i, 'expected a status such as 503 or "5xx"')])).default([502, 503, 504]),
  })
  .strict();
const memberName = z.string().regex(/^[A-Za-z0-9._:@-]{1,100}$/, 'expected 1-100 letters, digits or . _ : @ -');

export const PoolSchema = z.object({
  peers: z.array(httpUrl).min(1, 'expected at least one peer URL'),
  connectTimeout: duration.prefault(2),
  readTimeout: duration.prefault(30),
  keepAliveTimeout: duration.prefault(60),
  /** Connections per peer. */
  connections: z.int().min(1).max(10_000).default(256),
  /** Further peers tried when a connection to one fails (idempotent requests only). */
  retries: z.int().min(0).max(10).default(1),
  /** 'preserve' sends the client's Host, 'peer' the peer's host:port, anything else is sent verbatim. */
  host: z.string().min(1).default('preserve'),
  /** Extra request headers sent to the origin, e.g. a shared secret. */
  headers: z.record(z.string().regex(HTTP_TOKEN, 'expected a header name'), z.string()).default({}),
  /** How a peer is chosen: rr (weighted round robin), leastconn, chash or bounded (consistent hashing). */
  policy: balancePolicy.default('rr'),
  hashKey: hashKey.default('uri'),
  loadFactor: loadFactor.default(1.25),
  /** Relative weights by peer URL; unlisted peers weigh 1. */
  weights: z.record(z.string(), z.number().gt(0, 'expected a weight above 0').max(1000, 'expected a weight of at most 1000')).default({}),
  /** Active checks of every peer; off unless given. */
  healthCheck: healthCheck.optional(),
  passive: passiveHealth.prefault({}),
}).superRefine((pool, ctx) => {
  for (const url of Object.keys(pool.weights)) {
    if (!pool.peers.includes(url)) ctx.addIssue({ code: 'custom', path: ['weights', url], message: `expected one of the peers (${pool.peers.join(', ')}), got ${JSON.stringify(url)}` });
  }
});

const statusKey = z.string().regex(/^(any|[1-5]\d\d)(\s+[1-5]\d\d)*$/, 'expected status codes such as "200 206" or "any"');

export const ConfigSchema = z.object({
  edge: z
    .object({
      host: z.string().min(1).default('0.0.0.0'),
      port: port.default(8080),
      /** HTTPS port serving HTTP/2 and HTTP/1.1 (ALPN); 0 turns TLS off. */
      tlsPort: port.default(8443),
      workers: z
        .union([z.literal('auto'), z.number(), z.string().regex(/^\d+$/, 'expected "auto" or a number of workers')])
        .transform((v) => (v === 'auto' ? v : Number(v)))
        .pipe(z.union([z.literal('auto'), z.int().min(1, 'expected at least 1 worker').max(256, 'expected at most 256 workers')]))
        .default('auto'),
      /** Name used in Via and Cache-Status. */
      name: z.string().regex(/^[A-Za-z0-9._-]+$/, 'expected letters, digits, dot, dash or underscore').default('outpost'),
      tls: z
        .object({
          cert: z.string().optional(),
          key: z.string().optional(),
          /** Where the self-signed certificate is generated on first start when cert/key are not given. */
          dir: z.string().default('.outpost/tls'),
        })
        .prefault({})
        .refine((t) => (t.cert === undefined) === (t.key === undefined), {
          message: 'set both cert and key, or neither (a self-signed certificate is generated)',
          path: ['cert'],
        }),
      shutdownGrace: duration.prefault(10),
      xForwardedFor: bool.default(true),
      via: bool.default(true),
      /** Peers whose X-Forwarded-For (realIpHeader) is believed for the client address, like nginx's set_real_ip_from. */
      trustedProxies: z.array(cidr).default([]),
      realIpHeader: z.string().regex(HTTP_TOKEN, 'expected a header name').default('x-forwarded-for'),
      /** Plain cleartext GET/HEAD requests read off the socket without node:http (src/edge/fast-http1.ts). */
      fastHttp1: bool.default(true),
    })
    .prefault({}),
  limits: z
    .object({
      maxHeaderBytes: size.prefault('16k'),
      maxBodyBytes: size.prefault('10m'),
      /** Time a client has to send the request head (slowloris guard). */
      headersTimeout: duration.prefault(10),
      /** Time a client has to send the whole request, body included. */
      requestTimeout: duration.prefault(30),
      keepAliveTimeout: duration.prefault(5),
      maxConnectionsPerWorker: z.int().min(1).default(100_000),
    })
    .prefault({}),
  upstream: z
    .object({
      pools: z.record(z.string().regex(/^[A-Za-z0-9_-]+$/, 'expected a pool name of letters, digits, _ or -'), PoolSchema).default({}),
    })
    .prefault({}),
  cache: z
    .object({
      enabled: bool.default(true),
      ram: z.object({ maxBytes: size.prefault('256m'), maxObjectBytes: size.prefault('8m') }).prefault({}),
      disk: z
        .object({
          enabled: bool.default(true),
          path: z.string().min(1).default('.outpost/cache'),
          maxBytes: size.prefault('1g'),
          maxObjectBytes: size.prefault('256m'),
        })
        .prefault({}),
      key: z
        .object({
          includeHost: bool.default(true),
          sortQuery: bool.default(true),
          ignoreParams: z.array(z.string().min(1)).default([]),
        })
        .prefault({}),
      /** Freshness for responses that state none, by status (like nginx proxy_cache_valid). */
      statusTtl: z.record(statusKey, duration).default({}),
      heuristic: z.object({ fraction: z.number().min(0).max(1).default(0.1), max: duration.prefault('1d') }).prefault({}),
      /** Stale windows applied when the origin names none. */
      staleWhileRevalidate: duration.prefault(0),
      staleIfError: duration.prefault(0),
      cacheSetCookie: bool.default(false),
      lock: z.object({ enabled: bool.default(true), timeout: duration.prefault(5) }).prefault({}),
      /** How often the primary trims the disk tier to its size and removes leftovers. */
      maintainInterval: duration.prefault(10),
    })
    .prefault({}),
  purge: z
    .object({
      /** Clients allowed to send the PURGE method to the edge. */
      allowFrom: z.array(cidr).default(['127.0.0.1/32', '::1/128']),
    })
    .prefault({}),
  /** Edge compression of text responses (docs/compression.md). */
  compression: z
    .object({
      enabled: bool.default(true),
      /** Media types compressed; "text/*" covers a family. Images, video and audio never are (image/svg+xml is text). */
      types: z
        .array(
          z
            .string()
            .regex(/^[a-z0-9][a-z0-9!#$&^_.+-]*\/(?:[a-z0-9][a-z0-9!#$&^_.+-]*|\*)$/i, 'expected a media type such as "text/html" or "text/*"')
            .refine((t) => !/^(?:image|video|audio)\//i.test(t) || t.toLowerCase() === 'image/svg+xml', 'images, video and audio are never compressed (image/svg+xml is the exception)'),
        )
        .default([
          'text/html', 'text/css', 'text/plain', 'text/javascript', 'text/xml', 'text/csv', 'text/markdown',
          'application/javascript', 'application/x-javascript', 'application/json', 'application/ld+json',
          'application/manifest+json', 'application/xml', 'application/xhtml+xml', 'application/rss+xml',
          'application/atom+xml', 'application/wasm', 'image/svg+xml', 'font/ttf', 'font/otf',
        ]),
      /** Smaller bodies are sent as they are. */
      minSize: size.prefault('1k'),
      /** Codings produced, in order of preference when a client's qvalues tie. */
      encodings: z
        .array(z.enum(['br', 'gzip'], { error: 'expected "br" or "gzip"' }))
        .min(1, 'expected at least one of "br", "gzip" (set enabled: false to turn compression off)')
        .refine((a) => new Set(a).size === a.length, 'expected each encoding once')
        .default(['br', 'gzip']),
      /** 0-11; 5 is a good trade for compressing on the fly (11 is for build-time compression). */
      brotliQuality: z.int().min(0).max(11).default(5),
      gzipLevel: z.int().min(1).max(9).default(6),
      /** Also compress responses that are not stored (streamed, as nginx's gzip does). */
      uncached: bool.default(true),
    })
    .prefault({}),
  /**
   * The CDN this node belongs to (docs/fleet.md): nodes sharing a Redis store register there, send
   * heartbeats, and follow one purge log, so a purge on any node reaches all of them.
   */
  fleet: z
    .object({
      /** Shown by `outpost nodes`; default the host name. */
      name: z.string().regex(/^[A-Za-z0-9._:@-]{1,100}$/, 'expected 1-100 letters, digits or . _ : @ -').optional(),
      role: z.enum(['edge', 'shield'], { error: 'expected "edge" or "shield"' }).default('edge'),
      heartbeat: duration.prefault('2s'),
      /** Purge log entries kept in Redis; a node away for longer than that many purges purges everything when it returns. */
      purgeHistory: z.int().min(100).max(10_000_000).default(100_000),
    })
    .prefault({}),
  admin: z
    .object({
      host: z.string().min(1).default('127.0.0.1'),
      port: port.default(8081),
      apiKey: z.string().min(16, 'expected at least 16 characters').optional(),
    })
    .prefault({}),
  demoOrigin: z
    .object({
      /** 'auto' runs it when no upstream pool is configured. */
      enabled: z.union([z.literal('auto'), bool]).default('auto'),
      host: z.string().default('127.0.0.1'),
      port: port.default(9000),
      latency: z.string().default('off'),
    })
    .prefault({}),
  compute: z
    .object({
      /** Run computing units at all (the store is still read, so switching on is instant). */
      enabled: bool.default(true),
      store: z
        .object({
          /** embedded: on local disk, no Redis needed; redis / redis-cluster: shared by every node. */
          kind: z.enum(['embedded', 'redis', 'redis-cluster']).default('embedded'),
          /** Where the embedded store keeps its files. */
          path: z.string().min(1).default('.outpost/store'),
          /** redis: one URL; redis-cluster: seed nodes. */
          url: z.string().regex(/^rediss?:\/\//, 'expected a redis:// or rediss:// URL').default('redis://127.0.0.1:6379'),
          nodes: z.array(z.string().regex(/^rediss?:\/\//, 'expected redis:// URLs')).default([]),
          /** Key prefix; keep the {hash tag} so that all CU keys share one cluster slot. */
          prefix: z.string().regex(/^\{[^{}]+\}$/, 'expected a Redis hash tag such as "{outpost}"').default('{outpost}'),
          /** Timeout of every store command, and of the commands CU code sends. */
          commandTimeout: duration.prefault('1s'),
        })
        .prefault({}),
      /**
       * isolate: every CU in its own isolated-vm isolate, with time and memory limits (default).
       * trusted: CUs run as plain functions in the worker — faster, but a CU can reach the whole
       * process, loop forever or exhaust memory. Only for operators who run only their own code.
       */
      runtime: z.enum(['isolate', 'trusted']).default('isolate'),
      /** Backstop for missed change notifications: each node re-reads the store this often (± 20 % jitter). */
      pollInterval: duration.prefault('5s'),
      breaker: z
        .object({
          /** Consecutive failures (errors or timeouts) of one CU on one worker that open its breaker. */
          failures: z.int().min(1).max(1000).default(5),
          /** How long an open breaker keeps the CU off before one trial run. */
          coolDown: duration.prefault('30s'),
        })
        .prefault({}),
    })
    .prefault({}),
  /**
   * The security cascade (docs/security-gates.md, docs/waf.md). Each gate is off unless configured;
   * its options are those of the gate, plus `enabled`. They run cheapest first: originLock, ipLists, geo,
   * referer, rateLimit (one or a list), waf, jwt (a list, one gate per scope), signedUrls, tokenCookie.
   */
  security: z
    .object({
      originLock: z.record(z.string(), z.unknown()).optional(),
      ipLists: z.record(z.string(), z.unknown()).optional(),
      geo: z.record(z.string(), z.unknown()).optional(),
      referer: z.record(z.string(), z.unknown()).optional(),
      /** One limit or a list (src/security/ratelimit/policy.ts validates them). */
      rateLimit: z.union([z.record(z.string(), z.unknown()), z.array(z.record(z.string(), z.unknown()))]).optional(),
      waf: z.record(z.string(), z.unknown()).optional(),
      jwt: z.array(z.record(z.string(), z.unknown())).default([]),
      signedUrls: z.record(z.string(), z.unknown()).optional(),
      tokenCookie: z.record(z.string(), z.unknown()).optional(),
    })
    .strict()
    .prefault({}),
  /** The load balancer node, `outpost lb` (docs/load-balancing.md). */
  lb: z
    .object({
      host: z.string().min(1).default('0.0.0.0'),
      port: port.default(8000),
      /** Name in Via. */
      name: z.string().regex(/^[A-Za-z0-9._-]+$/, 'expected letters, digits, dot, dash or underscore').default('outpost-lb'),
      edges: z
        .array(z.object({ name: memberName, url: httpUrl, weight: z.number().gt(0, 'expected a weight above 0').max(1000, 'expected a weight of at most 1000').default(1) }).strict())
        .default([])
        .superRefine((edges, ctx) => {
          const seen = new Set<string>();
          edges.forEach((e, i) => {
            if (seen.has(e.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `expected a unique name, got "${e.name}" twice` });
            seen.add(e.name);
          });
        }),
      policy: balancePolicy.default('bounded'),
      hashKey: hashKey.default('uri'),
      loadFactor: loadFactor.default(1.25),
      healthCheck: healthCheck.prefault({}),
      passive: passiveHealth.prefault({}),
      /** Further edges tried when a connection fails before any response byte (idempotent requests only). */
      retries: z.int().min(0).max(10).default(2),
      connectTimeout: duration.prefault(2),
      readTimeout: duration.prefault(30),
      keepAliveTimeout: duration.prefault(60),
      /** Keep-alive connections per edge. */
      connections: z.int().min(1).max(10_000).default(512),
      /** Response header naming the edge that served; "" sends none. */
      servedByHeader: z.string().regex(/^([!#$%&'*+.^_`|~0-9A-Za-z-]+)?$/, 'expected a header name').default('x-served-by'),
      xForwardedFor: bool.default(true),
      via: bool.default(true),
      shutdownGrace: duration.prefault(10),
      admin: z
        .object({
          host: z.string().min(1).default('127.0.0.1'),
          port: port.default(8001),
          apiKey: z.string().min(16, 'expected at least 16 characters').optional(),
        })
        .prefault({}),
    })
    .prefault({}),
  log: z
    .object({
      level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
      access: bool.default(true),
    })
    .prefault({}),
});

export type ConfigInput = z.input<typeof ConfigSchema>;
export type ParsedConfig = z.output<typeof ConfigSchema>;
export type PoolConfig = z.output<typeof PoolSchema>;
export type LbConfig = ParsedConfig['lb'];
