// `outpost sign URL --ttl 1h`: prints a signed URL for the signed-URL gate. The secret comes from
// OUTPOST_SIGNING_SECRET (preferred: command lines are visible to other users in `ps`) or --secret.
import { parseArgs } from 'node:util';
import { parseDuration } from '../config/units.ts';
import { OutpostError } from '../errors.ts';
import { signUrl } from './gates/signed-url.ts';

export const SIGN_HELP = `outpost sign — print a signed URL

  outpost sign URL --ttl DURATION [--key-id ID] [--secret S] [--encoding hex|base64url]
               [--sign-query] [--expires-param expires] [--sig-param sig] [--kid-param kid]

  URL        an http(s) URL or a path such as /private/report.pdf
  --ttl      how long the link is valid: 3600 (seconds), 30m, 1h, 7d
  --key-id   the key's id, added as kid= so the edge picks that key; without it the edge tries every key
  --secret   the key's secret; better in OUTPOST_SIGNING_SECRET (command lines are visible in ps)
  --sign-query  sign the other query parameters too (the gate must have signQuery on)
`;

export interface SignIo {
  readonly out: (s: string) => void;
  readonly err: (s: string) => void;
  readonly env: NodeJS.ProcessEnv;
}

const defaultIo: SignIo = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  env: process.env,
};

/** Runs `outpost sign …` (argv without "sign"); returns the exit code. */
export async function signCommand(argv: string[], io: SignIo = defaultIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        ttl: { type: 'string' },
        'key-id': { type: 'string' },
        secret: { type: 'string' },
        encoding: { type: 'string' },
        'sign-query': { type: 'boolean' },
        'expires-param': { type: 'string' },
        'sig-param': { type: 'string' },
        'kid-param': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    io.err(`outpost sign: ${(err as Error).message}\n\n${SIGN_HELP}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.out(SIGN_HELP);
    return 0;
  }
  const usage = (msg: string): number => {
    io.err(`outpost sign: ${msg}\n\n${SIGN_HELP}`);
    return 2;
  };
  if (positionals.length !== 1) return usage(`expected one URL, got ${positionals.length}`);
  if (values.ttl === undefined) return usage('--ttl is required (like --ttl 1h)');
  const ttlMs = parseDuration(values.ttl);
  if (ttlMs === undefined || ttlMs < 1000) return usage(`--ttl: expected a duration of at least 1s such as 3600, 30m or 1h, got ${JSON.stringify(values.ttl)}`);
  const secret = values.secret ?? io.env.OUTPOST_SIGNING_SECRET;
  if (!secret) return usage('no secret: set OUTPOST_SIGNING_SECRET or pass --secret');
  const encoding = values.encoding ?? 'hex';
  if (encoding !== 'hex' && encoding !== 'base64url') return usage(`--encoding: expected hex or base64url, got ${JSON.stringify(encoding)}`);
  try {
    const signed = signUrl(positionals[0]!, {
      key: { id: values['key-id'] ?? '', secret },
      ttlSeconds: Math.floor(ttlMs / 1000),
      encoding,
      ...(values['sign-query'] ? { signQuery: true } : {}),
      ...(values['expires-param'] !== undefined ? { expiresParam: values['expires-param'] } : {}),
      ...(values['sig-param'] !== undefined ? { sigParam: values['sig-param'] } : {}),
      ...(values['kid-param'] !== undefined ? { kidParam: values['kid-param'] } : {}),
    });
    io.out(`${signed}\n`);
    return 0;
  } catch (err) {
    if (err instanceof OutpostError) return usage(err.message.replace(/^invalid signUrl options:\n\s*/, '').replace(/\n\s*/g, '; '));
    throw err;
  }
}
