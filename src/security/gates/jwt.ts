// JWT gate (jose): verifies a bearer token's signature against an allow-list of algorithms and
// the configured keys, then exp/nbf/iss/aud, and forwards chosen claims to the origin as headers.
// The allow-list is checked against the key at start, so `alg: none` and HS/RS key confusion (an
// HS256 token "signed" with the RSA public key) cannot be configured, let alone accepted.
import { createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import { createLocalJWKSet, createRemoteJWKSet, jwtVerify, type JWK, type JWTPayload, type JWTVerifyGetKey, type JWTVerifyOptions } from 'jose';
import { z } from 'zod';
import type { EarlyResponse, EdgeHooks, RequestContext } from '../../edge/phases.ts';
import type { Logger } from '../../log/logger.ts';
import { common, describe, gateLogger, headerName, paramName, parseOptions } from './options.ts';
import { refuse } from './refuse.ts';
import { readCookie, takeParams } from './request-parts.ts';
import { compileScope } from './scope.ts';

export const JWT_ALGORITHMS = [
  'HS256', 'HS384', 'HS512',
  'RS256', 'RS384', 'RS512',
  'PS256', 'PS384', 'PS512',
  'ES256', 'ES384', 'ES512',
  'EdDSA', 'Ed25519',
] as const;
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

/** Where the verified claims are left for later phases (ctx.vars). */
export const JWT_CLAIMS_VAR = 'jwt.claims';

export type JwtKeys =
  | { secret: string }
  | { publicKeyPem: string }
  | { jwks: { keys: JWK[] } }
  | { jwksUrl: string; cacheMaxAgeMs?: number; cooldownMs?: number; timeoutMs?: number };

export type TokenSource = 'authorization' | { cookie: string } | { query: string };

export interface JwtGateOptions {
  name?: string;
  hosts?: string[];
  paths?: string[];
  /** Accepted algorithms; required, and 'none' is not one. */
  algorithms: JwtAlgorithm[];
  keys: JwtKeys;
  issuer?: string | string[];
  audience?: string | string[];
  /** Leeway for exp/nbf; default 0. */
  clockToleranceSec?: number;
  /** Refuse tokens without exp (default true): a token without one is valid for ever. */
  requireExp?: boolean;
  /** Claim name → request header the origin receives. Incoming copies are always removed. */
  forwardClaims?: Record<string, string>;
  /** Default 'authorization' (Bearer). A query token is removed from the query (cache key, origin). */
  tokenFrom?: TokenSource;
  /** realm="…" in WWW-Authenticate, when given. */
  realm?: string;
  log?: Logger;
}

const algorithm = z.string().refine((v): v is JwtAlgorithm => (JWT_ALGORITHMS as readonly string[]).includes(v), {
  error: (iss) =>
    iss.input === 'none'
      ? 'expected a signing algorithm, got "none" (unsigned tokens are never accepted)'
      : `expected one of ${JWT_ALGORITHMS.join(', ')}, got ${describe(iss.input)}`,
});

const ms = z.number().int().min(0);
const Keys = z
  .strictObject({
    secret: z.string().min(1).optional(),
    publicKeyPem: z.string().min(1).optional(),
    jwks: z.strictObject({ keys: z.array(z.record(z.string(), z.unknown())).min(1) }).optional(),
    jwksUrl: z
      .string()
      .refine((v) => URL.canParse(v) && /^https?:$/.test(new URL(v).protocol), { error: (iss) => `expected an http(s) URL, got ${describe(iss.input)}` })
      .optional(),
    cacheMaxAgeMs: ms.optional(),
    cooldownMs: ms.optional(),
    timeoutMs: ms.min(1).optional(),
  })
  .superRefine((k, ctx) => {
    const given = (['secret', 'publicKeyPem', 'jwks', 'jwksUrl'] as const).filter((n) => k[n] !== undefined);
    if (given.length !== 1) {
      ctx.addIssue({ code: 'custom', message: `expected exactly one of secret, publicKeyPem, jwks, jwksUrl, got ${given.length ? given.join(' and ') : 'none'}` });
    }
    if (k.jwksUrl === undefined) {
      for (const n of ['cacheMaxAgeMs', 'cooldownMs', 'timeoutMs'] as const) {
        if (k[n] !== undefined) ctx.addIssue({ code: 'custom', path: [n], message: 'only applies with keys.jwksUrl' });
      }
    }
  });

const stringOrList = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)], { error: (iss) => `expected a string or a list of strings, got ${describe(iss.input)}` });

const Schema = z
  .strictObject({
    ...common,
    algorithms: z.array(algorithm).min(1),
    keys: Keys,
    issuer: stringOrList.optional(),
    audience: stringOrList.optional(),
    clockToleranceSec: z.number().min(0).default(0),
    requireExp: z.boolean().default(true),
    forwardClaims: z.record(z.string().min(1), headerName).optional(),
    tokenFrom: z
      .union([z.literal('authorization'), z.strictObject({ cookie: paramName }), z.strictObject({ query: paramName })], {
        error: (iss) => `expected 'authorization', { cookie: NAME } or { query: NAME }, got ${describe(iss.input)}`,
      })
      .default('authorization'),
    realm: z.string().regex(/^[\x20\x21\x23-\x5b\x5d-\x7e]*$/, 'expected printable ASCII without quotes or backslashes').optional(),
  })
  .superRefine((o, ctx) => checkKeyAgainstAlgorithms(o.algorithms, o.keys, ctx));

const HMAC_MIN_BYTES: Partial<Record<JwtAlgorithm, number>> = { HS256: 32, HS384: 48, HS512: 64 };
const isHmac = (a: string): boolean => a.startsWith('HS');

/** Which asymmetric key (type and curve) each algorithm needs. */
function keyFits(alg: JwtAlgorithm, key: KeyObject): boolean {
  const type = key.asymmetricKeyType;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (alg.startsWith('RS')) return type === 'rsa';
  if (alg.startsWith('PS')) return type === 'rsa' || type === 'rsa-pss';
  if (alg === 'ES256') return type === 'ec' && curve === 'prime256v1';
  if (alg === 'ES384') return type === 'ec' && curve === 'secp384r1';
  if (alg === 'ES512') return type === 'ec' && curve === 'secp521r1';
  return alg === 'EdDSA' ? type === 'ed25519' || type === 'ed448' : type === 'ed25519';
}

function checkKeyAgainstAlgorithms(algorithms: readonly JwtAlgorithm[], keys: z.output<typeof Keys>, ctx: z.RefinementCtx): void {
  const hmac = algorithms.filter(isHmac);
  const asym = algorithms.filter((a) => !isHmac(a));
  if (keys.secret !== undefined) {
    if (asym.length) {
      ctx.addIssue({ code: 'custom', path: ['algorithms'], message: `expected only HS256/HS384/HS512 with keys.secret, got ${asym.join(', ')}` });
    }
    const need = Math.max(0, ...hmac.map((a) => HMAC_MIN_BYTES[a] ?? 0));
    const have = Buffer.byteLength(keys.secret);
    if (have < need) {
      ctx.addIssue({ code: 'custom', path: ['keys', 'secret'], message: `expected at least ${need} bytes for ${hmac.join(', ')} (RFC 7518 §3.2), got ${have}` });
    }
    return;
  }
  if (hmac.length) {
    // The key-confusion attack: an HS* token whose "secret" is the public key everyone knows.
    ctx.addIssue({ code: 'custom', path: ['algorithms'], message: `expected asymmetric algorithms with a public key or JWKS, got ${hmac.join(', ')} (HMAC with a public key is the key-confusion attack; use keys.secret)` });
  }
  if (keys.publicKeyPem !== undefined) {
    if (/PRIVATE KEY/.test(keys.publicKeyPem)) {
      ctx.addIssue({ code: 'custom', path: ['keys', 'publicKeyPem'], message: 'expected a public key, got a private key (keep it with the token issuer)' });
      return;
    }
    let key: KeyObject;
    try {
      key = createPublicKey(keys.publicKeyPem);
    } catch {
      ctx.addIssue({ code: 'custom', path: ['keys', 'publicKeyPem'], message: 'expected a PEM public key (SPKI) or certificate, got text that does not parse as one' });
      return;
    }
    const misfits = asym.filter((a) => !keyFits(a, key));
    if (misfits.length) {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      ctx.addIssue({ code: 'custom', path: ['algorithms'], message: `expected algorithms for the ${key.asymmetricKeyType}${curve ? ` (${curve})` : ''} key in keys.publicKeyPem, got ${misfits.join(', ')}` });
    }
  }
}

/** A header value from a claim: printable ASCII as is, anything else percent-encoded UTF-8. */
function claimHeaderValue(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  const s = typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : JSON.stringify(v);
  return /^[\x20-\x7e]*$/.test(s) ? s : encodeURIComponent(s);
}

/** Describes a jose failure for error_description (RFC 6750: no quotes or backslashes). */
function describeFailure(err: unknown): string {
  const e = err as { code?: string; claim?: string; reason?: string };
  switch (e.code) {
    case 'ERR_JWT_EXPIRED':
      return 'the token has expired';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      if (e.claim === 'nbf') return 'the token is not yet valid';
      if (e.claim === 'iss') return 'unexpected issuer';
      if (e.claim === 'aud') return 'unexpected audience';
      if (e.reason === 'missing') return `the token has no ${e.claim ?? ''} claim`;
      return `invalid ${e.claim ?? ''} claim`;
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return 'signing algorithm not allowed';
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'signature verification failed';
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return 'no key matches the token';
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return 'more than one key matches the token';
    default:
      return 'malformed token';
  }
}

/** Failures that are the key source's fault, not the client's: 503, not 401. */
function keySourceFailed(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  if (code === 'ERR_JWKS_TIMEOUT' || code === 'ERR_JWKS_INVALID') return true;
  return typeof code !== 'string' || !code.startsWith('ERR_J');
}

const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

export function jwtGate(options: JwtGateOptions): EdgeHooks {
  const o = parseOptions('jwtGate', Schema, options);
  const name = o.name ?? 'jwt';
  const log = gateLogger(o.log, name);
  const inScope = compileScope(o);
  const remote = o.keys.jwksUrl !== undefined;

  let key: KeyObject | JWTVerifyGetKey;
  if (o.keys.secret !== undefined) key = createSecretKey(Buffer.from(o.keys.secret));
  else if (o.keys.publicKeyPem !== undefined) key = createPublicKey(o.keys.publicKeyPem);
  else if (o.keys.jwks !== undefined) key = createLocalJWKSet({ keys: o.keys.jwks.keys as JWK[] });
  else {
    // jose caches the set, refetches after cacheMaxAge, and on an unknown kid (at most once per cooldown).
    key = createRemoteJWKSet(new URL(o.keys.jwksUrl!), {
      ...(o.keys.cacheMaxAgeMs !== undefined ? { cacheMaxAge: o.keys.cacheMaxAgeMs } : {}),
      ...(o.keys.cooldownMs !== undefined ? { cooldownDuration: o.keys.cooldownMs } : {}),
      ...(o.keys.timeoutMs !== undefined ? { timeoutDuration: o.keys.timeoutMs } : {}),
    });
  }

  const verifyOptions: JWTVerifyOptions = {
    algorithms: [...o.algorithms],
    clockTolerance: o.clockToleranceSec,
    ...(o.issuer !== undefined ? { issuer: o.issuer } : {}),
    ...(o.audience !== undefined ? { audience: o.audience } : {}),
    ...(o.requireExp ? { requiredClaims: ['exp'] } : {}),
  };
  const forward = Object.entries(o.forwardClaims ?? {});
  const forwardedHeaders = forward.map(([, h]) => h);
  const source = o.tokenFrom;
  const queryParam = typeof source === 'object' && 'query' in source ? source.query : undefined;
  const queryNames = new Set(queryParam ? [queryParam] : []);
  const realm = o.realm !== undefined ? `realm="${o.realm}", ` : '';

  const unauthorized = (error: 'invalid_request' | 'invalid_token', description: string): EarlyResponse =>
    refuse(401, description, { 'www-authenticate': `Bearer ${realm}error="${error}", error_description="${description}"` });

  /** undefined: no token; null: a token was sent but cannot be one. */
  function extract(ctx: RequestContext): string | undefined | null {
    if (source === 'authorization') {
      const h = ctx.headers.authorization;
      if (h === undefined) return undefined;
      const m = BEARER.exec(h);
      return m ? m[1]! : /^Bearer\b/i.test(h) ? null : undefined;
    }
    if ('cookie' in source) return readCookie(ctx.headers.cookie, source.cookie);
    const taken = takeParams(ctx.query, queryNames);
    ctx.query = taken.rest.join('&');
    const values = taken.values.get(queryParam!);
    if (!values) return undefined;
    return values.length === 1 && values[0] ? values[0] : null;
  }

  async function verify(ctx: RequestContext, token: string): Promise<EarlyResponse | undefined> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, key, verifyOptions));
    } catch (err) {
      if (remote && keySourceFailed(err)) {
        log.error({ err: (err as Error).message, jwks: o.keys.jwksUrl }, 'cannot get the signing keys');
        return refuse(503, 'signing keys unavailable', { 'retry-after': '5' });
      }
      const description = describeFailure(err);
      log.info({ ip: ctx.clientIp, uri: ctx.path, reason: description }, 'token refused');
      return unauthorized('invalid_token', description);
    }
    for (const [claim, header] of forward) {
      const v = claimHeaderValue(payload[claim]);
      if (v !== undefined) ctx.headers[header] = v;
    }
    ctx.vars.set(JWT_CLAIMS_VAR, payload);
    return undefined;
  }

  return {
    name,
    access(ctx) {
      // Stripped on every request, in scope or not, so a client can never pose as a verified user.
      for (const h of forwardedHeaders) delete ctx.headers[h];
      if (!inScope(ctx)) return;
      const token = extract(ctx);
      if (token === undefined) return unauthorized('invalid_request', 'no bearer token');
      if (token === null || token.length > 16_384) return unauthorized('invalid_token', 'malformed token');
      return verify(ctx, token);
    },
  };
}
