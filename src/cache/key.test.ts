import { describe, expect, it } from 'vitest';
import { OutpostError } from '../errors.ts';
import { DEFAULT_KEY_OPTIONS, compileCacheKey, type CacheKeyOptions } from './key.ts';

const keyOf = (o: Partial<CacheKeyOptions>, parts: Partial<{ scheme: string; host: string; path: string; query: string }> = {}) =>
  compileCacheKey({ ...DEFAULT_KEY_OPTIONS, ...o })({ scheme: 'https', host: 'example.com', path: '/a', query: '', ...parts });

describe('compileCacheKey', () => {
  it('formats scheme://host/path?query', () => {
    expect(keyOf({}, { query: 'x=1' })).toBe('https://example.com/a?x=1');
  });

  it('leaves out the ? when the query is empty', () => {
    expect(keyOf({})).toBe('https://example.com/a');
  });

  it('lower-cases the scheme and the host but not the path or query', () => {
    expect(keyOf({}, { scheme: 'HTTPS', host: 'Example.COM', path: '/A/b', query: 'Q=V' })).toBe('https://example.com/A/b?Q=V');
  });

  it('removes the default port of the scheme only', () => {
    expect(keyOf({}, { scheme: 'http', host: 'example.com:80' })).toBe('http://example.com/a');
    expect(keyOf({}, { scheme: 'https', host: 'example.com:443' })).toBe('https://example.com/a');
    expect(keyOf({}, { scheme: 'http', host: 'example.com:443' })).toBe('http://example.com:443/a');
    expect(keyOf({}, { scheme: 'https', host: 'example.com:8443' })).toBe('https://example.com:8443/a');
    expect(keyOf({}, { scheme: 'http', host: '[::1]:80' })).toBe('http://[::1]/a');
  });

  it('leaves the host out when configured, keeping the same shape', () => {
    expect(keyOf({ includeHost: false }, { query: 'x=1' })).toBe('https:///a?x=1');
  });

  it('sorts parameters by name, keeping their raw encoding', () => {
    expect(keyOf({}, { query: 'b=2&a=%20x&c=%2F' })).toBe('https://example.com/a?a=%20x&b=2&c=%2F');
  });

  it('keeps repeated parameters in their original order (stable sort)', () => {
    expect(keyOf({}, { query: 'b=1&a=2&b=0&a=1' })).toBe('https://example.com/a?a=2&a=1&b=1&b=0');
  });

  it('keeps the query as sent when sorting is off', () => {
    expect(keyOf({ sortQuery: false }, { query: 'b=2&&a=1' })).toBe('https://example.com/a?b=2&&a=1');
  });

  it('drops empty segments when rebuilding the query', () => {
    expect(keyOf({}, { query: '&b=2&&a=1&' })).toBe('https://example.com/a?a=1&b=2');
  });

  it('keeps parameters without a value', () => {
    expect(keyOf({}, { query: 'flag&a=1' })).toBe('https://example.com/a?a=1&flag');
  });

  it('ignores parameters by exact name', () => {
    expect(keyOf({ ignoreParams: ['fbclid'] }, { query: 'fbclid=1&a=1&fbclid2=3' })).toBe('https://example.com/a?a=1&fbclid2=3');
  });

  it('ignores parameters by prefix glob', () => {
    expect(keyOf({ ignoreParams: ['utm_*'] }, { query: 'utm_source=x&utm_medium=y&a=1&utm=z' })).toBe('https://example.com/a?a=1&utm=z');
  });

  it('matches ignore patterns against the decoded name', () => {
    expect(keyOf({ ignoreParams: ['utm_*'] }, { query: 'utm%5Fsource=x&a=1' })).toBe('https://example.com/a?a=1');
  });

  it('keeps a parameter whose name cannot be decoded', () => {
    expect(keyOf({ ignoreParams: ['x'] }, { query: '%E0%A4%A=1' })).toBe('https://example.com/a?%E0%A4%A=1');
  });

  it('filters without sorting when sorting is off', () => {
    expect(keyOf({ sortQuery: false, ignoreParams: ['utm_*'] }, { query: 'z=1&utm_a=2&a=3' })).toBe('https://example.com/a?z=1&a=3');
  });

  it('leaves no ? when every parameter is ignored', () => {
    expect(keyOf({ ignoreParams: ['utm_*'] }, { query: 'utm_source=x' })).toBe('https://example.com/a');
  });

  it('gives reordered queries the same key', () => {
    expect(keyOf({}, { query: 'a=1&b=2' })).toBe(keyOf({}, { query: 'b=2&a=1' }));
  });

  it('rejects ignore patterns that are empty, a bare * or have * inside', () => {
    for (const p of ['', '*', 'a*b', '*utm']) {
      expect(() => compileCacheKey({ ...DEFAULT_KEY_OPTIONS, ignoreParams: [p] }), p).toThrow(OutpostError);
    }
    try {
      compileCacheKey({ ...DEFAULT_KEY_OPTIONS, ignoreParams: ['a*b'] });
    } catch (err) {
      expect((err as OutpostError).code).toBe('CONFIG_INVALID');
      expect((err as OutpostError).message).toContain('cache.key.ignoreParams');
    }
  });

  it('defaults to host included, sorted query, nothing ignored', () => {
    expect(DEFAULT_KEY_OPTIONS).toEqual({ includeHost: true, sortQuery: true, ignoreParams: [] });
  });
});
