import { describe, expect, it } from 'vitest';
import { PurgeLog, purgeMatches } from './purge-log.ts';
import { VARIANT_SEPARATOR } from './storage/tier.ts';

describe('purge log', () => {
  it('matches a URL key and its Vary variants, but not a longer URL', () => {
    const spec = { kind: 'key', key: 'http://a/x' } as const;
    expect(purgeMatches(spec, 'http://a/x', [])).toBe(true);
    expect(purgeMatches(spec, `http://a/x${VARIANT_SEPARATOR}gzip`, [])).toBe(true);
    expect(purgeMatches(spec, 'http://a/xy', [])).toBe(false);
  });

  it('matches by prefix, by any of several tags, and everything', () => {
    expect(purgeMatches({ kind: 'prefix', prefix: 'http://a/img/' }, 'http://a/img/1.png', [])).toBe(true);
    expect(purgeMatches({ kind: 'tags', tags: ['x', 'y'] }, 'k', ['y'])).toBe(true);
    expect(purgeMatches({ kind: 'tags', tags: ['x'] }, 'k', ['z'])).toBe(false);
    expect(purgeMatches({ kind: 'all' }, 'k', [])).toBe(true);
  });

  it('reports purges at or after a fill began, and forgets old ones', () => {
    const log = new PurgeLog(1000);
    log.note({ kind: 'all' }, true, 100);
    log.note({ kind: 'key', key: 'k' }, false, 200);
    expect(log.since(150, 'k', [])).toEqual({ hardAt: 200, softAt: 0 });
    expect(log.since(50, 'k', [])).toEqual({ hardAt: 200, softAt: 100 });
    expect(log.since(250, 'k', [])).toEqual({ hardAt: 0, softAt: 0 });
    log.note({ kind: 'all' }, false, 5000);
    expect(log.size).toBe(1);
  });
});
