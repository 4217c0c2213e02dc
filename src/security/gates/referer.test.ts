import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, startStack, type Stack } from '../../../test/helpers.ts';
import { refererCheck } from './referer.ts';
import { quietLog } from './testing.ts';

describe('referer (hot-link) protection', () => {
  let s: Stack;
  beforeAll(async () => {
    s = await startStack({}, {
      hooks: [
        refererCheck({ paths: ['/img/'], allowedHosts: ['example.com', '*.cdn.example.com'], log: quietLog }),
        refererCheck({ name: 'strict', paths: ['/strict/'], allowedHosts: ['example.com'], allowEmpty: false, log: quietLog }),
      ],
    });
  });
  afterAll(() => s.close());

  const withReferer = (path: string, referer?: string) => get(`${s.base}${path}`, { headers: referer === undefined ? {} : { referer } });

  it('passes referers from allowed hosts, exact or by wildcard', async () => {
    for (const ref of ['https://example.com/page', 'http://EXAMPLE.com:8080/x', 'https://a.cdn.example.com/', 'https://a.b.cdn.example.com/p?q=1']) {
      expect((await withReferer('/img/a', ref)).status, ref).toBe(200);
    }
  });

  it('refuses other sites with 403, including look-alikes', async () => {
    for (const ref of [
      'https://evil.test/',
      'https://evil.test/?example.com',
      'https://example.com.evil.test/',
      'https://notexample.com/',
      'https://cdn.example.com/', // "*.cdn.example.com" is its subdomains only
      'ftp://example.com/',
      'not a url',
    ]) {
      const r = await withReferer('/img/a', ref);
      expect(r.status, ref).toBe(403);
      expect(r.text).toContain('hot-linking');
    }
  });

  it('passes a request without a Referer unless allowEmpty is off', async () => {
    expect((await withReferer('/img/b')).status).toBe(200);
    expect((await withReferer('/img/b', '')).status).toBe(200);
    expect((await withReferer('/strict/b')).status).toBe(403);
    expect((await withReferer('/strict/b', 'https://example.com/')).status).toBe(200);
  });

  it('leaves paths outside its scope alone', async () => {
    expect((await withReferer('/api/x', 'https://evil.test/')).status).toBe(200);
  });

  it('refuses bad host patterns at construction', () => {
    expect(() => refererCheck({ allowedHosts: ['https://example.com'] })).toThrow(/allowedHosts\.0: expected a host name or "\*\.example\.com", got "https:\/\/example.com"/);
    expect(() => refererCheck({ allowedHosts: ['a.*.com'] })).toThrow(/allowedHosts\.0/);
  });
});
