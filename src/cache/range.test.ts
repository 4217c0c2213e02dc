import { describe, expect, it } from 'vitest';
import { formatHttpDate } from './cache-control.ts';
import { contentRange, parseRange, unsatisfiedRange } from './range.ts';
import type { HeaderList } from './storage/tier.ts';

const LM = formatHttpDate(Date.UTC(2024, 0, 1));
const STORED: HeaderList = [['etag', '"v1"'], ['last-modified', LM]];
const get = (range: string | string[] | undefined, size = 1000, extra: Record<string, string> = {}, stored = STORED) =>
  parseRange('GET', range === undefined ? extra : { range, ...extra }, size, stored);

describe('parseRange', () => {
  it('serves a first-last range', () => {
    expect(get('bytes=0-499')).toEqual({ kind: 'partial', start: 0, end: 499 });
  });

  it('serves an open-ended range to the end', () => {
    expect(get('bytes=500-')).toEqual({ kind: 'partial', start: 500, end: 999 });
  });

  it('serves a suffix range', () => {
    expect(get('bytes=-500')).toEqual({ kind: 'partial', start: 500, end: 999 });
  });

  it('serves the whole body for a suffix longer than it', () => {
    expect(get('bytes=-5000')).toEqual({ kind: 'partial', start: 0, end: 999 });
  });

  it('clamps the last position to the end', () => {
    expect(get('bytes=900-5000')).toEqual({ kind: 'partial', start: 900, end: 999 });
    expect(get('bytes=0-99999999999999999999')).toEqual({ kind: 'partial', start: 0, end: 999 });
  });

  it('serves a single byte', () => {
    expect(get('bytes=0-0')).toEqual({ kind: 'partial', start: 0, end: 0 });
    expect(get('bytes=999-999')).toEqual({ kind: 'partial', start: 999, end: 999 });
  });

  it('is unsatisfiable when the range starts past the end', () => {
    expect(get('bytes=1000-')).toEqual({ kind: 'unsatisfiable' });
    expect(get('bytes=5000-6000')).toEqual({ kind: 'unsatisfiable' });
  });

  it('is unsatisfiable for a zero-length suffix', () => {
    expect(get('bytes=-0')).toEqual({ kind: 'unsatisfiable' });
  });

  it('is unsatisfiable for any int-range on an empty body', () => {
    expect(get('bytes=0-0', 0)).toEqual({ kind: 'unsatisfiable' });
    expect(get('bytes=0-', 0)).toEqual({ kind: 'unsatisfiable' });
  });

  it('serves the (empty) full response for a suffix range on an empty body', () => {
    expect(get('bytes=-10', 0)).toEqual({ kind: 'full' });
  });

  it('ignores a range whose last position is before its first', () => {
    expect(get('bytes=500-100')).toEqual({ kind: 'full' });
  });

  it('serves the full response for several ranges', () => {
    expect(get('bytes=0-1,5-6')).toEqual({ kind: 'full' });
    expect(get('bytes=0-1, -1')).toEqual({ kind: 'full' });
  });

  it('tolerates empty list elements and whitespace around a single range', () => {
    expect(get('bytes= 0-9 ,')).toEqual({ kind: 'partial', start: 0, end: 9 });
    expect(get('bytes=,,10-19')).toEqual({ kind: 'partial', start: 10, end: 19 });
  });

  it('matches the unit case-insensitively and ignores other units', () => {
    expect(get('Bytes=0-9')).toEqual({ kind: 'partial', start: 0, end: 9 });
    expect(get('items=0-9')).toEqual({ kind: 'full' });
  });

  it('ignores syntactically invalid ranges', () => {
    for (const r of ['bytes=', 'bytes=abc', 'bytes=1-2-3', 'bytes=-', 'bytes=- 5', 'bytes=0x1-2', '0-9', 'bytes 0-9', 'bytes=1.5-2']) {
      expect(get(r), r).toEqual({ kind: 'full' });
    }
  });

  it('ignores a Range sent on several lines', () => {
    expect(get(['bytes=0-9', 'bytes=10-19'])).toEqual({ kind: 'full' });
    expect(get(['bytes=0-9'])).toEqual({ kind: 'partial', start: 0, end: 9 });
  });

  it('applies only to GET', () => {
    expect(parseRange('HEAD', { range: 'bytes=0-9' }, 1000, STORED)).toEqual({ kind: 'full' });
    expect(parseRange('POST', { range: 'bytes=0-9' }, 1000, STORED)).toEqual({ kind: 'full' });
  });

  it('serves the full response without a Range header', () => {
    expect(get(undefined)).toEqual({ kind: 'full' });
  });
});

describe('If-Range', () => {
  it('honours the range when the entity-tag strongly matches', () => {
    expect(get('bytes=0-9', 1000, { 'if-range': '"v1"' })).toEqual({ kind: 'partial', start: 0, end: 9 });
  });

  it('serves the full response when the entity-tag differs', () => {
    expect(get('bytes=0-9', 1000, { 'if-range': '"v2"' })).toEqual({ kind: 'full' });
  });

  it('never matches a weak entity-tag', () => {
    expect(get('bytes=0-9', 1000, { 'if-range': 'W/"v1"' })).toEqual({ kind: 'full' });
    expect(get('bytes=0-9', 1000, { 'if-range': '"v1"' }, [['etag', 'W/"v1"']])).toEqual({ kind: 'full' });
  });

  it('honours the range when the date equals Last-Modified', () => {
    expect(get('bytes=0-9', 1000, { 'if-range': LM })).toEqual({ kind: 'partial', start: 0, end: 9 });
  });

  it('serves the full response when the date differs or is invalid', () => {
    expect(get('bytes=0-9', 1000, { 'if-range': formatHttpDate(Date.UTC(2024, 0, 2)) })).toEqual({ kind: 'full' });
    expect(get('bytes=0-9', 1000, { 'if-range': 'soon' })).toEqual({ kind: 'full' });
    expect(get('bytes=0-9', 1000, { 'if-range': LM }, [['etag', '"v1"']])).toEqual({ kind: 'full' });
  });

  it('takes precedence over an unsatisfiable range', () => {
    expect(get('bytes=5000-', 1000, { 'if-range': '"old"' })).toEqual({ kind: 'full' });
  });
});

describe('Content-Range helpers', () => {
  it('formats a satisfied range', () => {
    expect(contentRange(0, 499, 1000)).toBe('bytes 0-499/1000');
  });

  it('formats an unsatisfied range', () => {
    expect(unsatisfiedRange(1000)).toBe('bytes */1000');
  });
});
