// The balancer: a member set that can change at run time, one policy, active and passive health.
// The load balancer node (src/lb) and the edge's origin pools (src/upstream/pool.ts) both use it:
//
//   const m = balancer.acquire(key, tried)   // picks a member, counts it in flight
//   … send the request through m.resource …
//   balancer.status(m, 503) | balancer.failure(m, 'connect') | balancer.success(m)
//   balancer.release(m)                      // when the response has ended
//
// Unhealthy members are skipped by every policy. When no member is healthy the balancer picks
// among all of them (panic mode, as Envoy does): a wrong health verdict then degrades to trying
// rather than to refusing every request.
import type { Logger } from 'pino';
import { OutpostError } from '../errors.ts';
import { HealthChecker, type HealthCheckOptions } from './health.ts';
import { Member, validateSpec, type MemberSnapshot, type MemberSpec } from './member.ts';
import { createPolicy, type Eligibility, type Policy, type PolicyName } from './policies.ts';

export type { HealthCheckOptions } from './health.ts';
export type { MemberSnapshot, MemberSpec } from './member.ts';
export { Member } from './member.ts';
export type { PolicyName } from './policies.ts';

export interface PassiveOptions {
  readonly enabled: boolean;
  /** Failures in a row (no success between) that eject a member. */
  readonly failures: number;
  /** ms an ejected member sits out before it is tried again. */
  readonly coolDown: number;
  /** Response statuses that count as failures ("5xx" or codes); connection errors and timeouts always do. */
  readonly statuses: readonly (number | string)[];
}

export const DEFAULT_PASSIVE: PassiveOptions = { enabled: true, failures: 3, coolDown: 10_000, statuses: [502, 503, 504] };

/** Why a request to a member failed without a usable response. */
export type FailureKind = 'connect' | 'timeout' | 'reset' | 'status';

export interface BalancerOptions<T> {
  readonly policy: PolicyName;
  /** Bounded loads' c: no member takes more than c × the average load. Default 1.25. */
  readonly loadFactor?: number;
  /** Ring points per unit of weight (chash, bounded). Default 160. */
  readonly vnodes?: number;
  /** Absent: no active checks (members are up until passive health says otherwise). */
  readonly healthCheck?: HealthCheckOptions | undefined;
  /** Absent: DEFAULT_PASSIVE. */
  readonly passive?: PassiveOptions;
  /** Makes what requests to a member go through (e.g. an undici Pool). */
  readonly create: (member: { readonly name: string; readonly url: URL; readonly weight: number }) => T;
  /** Frees it after the member was removed (after its requests ended, if the resource waits). */
  readonly destroy?: (resource: T) => void | Promise<void>;
  readonly log?: Logger;
  /** Called when a member goes up or down. */
  readonly onState?: (member: Member<T>, up: boolean, detail: string) => void;
  /** Called after each active check. */
  readonly onCheck?: (member: Member<T>, ok: boolean, detail: string) => void;
}

/** Statuses as a 600-entry table: one array read per response. */
function statusTable(list: readonly (number | string)[]): Uint8Array {
  const t = new Uint8Array(600);
  for (const s of list) {
    const text = String(s).toLowerCase();
    if (/^[1-5]xx$/.test(text)) t.fill(1, Number(text[0]) * 100, Number(text[0]) * 100 + 100);
    else if (/^[1-5]\d\d$/.test(text)) t[Number(text)] = 1;
    else throw new Error(`expected a status such as 503 or "5xx" (got ${JSON.stringify(s)})`);
  }
  return t;
}

export class Balancer<T> {
  readonly policyName: PolicyName;
  readonly #policy: Policy<T>;
  readonly #o: BalancerOptions<T>;
  readonly #passive: PassiveOptions;
  readonly #failStatus: Uint8Array;
  readonly #checker: HealthChecker | undefined;
  #list: Member<T>[] = [];
  readonly #byName = new Map<string, Member<T>>();
  #available = 0;
  #closed = false;
  readonly #noHealth: Eligibility<T> = { exclude: undefined, anyHealth: false };

  /** Add and remove members at run time; a policy's ring or weights follow at once. */
  readonly members: {
    add(spec: MemberSpec): Member<T>;
    remove(name: string): boolean;
    get(name: string): Member<T> | undefined;
    list(): readonly Member<T>[];
    snapshot(): MemberSnapshot[];
  };

  constructor(options: BalancerOptions<T>, initial: readonly MemberSpec[] = []) {
    this.#o = options;
    this.policyName = options.policy;
    this.#policy = createPolicy<T>(options.policy, {
      ...(options.vnodes !== undefined ? { vnodes: options.vnodes } : {}),
      ...(options.loadFactor !== undefined ? { loadFactor: options.loadFactor } : {}),
    });
    this.#passive = options.passive ?? DEFAULT_PASSIVE;
    this.#failStatus = statusTable(this.#passive.statuses);
    this.#checker = options.healthCheck ? new HealthChecker(options.healthCheck, (m, ok, detail) => this.#onCheck(m as Member<T>, ok, detail)) : undefined;
    this.members = {
      add: (spec) => this.#add(spec),
      remove: (name) => this.#remove(name),
      get: (name) => this.#byName.get(name),
      list: () => this.#list,
      snapshot: () => this.#list.map((m) => m.snapshot()),
    };
    for (const spec of initial) this.#add(spec);
  }

  /** Members policies may pick now. */
  get availableCount(): number {
    return this.#available;
  }

  /**
   * Picks a member for a request and counts it in flight (release() when the response has ended).
   * `key` feeds consistent hashing; `tried` holds members this request already failed on.
   */
  acquire(key = '', tried?: ReadonlySet<Member<T>>): Member<T> | undefined {
    const list = this.#list;
    let m: Member<T> | undefined;
    if (this.#available > 0) m = this.#policy.pick(list, key, tried === undefined ? this.#noHealth : { exclude: tried, anyHealth: false });
    if (m === undefined && this.#available === 0) m = this.#policy.pick(list, key, { exclude: tried, anyHealth: true });
    if (m !== undefined) {
      m.inFlight++;
      m.requests++;
    }
    return m;
  }

  release(m: Member<T>): void {
    if (m.inFlight > 0) m.inFlight--;
  }

  /** The member answered acceptably. */
  success(m: Member<T>): void {
    m.consecutiveFailures = 0;
  }

  /** The member answered with `status`: a failure when passive health lists it (then true), else a success. */
  status(m: Member<T>, status: number): boolean {
    if (this.#failStatus[status] !== 1) {
      m.consecutiveFailures = 0;
      return false;
    }
    this.failure(m, 'status', `status ${status}`);
    return true;
  }

  /** The member failed a request: counts toward ejecting it. */
  failure(m: Member<T>, kind: FailureKind, detail: string = kind): void {
    m.failures++;
    m.lastError = detail;
    const p = this.#passive;
    if (!p.enabled || m.removed) return;
    if (++m.consecutiveFailures < p.failures || m.ejected) return;
    m.ejected = true;
    this.#update(m, `ejected for ${p.coolDown} ms after ${m.consecutiveFailures} failures (last: ${detail})`);
    m.ejectTimer = setTimeout(() => {
      m.ejectTimer = undefined;
      m.ejected = false;
      // Half-open: one more failure ejects it again.
      m.consecutiveFailures = p.failures - 1;
      this.#update(m, 'cool-down over');
    }, p.coolDown);
    m.ejectTimer.unref();
  }

  #onCheck(m: Member<T>, ok: boolean, detail: string): void {
    if (m.removed) return;
    const hc = this.#o.healthCheck!;
    if (ok) {
      m.checkStreak = m.checkStreak > 0 ? m.checkStreak + 1 : 1;
      if (!m.checkUp && m.checkStreak >= hc.rise) {
        m.checkUp = true;
        this.#update(m, `${m.checkStreak} good checks`);
      }
    } else {
      m.lastError = detail;
      m.checkStreak = m.checkStreak < 0 ? m.checkStreak - 1 : -1;
      if (m.checkUp && -m.checkStreak >= hc.fall) {
        m.checkUp = false;
        this.#update(m, `${-m.checkStreak} failed checks (last: ${detail})`);
      }
    }
    this.#o.onCheck?.(m, ok, detail);
  }

  /** Recomputes `available` after a health input changed, and tells whoever listens. */
  #update(m: Member<T>, detail: string): void {
    const now = m.checkUp && !m.ejected;
    if (now === m.available) return;
    m.available = now;
    m.since = Date.now();
    this.#available += now ? 1 : -1;
    this.#o.log?.[now ? 'info' : 'warn']({ member: m.name, url: m.url.origin, detail }, now ? 'member up' : 'member down');
    this.#o.onState?.(m, now, detail);
  }

  #add(spec: MemberSpec): Member<T> {
    if (this.#closed) throw new OutpostError('SHUTTING_DOWN', 'the balancer is closed');
    const valid = validateSpec(spec);
    if (this.#byName.has(valid.name)) throw new OutpostError('BAD_REQUEST', `member ${valid.name} already exists`);
    const m = new Member<T>(valid, this.#o.create(valid));
    // A copy, so that a pick iterating the old list is never disturbed.
    this.#list = [...this.#list, m];
    this.#byName.set(m.name, m);
    this.#available++;
    this.#policy.rebuild(this.#list);
    this.#checker?.watch(m as Member<unknown>);
    this.#o.log?.info({ member: m.name, url: m.url.origin, weight: m.weight }, 'member added');
    return m;
  }

  #remove(name: string): boolean {
    const m = this.#byName.get(name);
    if (!m) return false;
    m.removed = true;
    this.#byName.delete(name);
    this.#list = this.#list.filter((x) => x !== m);
    if (m.available) this.#available--;
    clearTimeout(m.ejectTimer);
    this.#policy.rebuild(this.#list);
    this.#checker?.unwatch(m as Member<unknown>);
    this.#o.log?.info({ member: m.name }, 'member removed');
    void Promise.resolve(this.#o.destroy?.(m.resource)).catch(() => undefined);
    return true;
  }

  /** Stops the checks and frees every member's resource. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#checker?.close();
    const list = this.#list;
    for (const m of list) clearTimeout(m.ejectTimer);
    await Promise.all(list.map((m) => Promise.resolve(this.#o.destroy?.(m.resource)).catch(() => undefined)));
  }
}
