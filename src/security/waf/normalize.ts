// Input normalisation for the WAF. Attackers hide payloads behind encodings the origin (or a
// framework in front of it) will undo: repeated percent-encoding, IIS %u escapes, overlong UTF-8,
// NUL bytes, HTML entities, SQL comments, backslashes. Each function here undoes one trick; a
// NormalizedInput decodes a value once and derives the views the rules match lazily.
// Every function is linear in its input: targets are attacker-controlled and up to 16 KiB long.

/** A NUL byte was found (and removed). */
export const FLAG_NUL = 1;
/** An overlong UTF-8 sequence (e.g. %c0%ae for '.') was mapped to its ASCII meaning. */
export const FLAG_OVERLONG_UTF8 = 2;
/** Bytes that are not UTF-8 were dropped. */
export const FLAG_INVALID_UTF8 = 4;
/** Percent-escapes were still present after one round of decoding (double encoding). */
export const FLAG_MULTI_ENCODED = 8;
/** IIS-style %uXXXX escapes were decoded. */
export const FLAG_IIS_UNICODE = 16;

const FLAG_NAMES: ReadonlyArray<readonly [number, string]> = [
  [FLAG_NUL, 'nul'],
  [FLAG_OVERLONG_UTF8, 'overlong-utf8'],
  [FLAG_INVALID_UTF8, 'invalid-utf8'],
  [FLAG_MULTI_ENCODED, 'multi-encoded'],
  [FLAG_IIS_UNICODE, 'iis-unicode'],
];

/** The names of the flags set in `flags`, for logs. */
export function flagNames(flags: number): string[] {
  const out: string[] = [];
  for (const [bit, name] of FLAG_NAMES) if (flags & bit) out.push(name);
  return out;
}

const HEX = new Int8Array(128).fill(-1);
for (let i = 0; i < 10; i++) HEX[48 + i] = i;
for (let i = 0; i < 6; i++) {
  HEX[65 + i] = 10 + i;
  HEX[97 + i] = 10 + i;
}

function hexAt(s: string, i: number): number {
  const c = s.charCodeAt(i);
  return c < 128 ? HEX[c]! : -1;
}

function hex2(s: string, i: number): number {
  const a = hexAt(s, i);
  const b = hexAt(s, i + 1);
  return a < 0 || b < 0 ? -1 : (a << 4) | b;
}

function hex4(s: string, i: number): number {
  const a = hex2(s, i);
  const b = hex2(s, i + 2);
  return a < 0 || b < 0 ? -1 : (a << 8) | b;
}

export interface DecodeResult {
  readonly text: string;
  readonly flags: number;
}

/**
 * Decodes a run of bytes as UTF-8, leniently the way old servers did: overlong forms (%c0%ae,
 * %e0%80%ae, and IIS's %c1%1c with a bad continuation byte) become the character they spell, and
 * bytes that are not UTF-8 are dropped rather than replaced, so that junk bytes cannot split a
 * keyword.
 */
export function decodeUtf8Lenient(bytes: ArrayLike<number>): DecodeResult {
  let out = '';
  let flags = 0;
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const b = bytes[i]!;
    if (b < 0x80) {
      out += String.fromCharCode(b);
      i++;
      continue;
    }
    if ((b === 0xc0 || b === 0xc1) && i + 1 < n) {
      // Never valid UTF-8, so no real text is lost by reading them as the ASCII they spell.
      out += String.fromCharCode(((b & 0x1f) << 6) | (bytes[i + 1]! & 0x3f));
      flags |= FLAG_OVERLONG_UTF8;
      i += 2;
      continue;
    }
    const len = b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf7 ? 4 : b >= 0xf8 && b <= 0xfb ? 5 : b >= 0xfc && b <= 0xfd ? 6 : 0;
    let ok = len > 0 && i + len <= n;
    let cp = len === 2 ? b & 0x1f : len === 3 ? b & 0x0f : len === 4 ? b & 0x07 : len === 5 ? b & 0x03 : b & 0x01;
    for (let k = 1; ok && k < len; k++) {
      const c = bytes[i + k]!;
      if ((c & 0xc0) !== 0x80) ok = false;
      else cp = (cp << 6) | (c & 0x3f);
    }
    if (!ok) {
      flags |= FLAG_INVALID_UTF8;
      i++;
      continue;
    }
    const min = len === 2 ? 0x80 : len === 3 ? 0x800 : 0x10000;
    if (cp < min) flags |= FLAG_OVERLONG_UTF8;
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) flags |= FLAG_INVALID_UTF8;
    else out += String.fromCodePoint(cp);
    i += len;
  }
  return { text: out, flags };
}

/**
 * One round of percent-decoding: %XX (runs of them decoded as lenient UTF-8), IIS %uXXXX, and
 * '+' as a space when `plusAsSpace` (query strings and form bodies). A '%' that starts no valid
 * escape stays as it is.
 */
export function percentDecodeOnce(s: string, plusAsSpace: boolean): DecodeResult {
  if (s.indexOf('%') === -1 && (!plusAsSpace || s.indexOf('+') === -1)) return { text: s, flags: 0 };
  let out = '';
  let flags = 0;
  let literalStart = 0;
  let run: number[] | undefined;
  const n = s.length;
  const flush = (): void => {
    if (!run) return;
    const r = decodeUtf8Lenient(run);
    out += r.text;
    flags |= r.flags;
    run = undefined;
  };
  let i = 0;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c === 37 /* % */) {
      const byte = hex2(s, i + 1);
      if (byte >= 0) {
        if (!run) {
          out += s.slice(literalStart, i);
          run = [];
        }
        run.push(byte);
        i += 3;
        literalStart = i;
        continue;
      }
      const u = s.charCodeAt(i + 1);
      if (u === 117 || u === 85 /* u U */) {
        let cp = hex4(s, i + 2);
        if (cp >= 0) {
          if (run) flush();
          else out += s.slice(literalStart, i);
          i += 6;
          // A %uD83D%uDE00 pair is one character.
          if (cp >= 0xd800 && cp <= 0xdbff && s.charCodeAt(i) === 37 && (s.charCodeAt(i + 1) | 32) === 117) {
            const lo = hex4(s, i + 2);
            if (lo >= 0xdc00 && lo <= 0xdfff) {
              cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
              i += 6;
            }
          }
          out += cp >= 0xd800 && cp <= 0xdfff ? '' : String.fromCodePoint(cp);
          flags |= FLAG_IIS_UNICODE;
          literalStart = i;
          continue;
        }
      }
    } else if (c === 43 /* + */ && plusAsSpace) {
      if (run) flush();
      else out += s.slice(literalStart, i);
      out += ' ';
      i++;
      literalStart = i;
      continue;
    }
    if (run) flush();
    i++;
  }
  if (run) flush();
  else out += s.slice(literalStart);
  return { text: out, flags };
}

const ESCAPE_RE = /%(?:[0-9a-f]{2}|u[0-9a-f]{4})/i;

/**
 * Percent-decodes until the text stops changing, at most `maxRounds` times (double and triple
 * encoding: %252e%252e%252f → %2e%2e%2f → ../).
 */
export function decodeRepeated(s: string, plusAsSpace: boolean, maxRounds = 3): DecodeResult {
  let text = s;
  let flags = 0;
  for (let round = 0; round < maxRounds; round++) {
    if (round > 0 && !ESCAPE_RE.test(text)) break;
    const r = percentDecodeOnce(text, plusAsSpace);
    if (r.text === text) break;
    if (round > 0) flags |= FLAG_MULTI_ENCODED;
    flags |= r.flags;
    text = r.text;
  }
  return { text, flags };
}

/** Characters that look like '/' or '\' which NFKC leaves alone but IIS's best-fit mapping did not. */
const SLASH_LOOKALIKES_RE = /[\u2215\u2044\u29f8\u29f9\u2216]/g;
const NON_ASCII_RE = /[^\x00-\x7f]/;

/**
 * Decoded text made comparable: NFKC (fullwidth ＜ becomes <, ․ becomes .), slash look-alikes
 * mapped, lower-cased, NUL removed (flagged).
 */
export function canonical(decoded: string): DecodeResult {
  let t = decoded;
  let flags = 0;
  if (NON_ASCII_RE.test(t)) t = t.normalize('NFKC').replace(SLASH_LOOKALIKES_RE, (c) => (c === '\u29f9' || c === '\u2216' ? '\\' : '/'));
  t = t.toLowerCase();
  if (t.indexOf('\0') !== -1) {
    t = t.replaceAll('\0', '');
    flags |= FLAG_NUL;
  }
  return { text: t, flags };
}

const NEEDS_FOLD_RE = /\s\s|[^\S ]/;
const WS_RUN_RE = /\s+/g;

/** Runs of whitespace (tabs, newlines, NBSP, …) become one space. */
export function foldWhitespace(s: string): string {
  return NEEDS_FOLD_RE.test(s) ? s.replace(WS_RUN_RE, ' ') : s;
}

const NAMED_ENTITIES: Readonly<Record<string, string>> = {
  lt: '<', gt: '>', quot: '"', apos: "'", amp: '&', colon: ':', semi: ';', lpar: '(', rpar: ')',
  sol: '/', bsol: '\\', tab: '\t', newline: '\n', nbsp: ' ', equals: '=', comma: ',', period: '.',
  excl: '!', num: '#', dollar: '$', percnt: '%', grave: '`', lsqb: '[', rsqb: ']', lbrack: '[',
  rbrack: ']', lcub: '{', rcub: '}', lbrace: '{', rbrace: '}', quest: '?', commat: '@', ast: '*',
  plus: '+', hyphen: '-', dash: '-', lowbar: '_', vert: '|', verbar: '|', hat: '^',
};

// Numeric entities need no ';' in browsers; JS escapes (\u003c, \x3c) matter once a value lands
// in a script.
const ENTITY_RE = /&#x0*([0-9a-f]{1,6});?|&#0*(\d{1,7});?|&([a-z]{2,8});|\\u\{?0*([0-9a-f]{1,4})\}?|\\x([0-9a-f]{2})/g;

function fromCode(cp: number): string {
  return cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp === 0 ? '' : String.fromCodePoint(cp);
}

/** Decodes HTML character references and JS escapes, twice (for &amp;lt;). Input is lower-case. */
export function decodeHtmlEntities(s: string): string {
  let t = s;
  for (let round = 0; round < 2; round++) {
    if (t.indexOf('&') === -1 && t.indexOf('\\') === -1) break;
    const next = t.replace(ENTITY_RE, (m, hex?: string, dec?: string, name?: string, jsu?: string, jsx?: string) => {
      if (hex !== undefined) return fromCode(parseInt(hex, 16));
      if (dec !== undefined) return fromCode(parseInt(dec, 10));
      if (name !== undefined) return NAMED_ENTITIES[name] ?? m;
      if (jsu !== undefined) return fromCode(parseInt(jsu, 16));
      return fromCode(parseInt(jsx!, 16));
    });
    if (next === t) break;
    t = next;
  }
  return t;
}

/**
 * Folds what SQL parsers ignore: block comments become a space (MySQL's executable /*!50000 … *\/
 * comments keep their content), `--` and `#` comments that end at a newline become a space,
 * whitespace runs become one space. A comment running to the end of the value is kept: it is
 * itself a sign of injection (sqli-comment).
 */
export function foldSql(s: string): string {
  return foldWhitespace(sqlComments(s));
}

function sqlComments(s: string): string {
  let t = s;
  if (t.indexOf('/*') !== -1 || t.indexOf('*/') !== -1) t = foldBlockComments(t);
  const lastNl = t.lastIndexOf('\n');
  if (lastNl !== -1 && (t.indexOf('--') !== -1 || t.indexOf('#') !== -1)) {
    // Only the part up to the last newline: there every comment start has a newline ahead, so the
    // regex never scans to the end and gives up (which would be quadratic).
    t = t.slice(0, lastNl + 1).replace(/(?:--|#)[^\n]*\n/g, ' ') + t.slice(lastNl + 1);
  }
  return t;
}

function foldBlockComments(s: string): string {
  let out = '';
  let i = 0;
  // Each search resumes where the last one found something, so the whole loop stays linear.
  let open = -2;
  let close = -2;
  for (;;) {
    if (open !== -1 && open < i) open = s.indexOf('/*', i);
    if (close !== -1 && close < i) close = s.indexOf('*/', i);
    if (open === -1 && close === -1) break;
    if (close !== -1 && (open === -1 || close < open)) {
      // A stray "*/" (the end of a /*! … */ comment).
      out += s.slice(i, close) + ' ';
      i = close + 2;
      continue;
    }
    if (s.charCodeAt(open + 2) === 33 /* ! */) {
      let j = open + 3;
      while (j < s.length && j < open + 9 && s.charCodeAt(j) >= 48 && s.charCodeAt(j) <= 57) j++;
      out += s.slice(i, open) + ' ';
      i = j;
      continue;
    }
    const end = close >= open + 2 ? close : s.indexOf('*/', open + 2);
    // Unclosed: left as it is (no later comment can close either).
    if (end === -1) break;
    out += s.slice(i, open) + ' ';
    i = end + 2;
  }
  return out + s.slice(i);
}

/**
 * For traversal checks: backslashes become slashes, "/./" segments go, slash runs become one. ".."
 * is kept: finding it is the point.
 */
export function normalizePathForMatch(s: string): string {
  return foldWhitespace(pathSegments(s));
}

function pathSegments(s: string): string {
  let t = s;
  if (t.indexOf('\\') !== -1) t = t.replaceAll('\\', '/');
  if (t.indexOf('/.') !== -1) t = t.replace(/\/\.(?=\/|$)/g, '');
  if (t.indexOf('//') !== -1) t = t.replace(/\/{2,}/g, '/');
  return t;
}

/**
 * For shell checks: quotes, backslashes and carets that shells (and cmd.exe) drop are removed
 * (c'a't, c\at), and $IFS / ${IFS} / empty $@ expansions become a space or nothing.
 */
export function foldShell(s: string): string {
  return foldWhitespace(shellQuotes(s));
}

function shellQuotes(s: string): string {
  let t = s;
  if (/['"\\^]/.test(t)) t = t.replace(/['"\\^]/g, '');
  if (t.indexOf('$') !== -1) t = t.replace(/\$\{ifs\}|\$ifs\b/g, ' ').replace(/\$[@*]/g, '');
  return t;
}

/**
 * Which characters a string contains, as a bit mask: one pass over the string tells the views which
 * transforms they can skip and lets rules skip their regex when a character they need is absent.
 */
export const CH_QUOTE = 1 << 0; // '
export const CH_DQUOTE = 1 << 1; // "
export const CH_BACKTICK = 1 << 2;
export const CH_SEMI = 1 << 3;
export const CH_PIPE = 1 << 4;
export const CH_AMP = 1 << 5;
export const CH_DOLLAR = 1 << 6;
export const CH_LPAREN = 1 << 7;
export const CH_LT = 1 << 8;
export const CH_EQ = 1 << 9;
export const CH_COLON = 1 << 10;
export const CH_LBRACE = 1 << 11;
export const CH_DASH = 1 << 12;
export const CH_HASH = 1 << 13;
export const CH_STAR = 1 << 14;
export const CH_PERCENT = 1 << 15;
export const CH_PLUS = 1 << 16;
export const CH_BACKSLASH = 1 << 17;
export const CH_AT = 1 << 18;
export const CH_DOT = 1 << 19;
export const CH_SLASH = 1 << 20;
export const CH_UNDERSCORE = 1 << 21;
export const CH_CARET = 1 << 22;
export const CH_UPPER = 1 << 23;
export const CH_NON_ASCII = 1 << 24;
export const CH_NUL = 1 << 25;
export const CH_NEWLINE = 1 << 26;
/** Whitespace other than single spaces: tabs, CR, LF, VT, FF, or two spaces in a row. */
export const CH_FOLDABLE_WS = 1 << 27;

const CHAR_BITS = new Int32Array(128);
{
  const set = (chars: string, bit: number): void => {
    for (const c of chars) CHAR_BITS[c.charCodeAt(0)] = bit;
  };
  set("'", CH_QUOTE);
  set('"', CH_DQUOTE);
  set('`', CH_BACKTICK);
  set(';', CH_SEMI);
  set('|', CH_PIPE);
  set('&', CH_AMP);
  set('$', CH_DOLLAR);
  set('(', CH_LPAREN);
  set('<', CH_LT);
  set('=', CH_EQ);
  set(':', CH_COLON);
  set('{', CH_LBRACE);
  set('-', CH_DASH);
  set('#', CH_HASH);
  set('*', CH_STAR);
  set('%', CH_PERCENT);
  set('+', CH_PLUS);
  set('\\', CH_BACKSLASH);
  set('@', CH_AT);
  set('.', CH_DOT);
  set('/', CH_SLASH);
  set('_', CH_UNDERSCORE);
  set('^', CH_CARET);
  set('ABCDEFGHIJKLMNOPQRSTUVWXYZ', CH_UPPER);
  CHAR_BITS[0] = CH_NUL;
  CHAR_BITS[10] = CH_NEWLINE | CH_FOLDABLE_WS;
  for (const c of [9, 11, 12, 13]) CHAR_BITS[c] = CH_FOLDABLE_WS;
}

/** The CH_* bits of the characters in s. Non-ASCII sets CH_NON_ASCII (and may hide Unicode spaces). */
export function charMask(s: string): number {
  let m = 0;
  let prevSpace = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 32) {
      if (prevSpace) m |= CH_FOLDABLE_WS;
      prevSpace = true;
      continue;
    }
    prevSpace = false;
    m |= c < 128 ? CHAR_BITS[c]! : CH_NON_ASCII;
  }
  return m;
}

/** What a rule matches against: one view of a normalised value. */
export const VIEWS = ['raw', 'decoded', 'html', 'sql', 'path', 'shell'] as const;
export type View = (typeof VIEWS)[number];

const V_RAW = 0;
const V_DECODED = 1;
const V_HTML = 2;
const V_SQL = 3;
const V_PATH = 4;
const V_SHELL = 5;
export const VIEW_INDEX: Readonly<Record<View, number>> = { raw: V_RAW, decoded: V_DECODED, html: V_HTML, sql: V_SQL, path: V_PATH, shell: V_SHELL };

/**
 * One request value, decoded once; the other views are derived on first use and kept, so ten
 * rules on one view cost one derivation. A view whose transform has nothing to do (no '&' for the
 * HTML view, no quotes for the shell view, …) is the decoded view itself, found from the mask.
 */
export class NormalizedInput {
  readonly raw: string;
  readonly flags: number;
  /** Decoded, canonical, not yet whitespace-folded (SQL line comments need the newlines). */
  readonly #base: string;
  readonly #baseMask: number;
  readonly #text: Array<string | undefined> = [undefined, undefined, undefined, undefined, undefined, undefined];
  readonly #mask: number[] = [0, 0, 0, 0, 0, 0];

  constructor(raw: string, plusAsSpace: boolean) {
    this.raw = raw;
    let mask = charMask(raw);
    this.#text[V_RAW] = raw;
    this.#mask[V_RAW] = mask;
    let text = raw;
    let flags = 0;
    if (mask & (CH_PERCENT | (plusAsSpace ? CH_PLUS : 0))) {
      const d = decodeRepeated(raw, plusAsSpace);
      flags = d.flags;
      if (d.text !== raw) {
        text = d.text;
        mask = charMask(text);
      }
    }
    if (mask & CH_NON_ASCII) {
      const c = canonical(text);
      flags |= c.flags;
      text = c.text;
      mask = charMask(text);
    } else {
      // ASCII only: what canonical() does, without its scans.
      if (mask & CH_UPPER) text = text.toLowerCase();
      if (mask & CH_NUL) {
        text = text.replaceAll('\0', '');
        flags |= FLAG_NUL;
      }
      mask &= ~(CH_UPPER | CH_NUL);
    }
    this.#base = text;
    this.#baseMask = mask;
    this.flags = flags;
  }

  view(v: View): string {
    return this.textAt(VIEW_INDEX[v]);
  }

  /** The CH_* mask of a view. */
  maskOf(v: View): number {
    return this.maskAt(VIEW_INDEX[v]);
  }

  maskAt(i: number): number {
    if (this.#text[i] === undefined) this.textAt(i);
    return this.#mask[i]!;
  }

  /** The text of a view by VIEW_INDEX (the hot path of the rules). */
  textAt(i: number): string {
    const known = this.#text[i];
    if (known !== undefined) return known;
    let t: string;
    if (i === V_DECODED) {
      const m = this.#baseMask;
      t = m & (CH_FOLDABLE_WS | CH_NON_ASCII) ? foldWhitespace(this.#base) : this.#base;
      this.#mask[i] = t === this.#base ? m : charMask(t);
      return (this.#text[i] = t);
    }
    const folded = this.textAt(V_DECODED);
    const m = this.#mask[V_DECODED]!;
    // References need '&#' or '&name;'; JS escapes need a backslash. "a=1&b=2" has neither.
    if (i === V_HTML) t = m & CH_BACKSLASH || (m & CH_AMP && (m & CH_SEMI || folded.includes('&#'))) ? refold(folded, decodeHtmlEntities) : folded;
    // Line comments need the newlines the decoded view has folded away.
    else if (i === V_SQL) t = this.#baseMask & CH_NEWLINE ? foldSql(this.#base) : m & CH_STAR ? refold(folded, sqlComments) : folded;
    else if (i === V_PATH) t = m & (CH_BACKSLASH | CH_SLASH) ? refold(folded, pathSegments) : folded;
    else t = m & (CH_QUOTE | CH_DQUOTE | CH_BACKSLASH | CH_CARET | CH_DOLLAR) ? refold(folded, shellQuotes) : folded;
    this.#mask[i] = t === folded ? m : charMask(t);
    return (this.#text[i] = t);
  }
}

/** Applies a view's transform to the folded text; folds again only if it changed something. */
function refold(folded: string, transform: (s: string) => string): string {
  const t = transform(folded);
  return t === folded ? folded : foldWhitespace(t);
}

export function normalizeInput(raw: string, plusAsSpace: boolean): NormalizedInput {
  return new NormalizedInput(raw, plusAsSpace);
}
