// Signed URLs (seed 003, "Signed URLs"): HMAC-SHA256 over `path + "?" + expires` with one of
// several keys, checked at the edge without asking anyone. Signature first, then expiry, so only
// a genuine link learns that it has expired (410); anything else is 403. The signing parameters
// are removed from the query before the cache key is computed: every link to one object differs
// in them, and the object is the same.
import { createHmac, createSecretKey, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import type { EdgeHooks } from '../../edge/phases.ts';
import { OutpostError } from '../../errors.ts';
import type { Logger } from '../../log/logger.ts';
import { common, describe, gateLogger, paramName, parseOptions } from './options.ts';
import { refuse } from './refuse.ts';
import { takeParams } from './request-parts.ts';
import { compileScope } from './scope.ts';
import { safeEqual } from './secret.ts';

export interface SigningKey {
  /** Carried in the link as `kid` so the edge knows which key to use; '' signs without it. */
  readonly id: string;
  readonly secret: string;
}

export interface SignedUrlOptions {
  name?: string;
  hosts?: string[];
  paths?: string[];
  /** Every key accepted (rotation). */
  keys: SigningKey[];
  /** Default 'expires' (Unix seconds). */
  expiresParam?: string;
  /** Default 'sig' (hex or base64url). */
  sigParam?: string;
  /** Default 'kid'. */
  kidParam?: string;
  /** Also sign the other query parameters (default false: seed 003's scheme, path and expiry only). */
  signQuery?: boolean;
  log?: Logger;
}

export interface SignUrlOptions {
  key: SigningKey;
  ttlSeconds: number;
  /** Signing time, ms since the epoch or a Date; default now. */
  now?: number | Date;
  /** Default 'hex'. */
  encoding?: 'hex' | 'base64url';
  signQuery?: boolean;
  expiresParam?: string;
  sigParam?: string;
  kidParam?: string;
}

const secret = z.string().min(16, { error: (iss) => `expected a secret of at least 16 characters, got ${String((iss.input as string).length)}` });
const keyId = z.string().regex(/^[A-Za-z0-9_\-.~]*$/, 'expected a key id of letters, digits, "-", "_", "." or "~"');
const params = {
  expiresParam: paramName.default('expires'),
  sigParam: paramName.default('sig'),
  kidParam: paramName.default('kid'),
  signQuery: z.boolean().default(false),
};
const distinctParams = (o: { expiresParam: string; sigParam: string; kidParam: string }): boolean =>
  new Set([o.expiresParam, o.sigParam, o.kidParam]).size === 3;

const Schema = z
  .strictObject({
    ...common,
    keys: z.array(z.strictObject({ id: keyId.min(1), secret })).min(1),
    ...params,
  })
  .refine((o) => new Set(o.keys.map((k) => k.id)).size === o.keys.length, { path: ['keys'], message: 'expected distinct key ids' })
  .refine(distinctParams, { path: ['sigParam'], message: 'expected expiresParam, sigParam and kidParam to differ' });

const SignSchema = z
  .strictObject({
    key: z.strictObject({ id: keyId, secret }),
    ttlSeconds: z.number().positive(),
    now: z.union([z.number(), z.date()], { error: (iss) => `expected ms since the epoch or a Date, got ${describe(iss.input)}` }).optional(),
    encoding: z.enum(['hex', 'base64url']).default('hex'),
    ...params,
  })
  .refine(distinctParams, { path: ['sigParam'], message: 'expected expiresParam, sigParam and kidParam to differ' });

/**
 * What is signed: `path + "?" + expires`, and with signQuery the other parameters too, as raw
 * `name=value` segments sorted and joined with '&' after it.
 */
export function signatureMessage(path: string, expires: string, otherParams?: readonly string[]): string {
  const base = `${path}?${expires}`;
  return otherParams && otherParams.length ? `${base}&${[...otherParams].sort().join('&')}` : base;
}

function mac(key: KeyObject | string, message: string): Buffer {
  return createHmac('sha256', key).update(message).digest();
}

/** 32 bytes from 64 hex digits or 43 base64url characters; undefined otherwise. */
function decodeSignature(sig: string): Buffer | undefined {
  if (/^[0-9a-fA-F]{64}$/.test(sig)) return Buffer.from(sig, 'hex');
  if (/^[A-Za-z0-9_-]{43}$/.test(sig)) return Buffer.from(sig, 'base64url');
  return undefined;
}

const ABSOLUTE = /^[a-z][a-z0-9+.-]*:/i;

/** Returns `url` signed for ttlSeconds: expires, kid (when the key has an id) and sig appended. */
export function signUrl(url: string, options: SignUrlOptions): string {
  const o = parseOptions('signUrl', SignSchema, options);
  const absolute = ABSOLUTE.test(url);
  let u: URL | undefined;
  try {
    if (absolute || url.startsWith('/')) u = new URL(url, 'http://outpost.invalid');
  } catch {
    u = undefined;
  }
  if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:')) {
    throw new OutpostError('BAD_REQUEST', `signUrl: expected an http(s) URL or a path starting with "/", got ${describe(url)}`);
  }
  const names = new Set([o.expiresParam, o.sigParam, o.kidParam]);
  const { rest } = takeParams(u.search.slice(1), names);
  const nowMs = o.now === undefined ? Date.now() : typeof o.now === 'number' ? o.now : o.now.getTime();
  const expires = String(Math.floor(nowMs / 1000 + o.ttlSeconds));
  const sig = mac(o.key.secret, signatureMessage(u.pathname, expires, o.signQuery ? rest : undefined)).toString(o.encoding);
  const query = [...rest, `${o.expiresParam}=${expires}`, ...(o.key.id ? [`${o.kidParam}=${o.key.id}`] : []), `${o.sigParam}=${sig}`].join('&');
  const tail = `${u.pathname}?${query}${u.hash}`;
  return absolute ? `${u.protocol}//${u.host}${tail}` : tail;
}

export function signedUrls(options: SignedUrlOptions): EdgeHooks {
  const o = parseOptions('signedUrls', Schema, options);
  const name = o.name ?? 'signed-url';
  const log = gateLogger(o.log, name);
  const inScope = compileScope(o);
  const keys = o.keys.map((k) => ({ id: k.id, key: createSecretKey(Buffer.from(k.secret)) }));
  const byId = new Map(keys.map((k) => [k.id, k]));
  const names = new Set([o.expiresParam, o.sigParam, o.kidParam]);
  return {
    name,
    access(ctx) {
      if (!inScope(ctx)) return;
      const taken = takeParams(ctx.query, names);
      const exp = taken.values.get(o.expiresParam);
      const sig = taken.values.get(o.sigParam);
      const kid = taken.values.get(o.kidParam);
      if (!exp || !sig) return refuse(403, 'missing signature');
      // One of each: two values could be read differently by us and by the origin.
      if (exp.length !== 1 || sig.length !== 1 || (kid && kid.length !== 1)) return refuse(403, 'repeated signature parameters');
      const expires = exp[0];
      const presented = sig[0] ? decodeSignature(sig[0]) : undefined;
      if (!expires || !/^\d{1,12}$/.test(expires) || !presented) return refuse(403, 'invalid signature');
      let candidates = keys;
      if (kid) {
        const k = kid[0] ? byId.get(kid[0]) : undefined;
        if (!k) return refuse(403, 'invalid signature');
        candidates = [k];
      }
      const message = signatureMessage(ctx.path, expires, o.signQuery ? taken.rest : undefined);
      let ok = false;
      for (const k of candidates) ok = safeEqual(mac(k.key, message), presented) || ok;
      if (!ok) {
        log.warn({ ip: ctx.clientIp, uri: ctx.path }, 'bad URL signature');
        return refuse(403, 'invalid signature');
      }
      if (Math.floor(Date.now() / 1000) > Number(expires)) return refuse(410, 'link expired');
      ctx.query = taken.rest.join('&');
      return;
    },
  };
}
