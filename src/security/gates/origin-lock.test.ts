import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, startStack, type Stack } from '../../../test/helpers.ts';
import { originLock } from './origin-lock.ts';
import { poolAt, quietLog, rawGet, startEchoOrigin, type EchoOrigin } from './testing.ts';

const OLD = 'old-origin-secret-0123456789';
const NEW = 'new-origin-secret-9876543210';

describe('origin lock-down', () => {
  let echo: EchoOrigin;
  let s: Stack;
  beforeAll(async () => {
    echo = await startEchoOrigin();
    s = await startStack(() => poolAt(echo.url), { hooks: [originLock({ secrets: [OLD, NEW], log: quietLog })] });
  });
  afterAll(async () => {
    await s.close();
    await echo.close();
  });

  it('refuses a request without the secret header with 403, before the origin is asked', async () => {
    const before = echo.seen.length;
    const r = await get(`${s.base}/api/a`);
    expect(r.status).toBe(403);
    expect(r.header('cache-control')).toBe('no-store');
    expect(echo.seen.length).toBe(before);
  });

  it('refuses a wrong secret, a prefix of the secret and an empty one', async () => {
    for (const v of ['wrong-secret-000000000000', OLD.slice(0, -1), OLD + 'x', '']) {
      expect((await get(`${s.base}/api/b`, { headers: { 'x-origin-secret': v } })).status).toBe(403);
    }
  });

  it('accepts every configured secret, so the secret can be rotated', async () => {
    expect((await get(`${s.base}/api/c`, { headers: { 'x-origin-secret': OLD } })).status).toBe(200);
    expect((await get(`${s.base}/api/c`, { headers: { 'x-origin-secret': NEW } })).status).toBe(200);
  });

  it('does not send the secret header to the origin', async () => {
    const r = await get(`${s.base}/api/d`, { headers: { 'x-origin-secret': NEW, 'x-other': '1' } });
    expect(r.status).toBe(200);
    const seen = echo.seen.at(-1)!;
    expect(seen.url).toBe('/api/d');
    expect(seen.headers['x-other']).toBe('1');
    expect(seen.headers['x-origin-secret']).toBeUndefined();
  });

  it('refuses the secret header sent twice', async () => {
    expect(await rawGet(s.base, '/api/e', { 'x-origin-secret': [NEW, NEW] })).toBe(403);
    expect(await rawGet(s.base, '/api/e', { 'x-origin-secret': NEW })).toBe(200);
  });

  it('lets a loopback health check through without the secret, but not other methods or paths', async () => {
    const r = await get(`${s.base}/health`);
    expect(r.status).toBe(200);
    expect(r.text).toBe('ok\n');
    expect((await get(`${s.base}/health`, { method: 'POST', body: 'x' })).status).toBe(403);
    expect((await get(`${s.base}/healthz`)).status).toBe(403);
  });
});

describe('origin lock-down with health checks from elsewhere', () => {
  it('refuses /health without the secret when the client is not in healthFrom', async () => {
    const s = await startStack({}, { hooks: [originLock({ secrets: [NEW], healthFrom: ['::1/128'], log: quietLog })] });
    try {
      expect((await get(`${s.base}/health`)).status).toBe(403);
      expect((await get(`${s.base}/health`, { headers: { 'x-origin-secret': NEW } })).status).toBe(200);
    } finally {
      await s.close();
    }
  });

  it('refuses /health without the secret when allowLoopbackHealth is off, and honours a custom header name', async () => {
    const s = await startStack({}, { hooks: [originLock({ header: 'X-Gcore-Auth', secrets: [NEW], allowLoopbackHealth: false, log: quietLog })] });
    try {
      expect((await get(`${s.base}/health`)).status).toBe(403);
      expect((await get(`${s.base}/health`, { headers: { 'x-gcore-auth': NEW } })).status).toBe(200);
    } finally {
      await s.close();
    }
  });
});

describe('origin lock-down options', () => {
  it('refuses short secrets and empty lists at construction, naming the option', () => {
    expect(() => originLock({ secrets: ['short'] })).toThrow(/secrets\.0: expected a secret of at least 16 characters, got 5/);
    expect(() => originLock({ secrets: [] })).toThrow(/secrets: expected at least 1 entry, got 0/);
    expect(() => originLock({ secrets: [NEW], header: 'bad header' })).toThrow(/header: expected an HTTP header name/);
    expect(() => originLock({ secrets: [NEW], healthFrom: ['10.0.0.0/33'] })).toThrow(/healthFrom\.0: expected an address or CIDR/);
    expect(() => originLock({ secrets: [NEW], secret: NEW } as never)).toThrow(/\(options\): unknown option "secret"/);
    expect(() => originLock({ secrets: [NEW], healthPath: 'health' })).toThrow(/healthPath: expected a value starting with "\/", got "health"/);
    expect(() => originLock({ secrets: 'one-long-secret-value' as never })).toThrow(/secrets: expected array, got a string of 21 characters/);
  });

  it('never puts a secret into an error message', () => {
    try {
      originLock({ secrets: [NEW, 'tiny-secret', 42 as never, ['nested-secret-value'] as never] });
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).not.toContain('tiny-secret');
    }
  });
});
