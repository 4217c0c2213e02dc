// The cleartext HTTP/1.1 fast lane: plain GET and HEAD requests read straight off the socket and
// answered with one write, without node:http's per-request machinery (an IncomingMessage and a
// ServerResponse stream, llhttp callbacks, per-request timers). Measured on this project's VM:
// a node:net server answering 1 KB from memory did ~70–85k req/s where node:http did ~21–32k, and
// node:http was about half of a cache HIT's CPU.
//
// It is an accelerator, never a second parser of record. It answers a request only when it
// recognises every byte of it: the whole head in one read, nothing after it, `GET|HEAD`, an
// origin-form target of visible ASCII, `HTTP/1.1`, header lines of token names and plain values,
// each name once, a Host, and none of the headers that change framing or the connection
// (Content-Length, Transfer-Encoding, Upgrade, Expect, Connection other than keep-alive). Anything
// else — a head split over reads, a body, pipelining, HTTP/1.0, an odd byte — hands the
// connection, with the bytes read so far, to node:http and its strict llhttp parser, which keeps it
// from then on. So every refusal, limit and error answer is node:http's, as before.
//
// Requests it takes go through the same Driver as every other request; only the objects standing
// for node's request and response are lighter (FastRequest, FastResponse).
import { STATUS_CODES, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { Writable } from 'node:stream';
import { HTTP_TOKEN } from './http-token.ts';

/** Called for each request the lane takes: the Driver's handler. */
export type FastHandler = (req: FastRequest, res: FastResponse) => void;

export interface FastLaneOptions {
  /** limits.maxHeaderBytes: larger heads go to node:http, which refuses them with 431. */
  readonly maxHeaderBytes: number;
  /** limits.keepAliveTimeout (ms): idle connections are closed after it, as node:http does. */
  readonly keepAliveTimeout: number;
}

/** What node:http accepts in a header value: HTAB, visible ASCII, space and obs-text. */
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
/** Visible ASCII only: the rest of a target's checks are createContext's, on both lanes. */
const TARGET = /^\/[\x21-\x7e]*$/;
/** Headers whose presence means framing or connection handling only node:http does here. */
const REFUSED = new Set(['content-length', 'transfer-encoding', 'upgrade', 'expect', 'http2-settings', 'te', 'trailer', 'keep-alive', 'proxy-connection']);
const MAX_HEADERS = 100;
const CRLFCRLF = 0x0d0a0d0a;

/** The parts of node's IncomingMessage that the Driver reads, for a body-less request. */
export class FastRequest {
  readonly httpVersion = '1.1';
  readonly httpVersionMajor = 1;
  readonly httpVersionMinor = 1;
  readonly complete = true;
  readonly readableEnded = true;
  socket!: Socket;
  readonly method: 'GET' | 'HEAD';
  readonly url: string;
  /** Lower-case names, one value each (repeated names are not taken by the lane). */
  readonly headers: Record<string, string>;
  readonly rawHeaders: string[];

  constructor(method: 'GET' | 'HEAD', url: string, headers: Record<string, string>, rawHeaders: string[]) {
    this.method = method;
    this.url = url;
    this.headers = headers;
    this.rawHeaders = rawHeaders;
  }

  /** A body-less request has nothing to drain. */
  resume(): this {
    return this;
  }
}

/**
 * Parses a request head the lane can take: the whole chunk is the head, ending in CRLF CRLF.
 * Undefined for anything else, which then goes to node:http as it came.
 */
export function parseHead(chunk: Buffer, maxHeaderBytes: number): FastRequest | undefined {
  const n = chunk.length;
  if (n < 18 || n > maxHeaderBytes || chunk.readUInt32BE(n - 4) !== CRLFCRLF) return undefined;
  const s = chunk.toString('latin1', 0, n - 2);
  const eol = s.indexOf('\r\n');
  const method = s.startsWith('GET ') ? 'GET' : s.startsWith('HEAD ') ? 'HEAD' : undefined;
  if (method === undefined || eol < method.length + 10 || !s.startsWith(' HTTP/1.1', eol - 9)) return undefined;
  const url = s.slice(method.length + 1, eol - 9);
  if (!TARGET.test(url)) return undefined;
  // A plain object: a header named __proto__ or constructor meets the prototype's member below and
  // the request goes to node:http.
  const headers: Record<string, string> = {};
  const raw: string[] = [];
  let host = false;
  for (let pos = eol + 2; pos < s.length; ) {
    const end = s.indexOf('\r\n', pos);
    const colon = s.indexOf(':', pos);
    if (colon <= pos || colon > end || raw.length >= MAX_HEADERS * 2) return undefined;
    const rawName = s.slice(pos, colon);
    if (!HTTP_TOKEN.test(rawName)) return undefined;
    let vs = colon + 1;
    let ve = end;
    while (vs < ve && (s.charCodeAt(vs) === 32 || s.charCodeAt(vs) === 9)) vs++;
    while (ve > vs && (s.charCodeAt(ve - 1) === 32 || s.charCodeAt(ve - 1) === 9)) ve--;
    const value = s.slice(vs, ve);
    if (BAD_VALUE.test(value)) return undefined;
    const name = rawName.toLowerCase();
    if (headers[name] !== undefined || REFUSED.has(name)) return undefined;
    if (name === 'connection' && value.toLowerCase() !== 'keep-alive') return undefined;
    if (name === 'host') host = true;
    headers[name] = value;
    raw.push(rawName, value);
    pos = end + 2;
  }
  return host ? new FastRequest(method, url, headers, raw) : undefined;
}

type HeaderValue = string | number | readonly string[] | undefined;

let dateSecond = -1;
let dateValue = '';
/** The Date header node:http adds, rendered once a second as node does. */
function utcDate(): string {
  const now = Date.now();
  const sec = Math.floor(now / 1000);
  if (sec !== dateSecond) {
    dateSecond = sec;
    dateValue = new Date(now).toUTCString();
  }
  return dateValue;
}

/**
 * The parts of node's ServerResponse that the Driver uses: writeHead, then end(body?) for a whole
 * body (one socket write), or sink() for a streamed one (Content-Length framing when known,
 * chunked otherwise). Headers are written as node writes them, with node's Date, Connection and
 * Keep-Alive added.
 */
/**
 * Up to this many bytes, head and body are copied into one buffer and written at once; above it,
 * written corked (one writev) from the stored body itself. The copy comes from node's buffer pool,
 * whose refills are external memory to V8: copying 16 KiB bodies at 25k req/s made V8 start a major
 * GC for external memory pressure several times a second (a fifth of the CPU). Measured here with
 * a bare socket server: the copy is as fast as the writev at 1–4 KiB, and a third slower at 16 KiB.
 */
const COPY_AT_MOST = 4096;

export class FastResponse {
  headersSent = false;
  destroyed = false;
  /** Present, as on node's response, so the Driver knows it can ask for Connection: close. */
  readonly shouldKeepAlive = true;
  statusCode = 200;
  #headers: Record<string, HeaderValue> = {};
  #close = false;
  #chunked = false;
  #sink: Writable | undefined;
  readonly #conn: FastConnection;
  readonly #hasBody: boolean;

  constructor(conn: FastConnection, method: string) {
    this.#conn = conn;
    this.#hasBody = method !== 'HEAD';
  }

  writeHead(status: number, headers?: Readonly<Record<string, HeaderValue>>): this {
    if (this.headersSent) throw new Error('headers already sent');
    this.statusCode = status;
    if (headers) this.#headers = headers as Record<string, HeaderValue>;
    return this;
  }

  /** Ends the response: the head and the whole body in one write. */
  end(body?: Buffer): this {
    if (this.destroyed || this.headersSent) return this;
    const hasBody = this.#bodyAllowed();
    const bytes = hasBody && body !== undefined ? body : undefined;
    const head = this.#renderHead(hasBody ? (bytes?.length ?? 0) : undefined);
    const conn = this.#conn;
    const headLength = head.length; // latin1: one byte a character
    if (bytes === undefined || bytes.length === 0) conn.socket.write(head, 'latin1');
    else if (headLength + bytes.length <= COPY_AT_MOST) {
      const out = Buffer.allocUnsafe(headLength + bytes.length);
      const at = out.write(head, 0, 'latin1');
      bytes.copy(out, at);
      conn.socket.write(out);
    } else {
      conn.socket.cork();
      conn.socket.write(head, 'latin1');
      conn.socket.write(bytes);
      conn.socket.uncork();
    }
    conn.done(this, this.#close);
    return this;
  }

  /** A stream to pipe a body into; framed by its Content-Length when given, chunked otherwise. */
  sink(): Writable {
    if (this.#sink) return this.#sink;
    const conn = this.#conn;
    const sink = new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        if (!this.headersSent) this.#startStream();
        if (!this.#bodyAllowed() || chunk.length === 0) return cb();
        if (this.#chunked) {
          conn.socket.cork();
          conn.socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
          conn.socket.write(chunk);
          conn.socket.write('\r\n', 'latin1', cb);
          conn.socket.uncork();
        } else conn.socket.write(chunk, cb);
      },
      final: (cb) => {
        if (!this.headersSent) this.#startStream();
        if (this.#chunked) conn.socket.write('0\r\n\r\n', 'latin1');
        conn.done(this, this.#close);
        cb();
      },
      destroy: (err, cb) => {
        // A body that broke off cannot be finished: the connection goes, as with node:http.
        if (err && !conn.isDone(this)) this.destroy();
        cb(err);
      },
    });
    this.#sink = sink;
    return sink;
  }

  /** The client left before the response was done. */
  abort(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.#sink?.destroy(new Error('the client closed the connection'));
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.#sink?.destroy();
    this.#conn.socket.destroy();
  }

  #bodyAllowed(): boolean {
    const s = this.statusCode;
    return this.#hasBody && s !== 204 && s !== 304 && s >= 200;
  }

  #startStream(): void {
    const cl = this.#headers['content-length'];
    const framed = cl !== undefined || !this.#bodyAllowed();
    this.#chunked = !framed;
    this.#conn.socket.write(this.#renderHead(undefined), 'latin1');
  }

  /** The head as node:http writes it; `contentLength` is added when the response has none. */
  #renderHead(contentLength: number | undefined): string {
    const status = this.statusCode;
    let out = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'unknown'}\r\n`;
    const h = this.#headers;
    let date = false;
    let length = false;
    for (const name in h) {
      const v = h[name];
      if (v === undefined) continue;
      if (!HTTP_TOKEN.test(name)) throw new TypeError(`invalid response header name ${JSON.stringify(name)}`);
      // Only the names node:http looks at are compared (date, connection, content-length).
      const lower = name.length === 4 || name.length === 10 || name.length === 14 ? name.toLowerCase() : '';
      if (lower === 'date') date = true;
      else if (lower === 'content-length') length = true;
      else if (lower === 'connection') {
        if (String(v).toLowerCase() === 'close') this.#close = true;
      }
      if (typeof v === 'object') {
        for (const one of v) out += headerLine(name, one);
      } else out += headerLine(name, typeof v === 'number' ? String(v) : v);
    }
    if (!date) out += `Date: ${utcDate()}\r\n`;
    if (contentLength !== undefined && !length) out += `Content-Length: ${contentLength}\r\n`;
    else if (contentLength === undefined && !length && this.#chunked) out += 'Transfer-Encoding: chunked\r\n';
    if (!this.#close) out += this.#conn.keepAliveLines;
    // Only now: a header node:http would refuse throws before anything is sent, so the driver can
    // still answer with an error response.
    this.headersSent = true;
    return `${out}\r\n`;
  }
}

function headerLine(name: string, value: string): string {
  if (BAD_VALUE.test(value)) throw new TypeError(`invalid value for response header ${name}`);
  return `${name}: ${value}\r\n`;
}

/** One connection on the lane, until it is handed to node:http or closed. */
class FastConnection {
  readonly socket: Socket;
  readonly keepAliveLines: string;
  readonly #lane: FastLane;
  #current: FastResponse | undefined;
  /** Bytes that arrived while a response was in flight (a pipelining client). */
  #pending: Buffer | undefined;
  idleSince = Date.now();
  #gone = false;

  constructor(lane: FastLane, socket: Socket) {
    this.#lane = lane;
    this.socket = socket;
    this.keepAliveLines = lane.keepAliveLines;
    socket.on('data', this.#onData);
    socket.on('error', this.#onError);
    socket.once('close', this.#onClose);
  }

  readonly #onData = (chunk: Buffer): void => {
    if (this.#current !== undefined) {
      this.#pending = this.#pending ? Buffer.concat([this.#pending, chunk]) : chunk;
      // Whatever a client sends ahead is node:http's to read once this response is done.
      if (this.#pending.length > this.#lane.maxHeaderBytes) this.socket.pause();
      return;
    }
    this.#take(chunk);
  };

  #take(chunk: Buffer): void {
    const req = parseHead(chunk, this.#lane.maxHeaderBytes);
    if (req === undefined) {
      this.#handOff(chunk);
      return;
    }
    req.socket = this.socket;
    const res = new FastResponse(this, req.method);
    this.#current = res;
    this.#lane.handler(req, res);
  }

  isDone(res: FastResponse): boolean {
    return this.#current !== res;
  }

  /** The response is written: close if asked, else take what came meanwhile. */
  done(res: FastResponse, close: boolean): void {
    if (this.#current !== res) return;
    this.#current = undefined;
    this.idleSince = Date.now();
    if (close) {
      this.socket.end();
      return;
    }
    const pending = this.#pending;
    if (pending !== undefined) {
      this.#pending = undefined;
      this.socket.resume();
      this.#take(pending);
    }
  }

  #handOff(chunk: Buffer): void {
    this.#detach();
    this.#lane.handOff(this.socket, chunk);
  }

  #detach(): void {
    this.#gone = true;
    this.socket.off('data', this.#onData);
    this.socket.off('error', this.#onError);
    this.socket.off('close', this.#onClose);
    this.#lane.forget(this);
  }

  readonly #onError = (): void => {
    this.socket.destroy();
  };

  readonly #onClose = (): void => {
    if (this.#gone) return;
    this.#detach();
    const res = this.#current;
    this.#current = undefined;
    // The client left mid-response: a body still streaming stops with an error, as on node:http.
    res?.abort();
  };

  closeIfIdle(now: number, maxIdleMs: number): void {
    if (this.#current === undefined && now - this.idleSince >= maxIdleMs) this.socket.destroy();
  }
}

const lanes = new WeakMap<Server, FastLane>();

/** The lane in front of a server, if it has one. */
export function fastLaneOf(server: object): FastLane | undefined {
  return lanes.get(server as Server);
}

/**
 * Puts the lane in front of a node:http server: the server keeps listening, closing and counting
 * connections; the lane takes each new connection first and hands to node:http those it does not
 * take, with what it read.
 */
export class FastLane {
  readonly maxHeaderBytes: number;
  readonly keepAliveLines: string;
  readonly handler: FastHandler;
  readonly #server: Server;
  readonly #nodeConnection: (socket: Socket) => void;
  readonly #conns = new Set<FastConnection>();
  readonly #keepAliveMs: number;
  readonly #sweeper: NodeJS.Timeout;

  constructor(server: Server, handler: FastHandler, o: FastLaneOptions) {
    this.#server = server;
    this.handler = handler;
    this.maxHeaderBytes = o.maxHeaderBytes;
    this.#keepAliveMs = o.keepAliveTimeout;
    this.keepAliveLines = o.keepAliveTimeout > 0 ? `Connection: keep-alive\r\nKeep-Alive: timeout=${Math.floor(o.keepAliveTimeout / 1000)}\r\n` : 'Connection: keep-alive\r\n';
    const listeners = server.listeners('connection') as Array<(socket: Socket) => void>;
    if (listeners.length !== 1) throw new Error('the fast lane expects node:http to be the only connection listener');
    this.#nodeConnection = listeners[0]!;
    server.removeAllListeners('connection');
    server.on('connection', (socket: Socket) => {
      this.#conns.add(new FastConnection(this, socket));
    });
    // One sweep a second closes idle keep-alive connections; no timer per request.
    this.#sweeper = setInterval(() => this.closeIdle(this.#keepAliveMs), Math.min(1000, Math.max(50, this.#keepAliveMs / 4)));
    this.#sweeper.unref();
    server.once('close', () => clearInterval(this.#sweeper));
    lanes.set(server, this);
  }

  /** @internal */
  handOff(socket: Socket, chunk: Buffer): void {
    socket.unshift(chunk);
    this.#nodeConnection.call(this.#server, socket);
  }

  /** @internal */
  forget(conn: FastConnection): void {
    this.#conns.delete(conn);
  }

  /** Closes the lane's connections that have been idle for maxIdleMs (0: every idle one). */
  closeIdle(maxIdleMs = 0): void {
    const now = Date.now();
    for (const c of this.#conns) c.closeIfIdle(now, maxIdleMs);
  }

  closeAll(): void {
    for (const c of this.#conns) c.socket.destroy();
  }
}
