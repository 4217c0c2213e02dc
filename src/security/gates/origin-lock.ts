// Origin lock-down (seed 003, "Lock down the origin"): a shield node accepts only requests that
// carry the shared secret header the CDN in front adds, so a leaked shield address is no way
// around the CDN's security. Loopback health checks are let through. The secret never goes upstream.
import type { BlockList } from 'node:net';
import { z } from 'zod';
import { isAllowed, parseCidrList } from '../../edge/cidr.ts';
import type { EdgeHooks } from '../../edge/phases.ts';
import type { Logger } from '../../log/logger.ts';
import { cidr, common, gateLogger, headerName, parseOptions } from './options.ts';
import { refuse } from './refuse.ts';
import { compileScope } from './scope.ts';
import { secretMatcher } from './secret.ts';

const Schema = z.strictObject({
  ...common,
  header: headerName.default('x-origin-secret'),
  /** Every secret accepted; list the new one next to the old while the CDN switches over. */
  secrets: z.array(z.string().min(16, { error: (iss) => `expected a secret of at least 16 characters, got ${String((iss.input as string).length)}` })).min(1),
  allowLoopbackHealth: z.boolean().default(true),
  healthPath: z.string().startsWith('/').default('/health'),
  /** Addresses counted as "loopback" for health checks. */
  healthFrom: z.array(cidr).min(1).default(['127.0.0.0/8', '::1/128']),
});

export interface OriginLockOptions {
  name?: string;
  hosts?: string[];
  paths?: string[];
  /** Default 'x-origin-secret'. */
  header?: string;
  secrets: string[];
  /** Default true: GET/HEAD of healthPath from healthFrom passes without the secret. */
  allowLoopbackHealth?: boolean;
  /** Default '/health'. */
  healthPath?: string;
  /** Default ['127.0.0.0/8', '::1/128']. */
  healthFrom?: string[];
  log?: Logger;
}

export function originLock(options: OriginLockOptions): EdgeHooks {
  const o = parseOptions('originLock', Schema, options);
  const name = o.name ?? 'origin-lock';
  const log = gateLogger(o.log, name);
  const inScope = compileScope(o);
  const matches = secretMatcher(o.secrets);
  const health: BlockList | undefined = o.allowLoopbackHealth ? parseCidrList(o.healthFrom) : undefined;
  const header = o.header;
  return {
    name,
    access(ctx) {
      const presented = ctx.headers[header];
      // Removed whatever happens next: the origin must never see it, not even on a refusal's log path.
      if (presented !== undefined) delete ctx.headers[header];
      if (!inScope(ctx)) return;
      if (health && ctx.path === o.healthPath && (ctx.method === 'GET' || ctx.method === 'HEAD') && isAllowed(health, ctx.clientIp)) return;
      // A repeated header arrives joined ("a, b") and so never matches.
      if (typeof presented === 'string' && matches(presented)) return;
      log.warn({ ip: ctx.clientIp, host: ctx.host, uri: ctx.path, present: presented !== undefined }, 'rejected request without the origin secret');
      return refuse(403, 'direct access to this origin is not allowed');
    },
  };
}
