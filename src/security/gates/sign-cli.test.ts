// Tests for src/security/sign-cli.ts (kept here, in the folder these tests' owner works in).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, startStack, type Stack } from '../../../test/helpers.ts';
import { signCommand, type SignIo } from '../sign-cli.ts';
import { signedUrls } from './signed-url.ts';
import { quietLog } from './testing.ts';

const SECRET = 'cli-signing-secret-0123456789';

async function run(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: SignIo = { out: (s) => void (out += s), err: (s) => void (err += s), env };
  const code = await signCommand(argv, io);
  return { code, out, err };
}

describe('outpost sign', () => {
  let s: Stack;
  beforeAll(async () => {
    s = await startStack({}, { hooks: [signedUrls({ paths: ['/static/'], keys: [{ id: 'k1', secret: SECRET }], log: quietLog })] });
  });
  afterAll(() => s.close());

  it('prints a signed URL that the edge serves', async () => {
    const r = await run([`${s.base}/static/1k.txt`, '--ttl', '1h', '--key-id', 'k1', '--secret', SECRET]);
    expect(r.code).toBe(0);
    const printed = r.out.trim();
    expect(printed).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/static\/1k\.txt\?expires=\d+&kid=k1&sig=[0-9a-f]{64}$/);
    expect((await get(printed)).status).toBe(200);
    const expires = Number(new URL(printed).searchParams.get('expires'));
    expect(Math.abs(expires - (Math.floor(Date.now() / 1000) + 3600))).toBeLessThanOrEqual(2);
  });

  it('reads the secret from OUTPOST_SIGNING_SECRET in a real process and takes durations in any unit', () => {
    const cli = fileURLToPath(new URL('../sign-cli.ts', import.meta.url));
    const script = `import { signCommand } from ${JSON.stringify(cli)}; process.exitCode = await signCommand(process.argv.slice(1));`;
    const p = spawnSync(process.execPath, ['--input-type=module', '-e', script, '/static/2k.txt', '--ttl', '30m', '--encoding', 'base64url'], {
      env: { ...process.env, OUTPOST_SIGNING_SECRET: SECRET },
      encoding: 'utf8',
    });
    expect(p.stderr).toBe('');
    expect(p.status).toBe(0);
    const printed = p.stdout.trim();
    expect(printed).toMatch(/^\/static\/2k\.txt\?expires=\d+&sig=[A-Za-z0-9_-]{43}$/);
    const expires = Number(new URL(printed, 'http://x').searchParams.get('expires'));
    expect(Math.abs(expires - (Math.floor(Date.now() / 1000) + 1800))).toBeLessThanOrEqual(2);
  });

  it('prints an URL the edge accepts when signed with a bare number of seconds and no key id', async () => {
    const r = await run(['/static/3k.txt', '--ttl', '3600'], { OUTPOST_SIGNING_SECRET: SECRET });
    expect(r.code).toBe(0);
    expect((await get(`${s.base}${r.out.trim()}`)).status).toBe(200);
  });

  it('explains what is wrong and exits 2', async () => {
    const cases: Array<[string[], NodeJS.ProcessEnv, RegExp]> = [
      [['/p'], { OUTPOST_SIGNING_SECRET: SECRET }, /--ttl is required/],
      [['/p', '--ttl', 'soon'], { OUTPOST_SIGNING_SECRET: SECRET }, /--ttl: expected a duration .* got "soon"/],
      [['/p', '--ttl', '1h'], {}, /no secret: set OUTPOST_SIGNING_SECRET or pass --secret/],
      [['--ttl', '1h'], { OUTPOST_SIGNING_SECRET: SECRET }, /expected one URL, got 0/],
      [['/p', '--ttl', '1h', '--encoding', 'b64'], { OUTPOST_SIGNING_SECRET: SECRET }, /--encoding: expected hex or base64url/],
      [['/p', '--ttl', '1h', '--secret', 'short'], {}, /key.secret: expected a secret of at least 16 characters, got 5/],
      [['nope', '--ttl', '1h'], { OUTPOST_SIGNING_SECRET: SECRET }, /expected an http\(s\) URL or a path/],
      [['/p', '--ttl', '1h', '--bogus'], { OUTPOST_SIGNING_SECRET: SECRET }, /Unknown option '--bogus'/],
    ];
    for (const [argv, env, msg] of cases) {
      const r = await run(argv, env);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err, argv.join(' ')).toMatch(msg);
      expect(r.out).toBe('');
    }
  });

  it('prints help', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('outpost sign URL --ttl DURATION');
  });
});
