// Token with cookie (seed 000's "superstition" scheme, names configurable): a request passes with
// a valid ?token=, which is then kept in a cookie so the page's later requests (HLS segments, images)
// pass without it; or with that cookie alone. The token is removed from the query, so it is neither
// part of the cache key nor sent to the origin.
import { z } from 'zod';
import type { EarlyResponse, EdgeHooks, RequestContext } from '../../edge/phases.ts';
import type { Logger } from '../../log/logger.ts';
import { common, describe, gateLogger, paramName, parseOptions } from './options.ts';
import { refuse } from './refuse.ts';
import { readCookie, takeParams } from './request-parts.ts';
import { compileScope } from './scope.ts';
import { secretMatcher } from './secret.ts';

export type TokenValidator = (token: string, ctx: RequestContext) => boolean | Promise<boolean>;

export interface TokenCookieOptions {
  name?: string;
  hosts?: string[];
  paths?: string[];
  /** Query parameter; default 'token'. */
  param?: string;
  /** Cookie name; default 'superstition' (the seeds'). */
  cookie?: string;
  /** The accepted tokens (compared in constant time) — or `validate`, not both. */
  tokens?: string[];
  validate?: TokenValidator;
  /** Default 3600. */
  cookieMaxAgeSec?: number;
  /** Default '/'. */
  cookiePath?: string;
  /** 'auto' (default): Secure on https requests only. */
  secure?: 'auto' | boolean;
  /** Default 'Lax'. */
  sameSite?: 'Strict' | 'Lax' | 'None';
  log?: Logger;
}

const Schema = z
  .strictObject({
    ...common,
    param: paramName.default('token'),
    cookie: paramName.default('superstition'),
    tokens: z.array(z.string().min(1)).min(1).optional(),
    validate: z.custom<TokenValidator>((v) => typeof v === 'function', { error: (iss) => `expected a function, got ${describe(iss.input)}` }).optional(),
    cookieMaxAgeSec: z.number().int().min(0).default(3600),
    cookiePath: z.string().regex(/^\/[^;\s]*$/, 'expected a path starting with "/" without ";" or spaces').default('/'),
    secure: z.union([z.literal('auto'), z.boolean()], { error: (iss) => `expected 'auto', true or false, got ${describe(iss.input)}` }).default('auto'),
    sameSite: z.enum(['Strict', 'Lax', 'None']).default('Lax'),
  })
  .refine((o) => (o.tokens === undefined) !== (o.validate === undefined), { path: ['tokens'], message: 'expected exactly one of tokens or validate' })
  .refine((o) => o.sameSite !== 'None' || o.secure !== false, { path: ['sameSite'], message: 'expected secure to be on with sameSite "None" (browsers drop the cookie otherwise)' });

export function tokenCookie(options: TokenCookieOptions): EdgeHooks {
  const o = parseOptions('tokenCookie', Schema, options);
  const name = o.name ?? 'token-cookie';
  const log = gateLogger(o.log, name);
  const inScope = compileScope(o);
  const validate: TokenValidator = o.validate ?? secretMatcher(o.tokens!);
  const names = new Set([o.param]);
  // Per instance, so two token gates on different paths do not set each other's cookie.
  const setVar = `${name}:${Math.random().toString(36).slice(2)}:set-cookie`;
  const attributes = `; Max-Age=${o.cookieMaxAgeSec}; Path=${o.cookiePath}; HttpOnly; SameSite=${o.sameSite}`;

  const denied = (ctx: RequestContext, why: string): EarlyResponse => {
    log.info({ ip: ctx.clientIp, uri: ctx.path, why }, 'token refused');
    return refuse(403, 'a valid token is required');
  };

  const decide = (ctx: RequestContext, token: string, fromQuery: boolean, ok: boolean): EarlyResponse | undefined => {
    if (!ok) return denied(ctx, fromQuery ? 'invalid token' : 'invalid cookie');
    if (fromQuery) ctx.vars.set(setVar, token);
    return undefined;
  };

  return {
    name,
    access(ctx) {
      if (!inScope(ctx)) return;
      let token: string | undefined;
      let fromQuery = false;
      if (ctx.query) {
        const taken = takeParams(ctx.query, names);
        const values = taken.values.get(o.param);
        if (values) {
          ctx.query = taken.rest.join('&');
          if (values.length !== 1 || !values[0]) return denied(ctx, 'repeated or empty token');
          token = values[0];
          fromQuery = true;
        }
      }
      // As in the seeds: a token in the query wins over the cookie.
      token ??= readCookie(ctx.headers.cookie, o.cookie);
      if (!token) return denied(ctx, 'no token');
      const failed = (err: unknown): EarlyResponse => {
        // Fail closed: a validator that cannot answer lets nobody in.
        log.error({ err: (err as Error)?.message ?? String(err), uri: ctx.path }, 'token validator failed');
        return refuse(503, 'token check unavailable');
      };
      let r: boolean | Promise<boolean>;
      try {
        r = validate(token, ctx);
      } catch (err) {
        return failed(err);
      }
      if (typeof r === 'boolean') return decide(ctx, token, fromQuery, r);
      const t = token;
      return Promise.resolve(r).then((ok) => decide(ctx, t, fromQuery, ok === true), failed);
    },
    header_filter(ctx, head) {
      const token = ctx.vars.get(setVar);
      if (typeof token !== 'string') return;
      const secure = o.secure === 'auto' ? ctx.scheme === 'https' : o.secure;
      const cookie = `${o.cookie}=${encodeURIComponent(token)}${attributes}${secure ? '; Secure' : ''}`;
      const prev = head.headers['set-cookie'];
      head.headers['set-cookie'] = prev === undefined ? cookie : [...(Array.isArray(prev) ? prev : [prev]), cookie];
    },
  };
}
