import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, originHits, startStack, type Stack } from '../../../test/helpers.ts';
import { tokenCookie } from './token-cookie.ts';
import { quietLog } from './testing.ts';

describe("token with cookie (the seeds' scheme)", () => {
  let s: Stack;
  const validated: string[] = [];
  beforeAll(async () => {
    s = await startStack({}, {
      hooks: [
        tokenCookie({ paths: ['/hls/'], tokens: ['token'], log: quietLog }),
        tokenCookie({
          name: 'member',
          paths: ['/members/'],
          param: 'k',
          cookie: 'sess',
          cookieMaxAgeSec: 600,
          secure: true,
          async validate(t) {
            validated.push(t);
            return t.startsWith('member-');
          },
          log: quietLog,
        }),
      ],
    });
  });
  afterAll(() => s.close());

  it('refuses a request without a token with 403', async () => {
    expect((await get(`${s.base}/hls/colorbar.m3u8`)).status).toBe(403);
    expect(originHits(s.origin, '/hls/colorbar.m3u8')).toBe(0);
  });

  it('refuses a wrong token in the query or the cookie', async () => {
    expect((await get(`${s.base}/hls/colorbar.m3u8?token=nope`)).status).toBe(403);
    expect((await get(`${s.base}/hls/colorbar.m3u8?token=`)).status).toBe(403);
    expect((await get(`${s.base}/hls/colorbar.m3u8`, { headers: { cookie: 'superstition=nope' } })).status).toBe(403);
  });

  it('passes a valid ?token=, sets the cookie, and keeps the token out of the query the origin sees', async () => {
    const r = await get(`${s.base}/hls/colorbar.m3u8?token=token`);
    expect(r.status).toBe(200);
    expect(r.header('set-cookie')).toBe('superstition=token; Max-Age=3600; Path=/; HttpOnly; SameSite=Lax');
    expect(originHits(s.origin, '/hls/colorbar.m3u8')).toBe(1);
    expect(originHits(s.origin, '/hls/colorbar.m3u8?token=token')).toBe(0);
  });

  it('passes with the cookie alone and does not set it again', async () => {
    const r = await get(`${s.base}/hls/colorbar_1.ts`, { headers: { cookie: 'a=b; superstition=token' } });
    expect(r.status).toBe(200);
    expect(r.header('set-cookie')).toBeUndefined();
  });

  it('lets a token in the query win over the cookie, as the seeds do', async () => {
    expect((await get(`${s.base}/hls/colorbar_2.ts?token=wrong`, { headers: { cookie: 'superstition=token' } })).status).toBe(403);
  });

  it('works with configured names and a validate function', async () => {
    expect((await get(`${s.base}/members/a?k=guest`)).status).toBe(403);
    const r = await get(`${s.base}/members/a?k=member-7&x=1`);
    expect(r.status).toBe(200);
    expect(r.header('set-cookie')).toBe('sess=member-7; Max-Age=600; Path=/; HttpOnly; SameSite=Lax; Secure');
    expect(originHits(s.origin, '/members/a?x=1')).toBe(1);
    expect((await get(`${s.base}/members/b`, { headers: { cookie: 'sess=member-7' } })).status).toBe(200);
    expect((await get(`${s.base}/members/b`, { headers: { cookie: 'superstition=token' } })).status).toBe(403);
    expect(validated).toEqual(['guest', 'member-7', 'member-7']);
  });

  it('refuses with 503 when the validate function fails', async () => {
    const broken = await startStack({}, {
      hooks: [tokenCookie({ validate: () => Promise.reject(new Error('auth service down')), log: quietLog })],
    });
    try {
      const r = await get(`${broken.base}/api/x?token=abc`);
      expect(r.status).toBe(503);
      expect(originHits(broken.origin, '/api/x')).toBe(0);
    } finally {
      await broken.close();
    }
  });

  it('leaves paths outside its scope alone', async () => {
    expect((await get(`${s.base}/api/x`)).status).toBe(200);
  });

  it('refuses options with both or neither of tokens and validate', () => {
    expect(() => tokenCookie({ tokens: ['a'], validate: () => true })).toThrow(/tokens: expected exactly one of tokens or validate/);
    expect(() => tokenCookie({})).toThrow(/tokens: expected exactly one of tokens or validate/);
    expect(() => tokenCookie({ tokens: ['a'], cookie: 'bad;name' })).toThrow(/cookie: expected a name of letters/);
    expect(() => tokenCookie({ tokens: ['a'], sameSite: 'None', secure: false })).toThrow(/sameSite: expected secure to be on/);
  });
});

describe('token options', () => {
  it('never puts a token into an error message', () => {
    expect(() => tokenCookie({ tokens: 'the-only-token' as never })).toThrow(/tokens: expected array, got a string of 14 characters/);
  });
});
