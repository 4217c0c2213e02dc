// The security cascade in the access phase, built once at start from the `security` settings,
// cheapest gates first as seed 003 orders them: origin lock-down (a string compare), IP lists (a
// binary search), geo and referer (a header look), rate limits (a lookup in a lease table), WAF
// (pattern matching), then the cryptographic gates (JWT, signed URLs, token cookie). Each gate
// validates its own options; errors here are prefixed with the setting.
import type { Logger } from 'pino';
import type { OutpostConfig } from '../config/load.ts';
import type { EdgeHooks } from '../edge/phases.ts';
import { OutpostError } from '../errors.ts';
import type { DocBoard } from '../control/doc-board.ts';
import { geoBlock, ipListGate, jwtGate, originLock, refererCheck, signedUrls, tokenCookie } from './gates/index.ts';
import { waf } from './waf/waf.ts';
import { rateLimit, type RateLimitChannel } from './ratelimit/index.ts';
import { rateLimitSettings } from './ratelimit/policy.ts';
import type { Registry } from 'prom-client';

type Raw = Record<string, unknown>;

function build(setting: string, make: () => EdgeHooks): EdgeHooks {
  try {
    return make();
  } catch (err) {
    const msg = (err as Error).message.replace(/^invalid configuration[^:]*:\s*/i, '');
    throw new OutpostError('CONFIG_INVALID', `${setting}: ${msg}`, { cause: err });
  }
}

export interface SecurityDeps {
  /** Stored documents (IP lists, WAF rules) of this process; absent when only checking the settings. */
  readonly board?: DocBoard;
  /** Told of every refusal, for the metrics: the gate's setting name and the status answered. */
  readonly onRefusal?: (gate: string, status: number) => void;
  /** The node's rate-limit authority (Coordinator.rateLimit); without it each limit counts in this process only. */
  readonly rateLimit?: RateLimitChannel;
  /** Where gates register their own metrics (outpost_ratelimit_*). */
  readonly registry?: Registry;
}

/** Counts a gate's early answers (from access or inspectBody) without touching requests it lets through. */
function counted(gate: string, hooks: EdgeHooks, onRefusal: (gate: string, status: number) => void): EdgeHooks {
  const { access, wantsRequestBody, inspectBody } = hooks;
  if (!access) return hooks;
  const note = (r: Awaited<ReturnType<typeof access>>) => {
    if (typeof r === 'object' && r !== null) onRefusal(gate, r.status);
    return r;
  };
  return {
    ...hooks,
    access(ctx) {
      const r = access.call(hooks, ctx);
      return r instanceof Promise ? r.then(note) : note(r);
    },
    // Hooks on a class's prototype (the WAF) are not copied by the spread above.
    ...(wantsRequestBody && inspectBody
      ? {
          wantsRequestBody: (ctx) => wantsRequestBody.call(hooks, ctx),
          inspectBody(ctx, prefix) {
            const r = inspectBody.call(hooks, ctx, prefix);
            return r instanceof Promise ? r.then(note) : note(r);
          },
        }
      : {}),
  };
}

/** The gates the settings switch on, in the order they run. */
export function securityHooks(security: OutpostConfig['security'], log: Logger, deps: SecurityDeps = {}): EdgeHooks[] {
  const hooks: EdgeHooks[] = [];
  const gate = (name: string, value: Raw | undefined, make: (o: Raw) => EdgeHooks) => {
    if (!value || value.enabled === false) return;
    const { enabled: _e, ...options } = value;
    const h = build(`security.${name}`, () => make({ ...options, log: log.child({ gate: name }) }));
    hooks.push(deps.onRefusal ? counted(name.replace(/\.\d+$/, ''), h, deps.onRefusal) : h);
  };
  gate('originLock', security.originLock, (o) => originLock(o as never));
  gate('ipLists', security.ipLists, (o) => ipListGate({ ...o, ...(deps.board ? { board: deps.board } : {}) } as never));
  gate('geo', security.geo, (o) => geoBlock(o as never));
  gate('referer', security.referer, (o) => refererCheck(o as never));
  for (const r of rateLimitSettings(security.rateLimit)) {
    const env = { index: r.index, ...(deps.rateLimit ? { channel: deps.rateLimit } : {}), ...(deps.registry ? { registry: deps.registry } : {}) };
    gate(r.setting, r.options, (o) => rateLimit(o as never, env));
  }
  gate('waf', security.waf, (o) => waf({ mode: 'block', ...o, ...(deps.board ? { board: deps.board } : {}) } as never));
  security.jwt.forEach((j, i) => gate(`jwt.${i}`, j, (o) => jwtGate({ name: `jwt-${i}`, ...o } as never)));
  gate('signedUrls', security.signedUrls, (o) => signedUrls(o as never));
  gate('tokenCookie', security.tokenCookie, (o) => tokenCookie(o as never));
  return hooks;
}
