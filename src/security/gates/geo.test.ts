import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, startStack, type Stack } from '../../../test/helpers.ts';
import { geoBlock } from './geo.ts';
import { poolAt, quietLog, startEchoOrigin, type EchoOrigin } from './testing.ts';

describe('geo-blocking', () => {
  let echo: EchoOrigin;
  let s: Stack;
  beforeAll(async () => {
    echo = await startEchoOrigin();
    s = await startStack(() => poolAt(echo.url), {
      hooks: [
        geoBlock({ paths: ['/eu/'], allow: ['de', 'FR'], log: quietLog }),
        geoBlock({ paths: ['/deny/'], deny: ['CN'], status: 451, log: quietLog }),
        geoBlock({ paths: ['/strict-deny/'], deny: ['CN'], unknown: 'deny', log: quietLog }),
        geoBlock({ paths: ['/trusted/'], allow: ['DE'], trustFrom: ['127.0.0.1/32', '::1'], log: quietLog }),
        geoBlock({ paths: ['/untrusted/'], allow: ['DE'], trustFrom: ['10.0.0.0/8'], log: quietLog }),
        geoBlock({ paths: ['/untrusted-deny/'], header: 'cf-ipcountry', deny: ['CN'], trustFrom: ['10.0.0.0/8'], log: quietLog }),
      ],
    });
  });
  afterAll(async () => {
    await s.close();
    await echo.close();
  });

  const from = (path: string, country?: string, header = 'x-geoip-country-code') =>
    get(`${s.base}${path}`, { headers: country === undefined ? {} : { [header]: country } });

  it('with an allow list, passes listed countries and refuses the rest and unknown ones', async () => {
    expect((await from('/eu/a', 'DE')).status).toBe(200);
    expect((await from('/eu/a', 'fr')).status).toBe(200);
    expect((await from('/eu/a', 'US')).status).toBe(403);
    expect((await from('/eu/a')).status).toBe(403);
    expect((await from('/eu/a', 'XX')).status).toBe(403);
    expect((await from('/eu/a', 'Germany')).status).toBe(403);
  });

  it('with a deny list, refuses listed countries (here with 451) and passes unknown ones', async () => {
    const r = await from('/deny/a', 'CN');
    expect(r.status).toBe(451);
    expect(r.text).toContain('not available in your country');
    expect((await from('/deny/a', 'DE')).status).toBe(200);
    expect((await from('/deny/a')).status).toBe(200);
    expect((await from('/strict-deny/a')).status).toBe(403);
    expect((await from('/strict-deny/a', 'DE')).status).toBe(200);
  });

  it('believes the header from trustFrom addresses', async () => {
    expect((await from('/trusted/a', 'DE')).status).toBe(200);
    expect(echo.seen.at(-1)!.headers['x-geoip-country-code']).toBe('DE');
    expect((await from('/trusted/a', 'US')).status).toBe(403);
  });

  it('ignores and strips a header sent by a client outside trustFrom', async () => {
    // 127.0.0.1 is not in 10.0.0.0/8: a spoofed "DE" does not open an allow-listed path…
    expect((await from('/untrusted/a', 'DE')).status).toBe(403);
    // …a spoofed country does not close a deny-listed one, and the origin never sees it.
    expect((await from('/untrusted-deny/a', 'CN', 'cf-ipcountry')).status).toBe(200);
    expect(echo.seen.at(-1)!.url).toBe('/untrusted-deny/a');
    expect(echo.seen.at(-1)!.headers['cf-ipcountry']).toBeUndefined();
  });

  it('leaves paths outside its scope alone', async () => {
    expect((await from('/api/x', 'CN')).status).toBe(200);
  });

  it('refuses bad options at construction', () => {
    expect(() => geoBlock({ allow: ['DEU'] })).toThrow(/allow\.0: expected an ISO 3166-1 alpha-2 country code such as "DE", got "DEU"/);
    expect(() => geoBlock({ allow: ['DE'], deny: ['CN'] })).toThrow(/allow: expected exactly one of allow or deny/);
    expect(() => geoBlock({ deny: ['CN'], status: 404 as never })).toThrow(/status: expected 403 or 451, got 404/);
    expect(() => geoBlock({ deny: ['CN'], trustFrom: ['not-an-ip'] })).toThrow(/trustFrom\.0: expected an address or CIDR/);
    expect(() => geoBlock({ deny: ['CN'], unknown: 'maybe' as never })).toThrow(/unknown: expected one of "allow", "deny", got "maybe"/);
  });
});
