// One member of a balanced set (an edge behind the load balancer, a peer of an origin pool) and
// the health it has earned: active checks move it after `rise`/`fall` results in a row, passive
// failures eject it for a cool-down. Policies read `available`, one boolean kept up to date here,
// so a pick never does date arithmetic.
import { OutpostError } from '../errors.ts';

export interface MemberSpec {
  /** Unique in its set; shown in X-Served-By, metrics and logs. */
  readonly name: string;
  /** Origin URL: scheme, host and port. */
  readonly url: string;
  /** Relative share of requests (whole or fractional, > 0). Default 1. */
  readonly weight?: number;
}

export type DownReason = 'check' | 'passive';

export interface MemberSnapshot {
  readonly name: string;
  readonly url: string;
  readonly weight: number;
  readonly state: 'up' | 'down';
  /** Why a down member is down: failed active checks, or a passive cool-down. */
  readonly down?: DownReason[];
  readonly inFlight: number;
  readonly requests: number;
  readonly failures: number;
  readonly lastError?: string;
  /** ISO time of the last change of state. */
  readonly since: string;
}

const NAME = /^[A-Za-z0-9._:@/-]{1,100}$/;
export const MAX_WEIGHT = 1000;

/** Checks a member spec; the message names the field. */
export function validateSpec(spec: MemberSpec): { name: string; url: URL; weight: number } {
  if (typeof spec.name !== 'string' || !NAME.test(spec.name)) {
    throw new OutpostError('BAD_REQUEST', `member name: expected 1-100 letters, digits or . _ : @ / - (got ${JSON.stringify(spec.name)})`);
  }
  let url: URL;
  try {
    url = new URL(spec.url);
  } catch {
    throw new OutpostError('BAD_REQUEST', `member ${spec.name} url: expected a URL such as http://127.0.0.1:8080 (got ${JSON.stringify(spec.url)})`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.pathname !== '/' || url.search) {
    throw new OutpostError('BAD_REQUEST', `member ${spec.name} url: expected scheme, host and port only (got ${JSON.stringify(spec.url)})`);
  }
  const weight = spec.weight ?? 1;
  if (typeof weight !== 'number' || !(weight > 0) || weight > MAX_WEIGHT) {
    throw new OutpostError('BAD_REQUEST', `member ${spec.name} weight: expected a number above 0 and at most ${MAX_WEIGHT} (got ${JSON.stringify(spec.weight)})`);
  }
  return { name: spec.name, url, weight };
}

export class Member<T> {
  readonly name: string;
  readonly url: URL;
  readonly weight: number;
  /** What the owner sends requests through (an undici Pool), made when the member is added. */
  readonly resource: T;
  /** Policies may choose it: active checks pass and no passive cool-down runs. */
  available = true;
  /** Requests sent and not yet finished. */
  inFlight = 0;
  /** Requests sent (retries count once per member tried). */
  requests = 0;
  /** Failures counted by passive health (connection errors, timeouts, listed statuses). */
  failures = 0;
  lastError: string | undefined;
  since = Date.now();
  /** Active checks: false after `fall` failed checks in a row, true again after `rise` good ones. */
  checkUp = true;
  /** Consecutive check results: > 0 successes, < 0 failures. */
  checkStreak = 0;
  /** Passive failures since the last success. */
  consecutiveFailures = 0;
  ejected = false;
  ejectTimer: NodeJS.Timeout | undefined;
  removed = false;

  constructor(spec: { name: string; url: URL; weight: number }, resource: T) {
    this.name = spec.name;
    this.url = spec.url;
    this.weight = spec.weight;
    this.resource = resource;
  }

  snapshot(): MemberSnapshot {
    const down: DownReason[] = [];
    if (!this.checkUp) down.push('check');
    if (this.ejected) down.push('passive');
    return {
      name: this.name,
      url: this.url.origin,
      weight: this.weight,
      state: this.available ? 'up' : 'down',
      ...(down.length ? { down } : {}),
      inFlight: this.inFlight,
      requests: this.requests,
      failures: this.failures,
      ...(this.lastError !== undefined ? { lastError: this.lastError } : {}),
      since: new Date(this.since).toISOString(),
    };
  }
}
