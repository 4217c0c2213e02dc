// The cleartext fast lane (src/edge/fast-http1.ts) through a real edge and real sockets: what it
// answers is what node:http answers, and what it does not take reaches node:http intact.
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, sleep, startStack, until, type Stack } from '../helpers.ts';

let fast: Stack;
let plain: Stack;
beforeAll(async () => {
  const limits = { keepAliveTimeout: '400ms' };
  [fast, plain] = await Promise.all([startStack({ limits }), startStack({ limits, edge: { fastHttp1: false } })]);
});
afterAll(async () => {
  await Promise.all([fast?.close(), plain?.close()]);
});

/** One client connection that collects what the server sends. */
class Client {
  readonly sock: Socket;
  #data = Buffer.alloc(0);
  closed = false;

  constructor(port: number) {
    this.sock = connect(port, '127.0.0.1');
    this.sock.setNoDelay(true);
    this.sock.on('data', (c: Buffer) => {
      this.#data = Buffer.concat([this.#data, c]);
    });
    this.sock.on('close', () => {
      this.closed = true;
    });
    this.sock.on('error', () => {});
  }

  send(text: string | Buffer): void {
    this.sock.write(text);
  }

  /** The next whole response (Content-Length or chunked framing), as status, headers, body. */
  async response(opts: { head?: boolean; ms?: number } = {}): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
    let parsed: ReturnType<typeof parseResponse>;
    await until('a whole response', async () => (parsed = parseResponse(this.#data, opts.head ?? false)) !== undefined, opts.ms ?? 3000);
    this.#data = this.#data.subarray(parsed!.length);
    return parsed!.response;
  }
}

function parseResponse(buf: Buffer, head: boolean): { response: { status: number; headers: Record<string, string>; body: Buffer }; length: number } | undefined {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(lines[0]!.split(' ')[1]);
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  let at = end + 4;
  if (head) return { response: { status, headers, body: Buffer.alloc(0) }, length: at };
  if (headers['transfer-encoding'] === 'chunked') {
    const parts: Buffer[] = [];
    for (;;) {
      const eol = buf.indexOf('\r\n', at);
      if (eol < 0) return undefined;
      const size = parseInt(buf.subarray(at, eol).toString('latin1'), 16);
      if (buf.length < eol + 2 + size + 2) return undefined;
      parts.push(buf.subarray(eol + 2, eol + 2 + size));
      at = eol + 2 + size + 2;
      if (size === 0) break;
    }
    return { response: { status, headers, body: Buffer.concat(parts) }, length: at };
  }
  const len = Number(headers['content-length'] ?? 0);
  if (buf.length < at + len) return undefined;
  return { response: { status, headers, body: buf.subarray(at, at + len) }, length: at + len };
}

const request = (path: string, method = 'GET', extra = '') => `${method} ${path} HTTP/1.1\r\nHost: localhost\r\n${extra}\r\n`;
/** Headers that differ between any two responses. */
const VOLATILE = new Set(['date', 'age', 'cache-status', 'keep-alive']);
const stable = (h: Record<string, string>) => Object.fromEntries(Object.entries(h).filter(([k]) => !VOLATILE.has(k)).sort());

describe('the cleartext fast lane', () => {
  it('answers a MISS, a HIT and a HEAD with the status, headers and body node:http gives', async () => {
    // 1 KiB goes out copied with the head into one buffer; 4 KiB text (compressed or not) and 16 KiB written corked.
    for (const path of ['/static/4k.txt?same=1', '/static/1k?same=2', '/static/16k?same=3']) {
      const a = new Client(fast.node.edge.port);
      const b = new Client(plain.node.edge.port);
      for (const method of ['GET', 'GET', 'HEAD']) {
        a.send(request(path, method));
        b.send(request(path, method));
        const head = method === 'HEAD';
        const [x, y] = [await a.response({ head }), await b.response({ head })];
        expect(x.status).toBe(y.status);
        expect(stable(x.headers)).toEqual(stable(y.headers));
        expect(x.body.equals(y.body)).toBe(true);
        expect(x.headers.connection).toBe('keep-alive');
        expect(x.headers['keep-alive']).toBe(y.headers['keep-alive']);
      }
      a.sock.destroy();
      b.sock.destroy();
    }
  });

  it('streams a body of unknown length chunked, whole', async () => {
    const c = new Client(fast.node.edge.port);
    c.send(request('/static/64k?chunked=1&stream=1'));
    const r = await c.response();
    const direct = await get(`${fast.origin.url}/static/64k`);
    expect(r.status).toBe(200);
    expect(r.body.equals(direct.body)).toBe(true);
    c.send(request('/static/64k?chunked=1&stream=1'));
    expect((await c.response()).body.equals(direct.body)).toBe(true);
    c.sock.destroy();
  });

  it('hands node:http what it does not take, and keeps serving the connection: a POST, pipelined requests, a split head', async () => {
    const c = new Client(fast.node.edge.port);
    c.send(request('/static/1k?lane=1'));
    expect((await c.response()).status).toBe(200);
    // The demo origin refuses POST on /static with 405 and Allow: the answer came through.
    c.send('POST /static/1k?lane=2 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\nabc');
    const post = await c.response();
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
    c.send(request('/static/1k?lane=3') + request('/static/2k?lane=4'));
    expect((await c.response()).body.length).toBe(1024);
    expect((await c.response()).body.length).toBe(2048);
    c.sock.destroy();

    const split = new Client(fast.node.edge.port);
    split.send('GET /static/1k?lane=5 HTTP/1.1\r\nHo');
    await sleep(50);
    split.send('st: localhost\r\n\r\n');
    expect((await split.response()).status).toBe(200);
    split.sock.destroy();
  });

  it('answers requests sent ahead while a slow response is in flight, in order', async () => {
    const c = new Client(fast.node.edge.port);
    c.send(request('/static/1k.txt?slow_body=300&ahead=1'));
    await sleep(50);
    c.send(request('/static/2k?ahead=2'));
    const first = await c.response();
    const second = await c.response();
    expect(first.body.length).toBe(1024);
    expect(second.body.length).toBe(2048);
    c.sock.destroy();
  });

  it('leaves malformed requests to node:http, which refuses them as before', async () => {
    for (const port of [fast.node.edge.port, plain.node.edge.port]) {
      const c = new Client(port);
      c.send('GET / HTTP/1.1\r\nHost: localhost\r\nBad Header\r\n\r\n');
      const r = await c.response();
      expect(r.status).toBe(400);
      expect(r.body.toString()).toBe('400 BAD_REQUEST\n');
      c.sock.destroy();
    }
  });

  it('refuses a bad Host through the same driver as node:http', async () => {
    const c = new Client(fast.node.edge.port);
    c.send('GET /x HTTP/1.1\r\nHost: bad_host!\r\n\r\n');
    const r = await c.response();
    expect(r.status).toBe(400);
    expect(r.headers['x-outpost-error']).toBe('BAD_HOST');
    expect(r.headers.connection).toBe('close');
    await until('the connection to close', async () => c.closed);
  });

  it('closes a keep-alive connection idle longer than limits.keepAliveTimeout', async () => {
    const c = new Client(fast.node.edge.port);
    c.send(request('/static/1k?idle=1'));
    expect((await c.response()).status).toBe(200);
    await sleep(150);
    expect(c.closed).toBe(false);
    await until('the idle connection to close', async () => c.closed, 2000);
  });

  it('survives a client that leaves mid-body, and serves the next one', async () => {
    const c = new Client(fast.node.edge.port);
    c.send(request('/static/1k.txt?slow_body=400&leave=1'));
    await sleep(100);
    c.sock.destroy();
    await sleep(50);
    expect((await get(`${fast.base}/static/1k?after=1`)).status).toBe(200);
  });

  it('is off with edge.fastHttp1: false, and the answers are the same', async () => {
    expect((await get(`${plain.base}/static/1k?off=1`)).status).toBe(200);
  });
});

describe('closing an edge with the fast lane', () => {
  it('closes idle fast-lane connections at once instead of waiting for the grace period', async () => {
    const s = await startStack({ edge: { shutdownGrace: '10s' } });
    const c = new Client(s.node.edge.port);
    c.send(request('/static/1k?close=1'));
    expect((await c.response()).status).toBe(200);
    const t0 = performance.now();
    await s.close();
    expect(performance.now() - t0).toBeLessThan(5000);
    await until('the client to see the close', async () => c.closed);
  });
});
