// Active health checks: every member gets a GET on `path` every `interval`, each bounded by
// `timeout`; the answer is good when its status is one of `expect`. Checks of one member never
// overlap (the next is scheduled when one ends), and the balancer turns results into up/down with
// its rise/fall counters.
import { Agent, request } from 'undici';
import type { Member } from './member.ts';

export interface HealthCheckOptions {
  readonly path: string;
  /** ms between the starts of two checks of one member. */
  readonly interval: number;
  /** ms a check may take, connection included. */
  readonly timeout: number;
  /** Good checks in a row that bring a down member up. */
  readonly rise: number;
  /** Failed checks in a row that take an up member down. */
  readonly fall: number;
  /** Statuses that count as good. */
  readonly expect: readonly number[];
}

export type CheckReport = (member: Member<unknown>, ok: boolean, detail: string) => void;

interface Watch {
  timer: NodeJS.Timeout | undefined;
  controller: AbortController | undefined;
}

export class HealthChecker {
  readonly options: HealthCheckOptions;
  readonly #report: CheckReport;
  readonly #agent: Agent;
  readonly #watches = new Map<Member<unknown>, Watch>();
  #closed = false;

  constructor(options: HealthCheckOptions, report: CheckReport) {
    this.options = options;
    this.#report = report;
    // A new connection per check (reset: true below): a reused keep-alive connection that the
    // member closes just as a check is sent would fail a healthy member, and connecting is what
    // clients must be able to do anyway.
    this.#agent = new Agent({ connections: 1, connect: { timeout: options.timeout } });
  }

  /** Starts checking a member, first at once. */
  watch(member: Member<unknown>): void {
    if (this.#closed || this.#watches.has(member)) return;
    const w: Watch = { timer: undefined, controller: undefined };
    this.#watches.set(member, w);
    void this.#run(member, w);
  }

  unwatch(member: Member<unknown>): void {
    const w = this.#watches.get(member);
    if (!w) return;
    this.#watches.delete(member);
    clearTimeout(w.timer);
    w.controller?.abort();
  }

  async #run(member: Member<unknown>, w: Watch): Promise<void> {
    const started = performance.now();
    const { ok, detail } = await this.check(member, w);
    if (this.#watches.get(member) !== w) return;
    this.#report(member, ok, detail);
    const wait = Math.max(0, this.options.interval - (performance.now() - started));
    w.timer = setTimeout(() => void this.#run(member, w), wait);
    w.timer.unref();
  }

  /** One check of one member. */
  async check(member: Member<unknown>, w?: Watch): Promise<{ ok: boolean; detail: string }> {
    const controller = new AbortController();
    if (w) w.controller = controller;
    const timer = setTimeout(() => controller.abort(), this.options.timeout);
    try {
      const res = await request(new URL(this.options.path, member.url), {
        dispatcher: this.#agent,
        method: 'GET',
        headers: { 'user-agent': 'outpost-health-check' },
        reset: true,
        signal: controller.signal,
        headersTimeout: this.options.timeout,
        bodyTimeout: this.options.timeout,
      });
      await res.body.dump();
      const ok = this.options.expect.includes(res.statusCode);
      return { ok, detail: `check: status ${res.statusCode}` };
    } catch (err) {
      const e = err as { code?: string; cause?: { code?: string }; message?: string };
      const code = controller.signal.aborted ? 'timeout' : (e.cause?.code ?? e.code ?? e.message ?? 'error');
      return { ok: false, detail: `check: ${code}` };
    } finally {
      clearTimeout(timer);
      if (w) w.controller = undefined;
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const m of [...this.#watches.keys()]) this.unwatch(m);
    await this.#agent.destroy().catch(() => undefined);
  }
}
