import { describe, expect, it } from 'vitest';
import { arrowPosition, prepareCu, USE_BIT, USE_REQ_HEADERS } from './source.ts';

const uses = (code: string): number => prepareCu({ id: 't', code, lang: 'js' }).uses;

describe('CU source preparation', () => {
  it('notes only the API names the code mentions', () => {
    expect(uses("if (!req.args.token) exit(403);")).toBe(USE_BIT.req | USE_BIT.exit);
    expect(uses("res.headers['x'] = crypto.randomUUID();")).toBe(USE_BIT.res | USE_BIT.crypto);
    expect(uses('return;')).toBe(0);
  });

  it('sends request headers only to code that may read them', () => {
    expect(uses("res.headers['x-ip'] = req.ip;") & USE_REQ_HEADERS).toBe(0);
    expect(uses("res['headers'].a = req.ip;") & USE_REQ_HEADERS).toBe(0);
    expect(uses("res.headers.a = req.headers.b;") & USE_REQ_HEADERS).toBe(USE_REQ_HEADERS);
    expect(uses("const { headers } = req;") & USE_REQ_HEADERS).toBe(USE_REQ_HEADERS);
    expect(uses("req['headers'].x") & USE_REQ_HEADERS).toBe(USE_REQ_HEADERS);
  });

  it('assumes every name is used when the code reaches names dynamically', () => {
    expect(uses("eval('req')")).toBe(1023);
    expect(uses('arguments[0]')).toBe(1023);
  });

  it('compiles as async only when the code awaits or names redis or shared', () => {
    const isAsync = (code: string) => prepareCu({ id: 't', code, lang: 'js' }).async;
    expect(isAsync('await 1;')).toBe(true);
    expect(isAsync("redis.incr('a');")).toBe(true);
    expect(isAsync("shared.get('a');")).toBe(true);
    expect(isAsync("exit(403);")).toBe(false);
  });

  it('keeps the positions of TypeScript code when stripping its types', () => {
    const p = prepareCu({ id: 't', code: 'const a: number = 1;\nreturn a as number;', lang: 'ts' });
    expect(p.body).toBe('const a         = 1;\nreturn a          ;');
    expect(p.lines).toBe(2);
  });

  it('reads the line and column Node prints above a SyntaxError', () => {
    expect(arrowPosition('file.js:3\nlet b: = 2;\n       ^\n\nSyntaxError: x')).toEqual({ line: 3, column: 8 });
    expect(arrowPosition(':3\nconst a = 1;\nlet b: = 2;\n       ^\n}\n\nSyntaxError: x')).toEqual({ line: 3, column: 8 });
    expect(arrowPosition('SyntaxError: no position')).toBeUndefined();
  });
});
