import { describe, expect, it } from 'vitest';
import { parseHead } from './fast-http1.ts';

const head = (s: string) => Buffer.from(s, 'latin1');
const LIMIT = 16 * 1024;

describe('parseHead', () => {
  it('takes a plain GET, with lower-case header names and trimmed values', () => {
    const r = parseHead(head('GET /static/1k?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent:  wrk \t\r\nAccept: */*\r\n\r\n'), LIMIT);
    expect(r).toBeDefined();
    expect(r!.method).toBe('GET');
    expect(r!.url).toBe('/static/1k?x=1');
    expect({ ...r!.headers }).toEqual({ host: 'example.com', 'user-agent': 'wrk', accept: '*/*' });
    expect(r!.rawHeaders).toEqual(['Host', 'example.com', 'User-Agent', 'wrk', 'Accept', '*/*']);
    expect(r!.httpVersionMajor).toBe(1);
  });

  it('takes HEAD, an empty header value and Connection: keep-alive', () => {
    const r = parseHead(head('HEAD / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nConnection: Keep-Alive\r\n\r\n'), LIMIT);
    expect(r?.method).toBe('HEAD');
    expect(r?.headers['x-empty']).toBe('');
  });

  // Each of these goes to node:http as it came, which answers it (or refuses it) as before.
  it.each([
    ['another method', 'POST / HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['a lower-case method', 'get / HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['HTTP/1.0', 'GET / HTTP/1.0\r\nHost: a\r\n\r\n'],
    ['an incomplete head', 'GET / HTTP/1.1\r\nHost: a\r\n'],
    ['bytes after the head (a body or a pipelined request)', 'GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['no Host', 'GET / HTTP/1.1\r\nAccept: */*\r\n\r\n'],
    ['two Hosts', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'],
    ['a repeated header', 'GET / HTTP/1.1\r\nHost: a\r\nCookie: x=1\r\ncookie: y=2\r\n\r\n'],
    ['Content-Length', 'GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n'],
    ['Transfer-Encoding', 'GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n'],
    ['Upgrade', 'GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n'],
    ['Expect', 'GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n'],
    ['Connection: close', 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'],
    ['Connection: upgrade', 'GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n'],
    ['an absolute-form target', 'GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['a space in the target', 'GET /a b HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['a control character in the target', 'GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['a folded header line', 'GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  2\r\n\r\n'],
    ['a header line without a colon', 'GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n'],
    ['a space before the colon', 'GET / HTTP/1.1\r\nHost : a\r\n\r\n'],
    ['a control character in a value', 'GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n'],
    ['a bare LF in a value', 'GET / HTTP/1.1\r\nHost: a\r\nX-A: b\nc\r\n\r\n'],
    ['a header named after an Object property', 'GET / HTTP/1.1\r\nHost: a\r\n__proto__: x\r\n\r\n'],
    ['a header named constructor', 'GET / HTTP/1.1\r\nHost: a\r\nconstructor: x\r\n\r\n'],
    ['a bare LF line ending', 'GET / HTTP/1.1\nHost: a\r\n\r\n'],
  ])('leaves to node:http: %s', (_what, text) => {
    expect(parseHead(head(text), LIMIT)).toBeUndefined();
  });

  it('leaves to node:http a head over limits.maxHeaderBytes, and one with too many header lines', () => {
    const big = `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${'x'.repeat(200)}\r\n\r\n`;
    expect(parseHead(head(big), 100)).toBeUndefined();
    expect(parseHead(head(big), LIMIT)).toBeDefined();
    let many = 'GET / HTTP/1.1\r\nHost: a\r\n';
    for (let i = 0; i < 150; i++) many += `X-${i}: 1\r\n`;
    expect(parseHead(head(`${many}\r\n`), LIMIT)).toBeUndefined();
  });
});
