// The WAF reading request bodies at a real edge: the driver shows it the first body.maxBytes and
// hands the origin the whole body, byte for byte; a refused body never reaches the origin and the
// connection stays usable.
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { Agent, createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { startInProcessNode, type InProcessNode } from '../../src/node/in-process.ts';
import { freePort } from '../cluster/node-process.ts';
import { get, tempDir, testConfig } from '../helpers.ts';
import { captureLines } from '../support/captured-log.ts';

interface Seen {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly bytes: number;
  readonly sha256: string;
}

interface BodyStack {
  readonly base: string;
  readonly admin: string;
  readonly tlsPort: number;
  /** What the origin received, one entry per request. */
  readonly seen: Seen[];
  /** The node's log lines at warn and above. */
  readonly lines: Array<Record<string, unknown>>;
  close(): Promise<void>;
}

/** An origin that answers every request with the size and SHA-256 of the body it received. */
async function hashingOrigin(seen: Seen[]): Promise<Server> {
  const server = createServer((req, res) => {
    const h = createHash('sha256');
    let bytes = 0;
    req.on('data', (c: Buffer) => {
      h.update(c);
      bytes += c.length;
    });
    req.on('end', () => {
      const s: Seen = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, bytes, sha256: h.digest('hex') };
      seen.push(s);
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify({ bytes: s.bytes, sha256: s.sha256 }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

let stack: BodyStack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

async function start(waf: Record<string, unknown>, opts: { tls?: boolean } = {}): Promise<BodyStack> {
  const seen: Seen[] = [];
  const origin = await hashingOrigin(seen);
  const { sink, lines } = captureLines();
  const dir = tempDir();
  const tlsPort = opts.tls ? await freePort() : 0;
  const config = testConfig(`http://127.0.0.1:${(origin.address() as AddressInfo).port}`, { edge: { tlsPort }, security: { waf } }, dir);
  const node: InProcessNode = await startInProcessNode(config, { log: pino({ level: 'warn' }, sink) });
  return {
    base: `http://127.0.0.1:${node.edge.port}`,
    admin: `http://127.0.0.1:${node.adminPort}`,
    tlsPort,
    seen,
    lines,
    async close() {
      await node.close();
      await new Promise<void>((r) => origin.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface Sent {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
  /** Whether the request went over a connection an earlier request used. */
  readonly reused: boolean;
}

/** POSTs with node:http: with Content-Length, or chunked in 7000-byte writes. */
function post(base: string, body: Buffer, opts: { type?: string; chunked?: boolean; agent?: Agent; path?: string } = {}): Promise<Sent> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { 'content-type': opts.type ?? 'application/json' };
    if (!opts.chunked) headers['content-length'] = body.length;
    const req = request({ host: hostname, port, path: opts.path ?? '/api/orders', method: 'POST', headers, agent: opts.agent ?? false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text, reused: req.reusedSocket }));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
    if (opts.chunked) {
      for (let i = 0; i < body.length; i += 7000) req.write(body.subarray(i, i + 7000));
      req.end();
    } else req.end(body);
  });
}

const SQLI_FORM = Buffer.from("user=admin'+or+'1'%3D'1&password=x");

/** About 600 KB of ordinary JSON, far beyond body.maxBytes. */
function bigJson(): Buffer {
  return Buffer.from(JSON.stringify({ items: Array.from({ length: 12_000 }, (_, i) => ({ id: i, name: `item ${i}`, note: "it's fine; or isn't it? union station, select seats" })) }));
}

describe('WAF request-body inspection', () => {
  it('refuses a form body carrying SQL injection with 403 and the rule id in the log; the origin never sees it', async () => {
    stack = await start({ mode: 'block', body: { enabled: true, maxBytes: 4096 } });
    const res = await post(stack.base, SQLI_FORM, { type: 'application/x-www-form-urlencoded' });
    expect(res.status).toBe(403);
    expect(res.headers['x-outpost-waf']).toBe('sqli-tautology');
    expect(res.text).toContain('rule sqli-tautology');
    expect(stack.seen).toEqual([]);
    const line = stack.lines.find((l) => l.msg === 'waf blocked request');
    expect(line).toMatchObject({ level: 40, gate: 'waf', rule: 'sqli-tautology', where: 'body', blocked: true, method: 'POST', path: '/api/orders' });
    expect(String(line?.sample)).toContain("admin' or '1'='1");
    // Counted like any gate refusal.
    const metrics = await get(`${stack.admin}/metrics`);
    expect(metrics.text).toMatch(/outpost_security_refusals_total\{gate="waf",status="403"\} 1/);
  });

  it('passes a benign JSON body larger than body.maxBytes to the origin byte for byte, with Content-Length and chunked', async () => {
    stack = await start({ mode: 'block', body: { enabled: true, maxBytes: 1024 } });
    const body = bigJson();
    expect(body.length).toBeGreaterThan(500_000);
    for (const chunked of [false, true]) {
      const res = await post(stack.base, body, { chunked });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.text)).toEqual({ bytes: body.length, sha256: sha(body) });
    }
    expect(stack.seen).toHaveLength(2);
    expect(stack.seen[0]!.headers['content-length']).toBe(String(body.length));
    expect(stack.seen[1]!.headers['transfer-encoding']).toBe('chunked');
    // Bodies shorter than maxBytes (read to their end before inspection) arrive whole too.
    const small = Buffer.from('{"q":"union station"}');
    for (const chunked of [false, true]) expect(JSON.parse((await post(stack.base, small, { chunked })).text)).toEqual({ bytes: small.length, sha256: sha(small) });
    // Only the first maxBytes are inspected: an attack after them is not seen (documented limit).
    const late = Buffer.concat([Buffer.from(`{"pad":"${'x'.repeat(2000)}","q":"`), Buffer.from(`<script>alert(1)</script>"}`)]);
    expect((await post(stack.base, late)).status).toBe(200);
    expect(stack.lines.filter((l) => l.gate === 'waf')).toEqual([]);
  });

  it('keeps a keep-alive connection usable after refusing a large body', async () => {
    stack = await start({ mode: 'block', body: { enabled: true, maxBytes: 1024 } });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const attack = Buffer.concat([SQLI_FORM, Buffer.from('&pad='), Buffer.alloc(300_000, 'a')]);
      expect((await post(stack.base, Buffer.from('{"a":1}'), { agent })).status).toBe(200);
      for (const chunked of [false, true]) {
        const refused = await post(stack.base, attack, { type: 'application/x-www-form-urlencoded', chunked, agent });
        expect(refused.status).toBe(403);
        expect(refused.reused).toBe(true);
        const next = await post(stack.base, Buffer.from('{"b":2}'), { agent });
        expect(next.status).toBe(200);
        expect(next.reused).toBe(true);
      }
      expect(stack.seen.map((s) => s.bytes)).toEqual([7, 7, 7]);
    } finally {
      agent.destroy();
    }
  });

  it('ends the request when the client goes away while the edge waits for the body', async () => {
    stack = await start({ mode: 'block', body: { enabled: true, maxBytes: 4096 } });
    const { hostname, port } = new URL(stack.base);
    await new Promise<void>((resolve) => {
      const req = request({ host: hostname, port, path: '/api/slow', method: 'POST', headers: { 'content-type': 'text/plain', 'content-length': 10_000 }, agent: false });
      req.on('error', () => resolve());
      req.write('x'.repeat(500), () => setTimeout(() => req.destroy(), 100));
    });
    // The request was answered (to nobody) and counted, instead of waiting for a body that never comes.
    const ENDED = /outpost_requests_total\{status="400",cache="[A-Z]+"\} 1/;
    const t0 = performance.now();
    let text = '';
    while (performance.now() - t0 < 3000) {
      text = (await get(`${stack.admin}/metrics`)).text;
      if (ENDED.test(text)) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(text).toMatch(ENDED);
    expect(stack.seen).toEqual([]);
  });

  it('inspects bodies sent over HTTP/2 and streams the accepted ones whole', async () => {
    stack = await start({ mode: 'block', body: { enabled: true, maxBytes: 1024 } }, { tls: true });
    const session = connect(`https://localhost:${stack.tlsPort}`, { rejectUnauthorized: false });
    const h2post = (body: Buffer, type: string) =>
      new Promise<{ status: number; waf: unknown; text: string }>((resolve, reject) => {
        const req = session.request({ ':method': 'POST', ':path': '/api/h2', 'content-type': type });
        let status = 0;
        let waf: unknown;
        let text = '';
        req.on('response', (h) => {
          status = Number(h[':status']);
          waf = h['x-outpost-waf'];
        });
        req.setEncoding('utf8');
        req.on('data', (c: string) => (text += c));
        req.on('end', () => resolve({ status, waf, text }));
        req.on('error', reject);
        req.end(body);
      });
    try {
      const refused = await h2post(Buffer.concat([SQLI_FORM, Buffer.from('&pad='), Buffer.alloc(100_000, 'a')]), 'application/x-www-form-urlencoded');
      expect(refused).toMatchObject({ status: 403, waf: 'sqli-tautology' });
      const body = bigJson();
      const ok = await h2post(body, 'application/json');
      expect(ok.status).toBe(200);
      expect(JSON.parse(ok.text)).toEqual({ bytes: body.length, sha256: sha(body) });
      expect(stack.seen).toHaveLength(1);
    } finally {
      session.close();
    }
  });

  it('in detect mode lets the body through and logs the match', async () => {
    stack = await start({ mode: 'detect', body: { enabled: true, maxBytes: '4k' } });
    const res = await post(stack.base, SQLI_FORM, { type: 'application/x-www-form-urlencoded' });
    expect(res.status).toBe(200);
    expect(res.headers['x-outpost-waf']).toBeUndefined();
    expect(JSON.parse(res.text)).toEqual({ bytes: SQLI_FORM.length, sha256: sha(SQLI_FORM) });
    expect(stack.lines.find((l) => l.rule === 'sqli-tautology')).toMatchObject({ msg: 'waf match (detect mode)', where: 'body', blocked: false, mode: 'detect' });
  });

  it('reads no body when body inspection is off, or when the type is not textual', async () => {
    stack = await start({ mode: 'block' });
    expect((await post(stack.base, SQLI_FORM, { type: 'application/x-www-form-urlencoded' })).status).toBe(200);
    await stack.close();
    stack = await start({ mode: 'block', body: { enabled: true, maxBytes: 1024 } });
    expect((await post(stack.base, SQLI_FORM, { type: 'image/png' })).status).toBe(200);
    expect(stack.seen).toHaveLength(1);
    expect(stack.lines.filter((l) => l.gate === 'waf')).toEqual([]);
  });
});
