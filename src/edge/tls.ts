// The edge's certificate: the configured one, or a self-signed one generated on first start and
// kept (so browsers and curl --cacert see the same certificate across restarts).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generate } from 'selfsigned';
import { OutpostError } from '../errors.ts';

export interface TlsMaterial {
  readonly cert: string;
  readonly key: string;
  readonly generated: boolean;
}

export async function loadOrCreateCertificate(opts: { cert?: string | undefined; key?: string | undefined; dir: string }): Promise<TlsMaterial> {
  if (opts.cert && opts.key) {
    try {
      return { cert: readFileSync(opts.cert, 'utf8'), key: readFileSync(opts.key, 'utf8'), generated: false };
    } catch (err) {
      throw new OutpostError('CONFIG_INVALID', `edge.tls.cert/key: cannot read ${opts.cert} or ${opts.key}: ${(err as Error).message}`, { cause: err });
    }
  }
  const certPath = join(opts.dir, 'cert.pem');
  const keyPath = join(opts.dir, 'key.pem');
  if (existsSync(certPath) && existsSync(keyPath)) {
    return { cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8'), generated: false };
  }
  const notBeforeDate = new Date(Date.now() - 60_000);
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate: new Date(notBeforeDate.getTime() + 825 * 86_400_000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }, { type: 7, ip: '::1' }] },
    ],
  });
  mkdirSync(opts.dir, { recursive: true });
  writeFileSync(keyPath, pems.private, { mode: 0o600 });
  writeFileSync(certPath, pems.cert);
  return { cert: pems.cert, key: pems.private, generated: true };
}
