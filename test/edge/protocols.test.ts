// HTTP/2 and HTTP/1.1 over TLS (ALPN), the self-signed certificate, and /health.
import { readFileSync } from 'node:fs';
import { connect, type ClientHttp2Session } from 'node:http2';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOrCreateCertificate } from '../../src/edge/tls.ts';
import { freePort } from '../cluster/node-process.ts';
import { get, startStack, tempDir, type Stack } from '../helpers.ts';

let s: Stack;
let tlsPort: number;
beforeAll(async () => {
  tlsPort = await freePort();
  s = await startStack({ edge: { tlsPort } });
});
afterAll(() => s.close());

function h2get(session: ClientHttp2Session, path: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':path': path, ':method': 'GET' });
    let headers: Record<string, unknown> = {};
    const chunks: Buffer[] = [];
    req.on('response', (h) => (headers = h));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve({ status: Number(headers[':status']), headers, body: Buffer.concat(chunks).toString() }));
    req.on('error', reject);
    req.end();
  });
}

describe('protocols', () => {
  it('serves HTTP/2 over TLS, with the cache behind it', async () => {
    const session = connect(`https://localhost:${tlsPort}`, { rejectUnauthorized: false });
    try {
      const a = await h2get(session, '/h2-item?max_age=60');
      const b = await h2get(session, '/h2-item?max_age=60');
      expect(a.status).toBe(200);
      expect(a.headers['x-cache-status']).toBe('MISS');
      expect(b.headers['x-cache-status']).toBe('HIT');
      expect(JSON.parse(b.body).request).toBe('/h2-item');
    } finally {
      session.close();
    }
  });

  it('negotiates h2 and http/1.1 by ALPN on the same port', async () => {
    const alpn = (protocols: string[]) =>
      new Promise<string | false>((resolve, reject) => {
        const sock = tlsConnect({ port: tlsPort, host: '127.0.0.1', ALPNProtocols: protocols, rejectUnauthorized: false }, () => {
          resolve(sock.alpnProtocol ?? false);
          sock.end();
        });
        sock.on('error', reject);
      });
    expect(await alpn(['h2', 'http/1.1'])).toBe('h2');
    expect(await alpn(['http/1.1'])).toBe('http/1.1');
  });

  it('keys HTTPS and HTTP requests apart (the scheme is part of the cache key)', async () => {
    const session = connect(`https://localhost:${tlsPort}`, { rejectUnauthorized: false });
    try {
      await get(`${s.base}/scheme-item`);
      const viaTls = await h2get(session, '/scheme-item');
      expect(viaTls.headers['x-cache-status']).toBe('MISS');
    } finally {
      session.close();
    }
  });

  it('generates a self-signed certificate once and reuses it on the next start', async () => {
    const dir = join(tempDir(), 'tls');
    const first = await loadOrCreateCertificate({ dir });
    const second = await loadOrCreateCertificate({ dir });
    expect(first.generated).toBe(true);
    expect(second.generated).toBe(false);
    expect(second.cert).toBe(first.cert);
    expect(readFileSync(join(dir, 'cert.pem'), 'utf8')).toContain('BEGIN CERTIFICATE');
  });

  it('answers /health on the edge without touching the cache or the origin', async () => {
    const r = await get(`${s.base}/health`);
    expect(r.status).toBe(200);
    expect(r.text).toBe('ok\n');
    expect(s.origin.stats().byPath['/health']).toBeUndefined();
  });
});
