// The hash keys consistent hashing can use, compiled from the setting.
import { describe, expect, it } from 'vitest';
import { compileHashKey, type KeySource } from './key.ts';

const src: KeySource = {
  url: '/videos/a.m3u8?session=s1&q=x',
  host: 'cdn.example.com',
  headers: { 'x-user-id': 'u42', cookie: 'theme=dark; session=abc123', accept: ['a', 'b'] },
  ip: '203.0.113.9',
};

describe('hash keys', () => {
  it('takes the part of the request the setting names', () => {
    expect(compileHashKey('uri')(src)).toBe('/videos/a.m3u8?session=s1&q=x');
    expect(compileHashKey('path')(src)).toBe('/videos/a.m3u8');
    expect(compileHashKey('host')(src)).toBe('cdn.example.com');
    expect(compileHashKey('ip')(src)).toBe('203.0.113.9');
    expect(compileHashKey('header:X-User-Id')(src)).toBe('u42');
    expect(compileHashKey('header:accept')(src)).toBe('a');
    expect(compileHashKey('cookie:session')(src)).toBe('abc123');
    expect(compileHashKey('query:session')(src)).toBe('s1');
  });

  it('hashes the empty string when the part is missing', () => {
    const bare: KeySource = { url: '/x', host: '', headers: {}, ip: '' };
    expect(compileHashKey('cookie:session')(bare)).toBe('');
    expect(compileHashKey('header:x-user-id')(bare)).toBe('');
    expect(compileHashKey('query:session')(bare)).toBe('');
  });

  it('refuses an unknown key', () => {
    expect(() => compileHashKey('url')).toThrow(/expected uri, path, host/);
    expect(() => compileHashKey('header:')).toThrow();
  });
});
