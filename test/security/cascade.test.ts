// The security cascade switched on from the configuration, in front of the cache and the CUs.
import { afterEach, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/load.ts';
import { securityHooks } from '../../src/security/cascade.ts';
import { signUrl } from '../../src/security/gates/index.ts';
import { createLogger } from '../../src/log/logger.ts';
import { get, originHits, startStack, type Stack } from '../helpers.ts';

let s: Stack | undefined;
afterEach(async () => {
  await s?.close();
  s = undefined;
});

const secret = 'k'.repeat(32);

describe('security cascade from the configuration', () => {
  it('blocks attacks with the WAF before the cache and the origin, and lets ordinary requests through', async () => {
    s = await startStack({ security: { waf: { mode: 'block' } } });
    const attack = await get(`${s.base}/search?q=1%27%20UNION%20SELECT%20password%20FROM%20users--`);
    expect(attack.status).toBe(403);
    expect(attack.header('x-outpost-waf')).toMatch(/^sqli-/);
    expect(originHits(s.origin, '/search?q=1%27%20UNION%20SELECT%20password%20FROM%20users--')).toBe(0);
    expect((await get(`${s.base}/search?q=union%20station%20opening%20hours`)).status).toBe(200);
  });

  it('refuses requests without the origin secret when lock-down is on', async () => {
    s = await startStack({ security: { originLock: { secrets: [secret] } } });
    expect((await get(`${s.base}/locked`)).status).toBe(403);
    expect((await get(`${s.base}/locked`, { headers: { 'x-origin-secret': secret } })).status).toBe(200);
  });

  it('serves signed URLs and refuses tampered ones', async () => {
    s = await startStack({ security: { signedUrls: { paths: ['/private/'], keys: [{ id: 'k1', secret }] } } });
    const signed = signUrl(`${s.base}/private/report.pdf`, { key: { id: 'k1', secret }, ttlSeconds: 60 });
    expect((await get(signed)).status).toBe(200);
    // Change the first signature digit to a different one (replacing it with a fixed digit is no change 1 time in 16).
    const tampered = signed.replace(/sig=([0-9a-f])/, (_m, d: string) => `sig=${d === '0' ? '1' : '0'}`);
    expect(tampered).not.toBe(signed);
    expect((await get(tampered)).status).toBe(403);
    expect((await get(`${s.base}/private/report.pdf`)).status).toBe(403);
    expect((await get(`${s.base}/public/page`)).status).toBe(200);
  });

  it('runs before computing units: a request the WAF refuses never reaches a CU', async () => {
    s = await startStack({ security: { waf: { mode: 'block' } } });
    const r = await get(`${s.admin}/cus/seen`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ phase: 'access', code: "await shared.incr('seen');" }) });
    expect(r.status).toBe(200);
    for (let i = 0; i < 100 && !s.node.compute!.status().some((c) => c.id === 'seen' && c.running); i++) await new Promise((x) => setTimeout(x, 10));
    await get(`${s.base}/ok`);
    await get(`${s.base}/x?f=..%2f..%2fetc%2fpasswd`);
    expect(s.node.compute!.plane.shared.get('seen')).toBe(1);
  });

  it('names the setting when a gate option is wrong', () => {
    const config = resolveConfig({ security: { jwt: [{ paths: ['/api/'], algorithms: ['none'] }] } });
    expect(() => securityHooks(config.security, createLogger('silent'))).toThrow(/security\.jwt\.0: /);
    expect(() => resolveConfig({ security: { firewall: {} } })).toThrow(/security/);
  });
});
