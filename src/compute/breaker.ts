// A circuit breaker per CU per worker: after `failures` consecutive failures the CU is switched off
// for `coolDownMs`; then one trial run decides whether it comes back (closed) or stays off (open).

export type BreakerState = 'closed' | 'open' | 'half-open';

export class Breaker {
  private failures = 0;
  private openedAt = 0;
  private trialInFlight = false;
  private _state: BreakerState = 'closed';
  private readonly threshold: number;
  private readonly coolDownMs: number;
  private readonly now: () => number;
  private readonly onChange: ((state: BreakerState) => void) | undefined;

  constructor(opts: { failures: number; coolDownMs: number; now?: () => number; onChange?: (state: BreakerState) => void }) {
    this.threshold = opts.failures;
    this.coolDownMs = opts.coolDownMs;
    this.now = opts.now ?? Date.now;
    this.onChange = opts.onChange;
  }

  get state(): BreakerState {
    if (this._state === 'open' && this.now() - this.openedAt >= this.coolDownMs) this.set('half-open');
    return this._state;
  }

  get consecutiveFailures(): number {
    return this.failures;
  }

  /** Whether this run may go ahead; in half-open only one trial runs at a time. */
  allow(): boolean {
    const s = this.state;
    if (s === 'closed') return true;
    if (s === 'open' || this.trialInFlight) return false;
    this.trialInFlight = true;
    return true;
  }

  success(): void {
    this.failures = 0;
    this.trialInFlight = false;
    if (this._state !== 'closed') this.set('closed');
  }

  failure(): void {
    this.failures++;
    this.trialInFlight = false;
    if (this._state === 'half-open' || (this._state === 'closed' && this.failures >= this.threshold)) {
      this.openedAt = this.now();
      this.set('open');
    }
  }

  private set(s: BreakerState): void {
    this._state = s;
    this.onChange?.(s);
  }
}
