import { describe, expect, it } from 'vitest';
import { realIpResolver } from './real-ip.ts';

describe('client address behind trusted proxies', () => {
  const real = realIpResolver(['10.0.0.0/8', '127.0.0.1'], 'X-Forwarded-For')!;

  it('takes the rightmost untrusted address of X-Forwarded-For when the peer is trusted', () => {
    expect(real('10.1.2.3', { 'x-forwarded-for': '203.0.113.9' })).toBe('203.0.113.9');
    expect(real('127.0.0.1', { 'x-forwarded-for': '198.51.100.1, 203.0.113.9, 10.0.0.7' })).toBe('203.0.113.9');
  });

  it('ignores the header from an untrusted peer, and stops at a value that is not an address', () => {
    expect(real('192.0.2.1', { 'x-forwarded-for': '203.0.113.9' })).toBe('192.0.2.1');
    expect(real('10.1.2.3', { 'x-forwarded-for': '203.0.113.9, bogus' })).toBe('10.1.2.3');
    expect(real('10.1.2.3', {})).toBe('10.1.2.3');
  });

  it('is off without trusted proxies', () => {
    expect(realIpResolver([], 'x-forwarded-for')).toBeUndefined();
  });
});
