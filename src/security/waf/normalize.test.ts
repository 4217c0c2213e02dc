import { describe, expect, it } from 'vitest';
import {
  canonical,
  charMask,
  CH_AMP,
  CH_FOLDABLE_WS,
  CH_LT,
  CH_NON_ASCII,
  CH_UPPER,
  decodeHtmlEntities,
  decodeRepeated,
  decodeUtf8Lenient,
  FLAG_IIS_UNICODE,
  FLAG_INVALID_UTF8,
  FLAG_MULTI_ENCODED,
  FLAG_NUL,
  FLAG_OVERLONG_UTF8,
  flagNames,
  foldShell,
  foldSql,
  foldWhitespace,
  normalizeInput,
  normalizePathForMatch,
  percentDecodeOnce,
} from './normalize.ts';

describe('percent-decoding', () => {
  it('decodes %XX escapes as UTF-8 and leaves a stray % alone', () => {
    expect(percentDecodeOnce('caf%C3%A9%20%41', false).text).toBe('café A');
    expect(percentDecodeOnce('50%', false).text).toBe('50%');
    expect(percentDecodeOnce('%zz%4', false).text).toBe('%zz%4');
    expect(percentDecodeOnce('%E6%97%A5%E6%9C%AC', false).text).toBe('日本');
  });

  it("turns '+' into a space only where asked (query strings, forms)", () => {
    expect(percentDecodeOnce('a+b', true).text).toBe('a b');
    expect(percentDecodeOnce('a+b', false).text).toBe('a+b');
    expect(percentDecodeOnce('c%2B%2B+x', true).text).toBe('c++ x');
  });

  it('decodes IIS %uXXXX escapes, surrogate pairs included, and flags them', () => {
    const r = percentDecodeOnce('%u003cb%u003E %uD83D%uDE00', false);
    expect(r.text).toBe('<b> 😀');
    expect(r.flags & FLAG_IIS_UNICODE).toBeTruthy();
  });

  it('keeps decoding until stable, up to three rounds, and flags double encoding', () => {
    expect(decodeRepeated('%252e%252e%252f', false)).toEqual({ text: '../', flags: FLAG_MULTI_ENCODED });
    expect(decodeRepeated('%25252e', false).text).toBe('.');
    // Four layers: three are undone, the rest stays visible.
    expect(decodeRepeated('%2525252e', false).text).toBe('%2e');
    expect(decodeRepeated('%%32%65', false).text).toBe('.');
    expect(decodeRepeated('plain', false)).toEqual({ text: 'plain', flags: 0 });
  });
});

describe('lenient UTF-8', () => {
  it('maps overlong sequences to the ASCII they spell and flags them', () => {
    for (const [bytes, ch] of [
      [[0xc0, 0xae], '.'],
      [[0xc0, 0xaf], '/'],
      [[0xc1, 0x9c], '\\'],
      [[0xc1, 0x1c], '\\'], // IIS accepted a bad continuation byte here
      [[0xe0, 0x80, 0xae], '.'],
      [[0xf0, 0x80, 0x80, 0xaf], '/'],
      [[0xc0, 0xbc], '<'],
      [[0xc0, 0xa7], "'"],
    ] as const) {
      const r = decodeUtf8Lenient(bytes);
      expect(r.text).toBe(ch);
      expect(r.flags & FLAG_OVERLONG_UTF8).toBeTruthy();
    }
  });

  it('drops bytes that are not UTF-8, so junk cannot split a keyword', () => {
    const r = decodeRepeated('un%ffion%fe', false);
    expect(r.text).toBe('union');
    expect(r.flags & FLAG_INVALID_UTF8).toBeTruthy();
  });

  it('decodes valid multi-byte text unflagged', () => {
    expect(decodeUtf8Lenient([0xe6, 0x97, 0xa5])).toEqual({ text: '日', flags: 0 });
  });
});

describe('canonical text', () => {
  it('lower-cases, removes NUL bytes and flags them', () => {
    expect(canonical('UnIoN\0 SeLeCt')).toEqual({ text: 'union select', flags: FLAG_NUL });
  });

  it('maps fullwidth and look-alike characters to ASCII (NFKC, IIS best fit)', () => {
    expect(canonical('＜SCRIPT＞').text).toBe('<script>');
    expect(canonical('..∕etc∕passwd').text).toBe('../etc/passwd');
    expect(canonical('café').text).toBe('café');
  });
});

describe('views', () => {
  it('folds whitespace runs of any kind into one space', () => {
    expect(foldWhitespace('a\t\n  b\u00a0c')).toBe('a b c');
    expect(foldWhitespace('a b')).toBe('a b');
  });

  it('decodes HTML entities (named, decimal, hex, without ;, twice) and JS escapes', () => {
    expect(decodeHtmlEntities('&lt;script&gt;')).toBe('<script>');
    expect(decodeHtmlEntities('&#x3c;&#60;&#0000060&#x3c')).toBe('<<<<');
    expect(decodeHtmlEntities('&amp;lt;b&amp;gt;')).toBe('<b>');
    expect(decodeHtmlEntities('javascript&colon;x')).toBe('javascript:x');
    expect(decodeHtmlEntities('\\u003cscript\\x3e')).toBe('<script>');
    expect(decodeHtmlEntities('a=1&b=2&unknown;')).toBe('a=1&b=2&unknown;');
  });

  it('folds SQL comments: /**/ and line comments to spaces, /*! */ to its content, trailing comments kept', () => {
    expect(foldSql('1/**/union/*x*/select')).toBe('1 union select');
    expect(foldSql('/*!50000union*/ /*!select*/')).toBe(' union select ');
    expect(foldSql('union-- x\nselect#y\n1')).toBe('union select 1');
    expect(foldSql("admin'--")).toBe("admin'--");
    expect(foldSql('a /* unclosed')).toBe('a /* unclosed');
  });

  it('normalises paths for traversal checks but keeps ".."', () => {
    expect(normalizePathForMatch('\\a\\.\\b//c/./d/.')).toBe('/a/b/c/d');
    expect(normalizePathForMatch('/x/../y')).toBe('/x/../y');
  });

  it('removes shell quoting tricks and $IFS', () => {
    expect(foldShell("c'a't${ifs}/etc/x")).toBe('cat /etc/x');
    expect(foldShell('c\\at$@ /x')).toBe('cat /x');
  });

  it('derives every view from one decoding of the raw value', () => {
    const n = normalizeInput('%253Cscr%00ipt%253E+%2F%2A%2A%2F%5C..', true);
    expect(n.flags & FLAG_NUL).toBeTruthy();
    expect(n.flags & FLAG_MULTI_ENCODED).toBeTruthy();
    expect(n.view('decoded')).toBe('<script> /**/\\..');
    expect(n.view('sql')).toBe('<script> \\..');
    expect(n.view('path')).toBe('<script> /**/..');
    expect(n.view('raw')).toBe('%253Cscr%00ipt%253E+%2F%2A%2A%2F%5C..');
    expect(flagNames(n.flags)).toEqual(['nul', 'multi-encoded']);
  });

  it('shares the decoded text with views that have nothing to change', () => {
    const n = normalizeInput('/static/app.js', false);
    const d = n.view('decoded');
    expect(n.view('html')).toBe(d);
    expect(n.view('sql')).toBe(d);
    expect(n.view('shell')).toBe(d);
  });
});

describe('character mask', () => {
  it('records which characters occur', () => {
    const m = charMask('A<b&c  é');
    expect(m & CH_UPPER).toBeTruthy();
    expect(m & CH_LT).toBeTruthy();
    expect(m & CH_AMP).toBeTruthy();
    expect(m & CH_FOLDABLE_WS).toBeTruthy();
    expect(m & CH_NON_ASCII).toBeTruthy();
    expect(charMask('plain text')).toBe(0);
  });
});

describe('cost on crafted input', () => {
  it('stays linear: 16 KiB of comment openers, entities and escapes decode in milliseconds', () => {
    for (const unit of ['/*', '*/;', '%25', '&#', '#--\n', '%c0', '/./', '\\..']) {
      const s = unit.repeat(Math.ceil(16384 / unit.length));
      const t0 = performance.now();
      const n = normalizeInput(s, true);
      for (const v of ['decoded', 'html', 'sql', 'path', 'shell'] as const) n.view(v);
      expect(performance.now() - t0).toBeLessThan(100);
    }
  });
});
