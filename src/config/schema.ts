// The whole configuration, validated once at start. Every setting has a default; the README's
// configuration reference mirrors this file. Durations come out in milliseconds and sizes in bytes whatever unit was written.
import { z } from 'zod';
import { parseDuration, parseSize } from './units.ts';

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
  headers: z.record(z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'expected a header name'), z.string()).default({}),
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
   * its options are those of the gate, plus `enabled`. They run cheapest first: originLock, geo,
   * referer, waf, jwt (a list, one gate per scope), signedUrls, tokenCookie.
   */
  security: z
    .object({
      originLock: z.record(z.string(), z.unknown()).optional(),
      geo: z.record(z.string(), z.unknown()).optional(),
      referer: z.record(z.string(), z.unknown()).optional(),
      waf: z.record(z.string(), z.unknown()).optional(),
      jwt: z.array(z.record(z.string(), z.unknown())).default([]),
      signedUrls: z.record(z.string(), z.unknown()).optional(),
      tokenCookie: z.record(z.string(), z.unknown()).optional(),
    })
    .strict()
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
