// The phase pipeline: hooks run in the fixed order, any phase may answer early, filters change what
// the client gets (not what is cached), and the access log carries seed 003's fields.
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { checkHooks } from '../../src/edge/driver.ts';
import type { EdgeHooks, RequestContext } from '../../src/edge/phases.ts';
import { OutpostError } from '../../src/errors.ts';
import { startInProcessNode } from '../../src/node/in-process.ts';
import { startDemoOrigin } from '../../src/origin/demo-origin.ts';
import { get, originHits, startStack, testConfig, type Stack } from '../helpers.ts';
import { captureLines } from '../support/captured-log.ts';

let s: Stack | undefined;
afterEach(async () => {
  await s?.close();
  s = undefined;
});

describe('phase pipeline', () => {
  it('runs hooks in the fixed phase order, each with the same context', async () => {
    const seen: string[] = [];
    const hooks: EdgeHooks = {
      name: 'order',
      rewrite: (ctx) => {
        seen.push('rewrite');
        ctx.vars.set('n', 1);
      },
      access: (ctx) => {
        seen.push(`access:${String(ctx.vars.get('n'))}`);
      },
      header_filter: (ctx) => {
        seen.push(`header_filter:${ctx.cacheOutcome}`);
      },
      body_filter: (_ctx, body) => {
        seen.push('body_filter');
        return body;
      },
      log: (ctx) => {
        seen.push(`log:${ctx.response?.status}`);
      },
    };
    s = await startStack({}, { hooks: [hooks] });
    await get(`${s.base}/order`);
    await new Promise((r) => setTimeout(r, 20));
    expect(seen).toEqual(['rewrite', 'access:1', 'header_filter:MISS', 'body_filter', 'log:200']);
  });

  it('lets an access hook answer early; the origin is not asked and header_filter still runs', async () => {
    const deny: EdgeHooks = {
      name: 'deny',
      access: (ctx) => (ctx.path.startsWith('/private') ? { status: 403, body: 'no\n' } : undefined),
      header_filter: (_ctx, head) => {
        head.headers['x-decorated'] = 'yes';
      },
    };
    s = await startStack({}, { hooks: [deny] });
    const r = await get(`${s.base}/private/x`);
    expect(r.status).toBe(403);
    expect(r.text).toBe('no\n');
    expect(r.header('x-decorated')).toBe('yes');
    expect(originHits(s.origin, '/private/x')).toBe(0);
    expect((await get(`${s.base}/public`)).status).toBe(200);
  });

  it('lets a rewrite hook change the path before the cache key is computed', async () => {
    const rewrite: EdgeHooks = {
      name: 'rewrite',
      rewrite: (ctx: RequestContext) => {
        if (ctx.path === '/old') ctx.path = '/new';
      },
    };
    s = await startStack({}, { hooks: [rewrite] });
    const a = await get(`${s.base}/old`);
    expect(JSON.parse(a.text).request).toBe('/new');
    expect((await get(`${s.base}/new`)).header('x-cache-status')).toBe('HIT');
  });

  it('filters change what the client gets, never what is cached', async () => {
    const shout: EdgeHooks = {
      name: 'shout',
      header_filter: (_ctx, head) => {
        head.headers['x-filtered'] = '1';
      },
      body_filter: (_ctx, body) => Buffer.from(body.toString().toUpperCase()),
    };
    s = await startStack({}, { hooks: [shout] });
    const a = await get(`${s.base}/shout`);
    expect(a.text).toContain('"SERVICE":"API"');
    expect(a.header('content-length')).toBe(String(a.body.length));
    const stored = s.node.edge.cache.lookup(`http://127.0.0.1:${s.node.edge.port}/shout`, {});
    expect(stored?.meta.headers.some(([n]) => n === 'x-filtered')).toBe(false);
  });

  it('refuses hooks for unknown phases when they are registered', () => {
    const bad = { name: 'typo', acess: () => undefined } as unknown as EdgeHooks;
    expect(() => checkHooks([bad])).toThrow(OutpostError);
    expect(() => checkHooks([bad])).toThrow(/unknown phase "acess"/);
  });

  it('turns an error thrown by a hook into one 500 response with its code, and keeps serving', async () => {
    const broken: EdgeHooks = {
      name: 'broken',
      access: (ctx) => {
        if (ctx.path === '/boom') throw new Error('kaput');
      },
    };
    s = await startStack({}, { hooks: [broken] });
    const r = await get(`${s.base}/boom`);
    expect(r.status).toBe(500);
    expect(r.header('x-outpost-error')).toBe('INTERNAL');
    expect((await get(`${s.base}/fine`)).status).toBe(200);
  });

  it("writes one JSON access-log line per request with seed 003's fields, cache status and upstream time", async () => {
    const { sink, lines } = captureLines();
    const origin = await startDemoOrigin();
    const config = testConfig(origin.url, { log: { level: 'info', access: true } });
    const node = await startInProcessNode(config, { log: pino({ level: 'info', timestamp: pino.stdTimeFunctions.isoTime }, sink) });
    try {
      await get(`http://127.0.0.1:${node.edge.port}/logged?x=1`, { headers: { 'user-agent': 'test-agent' } });
      await get(`http://127.0.0.1:${node.edge.port}/logged?x=1`);
      // A miss is logged once its body is stored, which may come after the hit's line.
      for (let i = 0; i < 200 && lines.filter((l) => l.type === 'access').length < 2; i++) await new Promise((r) => setTimeout(r, 10));
      const access = lines.filter((l) => l.type === 'access');
      expect(access).toHaveLength(2);
      // A miss is logged once its body has been stored, which can be after the next request.
      const miss = access.find((l) => l.cache === 'MISS')!;
      const hit = access.find((l) => l.cache === 'HIT')!;
      expect(miss).toMatchObject({ method: 'GET', uri: '/logged?x=1', status: 200, ip: '127.0.0.1', ua: 'test-agent' });
      expect(typeof miss.time).toBe('string');
      expect(miss.bytes).toBeGreaterThan(0);
      expect(miss.rt).toBeTypeOf('number');
      expect(miss.urt).toBeTypeOf('number');
      expect(hit.urt).toBeUndefined();
    } finally {
      await node.close();
      await origin.close();
    }
  });
});
