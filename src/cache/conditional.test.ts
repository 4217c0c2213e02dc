import { describe, expect, it } from 'vitest';
import { formatHttpDate } from './cache-control.ts';
import { evaluateConditional, notModifiedHeaders } from './conditional.ts';
import type { HeaderList } from './storage/tier.ts';

const T = Date.UTC(2024, 5, 1, 12, 0, 0);
const at = (s: number) => formatHttpDate(T + s * 1000);
const LM = at(0);

const stored = (headers: HeaderList = [['etag', '"v1"'], ['last-modified', LM], ['date', at(100)]], status = 200) => ({ status, headers });
const evalGet = (req: Record<string, string | string[]>, s = stored()) => evaluateConditional('GET', req, s);

describe('If-None-Match', () => {
  it('serves a 304 when the ETag matches', () => {
    expect(evalGet({ 'if-none-match': '"v1"' })).toBe('not-modified');
  });

  it('serves the full response when no tag matches', () => {
    expect(evalGet({ 'if-none-match': '"v0"' })).toBe('full');
  });

  it('compares weakly: W/ on either side still matches', () => {
    expect(evalGet({ 'if-none-match': 'W/"v1"' })).toBe('not-modified');
    expect(evalGet({ 'if-none-match': '"v1"' }, stored([['etag', 'W/"v1"']]))).toBe('not-modified');
  });

  it('matches any member of a list, with commas inside tags respected', () => {
    expect(evalGet({ 'if-none-match': '"a", "v1" ,"b"' })).toBe('not-modified');
    expect(evalGet({ 'if-none-match': '"x,y"' }, stored([['etag', '"x,y"']]))).toBe('not-modified');
    expect(evalGet({ 'if-none-match': '"x", "y"' }, stored([['etag', '"x,y"']]))).toBe('full');
  });

  it('reads repeated If-None-Match lines as one list', () => {
    expect(evalGet({ 'if-none-match': ['"a"', '"v1"'] })).toBe('not-modified');
  });

  it('matches * against any stored response, even one without an ETag', () => {
    expect(evalGet({ 'if-none-match': '*' }, stored([['date', at(0)]]))).toBe('not-modified');
  });

  it('does not match when the stored response has no ETag', () => {
    expect(evalGet({ 'if-none-match': '"v1"' }, stored([['last-modified', LM]]))).toBe('full');
  });

  it('takes precedence over If-Modified-Since', () => {
    expect(evalGet({ 'if-none-match': '"other"', 'if-modified-since': at(10) })).toBe('full');
    expect(evalGet({ 'if-none-match': '"v1"', 'if-modified-since': at(-10) })).toBe('not-modified');
  });

  it('answers 412 instead of 304 for methods other than GET and HEAD', () => {
    expect(evaluateConditional('HEAD', { 'if-none-match': '"v1"' }, stored())).toBe('not-modified');
    expect(evaluateConditional('POST', { 'if-none-match': '"v1"' }, stored())).toBe('precondition-failed');
  });

  it('compares unquoted tags literally', () => {
    expect(evalGet({ 'if-none-match': 'v1' }, stored([['etag', 'v1']]))).toBe('not-modified');
    expect(evalGet({ 'if-none-match': 'v1' })).toBe('full');
  });
});

describe('If-Modified-Since', () => {
  it('serves a 304 when Last-Modified is not after the date', () => {
    expect(evalGet({ 'if-modified-since': LM })).toBe('not-modified');
    expect(evalGet({ 'if-modified-since': at(60) })).toBe('not-modified');
  });

  it('serves the full response when modified since', () => {
    expect(evalGet({ 'if-modified-since': at(-1) })).toBe('full');
  });

  it('ignores an invalid date or a list of dates', () => {
    expect(evalGet({ 'if-modified-since': 'yesterday' })).toBe('full');
    expect(evalGet({ 'if-modified-since': [at(60), at(60)] })).toBe('full');
  });

  it('is only for GET and HEAD', () => {
    expect(evaluateConditional('HEAD', { 'if-modified-since': at(60) }, stored())).toBe('not-modified');
    expect(evaluateConditional('DELETE', { 'if-modified-since': at(60) }, stored())).toBe('full');
  });

  it('falls back to the stored Date when there is no Last-Modified', () => {
    const s = stored([['date', at(100)]]);
    expect(evalGet({ 'if-modified-since': at(100) }, s)).toBe('not-modified');
    expect(evalGet({ 'if-modified-since': at(99) }, s)).toBe('full');
  });

  it('cannot match without Last-Modified or Date', () => {
    expect(evalGet({ 'if-modified-since': at(100) }, stored([['etag', '"v1"']]))).toBe('full');
  });
});

describe('If-Match', () => {
  it('passes with a strongly matching tag and goes on to If-None-Match', () => {
    expect(evalGet({ 'if-match': '"v1"' })).toBe('full');
    expect(evalGet({ 'if-match': '"v1"', 'if-none-match': '"v1"' })).toBe('not-modified');
  });

  it('fails with 412 when no tag matches', () => {
    expect(evalGet({ 'if-match': '"v2"' })).toBe('precondition-failed');
  });

  it('never matches weak tags', () => {
    expect(evalGet({ 'if-match': 'W/"v1"' })).toBe('precondition-failed');
    expect(evalGet({ 'if-match': '"v1"' }, stored([['etag', 'W/"v1"']]))).toBe('precondition-failed');
  });

  it('passes with * since a stored representation exists', () => {
    expect(evalGet({ 'if-match': '*' }, stored([]))).toBe('full');
  });

  it('fails when the stored response has no ETag', () => {
    expect(evalGet({ 'if-match': '"v1"' }, stored([['last-modified', LM]]))).toBe('precondition-failed');
  });

  it('takes precedence over If-Unmodified-Since', () => {
    expect(evalGet({ 'if-match': '"v1"', 'if-unmodified-since': at(-100) })).toBe('full');
  });
});

describe('If-Unmodified-Since', () => {
  it('fails with 412 when modified after the date', () => {
    expect(evalGet({ 'if-unmodified-since': at(-1) })).toBe('precondition-failed');
  });

  it('passes when not modified after the date', () => {
    expect(evalGet({ 'if-unmodified-since': LM })).toBe('full');
  });

  it('is ignored when invalid or when there is no Last-Modified', () => {
    expect(evalGet({ 'if-unmodified-since': 'nope' })).toBe('full');
    expect(evalGet({ 'if-unmodified-since': at(-100) }, stored([['etag', '"v1"'], ['date', at(100)]]))).toBe('full');
  });

  it('is evaluated before If-None-Match', () => {
    expect(evalGet({ 'if-unmodified-since': at(-1), 'if-none-match': '"v1"' })).toBe('precondition-failed');
  });
});

describe('preconditions on non-2xx stored responses', () => {
  it('are ignored, as the response would not have been 2xx', () => {
    expect(evalGet({ 'if-none-match': '"v1"' }, stored(undefined, 404))).toBe('full');
    expect(evalGet({ 'if-match': '"nope"' }, stored(undefined, 301))).toBe('full');
  });

  it('apply to any 2xx', () => {
    expect(evalGet({ 'if-none-match': '"v1"' }, stored(undefined, 203))).toBe('not-modified');
  });
});

describe('without preconditions', () => {
  it('serves the full response', () => {
    expect(evalGet({})).toBe('full');
  });
});

describe('notModifiedHeaders', () => {
  const all: HeaderList = [
    ['date', at(0)],
    ['content-type', 'text/html'],
    ['content-length', '42'],
    ['cache-control', 'max-age=60'],
    ['etag', '"v1"'],
    ['expires', at(60)],
    ['vary', 'Accept-Encoding'],
    ['content-location', '/x.en'],
    ['last-modified', LM],
    ['set-cookie', 'a=1'],
    ['x-custom', '1'],
  ];

  it('keeps Cache-Control, Content-Location, Date, ETag, Expires and Vary', () => {
    expect(notModifiedHeaders(all)).toEqual([
      ['date', at(0)],
      ['cache-control', 'max-age=60'],
      ['etag', '"v1"'],
      ['expires', at(60)],
      ['vary', 'Accept-Encoding'],
      ['content-location', '/x.en'],
    ]);
  });

  it('keeps Last-Modified when there is no ETag', () => {
    expect(notModifiedHeaders([['last-modified', LM], ['content-type', 'x']])).toEqual([['last-modified', LM]]);
  });

  it('keeps repeated lines', () => {
    expect(notModifiedHeaders([['vary', 'a'], ['vary', 'b']])).toEqual([['vary', 'a'], ['vary', 'b']]);
  });
});
