import { describe, expect, it } from 'vitest';
import { Breaker, type BreakerState } from './breaker.ts';

describe('CU circuit breaker', () => {
  it('opens after N consecutive failures and keeps the CU off during the cool-down', () => {
    let now = 0;
    const b = new Breaker({ failures: 3, coolDownMs: 1000, now: () => now });
    b.failure();
    b.failure();
    expect(b.allow()).toBe(true);
    b.failure();
    expect(b.state).toBe('open');
    expect(b.allow()).toBe(false);
    now = 999;
    expect(b.allow()).toBe(false);
  });

  it('lets one trial through after the cool-down and closes when it succeeds', () => {
    let now = 0;
    const changes: BreakerState[] = [];
    const b = new Breaker({ failures: 1, coolDownMs: 100, now: () => now, onChange: (s) => changes.push(s) });
    b.failure();
    now = 100;
    expect(b.allow()).toBe(true);
    expect(b.allow()).toBe(false);
    b.success();
    expect(b.state).toBe('closed');
    expect(changes).toEqual(['open', 'half-open', 'closed']);
  });

  it('reopens when the trial fails', () => {
    let now = 0;
    const b = new Breaker({ failures: 1, coolDownMs: 100, now: () => now });
    b.failure();
    now = 150;
    expect(b.allow()).toBe(true);
    b.failure();
    expect(b.state).toBe('open');
    now = 200;
    expect(b.allow()).toBe(false);
  });

  it('counts only consecutive failures', () => {
    const b = new Breaker({ failures: 2, coolDownMs: 100 });
    b.failure();
    b.success();
    b.failure();
    expect(b.state).toBe('closed');
  });
});
