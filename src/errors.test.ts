import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, OutpostError, toOutpostError } from './errors.ts';

describe('errors', () => {
  it('documents every code in docs/errors.md', () => {
    const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
    for (const code of Object.keys(ERROR_CODES)) expect(doc, code).toContain(`\`${code}\``);
  });

  it('takes source and status from the catalogue', () => {
    const e = new OutpostError('UPSTREAM_TIMEOUT');
    expect(e.source).toBe('upstream');
    expect(e.status).toBe(504);
    expect(e.toJSON()).toEqual({ error: 'UPSTREAM_TIMEOUT', message: ERROR_CODES.UPSTREAM_TIMEOUT.summary });
  });

  it('wraps foreign errors, keeping them as the cause', () => {
    const cause = new Error('boom');
    const e = toOutpostError(cause);
    expect(e.code).toBe('INTERNAL');
    expect(e.cause).toBe(cause);
    expect(toOutpostError(e)).toBe(e);
  });
});
