import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportPKCS8, exportSPKI, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, startStack, type Stack } from '../../../test/helpers.ts';
import { jwtGate } from './jwt.ts';
import { closedPort, poolAt, quietLog, startEchoOrigin, type EchoOrigin } from './testing.ts';

const SECRET = 'a-shared-hmac-secret-of-32-bytes!!';
const ISS = 'https://issuer.test';
const AUD = 'outpost';
const now = () => Math.floor(Date.now() / 1000);
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

type SignKey = Parameters<SignJWT['sign']>[0];

async function token(key: SignKey, alg: string, claims: JWTPayload = {}, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT({ sub: 'alice', role: 'editor', iss: ISS, aud: AUD, iat: now(), exp: now() + 300, ...claims })
    .setProtectedHeader({ alg, ...header })
    .sign(key);
}

const hmacKey = new TextEncoder().encode(SECRET);
const hsToken = (claims: JWTPayload = {}) => token(hmacKey, 'HS256', claims);
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

interface Jwks {
  url: string;
  keys: JWK[];
  fetches: number;
  close(): Promise<void>;
}

async function startJwksServer(keys: JWK[]): Promise<Jwks> {
  const state = { keys, fetches: 0 };
  const server = http.createServer((_req, res) => {
    state.fetches++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: state.keys }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
  return Object.assign(state, {
    url,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  });
}

describe('JWT gate', () => {
  let echo: EchoOrigin;
  let s: Stack;
  let jwks: Jwks;
  let rsa: Awaited<ReturnType<typeof generateKeyPair>>;
  let rsaPem: string;
  let ec: Awaited<ReturnType<typeof generateKeyPair>>;
  let jwksKey1: Awaited<ReturnType<typeof generateKeyPair>>;
  let jwksKey2: Awaited<ReturnType<typeof generateKeyPair>>;

  beforeAll(async () => {
    echo = await startEchoOrigin();
    rsa = await generateKeyPair('RS256', { extractable: true });
    rsaPem = await exportSPKI(rsa.publicKey);
    ec = await generateKeyPair('ES256', { extractable: true });
    jwksKey1 = await generateKeyPair('RS256', { extractable: true });
    jwksKey2 = await generateKeyPair('RS256', { extractable: true });
    jwks = await startJwksServer([{ ...(await exportJWK(jwksKey1.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }]);
    const common = { issuer: ISS, audience: AUD, log: quietLog };
    const hooks = [
      jwtGate({ ...common, paths: ['/hs/'], algorithms: ['HS256'], keys: { secret: SECRET }, forwardClaims: { sub: 'x-user', role: 'x-role', groups: 'x-groups', name: 'x-name' } }),
      jwtGate({ ...common, paths: ['/rs/'], algorithms: ['RS256'], keys: { publicKeyPem: rsaPem } }),
      jwtGate({ ...common, paths: ['/es/'], algorithms: ['ES256'], keys: { publicKeyPem: await exportSPKI(ec.publicKey) } }),
      jwtGate({ ...common, paths: ['/jwks/'], algorithms: ['RS256'], keys: { jwksUrl: jwks.url, cooldownMs: 0 }, forwardClaims: { sub: 'x-jwks-user' } }),
      jwtGate({ ...common, paths: ['/jwks-down/'], algorithms: ['RS256'], keys: { jwksUrl: `http://127.0.0.1:${await closedPort()}/jwks.json`, timeoutMs: 2000 } }),
      jwtGate({ ...common, paths: ['/cookie/'], algorithms: ['HS256'], keys: { secret: SECRET }, tokenFrom: { cookie: 'jwt' } }),
      jwtGate({ ...common, paths: ['/q/'], algorithms: ['HS256'], keys: { secret: SECRET }, tokenFrom: { query: 'access_token' }, realm: 'media' }),
    ];
    s = await startStack(() => poolAt(echo.url), { hooks });
  });
  afterAll(async () => {
    await s.close();
    await echo.close();
    await jwks.close();
  });

  async function refused(path: string, headers: Record<string, string>, description: RegExp): Promise<void> {
    const before = echo.seen.length;
    const r = await get(`${s.base}${path}`, { headers });
    expect(r.status).toBe(401);
    expect(r.header('www-authenticate')).toMatch(/^Bearer error="invalid_token", error_description="[^"\\]*"$/);
    expect(r.header('www-authenticate')).toMatch(description);
    expect(echo.seen.length).toBe(before);
  }

  it('passes a valid HS256 token and forwards the chosen claims to the origin as headers', async () => {
    const r = await get(`${s.base}/hs/a`, { headers: bearer(await hsToken({ groups: ['a', 'b'], name: 'Zoë' })) });
    expect(r.status).toBe(200);
    const seen = echo.seen.at(-1)!;
    expect(seen.headers['x-user']).toBe('alice');
    expect(seen.headers['x-role']).toBe('editor');
    expect(seen.headers['x-groups']).toBe('["a","b"]');
    expect(seen.headers['x-name']).toBe(encodeURIComponent('Zoë'));
    expect(seen.headers.authorization).toMatch(/^Bearer /);
  });

  it('replaces claim headers a client sent itself, and strips them outside the gated paths too', async () => {
    await get(`${s.base}/hs/b`, { headers: { ...bearer(await hsToken({ role: undefined })), 'x-user': 'admin', 'x-role': 'admin' } });
    expect(echo.seen.at(-1)!.headers['x-user']).toBe('alice');
    expect(echo.seen.at(-1)!.headers['x-role']).toBeUndefined();
    const r = await get(`${s.base}/public/c`, { headers: { 'x-user': 'admin', 'x-jwks-user': 'admin', 'x-keep': '1' } });
    expect(r.status).toBe(200);
    expect(echo.seen.at(-1)!.headers['x-user']).toBeUndefined();
    expect(echo.seen.at(-1)!.headers['x-jwks-user']).toBeUndefined();
    expect(echo.seen.at(-1)!.headers['x-keep']).toBe('1');
  });

  it('answers 401 invalid_request with WWW-Authenticate when there is no token', async () => {
    for (const headers of [{}, { authorization: 'Basic YWxhZGRpbjpvcGVuc2VzYW1l' }] as Array<Record<string, string>>) {
      const r = await get(`${s.base}/hs/none`, { headers });
      expect(r.status).toBe(401);
      expect(r.header('www-authenticate')).toBe('Bearer error="invalid_request", error_description="no bearer token"');
    }
  });

  it('refuses an expired token', async () => {
    await refused('/hs/x', bearer(await hsToken({ exp: now() - 10 })), /has expired/);
  });

  it('refuses a token that is not yet valid', async () => {
    await refused('/hs/x', bearer(await hsToken({ nbf: now() + 600 })), /not yet valid/);
  });

  it('refuses a token from the wrong issuer or for the wrong audience', async () => {
    await refused('/hs/x', bearer(await hsToken({ iss: 'https://evil.test' })), /unexpected issuer/);
    await refused('/hs/x', bearer(await hsToken({ aud: 'someone-else' })), /unexpected audience/);
  });

  it('refuses a token without an expiry', async () => {
    const t = await new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg: 'HS256' }).setIssuer(ISS).setAudience(AUD).sign(hmacKey);
    await refused('/hs/x', bearer(t), /no exp claim/);
  });

  it('refuses a token whose payload was changed', async () => {
    const [h, , sig] = (await hsToken()).split('.');
    const forged = b64({ sub: 'admin', role: 'admin', iss: ISS, aud: AUD, exp: now() + 300 });
    await refused('/hs/x', bearer(`${h}.${forged}.${sig}`), /signature verification failed/);
  });

  it('refuses a token whose signature was changed', async () => {
    const t = await token(rsa.privateKey, 'RS256');
    const [h, p, sig] = t.split('.') as [string, string, string];
    const i = 20;
    const flipped = sig.slice(0, i) + (sig[i] === 'A' ? 'B' : 'A') + sig.slice(i + 1);
    await refused('/rs/x', bearer(`${h}.${p}.${flipped}`), /signature verification failed/);
    await refused('/rs/x', bearer(`${h}.${p}.`), /malformed|signature/);
  });

  it('refuses an unsigned token (alg none), with or without a signature part', async () => {
    const claims = { sub: 'admin', iss: ISS, aud: AUD, exp: now() + 300 };
    await refused('/hs/x', bearer(`${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`), /not allowed|malformed/);
    await refused('/rs/x', bearer(`${b64({ alg: 'none' })}.${b64(claims)}.`), /not allowed|malformed/);
    await refused('/hs/x', bearer(`${b64({ alg: 'None' })}.${b64(claims)}.c2ln`), /not allowed|malformed/);
  });

  it('refuses HS256 signed with the RSA public key as the secret (key confusion)', async () => {
    const forged = await token(new TextEncoder().encode(rsaPem), 'HS256', { sub: 'admin' });
    await refused('/rs/x', bearer(forged), /algorithm not allowed/);
  });

  it('refuses a token signed with another key of the right kind', async () => {
    const other = await generateKeyPair('RS256');
    await refused('/rs/x', bearer(await token(other.privateKey, 'RS256')), /signature verification failed/);
    await refused('/hs/x', bearer(await token(new TextEncoder().encode('another-secret-of-at-least-32-bytes'), 'HS256')), /signature verification failed/);
  });

  it('passes valid RS256 and ES256 tokens', async () => {
    expect((await get(`${s.base}/rs/ok`, { headers: bearer(await token(rsa.privateKey, 'RS256')) })).status).toBe(200);
    expect((await get(`${s.base}/es/ok`, { headers: bearer(await token(ec.privateKey, 'ES256')) })).status).toBe(200);
    // The ES gate allows ES256 only: an RS256 token is refused by algorithm.
    await refused('/es/x', bearer(await token(rsa.privateKey, 'RS256')), /algorithm not allowed/);
  });

  it('checks tokens against a JWKS fetched once and cached', async () => {
    const t = await token(jwksKey1.privateKey, 'RS256', {}, { kid: 'k1' });
    const before = jwks.fetches;
    for (let i = 0; i < 3; i++) expect((await get(`${s.base}/jwks/a${i}`, { headers: bearer(t) })).status).toBe(200);
    expect(echo.seen.at(-1)!.headers['x-jwks-user']).toBe('alice');
    expect(jwks.fetches - before).toBeLessThanOrEqual(1);
  });

  it('refetches the JWKS when a token names a new key (rotation)', async () => {
    expect((await get(`${s.base}/jwks/warm`, { headers: bearer(await token(jwksKey1.privateKey, 'RS256', {}, { kid: 'k1' })) })).status).toBe(200);
    const t2 = await token(jwksKey2.privateKey, 'RS256', {}, { kid: 'k2' });
    await refused('/jwks/b', bearer(t2), /no key matches/);
    jwks.keys = [...jwks.keys, { ...(await exportJWK(jwksKey2.publicKey)), kid: 'k2', alg: 'RS256', use: 'sig' }];
    const before = jwks.fetches;
    expect((await get(`${s.base}/jwks/b`, { headers: bearer(t2) })).status).toBe(200);
    expect(jwks.fetches).toBe(before + 1);
  });

  it('answers 503 when the JWKS cannot be fetched', async () => {
    const r = await get(`${s.base}/jwks-down/a`, { headers: bearer(await token(jwksKey1.privateKey, 'RS256', {}, { kid: 'k1' })) });
    expect(r.status).toBe(503);
    expect(r.header('retry-after')).toBe('5');
  });

  it('reads the token from a cookie when configured', async () => {
    expect((await get(`${s.base}/cookie/a`, { headers: { cookie: `other=1; jwt=${await hsToken()}` } })).status).toBe(200);
    expect((await get(`${s.base}/cookie/a`, { headers: bearer(await hsToken()) })).status).toBe(401);
  });

  it('reads the token from a query parameter and keeps it away from the origin', async () => {
    const r = await get(`${s.base}/q/a?x=1&access_token=${await hsToken()}&y=2`);
    expect(r.status).toBe(200);
    expect(echo.seen.at(-1)!.url).toBe('/q/a?x=1&y=2');
    const bad = await get(`${s.base}/q/a?access_token=not.a.token`);
    expect(bad.status).toBe(401);
    expect(bad.header('www-authenticate')).toBe('Bearer realm="media", error="invalid_token", error_description="malformed token"');
  });

  it('refuses a malformed Authorization header as an invalid token', async () => {
    const r = await get(`${s.base}/hs/x`, { headers: { authorization: 'Bearer ###' } });
    expect(r.status).toBe(401);
    expect(r.header('www-authenticate')).toContain('error="invalid_token"');
  });
});

describe('JWT gate options', () => {
  it('refuses "none" and unknown algorithms', () => {
    expect(() => jwtGate({ algorithms: ['none' as never], keys: { secret: SECRET } })).toThrow(/algorithms\.0: expected a signing algorithm, got "none"/);
    expect(() => jwtGate({ algorithms: ['HS999' as never], keys: { secret: SECRET } })).toThrow(/algorithms\.0: expected one of HS256/);
    expect(() => jwtGate({ algorithms: [], keys: { secret: SECRET } })).toThrow(/algorithms: expected at least 1 entry, got 0/);
  });

  it('refuses HMAC algorithms with a public key and asymmetric ones with a secret', async () => {
    const { publicKey } = await generateKeyPair('RS256', { extractable: true });
    const pem = await exportSPKI(publicKey);
    expect(() => jwtGate({ algorithms: ['RS256', 'HS256'], keys: { publicKeyPem: pem } })).toThrow(/algorithms: .*key-confusion/);
    expect(() => jwtGate({ algorithms: ['RS256'], keys: { secret: SECRET } })).toThrow(/algorithms: expected only HS256\/HS384\/HS512 with keys.secret, got RS256/);
  });

  it('refuses a key that does not fit the algorithms, a private key, and a short HMAC secret', async () => {
    const ecKeys = await generateKeyPair('ES256', { extractable: true });
    expect(() => jwtGate({ algorithms: ['RS256'], keys: { publicKeyPem: '-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----' } })).toThrow(/keys.publicKeyPem: expected a PEM public key/);
    expect(() => jwtGate({ algorithms: ['ES384'], keys: { publicKeyPem: '' } })).toThrow(/keys.publicKeyPem/);
    const pem = await exportSPKI(ecKeys.publicKey);
    expect(() => jwtGate({ algorithms: ['RS256'], keys: { publicKeyPem: pem } })).toThrow(/expected algorithms for the ec \(prime256v1\) key in keys.publicKeyPem, got RS256/);
    const privatePem = await exportPKCS8(ecKeys.privateKey);
    expect(() => jwtGate({ algorithms: ['ES256'], keys: { publicKeyPem: privatePem } })).toThrow(/got a private key/);
    expect(() => jwtGate({ algorithms: ['HS512'], keys: { secret: SECRET } })).toThrow(/keys.secret: expected at least 64 bytes for HS512 \(RFC 7518 §3.2\), got 34/);
  });

  it('refuses ambiguous key settings and bad token sources', () => {
    expect(() => jwtGate({ algorithms: ['RS256'], keys: { jwksUrl: 'ftp://x/jwks' } })).toThrow(/keys.jwksUrl: expected an http\(s\) URL/);
    expect(() => jwtGate({ algorithms: ['HS256'], keys: { secret: SECRET, publicKeyPem: 'x' } as never })).toThrow(/expected exactly one of secret, publicKeyPem, jwks, jwksUrl, got secret and publicKeyPem/);
    expect(() => jwtGate({ algorithms: ['HS256'], keys: { secret: SECRET }, tokenFrom: { header: 'x' } as never })).toThrow(/tokenFrom: expected 'authorization', \{ cookie: NAME \} or \{ query: NAME \}/);
  });
});
