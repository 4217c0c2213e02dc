// Referer (hot-link) protection, seed 000's example done properly: the Referer's host must be one
// of the allowed hosts (exact or "*.example.com"), not merely contain a word. Requests without a
// Referer (typed URLs, privacy settings, apps) pass unless allowEmpty is off.
import { z } from 'zod';
import type { EdgeHooks } from '../../edge/phases.ts';
import type { Logger } from '../../log/logger.ts';
import { common, gateLogger, hostPattern, parseOptions } from './options.ts';
import { refuse } from './refuse.ts';
import { compileHostMatcher, compileScope } from './scope.ts';

export interface RefererCheckOptions {
  name?: string;
  hosts?: string[];
  paths?: string[];
  /** Exact host names, or "*.example.com" for its subdomains (not example.com itself). */
  allowedHosts: string[];
  /** Default true: no (or an empty) Referer passes. */
  allowEmpty?: boolean;
  log?: Logger;
}

const Schema = z.strictObject({
  ...common,
  allowedHosts: z.array(hostPattern).min(1),
  allowEmpty: z.boolean().default(true),
});

/** The Referer's host name, lower-case; undefined when it is not an http(s) URL. */
function refererHost(value: string): string | undefined {
  if (!URL.canParse(value)) return undefined;
  const u = new URL(value);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined;
  return u.hostname;
}

export function refererCheck(options: RefererCheckOptions): EdgeHooks {
  const o = parseOptions('refererCheck', Schema, options);
  const name = o.name ?? 'referer';
  const log = gateLogger(o.log, name);
  const inScope = compileScope(o);
  const allowed = compileHostMatcher(o.allowedHosts);
  return {
    name,
    access(ctx) {
      if (!inScope(ctx)) return;
      const referer = ctx.headers.referer;
      if (referer === undefined || referer === '') {
        if (o.allowEmpty) return;
        log.info({ ip: ctx.clientIp, uri: ctx.path }, 'refused request without a Referer');
        return refuse(403, 'a Referer from an allowed site is required');
      }
      const host = refererHost(referer);
      if (host !== undefined && allowed(host)) return;
      log.info({ ip: ctx.clientIp, uri: ctx.path, referer: referer.slice(0, 200) }, 'refused hot-link');
      return refuse(403, 'hot-linking is not allowed');
    },
  };
}
