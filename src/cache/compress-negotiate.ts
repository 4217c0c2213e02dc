// Accept-Encoding (RFC 9110 §12.5.3): which content codings a client takes, and which one to send
// it. Pure functions; the compression stage memoises their results per header value.

/** The codings Outpost produces itself. */
export type ContentCoding = 'br' | 'gzip';

export interface AcceptedEncodings {
  /** qvalue of each coding the field names (lower-case; x-gzip is gzip, §8.4.1.3). First mention wins. */
  readonly listed: ReadonlyMap<string, number>;
  /** qvalue of `*` (every coding not listed), when present. */
  readonly star: number | undefined;
}

const QVALUE = /^(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)$/;

/**
 * Parses Accept-Encoding. Members with an invalid qvalue are dropped rather than guessed at (the
 * reading the cache's Vary normalisation in vary.ts builds on); an absent field gives an empty list.
 */
export function parseAcceptEncoding(value: string | readonly string[] | undefined): AcceptedEncodings {
  const listed = new Map<string, number>();
  let star: number | undefined;
  if (value === undefined) return { listed, star };
  const s = typeof value === 'string' ? value : value.join(',');
  for (const member of s.split(',')) {
    const params = member.split(';');
    let coding = params[0]!.trim().toLowerCase();
    if (coding === '') continue;
    if (coding === 'x-gzip') coding = 'gzip';
    let q = 1;
    let valid = true;
    for (let i = 1; i < params.length; i++) {
      const p = params[i]!;
      const eq = p.indexOf('=');
      if (eq < 0 || p.slice(0, eq).trim().toLowerCase() !== 'q') continue;
      const raw = p.slice(eq + 1).trim();
      if (QVALUE.test(raw)) q = Number(raw);
      else valid = false;
    }
    if (!valid) continue;
    if (coding === '*') star ??= q;
    else if (!listed.has(coding)) listed.set(coding, q);
  }
  return { listed, star };
}

/**
 * The qvalue a client gives a coding: its own entry, else `*`'s, else 0. identity is the exception:
 * unless the field excludes it (`identity;q=0`, or `*;q=0` without an identity entry) it stays
 * acceptable, with a qvalue below anything a client can write, so any coding it names wins.
 */
export function codingQ(accepted: AcceptedEncodings, coding: string): number {
  const q = accepted.listed.get(coding);
  if (q !== undefined) return q;
  if (accepted.star !== undefined) return accepted.star;
  return coding === 'identity' ? IMPLICIT_IDENTITY_Q : 0;
}

const IMPLICIT_IDENTITY_Q = 1e-6;

/**
 * The coding to send: the offered coding with the highest qvalue above 0, ties going to the first
 * in `offered` (the server's preference), and any coding beating identity at an equal qvalue
 * (`gzip, identity` gets gzip). A missing or empty field, or one that accepts none of `offered`,
 * gives identity, which is also what a client that refuses every coding we have gets: sending an
 * unencoded body is allowed (§12.5.3) and more useful than a 406.
 */
export function negotiateEncoding(value: string | readonly string[] | undefined, offered: readonly ContentCoding[]): ContentCoding | 'identity' {
  if (value === undefined) return 'identity';
  const accepted = parseAcceptEncoding(value);
  let best: ContentCoding | 'identity' = 'identity';
  let bestQ = codingQ(accepted, 'identity');
  for (const c of offered) {
    const q = codingQ(accepted, c);
    if (q > 0 && (q > bestQ || (q === bestQ && best === 'identity'))) {
      best = c;
      bestQ = q;
    }
  }
  return best;
}

/** Whether the client takes a body in this coding (q > 0); identity unless excluded, as in codingQ. */
export function acceptsCoding(value: string | readonly string[] | undefined, coding: string): boolean {
  if (value === undefined) return coding === 'identity';
  return codingQ(parseAcceptEncoding(value), coding) > 0;
}
