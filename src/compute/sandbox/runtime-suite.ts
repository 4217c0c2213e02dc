// The conformance suite every CU runtime passes (undici-style: one suite, every implementation).
// A runtime that cannot enforce limits or isolation says so in `capabilities`; the cases it cannot
// meet are then replaced by ones that pin down what it does instead — none is skipped silently.
import { createHash, createHmac } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CuPhase, CuRecord } from '../cu.ts';
import { CuError, type CuHostServices, type CuRequestView, type CuRunInput, type CuRunOutput, type CuRuntime, type CuTimings, type LoadedCu } from '../runtime.ts';
import type { CuLog } from './execution.ts';
import { MemoryCuServices } from './memory-services.ts';

export interface CuRuntimeCapabilities {
  /** Enforces each CU's time and memory limits. */
  readonly limits: boolean;
  /** Keeps CU code away from the host process and from other CUs. */
  readonly isolation: boolean;
}

export function capabilitiesOf(runtime: CuRuntime): CuRuntimeCapabilities {
  const declared = (runtime as { capabilities?: Partial<CuRuntimeCapabilities> }).capabilities;
  return { limits: declared?.limits ?? true, isolation: declared?.isolation ?? true };
}

let seq = 0;

export function cuRecord(fields: Partial<CuRecord> & { code: string }): CuRecord {
  return {
    id: `cu-${++seq}`,
    phase: 'access',
    lang: 'js',
    sampling: 100,
    hosts: [],
    priority: 100,
    enabled: true,
    timeoutMs: 200,
    memoryMb: 16,
    failure: 'open',
    version: 1,
    updatedAt: new Date(0).toISOString(),
    ...fields,
  };
}

export function requestView(fields: Partial<CuRequestView> = {}): CuRequestView {
  const path = fields.path ?? '/hls/colorbar.m3u8';
  const query = fields.query ?? '';
  const args: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(query)) if (!(k in args)) args[k] = v;
  return {
    method: 'GET',
    uri: query === '' ? path : `${path}?${query}`,
    path,
    query,
    args,
    headers: { host: 'nott.example', 'user-agent': 'suite/1', accept: '*/*' },
    cookies: {},
    ip: '192.0.2.10',
    host: 'nott.example',
    scheme: 'http',
    ...fields,
  };
}

export function runInput(phase: CuPhase, fields: Partial<Omit<CuRunInput, 'phase'>> = {}): CuRunInput {
  const late = phase === 'header_filter' || phase === 'body_filter' || phase === 'log';
  return {
    phase,
    request: requestView(),
    vars: {},
    timings: { requestMs: 1.5 },
    ...(late ? { response: { status: 200, headers: { 'content-type': 'text/plain', server: 'origin' } } } : {}),
    ...fields,
  };
}

/** Runs and waits, whether the runtime answered synchronously or not. */
export async function runCu(cu: LoadedCu, input: CuRunInput): Promise<CuRunOutput> {
  return await cu.run(input);
}

async function failure(cu: LoadedCu, input: CuRunInput): Promise<CuError> {
  try {
    await cu.run(input);
  } catch (e) {
    expect(e).toBeInstanceOf(CuError);
    return e as CuError;
  }
  throw new Error('expected the CU to fail');
}

function loadError(runtime: CuRuntime, record: CuRecord): CuError {
  try {
    runtime.load(record);
  } catch (e) {
    expect(e).toBeInstanceOf(CuError);
    return e as CuError;
  }
  throw new Error('expected the CU to be refused');
}

/** `make` builds the runtime under test; `log` is its callback for CU events outside a run's output. */
export function describeCuRuntime(name: string, make: (services: CuHostServices, log?: CuLog) => CuRuntime): void {
  const caps = (() => {
    const probe = make(new MemoryCuServices());
    try {
      return capabilitiesOf(probe);
    } finally {
      probe.dispose();
    }
  })();

  describe(`CU runtime conformance: ${name}`, () => {
    let services: MemoryCuServices;
    let runtime: CuRuntime;
    const load = (fields: Partial<CuRecord> & { code: string }): LoadedCu => runtime.load(cuRecord(fields));

    beforeEach(() => {
      services = new MemoryCuServices();
      runtime = make(services);
    });
    afterEach(() => {
      runtime.dispose();
    });

    describe('seed 000: token auth with a cookie (access phase)', () => {
      const code = [
        'const token = req.args.token ?? req.cookies.superstition;',
        "if (token !== 'token') return exit(403);",
        "res.headers['set-cookie'] = 'superstition=token';",
      ].join('\n');

      it('answers 403 when there is no token', async () => {
        const out = await runCu(load({ code }), runInput('access'));
        expect(out.exit).toEqual({ status: 403 });
        expect(out.response).toBeUndefined();
      });

      it('lets ?token=token through and sets the cookie', async () => {
        const out = await runCu(load({ code }), runInput('access', { request: requestView({ query: 'token=token' }) }));
        expect(out.exit).toBeUndefined();
        expect(out.response?.headers).toEqual({ 'set-cookie': 'superstition=token' });
      });

      it('lets the cookie alone through', async () => {
        const request = requestView({ cookies: { superstition: 'token' }, headers: { host: 'nott.example', cookie: 'superstition=token' } });
        const out = await runCu(load({ code }), runInput('access', { request }));
        expect(out.exit).toBeUndefined();
      });
    });

    it('answers with exit(status, body, headers) and stops the CU there', async () => {
      const cu = load({ code: "exit(418, 'short and stout', { 'Content-Type': 'text/plain', 'x-brew': 'no' });\nlog.info('not reached');" });
      const out = await runCu(cu, runInput('access'));
      expect(out.exit).toEqual({ status: 418, body: 'short and stout', headers: { 'content-type': 'text/plain', 'x-brew': 'no' } });
      expect(out.logs).toBeUndefined();
    });

    it('answers with exit() in header_filter too, replacing the response', async () => {
      const code = "if (res.status === 404) return exit(302, '', { location: '/missing?from=' + req.path });";
      const response = { status: 404, headers: { 'content-type': 'text/html' } };
      const out = await runCu(load({ code, phase: 'header_filter' }), runInput('header_filter', { response }));
      expect(out.exit).toEqual({ status: 302, body: '', headers: { location: '/missing?from=/hls/colorbar.m3u8' } });
    });

    it('reports nothing for a CU that changes nothing', async () => {
      const out = await runCu(load({ code: "if (req.headers['x-block'] === '1') return exit(403);" }), runInput('access'));
      expect(out).toEqual({});
    });

    it('records request header, path and query changes in rewrite and access', async () => {
      const code = [
        "req.headers['X-Added'] = 'yes';",
        "delete req.headers['user-agent'];",
        "req.path = '/new' + req.path;",
        "req.query = 'a=1&b=two+words';",
        "res.headers['x-seen'] = [req.args.a, req.args.b, req.uri, req.headers['x-added']].join('|');",
      ].join('\n');
      for (const phase of ['rewrite', 'access'] as const) {
        const out = await runCu(load({ code, phase }), runInput(phase));
        expect(out.request).toEqual({ path: '/new/hls/colorbar.m3u8', query: 'a=1&b=two+words', headers: { 'x-added': 'yes', 'user-agent': null } });
        expect(out.response?.headers).toEqual({ 'x-seen': '1|two words|/new/hls/colorbar.m3u8?a=1&b=two+words|yes' });
      }
    });

    it('reads request headers case-insensitively and exposes the request fields', async () => {
      const code = "res.headers['x-echo'] = [req.method, req.headers['User-Agent'], req.ip, req.host, req.scheme, req.path, String('accept' in req.headers)].join(' ');";
      const out = await runCu(load({ code }), runInput('access'));
      expect(out.response?.headers).toEqual({ 'x-echo': 'GET suite/1 192.0.2.10 nott.example http /hls/colorbar.m3u8 true' });
    });

    it('gives the request headers to code that reaches them without naming them', async () => {
      const code = "const name = ['head', 'ers'].join('');\nres.headers['x-ua'] = req[name]['user-agent'] + ' ' + JSON.parse(JSON.stringify(req))['head' + 'ers'].accept;";
      for (const lang of ['js', 'ts'] as const) {
        const sync = await runCu(load({ code, lang }), runInput('access'));
        expect(sync.response?.headers).toEqual({ 'x-ua': 'suite/1 */*' });
      }
      const async = await runCu(load({ code: `await shared.get('k');\n${code}` }), runInput('access'));
      expect(async.response?.headers).toEqual({ 'x-ua': 'suite/1 */*' });
    });

    it('changes the response status and headers in header_filter', async () => {
      const code = "if (res.headers['Server'] === 'origin') delete res.headers.server;\nres.status = 203;\nres.headers['x-cache'] = 'HIT';";
      const out = await runCu(load({ code, phase: 'header_filter' }), runInput('header_filter'));
      expect(out.response).toEqual({ status: 203, headers: { server: null, 'x-cache': 'HIT' } });
    });

    it('replaces the body in body_filter (an HLS tag appended)', async () => {
      const playlist = '#EXTM3U\n#EXT-X-VERSION:3\n#EXTINF:6.0,\nseg1.ts\n';
      const code = "if (res.headers['content-type'] === 'application/vnd.apple.mpegurl') res.body = res.body.replace('#EXTM3U\\n', '#EXTM3U\\n#EXT-X-OUTPOST:edge\\n');";
      const response = { status: 200, headers: { 'content-type': 'application/vnd.apple.mpegurl' } };
      const out = await runCu(load({ code, phase: 'body_filter' }), runInput('body_filter', { response, body: playlist }));
      expect(out.body).toBe('#EXTM3U\n#EXT-X-OUTPOST:edge\n#EXT-X-VERSION:3\n#EXTINF:6.0,\nseg1.ts\n');
    });

    it('gives body_filter an empty body as an empty string', async () => {
      const out = await runCu(load({ code: "res.body = typeof res.body + ':' + res.body.length;", phase: 'body_filter' }), runInput('body_filter', { body: '' }));
      expect(out.body).toBe('string:0');
    });

    it('reports no body when body_filter leaves it as it was', async () => {
      const out = await runCu(load({ code: 'res.body = res.body;', phase: 'body_filter' }), runInput('body_filter', { body: 'same' }));
      expect(out.body).toBeUndefined();
    });

    it('refuses changes outside the phase that allows them', async () => {
      const cases: Array<[CuPhase, string, RegExp]> = [
        ['header_filter', "req.path = '/x';", /req\.path is read-only in the header_filter phase/],
        ['header_filter', "req.headers['x-a'] = '1';", /req\.headers is read-only in the header_filter phase/],
        ['body_filter', "res.headers['x-a'] = '1';", /res\.headers is read-only in the body_filter phase/],
        ['log', 'res.status = 500;', /res\.status is writable in header_filter only/],
        ['access', 'res.status = 500;', /use exit\(status\)/],
        ['body_filter', 'exit(403);', /exit\(\) is available in rewrite, access and header_filter, not in body_filter/],
        ['log', 'exit(403);', /not in log/],
        ['access', "res.body = 'x';", /res\.body is writable in body_filter only/],
      ];
      for (const [phase, code, message] of cases) {
        const err = await failure(load({ code, phase }), runInput(phase));
        expect(err.kind).toBe('runtime');
        expect(err.message).toMatch(message);
      }
    });

    it('refuses header values that would split a header', async () => {
      const err = await failure(load({ code: "res.headers['x-a'] = 'one\\r\\nx-b: two';" }), runInput('access'));
      expect(err.kind).toBe('runtime');
      expect(err.message).toMatch(/CR, LF or NUL/);
    });

    it('carries vars from one phase to the next', async () => {
      const first = await runCu(load({ code: "vars.user = req.args.user; vars.hits = [1, 2];" }), runInput('access', { request: requestView({ query: 'user=ana' }) }));
      expect(first.vars).toEqual({ user: 'ana', hits: [1, 2] });
      const second = await runCu(
        load({ code: "res.headers['x-user'] = vars.user + ':' + vars.hits.length;", phase: 'header_filter' }),
        runInput('header_filter', { vars: first.vars! }),
      );
      expect(second.response?.headers).toEqual({ 'x-user': 'ana:2' });
      expect(second.vars).toBeUndefined();
    });

    it('returns log lines with their levels', async () => {
      const code = "log.debug('d'); log.info('count', 3, { a: 1 }); log.warn('w'); log.error(new Error('boom'));";
      const out = await runCu(load({ code }), runInput('access'));
      expect(out.logs).toEqual([
        { level: 'debug', msg: 'd' },
        { level: 'info', msg: 'count 3 {"a":1}' },
        { level: 'warn', msg: 'w' },
        { level: 'error', msg: 'Error: boom' },
      ]);
    });

    it('exposes timings in header_filter and log', async () => {
      const timings: CuTimings = { requestMs: 12.5, upstreamConnectMs: 1.25, upstreamResponseMs: 7, cacheStatus: 'MISS', bytesSent: 321 };
      const code = [
        "res.headers['x-metrics-upstream-connect'] = String(timings.upstreamConnectMs);",
        "res.headers['x-metrics-upstream-response'] = String(timings.upstreamResponseMs);",
        "res.headers['x-metrics-request'] = String(timings.requestMs);",
        "res.headers['x-metrics-cache'] = timings.cacheStatus;",
      ].join('\n');
      const out = await runCu(load({ code, phase: 'header_filter' }), runInput('header_filter', { timings }));
      expect(out.response?.headers).toEqual({
        'x-metrics-upstream-connect': '1.25',
        'x-metrics-upstream-response': '7',
        'x-metrics-request': '12.5',
        'x-metrics-cache': 'MISS',
      });
      const logged = await runCu(load({ code: 'log.info(timings.bytesSent);', phase: 'log' }), runInput('log', { timings }));
      expect(logged.logs).toEqual([{ level: 'info', msg: '321' }]);
    });

    it('runs TypeScript with its types stripped', async () => {
      const code = [
        'interface Rule { readonly prefix: string; readonly status: number }',
        "const rules: Rule[] = [{ prefix: '/private', status: 403 }];",
        'const hit = <T extends Rule>(list: T[], path: string): T | undefined => list.find((r) => path.startsWith(r.prefix));',
        'const rule = hit(rules, req.path as string);',
        'if (rule) return exit(rule.status);',
        "res.headers['x-lang'] = 'ts';",
      ].join('\n');
      const cu = load({ code, lang: 'ts' });
      expect(await runCu(cu, runInput('access', { request: requestView({ path: '/private/x' }) }))).toEqual({ exit: { status: 403 } });
      expect((await runCu(cu, runInput('access'))).response?.headers).toEqual({ 'x-lang': 'ts' });
    });

    it('refuses code that does not compile, with line and column in the CU', () => {
      const js = loadError(runtime, cuRecord({ code: 'const a = 1;\nconst b = ;' }));
      expect(js).toMatchObject({ kind: 'compile', line: 2, column: 11 });
      expect(js.message).toMatch(/SyntaxError.*\(line 2, column 11\)/);

      const ts = loadError(runtime, cuRecord({ code: 'const a: number = 1;\nlet b: = 2;', lang: 'ts' }));
      expect(ts).toMatchObject({ kind: 'compile', line: 2, column: 8 });

      const unfinished = loadError(runtime, cuRecord({ code: 'if (req.path) {\n  exit(403);' }));
      expect(unfinished).toMatchObject({ kind: 'compile', line: 2 });
      expect(unfinished.message).toMatch(/end of input/);

      const enumTs = loadError(runtime, cuRecord({ code: 'enum A { x }', lang: 'ts' }));
      expect(enumTs.kind).toBe('compile');
      expect(enumTs.message).toMatch(/enum/);
    });

    it('refuses code that closes its function early to run at load time', () => {
      const err = loadError(runtime, cuRecord({ code: "}); globalThis.pwned = true; (function () {" }));
      expect(err.kind).toBe('compile');
      expect(err.message).toMatch(/function body/);
    });

    it('reports a runtime error with the line it happened on', async () => {
      const err = await failure(load({ code: "const a = req.args;\n\nconst b = a.missing.deeper;" }), runInput('access'));
      expect(err).toMatchObject({ kind: 'runtime', line: 3 });
      expect(err.message).toMatch(/TypeError.*\(line 3/);
    });

    it('passes the log lines of a failed run to the host log', async () => {
      const lines: string[] = [];
      const rt = make(services, (cuId, level, msg) => lines.push(`${cuId} ${level} ${msg}`));
      try {
        const cu = rt.load(cuRecord({ id: 'failing', code: "log.warn('about to fail');\nthrow new Error('nope');" }));
        const err = await failure(cu, runInput('access'));
        expect(err.message).toMatch(/Error: nope \(line 2/);
        expect(lines).toEqual(['failing warn about to fail']);
      } finally {
        rt.dispose();
      }
    });

    it('keeps working after a runtime error', async () => {
      const cu = load({ code: "if (req.args.fail) throw new RangeError('asked to');\nres.headers['x-ok'] = '1';" });
      const err = await failure(cu, runInput('access', { request: requestView({ query: 'fail=1' }) }));
      expect(err.message).toMatch(/RangeError: asked to/);
      expect((await runCu(cu, runInput('access'))).response?.headers).toEqual({ 'x-ok': '1' });
    });

    it('computes HMAC-SHA256, SHA-256, UUIDs and constant-time comparisons like node:crypto', async () => {
      const code = [
        "res.headers['x-hmac-hex'] = crypto.hmacSha256('secret', 'tweeted a cat', 'hex');",
        "res.headers['x-hmac-b64'] = crypto.hmacSha256('secret', 'tweeted a cat', 'base64');",
        "res.headers['x-hmac-b64url'] = crypto.hmacSha256('secret', 'tweeted a cat', 'base64url');",
        "res.headers['x-sha'] = crypto.sha256('ação');",
        "res.headers['x-uuid'] = crypto.randomUUID();",
        "res.headers['x-eq'] = [crypto.timingSafeEqual('abc', 'abc'), crypto.timingSafeEqual('abc', 'abd'), crypto.timingSafeEqual('abc', 'abcd')].join(',');",
      ].join('\n');
      const out = await runCu(load({ code }), runInput('access'));
      const h = out.response?.headers ?? {};
      const mac = (enc: 'hex' | 'base64' | 'base64url'): string => createHmac('sha256', 'secret').update('tweeted a cat').digest(enc);
      expect(h['x-hmac-hex']).toBe(mac('hex'));
      expect(h['x-hmac-b64']).toBe(mac('base64'));
      expect(h['x-hmac-b64url']).toBe(mac('base64url'));
      expect(h['x-sha']).toBe(createHash('sha256').update('ação').digest('hex'));
      expect(h['x-uuid']).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(h['x-eq']).toBe('true,false,false');
    });

    it('sends Redis commands through the host services', async () => {
      const code = [
        "await redis.set('k', 'v', { ex: 60 });",
        "const n = await redis.incr('count:' + req.ip);",
        "await redis.incrby('count:' + req.ip, 4);",
        "await redis.expire('count:' + req.ip, 30);",
        "await redis.hset('h', 'f', 'x');",
        "await redis.hincrby('h', 'n', 2);",
        "await redis.sadd('s', 'a', 'b');",
        "await redis.srem('s', 'b');",
        'const [v, ttl, h, f, members, isA, exists] = await Promise.all([',
        "  redis.get('k'), redis.ttl('count:' + req.ip), redis.hgetall('h'), redis.hget('h', 'f'), redis.smembers('s'), redis.sismember('s', 'a'), redis.exists('k', 'nope'),",
        ']);',
        "await redis.del('k');",
        "res.headers['x-request-counter'] = String(n);",
        "res.headers['x-redis'] = JSON.stringify({ v, ttl, h, f, members, isA, exists, gone: await redis.get('k'), c: await redis.get('count:' + req.ip) });",
      ].join('\n');
      const cu = load({ code });
      expect(cu.async).toBe(true);
      const out = await runCu(cu, runInput('access'));
      expect(out.response?.headers?.['x-request-counter']).toBe('1');
      expect(JSON.parse(out.response?.headers?.['x-redis'] ?? 'null')).toEqual({
        v: 'v', ttl: 30, h: { f: 'x', n: '2' }, f: 'x', members: ['a'], isA: 1, exists: 1, gone: null, c: '5',
      });
      expect(services.calls.filter((c) => c.service === 'redis').map((c) => c.op)).toEqual([
        'set', 'incr', 'incrby', 'expire', 'hset', 'hincrby', 'sadd', 'srem',
        'get', 'ttl', 'hgetall', 'hget', 'smembers', 'sismember', 'exists', 'del', 'get', 'get',
      ]);
      expect(services.calls[0]).toEqual({ service: 'redis', op: 'set', args: ['k', 'v', 'EX', 60] });
    });

    it('counts requests per client IP in Redis (seed 000)', async () => {
      const cu = load({ code: "const n = await redis.incr('counter:' + req.ip);\nres.headers['X-Request-Counter'] = String(n);" });
      const seen: string[] = [];
      for (const ip of ['198.51.100.1', '198.51.100.1', '198.51.100.2', '198.51.100.1']) {
        const out = await runCu(cu, runInput('access', { request: requestView({ ip }) }));
        seen.push(out.response?.headers?.['x-request-counter'] ?? '');
      }
      expect(seen).toEqual(['1', '2', '1', '3']);
    });

    it('uses the shared dictionary through the host services, with TTLs', async () => {
      const code = [
        "await shared.set('greeting', 'hi', 60000);",
        "const a = await shared.incr('hits');",
        "const b = await shared.incr('hits', 5, 1000);",
        "const g = await shared.get('greeting');",
        "await shared.delete('greeting');",
        "res.headers['x-shared'] = [a, b, g, await shared.get('greeting')].join(',');",
      ].join('\n');
      const out = await runCu(load({ code }), runInput('access'));
      expect(out.response?.headers).toEqual({ 'x-shared': '1,6,hi,' });
      expect(services.calls.slice(0, 3)).toEqual([
        { service: 'shared', op: 'set', args: ['greeting', 'hi', 60000] },
        { service: 'shared', op: 'incr', args: ['hits', 1, undefined] },
        { service: 'shared', op: 'incr', args: ['hits', 5, 1000] },
      ]);
    });

    it('lets a CU catch a failed Redis call, and fails the run when it does not', async () => {
      services.redisDown = 'connect ECONNREFUSED 127.0.0.1:6379';
      const caught = load({ code: "try { await redis.get('k'); } catch (e) { res.headers['x-redis-error'] = e.message; }" });
      expect((await runCu(caught, runInput('access'))).response?.headers).toEqual({ 'x-redis-error': 'redis get: connect ECONNREFUSED 127.0.0.1:6379' });
      const uncaught = await failure(load({ code: "const v = await redis.get('k');" }), runInput('access'));
      expect(uncaught.kind).toBe('runtime');
      expect(uncaught.message).toMatch(/ECONNREFUSED/);
    });

    it('performs the calls a CU does not wait for', async () => {
      const cu = load({ code: "redis.incr('fire-and-forget');\nres.headers['x-done'] = '1';" });
      const out = await runCu(cu, runInput('access'));
      expect(out.response?.headers).toEqual({ 'x-done': '1' });
      await new Promise((r) => setTimeout(r, 5));
      expect(await services.redis('get', ['fire-and-forget'])).toBe('1');
    });

    it('keeps concurrent runs of one async CU apart', async () => {
      services.delayMs = 5;
      const cu = load({ code: "await redis.set('ip:' + req.ip, req.ip);\nvars.mine = await redis.get('ip:' + req.ip);" });
      const ips = ['203.0.113.1', '203.0.113.2', '203.0.113.3', '203.0.113.4'];
      const outs = await Promise.all(ips.map((ip) => runCu(cu, runInput('access', { request: requestView({ ip }) }))));
      expect(outs.map((o) => o.vars?.mine)).toEqual(ips);
    });

    it('refuses Redis commands outside the CU subset', async () => {
      const err = await failure(load({ code: "await redis.flushall();" }), runInput('access'));
      expect(err.message).toMatch(/flushall is not a function/);
    });

    if (caps.limits) {
      it('stops an endless loop at the time limit, and the next run works', async () => {
        const cu = load({ code: "if (req.args.spin) { while (true) {} }\nres.headers['x-ok'] = '1';", timeoutMs: 30 });
        const started = performance.now();
        const err = await failure(cu, runInput('access', { request: requestView({ query: 'spin=1' }) }));
        expect(err.kind).toBe('timeout');
        expect(performance.now() - started).toBeLessThan(1000);
        expect((await runCu(cu, runInput('access'))).response?.headers).toEqual({ 'x-ok': '1' });
      });

      it('stops an endless loop that starts after an await', async () => {
        const cu = load({ code: "await shared.get('x');\nif (req.args.spin) { for (;;) {} }\nres.headers['x-ok'] = '1';", timeoutMs: 30 });
        const err = await failure(cu, runInput('access', { request: requestView({ query: 'spin=1' }) }));
        expect(err.kind).toBe('timeout');
        expect((await runCu(cu, runInput('access'))).response?.headers).toEqual({ 'x-ok': '1' });
      });

      it('stops a memory bomb at the memory limit, and the next run works', async () => {
        const cu = load({ code: "if (req.args.bomb) { const hoard = []; for (;;) hoard.push({ n: Math.random(), s: 'x' + Math.random() }); }\nres.headers['x-ok'] = '1';", timeoutMs: 10_000, memoryMb: 16 });
        const err = await failure(cu, runInput('access', { request: requestView({ query: 'bomb=1' }) }));
        expect(err.kind).toBe('memory');
        expect((await runCu(cu, runInput('access'))).response?.headers).toEqual({ 'x-ok': '1' });
      });
    } else {
      it('declares that it enforces no time or memory limits (nothing to test but the declaration)', () => {
        expect(caps.limits).toBe(false);
      });
    }

    if (caps.isolation) {
      it('reaches nothing of the host', async () => {
        const code = [
          'const probes = {};',
          "const tryIt = (name, f) => { try { const v = f(); probes[name] = v === undefined ? 'undefined' : typeof v; } catch (e) { probes[name] = 'threw'; } };",
          "tryIt('process', () => process);",
          "tryIt('require', () => require);",
          "tryIt('globalThis.process', () => globalThis.process);",
          "tryIt('this', () => this.constructor.constructor('return process')());",
          "tryIt('Function', () => Function('return this')().process);",
          "tryIt('ctor chain', () => req.constructor.constructor('return process')());",
          "tryIt('async ctor', () => (async () => {}).constructor('return process'));",
          "tryIt('Buffer', () => Buffer);",
          "tryIt('setTimeout', () => setTimeout);",
          "tryIt('WebAssembly', () => WebAssembly);",
          "res.headers['x-probes'] = JSON.stringify(probes);",
        ].join('\n');
        const out = await runCu(load({ code }), runInput('access'));
        const probes = JSON.parse(out.response?.headers?.['x-probes'] ?? '{}') as Record<string, string>;
        expect(probes).toMatchObject({
          process: 'threw',
          require: 'threw',
          'globalThis.process': 'undefined',
          this: 'threw',
          Function: 'undefined',
          'ctor chain': 'threw',
          Buffer: 'threw',
          setTimeout: 'threw',
          WebAssembly: 'threw',
        });
        // A function may be built from source, but it runs inside the sandbox too.
        expect(['function', 'threw']).toContain(probes['async ctor']);
      });

      it('has no module loader: import() fails the run and the CU keeps working', async () => {
        const cu = load({ code: "if (req.args.load) await import('node:fs');\nres.headers['x-ok'] = '1';" });
        const err = await failure(cu, runInput('access', { request: requestView({ query: 'load=1' }) }));
        expect(err.kind).toBe('runtime');
        expect((await runCu(cu, runInput('access'))).response?.headers).toEqual({ 'x-ok': '1' });
      });

      it('keeps one CU\'s globals away from another CU', async () => {
        const writer = load({ code: "globalThis.leak = 'from writer';" });
        const reader = load({ code: "res.headers['x-leak'] = typeof globalThis.leak;" });
        await runCu(writer, runInput('access'));
        expect((await runCu(reader, runInput('access'))).response?.headers).toEqual({ 'x-leak': 'undefined' });
      });
    } else {
      it('declares that CU code shares the host process (trusted mode)', async () => {
        expect(caps.isolation).toBe(false);
        const out = await runCu(load({ code: "res.headers['x-process'] = typeof Function('return this')().process;" }), runInput('access'));
        expect(out.response?.headers).toEqual({ 'x-process': 'object' });
      });
    }
  });
}
