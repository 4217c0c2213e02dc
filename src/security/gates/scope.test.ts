import { describe, expect, it } from 'vitest';
import { startStack } from '../../../test/helpers.ts';
import { compileScope, hostnameOf, normalizePath } from './scope.ts';
import { signedUrls } from './signed-url.ts';
import { quietLog, rawGet } from './testing.ts';

const at = (host: string, path: string) => ({ host, path });

describe('gate scope', () => {
  it('applies everywhere when neither hosts nor paths are given', () => {
    expect(compileScope({})(at('a.test', '/x'))).toBe(true);
  });

  it('matches path prefixes literally and globs by segment', () => {
    const inScope = compileScope({ paths: ['/private/', '/v/*/hd/**', '/exact.pdf'] });
    expect(inScope(at('a', '/private/a/b'))).toBe(true);
    expect(inScope(at('a', '/privateer'))).toBe(false);
    expect(inScope(at('a', '/v/123/hd/seg/1.ts'))).toBe(true);
    expect(inScope(at('a', '/v/1/2/hd/x'))).toBe(false);
    expect(inScope(at('a', '/exact.pdf'))).toBe(true);
  });

  it('matches the normalised path, and the decoded one when the path has percent-escapes', () => {
    const inScope = compileScope({ paths: ['/private/'] });
    for (const p of ['/a/../private/x', '//private/x', '/%70rivate/x', '/./private/x', '/a%2f..%2fprivate/x', '/private%2Fx']) {
      expect(inScope(at('a', p)), p).toBe(true);
    }
    expect(normalizePath('/a/b/../c/./d/')).toBe('/a/c/d/');
    expect(normalizePath('/a/..')).toBe('/');
    expect(normalizePath('/%7euser/%2F')).toBe('/~user/%2F');
  });

  it('matches hosts exactly or by "*." wildcard, ignoring the port', () => {
    const inScope = compileScope({ hosts: ['media.example.com', '*.img.example.com'] });
    expect(inScope(at('media.example.com:8080', '/'))).toBe(true);
    expect(inScope(at('a.img.example.com', '/'))).toBe(true);
    expect(inScope(at('img.example.com', '/'))).toBe(false);
    expect(inScope(at('example.com', '/'))).toBe(false);
    expect(hostnameOf('[::1]:8080')).toBe('[::1]');
    expect(hostnameOf('[::1]')).toBe('[::1]');
  });

  it('scopes a gate to a host through the edge', async () => {
    const s = await startStack({}, { hooks: [signedUrls({ hosts: ['media.example.com'], keys: [{ id: 'k', secret: 'host-scoped-secret-0123' }], log: quietLog })] });
    try {
      expect(await rawGet(s.base, '/api/a', { host: 'media.example.com' })).toBe(403);
      expect(await rawGet(s.base, '/api/a', { host: 'www.example.com' })).toBe(200);
    } finally {
      await s.close();
    }
  });
});
