// The security cascade in the access phase, built once at start from the `security` settings,
// cheapest gates first as seed 003 orders them: origin lock-down (a string compare), geo and
// referer (a header look), WAF (pattern matching), then the cryptographic gates (JWT, signed URLs,
// token cookie). Each gate validates its own options; errors here are prefixed with the setting.
import type { Logger } from 'pino';
import type { OutpostConfig } from '../config/load.ts';
import type { EdgeHooks } from '../edge/phases.ts';
import { OutpostError } from '../errors.ts';
import { geoBlock, jwtGate, originLock, refererCheck, signedUrls, tokenCookie } from './gates/index.ts';
import { waf } from './waf/waf.ts';

type Raw = Record<string, unknown>;

function build(setting: string, make: () => EdgeHooks): EdgeHooks {
  try {
    return make();
  } catch (err) {
    const msg = (err as Error).message.replace(/^invalid configuration[^:]*:\s*/i, '');
    throw new OutpostError('CONFIG_INVALID', `${setting}: ${msg}`, { cause: err });
  }
}

/** The gates the settings switch on, in the order they run. */
export function securityHooks(security: OutpostConfig['security'], log: Logger): EdgeHooks[] {
  const hooks: EdgeHooks[] = [];
  const gate = (name: string, value: Raw | undefined, make: (o: Raw) => EdgeHooks) => {
    if (!value || value.enabled === false) return;
    const { enabled: _e, ...options } = value;
    hooks.push(build(`security.${name}`, () => make({ ...options, log: log.child({ gate: name }) })));
  };
  gate('originLock', security.originLock, (o) => originLock(o as never));
  gate('geo', security.geo, (o) => geoBlock(o as never));
  gate('referer', security.referer, (o) => refererCheck(o as never));
  gate('waf', security.waf, (o) => waf({ mode: 'block', ...o } as never));
  security.jwt.forEach((j, i) => gate(`jwt.${i}`, j, (o) => jwtGate({ name: `jwt-${i}`, ...o } as never)));
  gate('signedUrls', security.signedUrls, (o) => signedUrls(o as never));
  gate('tokenCookie', security.tokenCookie, (o) => tokenCookie(o as never));
  return hooks;
}
