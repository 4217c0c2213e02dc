// Geo-blocking by a country code that the layer in front (CDN, load balancer, GeoIP module) puts
// in a request header. The edge cannot check that code itself, so when it is reachable directly
// the header is only believed from `trustFrom` addresses; from anyone else it is removed and the
// country counts as unknown.
import type { BlockList } from 'node:net';
import { z } from 'zod';
import { isAllowed, parseCidrList } from '../../edge/cidr.ts';
import type { EdgeHooks } from '../../edge/phases.ts';
import type { Logger } from '../../log/logger.ts';
import { cidr, common, describe, gateLogger, headerName, parseOptions } from './options.ts';
import { refuse } from './refuse.ts';
import { compileScope } from './scope.ts';

/** Where the country code (upper-case) is left for later phases (ctx.vars), when known. */
export const GEO_COUNTRY_VAR = 'geo.country';

export interface GeoBlockOptions {
  name?: string;
  hosts?: string[];
  paths?: string[];
  /** Default 'x-geoip-country-code'. */
  header?: string;
  /** Only these countries (ISO 3166-1 alpha-2) pass — or `deny`, not both. */
  allow?: string[];
  /** These countries are refused. */
  deny?: string[];
  /** Missing, malformed or "XX" codes: default 'deny' with `allow`, 'allow' with `deny`. */
  unknown?: 'allow' | 'deny';
  /** 403 (default) or 451 Unavailable For Legal Reasons (RFC 7725). */
  status?: 403 | 451;
  /** Client addresses/CIDRs whose header is believed; default every client (the edge sits behind that layer). */
  trustFrom?: string[];
  log?: Logger;
}

const country = z
  .string()
  .refine((v) => /^[A-Za-z]{2}$/.test(v), { error: (iss) => `expected an ISO 3166-1 alpha-2 country code such as "DE", got ${describe(iss.input)}` })
  .transform((v) => v.toUpperCase());

const Schema = z
  .strictObject({
    ...common,
    header: headerName.default('x-geoip-country-code'),
    allow: z.array(country).min(1).optional(),
    deny: z.array(country).min(1).optional(),
    unknown: z.enum(['allow', 'deny']).optional(),
    status: z.union([z.literal(403), z.literal(451)], { error: (iss) => `expected 403 or 451, got ${describe(iss.input)}` }).default(403),
    trustFrom: z.array(cidr).min(1).optional(),
  })
  .refine((o) => (o.allow === undefined) !== (o.deny === undefined), { path: ['allow'], message: 'expected exactly one of allow or deny' });

export function geoBlock(options: GeoBlockOptions): EdgeHooks {
  const o = parseOptions('geoBlock', Schema, options);
  const name = o.name ?? 'geo';
  const log = gateLogger(o.log, name);
  const inScope = compileScope(o);
  const header = o.header;
  const trusted: BlockList | undefined = o.trustFrom ? parseCidrList(o.trustFrom) : undefined;
  const listed = new Set(o.allow ?? o.deny);
  const allowMode = o.allow !== undefined;
  const unknownPasses = (o.unknown ?? (allowMode ? 'deny' : 'allow')) === 'allow';
  return {
    name,
    access(ctx) {
      if (!inScope(ctx)) return;
      let raw = ctx.headers[header];
      if (raw !== undefined && trusted && !isAllowed(trusted, ctx.clientIp)) {
        // A client talking to us directly may have written it: neither we nor the origin believe it.
        delete ctx.headers[header];
        raw = undefined;
      }
      const code = typeof raw === 'string' ? raw.trim().toUpperCase() : '';
      const known = /^[A-Z]{2}$/.test(code) && code !== 'XX';
      if (known) ctx.vars.set(GEO_COUNTRY_VAR, code);
      const passes = known ? listed.has(code) === allowMode : unknownPasses;
      if (passes) return;
      log.info({ ip: ctx.clientIp, uri: ctx.path, country: known ? code : 'unknown' }, 'refused by country');
      return refuse(o.status, 'not available in your country');
    },
  };
}
