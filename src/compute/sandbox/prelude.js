// The CU runner that lives INSIDE the sandbox (an isolated-vm context, or the host realm in trusted
// mode). It is a function body: `$0` is the host's crypto function (an ivm Reference in an isolate, a
// plain function in trusted mode); it returns the runner's entry points. Plain JavaScript on purpose:
// it is evaluated as source text, never imported by the host.
//
// Protocol (strings in, strings out; see protocol.ts on the host side):
//   check(body, params, isAsync) — refuses code that is not a function body (before it runs).
//   install(fn, uses, isAsync, filename, maxCalls, headersOf) — once per compiled CU; headersOf(runId)
//     is the host's: the request headers of a run whose headers were not sent (see source.ts).
//   start(runId, phase, reqMeta, headersJson, varsJson, timingsJson, responseJson, body)
//     reqMeta: method, uri, path, query, ip, host, scheme, args JSON, cookies JSON, joined by NUL.
//     sync CU (runId 0): returns undefined (nothing to report) or '{"o":{…}}' / '{"e":{…}}'.
//     async CU: returns nothing; the host then calls poll(runId).
//   poll(runId)    → '{"o":…,"c":[…]}' done / '{"e":…}' failed / '{"w":1,"c":[…]}' waiting on calls.
//   resume(runId, resultsJson) — settles the calls the host performed; then the host polls again.
//   drop(runId)    — forgets a run the host gave up on (timeout).
//   logsOf(runId)  — the log lines of a run the host gave up on (0: the last sync run).
// Every entry point runs under the host's time limit, including user getters/toJSON reached here.
'use strict';

const hostCryptoRaw = $0;
// Builtins captured before any CU code runs, so a CU that patches globals cannot bend the runner.
const jsonParse = JSON.parse;
const jsonStringify = JSON.stringify;
const freeze = Object.freeze;
const hasOwn = Object.hasOwn;
const keysOf = Object.keys;
const create = Object.create;
const isInteger = Number.isInteger;
const ProxyCtor = Proxy;
const PromiseCtor = Promise;
const promiseThen = Promise.prototype.then;
const MapCtor = Map;
const StringCtor = String;
const ErrorCtor = Error;
const TypeErrorCtor = TypeError;
const RegExpCtor = RegExp;
const FunctionCtor = Function;
const AsyncFunctionCtor = (async function () {}).constructor;
const decode = decodeURIComponent;
const regExec = RegExp.prototype.exec;
const apply = Reflect.apply;
const strLower = String.prototype.toLowerCase;
const strSlice = String.prototype.slice;
const strSplit = String.prototype.split;
const strIndexOf = String.prototype.indexOf;
const strReplace = String.prototype.replace;
const arrPush = Array.prototype.push;

const hostCrypto =
  typeof hostCryptoRaw === 'function'
    ? hostCryptoRaw
    : (op, a, b, enc) => hostCryptoRaw.applySync(undefined, [op, a, b, enc], { arguments: { copy: true }, result: { copy: true } });

const lower = (s) => apply(strLower, s, []);
const test = (re, s) => apply(regExec, re, [s]) !== null;
const push = (arr, v) => apply(arrPush, arr, [v]);

// Bits of `uses`: which API names the CU's code mentions (decided at compile time on the host).
const U_REQ = 1, U_RES = 2, U_EXIT = 4, U_VARS = 8, U_LOG = 16, U_TIMINGS = 32, U_SHARED = 64, U_REDIS = 128, U_CRYPTO = 256;

const PHASES = ['rewrite', 'access', 'header_filter', 'body_filter', 'log'];
const MAX_LOGS = 100;
const MAX_LOG_CHARS = 4096;
const TOKEN = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;
const BAD_VALUE = /[\r\n\0]/;
const BAD_PATH = /[\s\0]/;

// Thrown by exit(): ends the CU at once, like ngx.exit. A CU that catches it only delays the end.
const EXIT = freeze({ toString: () => 'exit() called' });

let userFn = null;
let uses = 0;
let isAsync = false;
let fileRe = null;
let maxCalls = 100;
let headersOf = null;
const runs = new MapCtor();
// The sync run in progress, so its log lines can be recovered after a timeout.
let current = null;

function headerValue(name, v) {
  if (typeof v === 'number') v = StringCtor(v);
  if (typeof v !== 'string') throw new TypeErrorCtor(`header ${name}: expected a string, got ${v === null ? 'null' : typeof v}`);
  if (test(BAD_VALUE, v)) throw new TypeErrorCtor(`header ${name}: value contains CR, LF or NUL`);
  return v;
}

function headerName(k) {
  const name = lower(StringCtor(k));
  if (!test(TOKEN, name)) throw new TypeErrorCtor(`invalid header name ${jsonStringify(StringCtor(k))}`);
  return name;
}

/**
 * Headers as a CU sees them: lookups are case-insensitive; when writable, sets and deletes are
 * recorded in `changes` (null = removed). `what` names the object in error messages.
 */
function headerBag(target, changes, writable, what, phase) {
  return new ProxyCtor(target, {
    get(t, k) {
      if (typeof k !== 'string' || hasOwn(t, k)) return t[k];
      const l = lower(k);
      return hasOwn(t, l) ? t[l] : t[k];
    },
    has(t, k) {
      return typeof k === 'string' ? hasOwn(t, lower(k)) || k in t : k in t;
    },
    set(t, k, v) {
      if (!writable) throw new TypeErrorCtor(`${what} is read-only in the ${phase} phase`);
      const name = headerName(k);
      if (v === null || v === undefined) {
        delete t[name];
        changes[name] = null;
      } else {
        t[name] = changes[name] = headerValue(name, v);
      }
      return true;
    },
    deleteProperty(t, k) {
      if (!writable) throw new TypeErrorCtor(`${what} is read-only in the ${phase} phase`);
      const name = headerName(k);
      delete t[name];
      changes[name] = null;
      return true;
    },
    defineProperty() {
      throw new TypeErrorCtor(`${what}: assign header values instead`);
    },
  });
}

function parseArgs(query) {
  const out = create(null);
  if (query === '') return freeze(out);
  const parts = apply(strSplit, query, ['&']);
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    if (p === '') continue;
    const eq = apply(strIndexOf, p, ['=']);
    const rawK = eq < 0 ? p : apply(strSlice, p, [0, eq]);
    const rawV = eq < 0 ? '' : apply(strSlice, p, [eq + 1]);
    let k, v;
    try {
      k = decode(apply(strReplace, rawK, [/\+/g, ' ']));
      v = decode(apply(strReplace, rawV, [/\+/g, ' ']));
    } catch {
      k = rawK;
      v = rawV;
    }
    if (!(k in out)) out[k] = v;
  }
  return freeze(out);
}

class Run {
  constructor(id, phase, reqJson, headersJson, varsJson, timingsJson, responseJson, body) {
    this.id = id;
    this.phase = phase;
    // The host leaves out trailing arguments it has nothing for.
    this.reqJson = reqJson ?? '';
    this.headersJson = headersJson ?? '';
    this.varsJson = varsJson ?? '';
    this.timingsJson = timingsJson ?? '';
    this.responseJson = responseJson ?? '';
    this.body = body ?? null;
    this.meta = null;
    this.metaArgs = null;
    this.metaCookies = null;
    this.response = null;
    this.reqHeaders = null;
    this.reqHeaderChanges = null;
    this.resHeaders = null;
    this.resHeaderChanges = null;
    this.path = undefined;
    this.query = undefined;
    this.args = undefined;
    this.status = undefined;
    this.newBody = undefined;
    this.vars = null;
    this.exit = null;
    this.logs = null;
    this.done = false;
    this.error = null;
    this.calls = null;
    this.callCount = 0;
    this.waiters = null;
  }

  writableRequest() {
    return this.phase === 'rewrite' || this.phase === 'access';
  }

  /** [method, uri, path, query, ip, host, scheme, argsJson, cookiesJson], from the host's NUL-joined text. */
  getMeta() {
    return (this.meta ??= apply(strSplit, this.reqJson, ['\0']));
  }

  getArgs() {
    return (this.metaArgs ??= freeze(jsonParse(this.getMeta()[7])));
  }

  getCookies() {
    return (this.metaCookies ??= freeze(jsonParse(this.getMeta()[8])));
  }

  getResponse() {
    return (this.response ??= this.responseJson === '' ? { status: undefined, headers: {} } : jsonParse(this.responseJson));
  }

  log(level, args) {
    const logs = (this.logs ??= []);
    if (logs.length >= MAX_LOGS) return;
    let msg = '';
    for (let i = 0; i < args.length; i++) {
      const a = args[i];
      let s;
      if (typeof a === 'string') s = a;
      else if (a instanceof ErrorCtor) s = `${a.name}: ${a.message}`;
      else {
        try {
          s = jsonStringify(a) ?? StringCtor(a);
        } catch {
          s = StringCtor(a);
        }
      }
      msg = i === 0 ? s : `${msg} ${s}`;
    }
    if (msg.length > MAX_LOG_CHARS) msg = `${apply(strSlice, msg, [0, MAX_LOG_CHARS])}…`;
    push(logs, { level, msg });
    if (logs.length === MAX_LOGS) push(logs, { level: 'warn', msg: `log limit reached: further lines of this run are dropped` });
  }

  call(kind, name, args) {
    if (++this.callCount > maxCalls) return PromiseCtor.reject(new ErrorCtor(`more than ${maxCalls} redis and shared calls in one run`));
    const id = this.callCount;
    const calls = (this.calls ??= []);
    push(calls, { i: id, t: kind, n: name, a: args });
    return new PromiseCtor((resolve, reject) => {
      (this.waiters ??= new MapCtor()).set(id, { resolve, reject });
    });
  }

  takeCalls() {
    const c = this.calls;
    this.calls = null;
    return c;
  }

  /** What the CU asked for, or null when it changed nothing. */
  output() {
    let o = null;
    if (this.exit !== null) (o ??= {}).exit = this.exit;
    if (this.path !== undefined || this.query !== undefined || this.reqHeaderChanges !== null) {
      const r = {};
      if (this.path !== undefined && this.path !== this.getMeta()[2]) r.path = this.path;
      if (this.query !== undefined && this.query !== this.getMeta()[3]) r.query = this.query;
      if (this.reqHeaderChanges !== null && keysOf(this.reqHeaderChanges).length > 0) r.headers = this.reqHeaderChanges;
      if (keysOf(r).length > 0) (o ??= {}).request = r;
    }
    if (this.status !== undefined || this.resHeaderChanges !== null) {
      const r = {};
      if (this.status !== undefined && this.status !== this.getResponse().status) r.status = this.status;
      if (this.resHeaderChanges !== null && keysOf(this.resHeaderChanges).length > 0) r.headers = this.resHeaderChanges;
      if (keysOf(r).length > 0) (o ??= {}).response = r;
    }
    if (this.newBody !== undefined && this.newBody !== this.body) (o ??= {}).body = this.newBody;
    if (this.vars !== null) {
      let s;
      try {
        s = jsonStringify(this.vars);
      } catch (e) {
        throw new TypeErrorCtor(`vars must hold JSON values only (${e instanceof ErrorCtor ? e.message : 'not serialisable'})`);
      }
      if (s !== this.varsJson) (o ??= {}).vars = jsonParse(s);
    }
    if (this.logs !== null) (o ??= {}).logs = this.logs;
    return o;
  }
}

class Req {
  #run;
  constructor(run) {
    this.#run = run;
  }
  get method() {
    return this.#run.getMeta()[0];
  }
  get uri() {
    const run = this.#run;
    if (run.path === undefined && run.query === undefined) return run.getMeta()[1];
    const q = this.query;
    return q === '' ? this.path : `${this.path}?${q}`;
  }
  get path() {
    const run = this.#run;
    return run.path ?? run.getMeta()[2];
  }
  set path(v) {
    const run = this.#run;
    if (!run.writableRequest()) throw new TypeErrorCtor(`req.path is read-only in the ${run.phase} phase`);
    if (typeof v !== 'string' || v[0] !== '/' || test(BAD_PATH, v)) throw new TypeErrorCtor('req.path: expected a string starting with "/" without whitespace');
    run.path = v;
  }
  get query() {
    const run = this.#run;
    return run.query ?? run.getMeta()[3];
  }
  set query(v) {
    const run = this.#run;
    if (!run.writableRequest()) throw new TypeErrorCtor(`req.query is read-only in the ${run.phase} phase`);
    if (typeof v !== 'string' || test(BAD_PATH, v) || apply(strIndexOf, v, ['#']) >= 0) throw new TypeErrorCtor('req.query: expected a string without whitespace or "#"');
    if (v[0] === '?') v = apply(strSlice, v, [1]);
    run.query = v;
    run.args = undefined;
  }
  get args() {
    const run = this.#run;
    if (run.query === undefined) return run.getArgs();
    return (run.args ??= parseArgs(run.query));
  }
  get headers() {
    const run = this.#run;
    if (run.reqHeaders === null) {
      const writable = run.writableRequest();
      if (writable) run.reqHeaderChanges = create(null);
      const json = run.headersJson === '' ? fetchHeaders(run.id) : run.headersJson;
      run.reqHeaders = headerBag(jsonParse(json), run.reqHeaderChanges, writable, 'req.headers', run.phase);
    }
    return run.reqHeaders;
  }
  get cookies() {
    return this.#run.getCookies();
  }
  get ip() {
    return this.#run.getMeta()[4];
  }
  get host() {
    return this.#run.getMeta()[5];
  }
  get scheme() {
    return this.#run.getMeta()[6];
  }
  toJSON() {
    return { method: this.method, uri: this.uri, path: this.path, query: this.query, args: this.args, headers: { ...this.headers }, cookies: this.cookies, ip: this.ip, host: this.host, scheme: this.scheme };
  }
}

class Res {
  #run;
  constructor(run) {
    this.#run = run;
  }
  get status() {
    const run = this.#run;
    return run.status ?? run.getResponse().status;
  }
  set status(v) {
    const run = this.#run;
    if (run.phase !== 'header_filter') throw new TypeErrorCtor(`res.status is writable in header_filter only${run.writableRequest() ? '; use exit(status) to answer now' : ''}`);
    if (!isInteger(v) || v < 100 || v > 599) throw new TypeErrorCtor(`res.status: expected an integer 100–599, got ${jsonStringify(v) ?? typeof v}`);
    run.status = v;
  }
  get headers() {
    const run = this.#run;
    if (run.resHeaders === null) {
      // In rewrite/access the response does not exist yet: headers set here are added to it later.
      const early = run.writableRequest();
      const writable = early || run.phase === 'header_filter';
      if (writable) run.resHeaderChanges = create(null);
      const target = early ? {} : run.getResponse().headers;
      run.resHeaders = headerBag(target, run.resHeaderChanges, writable, 'res.headers', run.phase);
    }
    return run.resHeaders;
  }
  get body() {
    const run = this.#run;
    return run.newBody ?? run.body ?? undefined;
  }
  set body(v) {
    const run = this.#run;
    if (run.phase !== 'body_filter') throw new TypeErrorCtor(`res.body is writable in body_filter only${run.writableRequest() ? '; use exit(status, body) to answer now' : ''}`);
    if (typeof v !== 'string') throw new TypeErrorCtor(`res.body: expected a string, got ${v === null ? 'null' : typeof v}`);
    run.newBody = v;
  }
  toJSON() {
    return { status: this.status, headers: { ...this.headers } };
  }
}

class Log {
  #run;
  constructor(run) {
    this.#run = run;
  }
  debug(...args) {
    this.#run.log('debug', args);
  }
  info(...args) {
    this.#run.log('info', args);
  }
  warn(...args) {
    this.#run.log('warn', args);
  }
  error(...args) {
    this.#run.log('error', args);
  }
}

function key(k) {
  if (typeof k === 'number') return StringCtor(k);
  if (typeof k !== 'string' || k === '') throw new TypeErrorCtor('expected a non-empty string key');
  return k;
}

function scalar(v, what) {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  throw new TypeErrorCtor(`${what}: expected a string or a finite number, got ${v === null ? 'null' : typeof v}`);
}

function int(v, what) {
  if (!isInteger(v)) throw new TypeErrorCtor(`${what}: expected an integer, got ${jsonStringify(v) ?? typeof v}`);
  return v;
}

function ttl(v, what) {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) throw new TypeErrorCtor(`${what}: expected a positive number of milliseconds`);
  return v;
}

class Shared {
  #run;
  constructor(run) {
    this.#run = run;
  }
  get(k) {
    return this.#run.call('s', 'get', [key(k)]);
  }
  set(k, v, ttlMs) {
    return this.#run.call('s', 'set', [key(k), scalar(v, 'shared.set'), ttl(ttlMs, 'shared.set ttlMs')]);
  }
  incr(k, by = 1, ttlMs) {
    return this.#run.call('s', 'incr', [key(k), int(by, 'shared.incr'), ttl(ttlMs, 'shared.incr ttlMs')]);
  }
  delete(k) {
    return this.#run.call('s', 'delete', [key(k)]);
  }
}

function members(list, what) {
  if (list.length === 0) throw new TypeErrorCtor(`${what}: expected at least one value`);
  const out = [];
  for (let i = 0; i < list.length; i++) push(out, scalar(list[i], what));
  return out;
}

class Redis {
  #run;
  constructor(run) {
    this.#run = run;
  }
  #c(name, args) {
    return this.#run.call('r', name, args);
  }
  get(k) {
    return this.#c('get', [key(k)]);
  }
  set(k, v, opts) {
    const args = [key(k), scalar(v, 'redis.set')];
    if (opts !== undefined && opts !== null) {
      if (opts.ex !== undefined) push(args, 'EX'), push(args, int(opts.ex, 'redis.set ex'));
      else if (opts.px !== undefined) push(args, 'PX'), push(args, int(opts.px, 'redis.set px'));
    }
    return this.#c('set', args);
  }
  incr(k) {
    return this.#c('incr', [key(k)]);
  }
  incrby(k, by) {
    return this.#c('incrby', [key(k), int(by, 'redis.incrby')]);
  }
  decr(k) {
    return this.#c('decr', [key(k)]);
  }
  expire(k, seconds) {
    return this.#c('expire', [key(k), int(seconds, 'redis.expire')]);
  }
  pexpire(k, ms) {
    return this.#c('pexpire', [key(k), int(ms, 'redis.pexpire')]);
  }
  ttl(k) {
    return this.#c('ttl', [key(k)]);
  }
  del(...ks) {
    return this.#c('del', members(ks, 'redis.del'));
  }
  exists(...ks) {
    return this.#c('exists', members(ks, 'redis.exists'));
  }
  hget(k, field) {
    return this.#c('hget', [key(k), key(field)]);
  }
  hset(k, field, v) {
    if (typeof field === 'object' && field !== null && v === undefined) {
      const args = [key(k)];
      const names = keysOf(field);
      if (names.length === 0) throw new TypeErrorCtor('redis.hset: expected at least one field');
      for (let i = 0; i < names.length; i++) push(args, names[i]), push(args, scalar(field[names[i]], 'redis.hset'));
      return this.#c('hset', args);
    }
    return this.#c('hset', [key(k), key(field), scalar(v, 'redis.hset')]);
  }
  hincrby(k, field, by) {
    return this.#c('hincrby', [key(k), key(field), int(by, 'redis.hincrby')]);
  }
  hgetall(k) {
    return this.#c('hgetall', [key(k)]);
  }
  sadd(k, ...vs) {
    return this.#c('sadd', [key(k), ...members(vs, 'redis.sadd')]);
  }
  srem(k, ...vs) {
    return this.#c('srem', [key(k), ...members(vs, 'redis.srem')]);
  }
  smembers(k) {
    return this.#c('smembers', [key(k)]);
  }
  sismember(k, v) {
    return this.#c('sismember', [key(k), scalar(v, 'redis.sismember')]);
  }
}

const ENCODINGS = ['hex', 'base64', 'base64url'];
function encoding(enc) {
  if (enc === undefined) return 'hex';
  if (!ENCODINGS.includes(enc)) throw new TypeErrorCtor(`expected encoding hex, base64 or base64url, got ${jsonStringify(enc) ?? typeof enc}`);
  return enc;
}
function text(v, what) {
  if (typeof v !== 'string') throw new TypeErrorCtor(`${what}: expected a string, got ${v === null ? 'null' : typeof v}`);
  return v;
}
const cryptoApi = freeze({
  hmacSha256: (k, data, enc) => hostCrypto('hmac', text(k, 'crypto.hmacSha256 key'), text(data, 'crypto.hmacSha256 data'), encoding(enc)),
  sha256: (data, enc) => hostCrypto('sha256', text(data, 'crypto.sha256 data'), '', encoding(enc)),
  randomUUID: () => hostCrypto('uuid', '', '', ''),
  timingSafeEqual: (a, b) => hostCrypto('eq', text(a, 'crypto.timingSafeEqual'), text(b, 'crypto.timingSafeEqual'), ''),
});

function makeExit(run) {
  return function exit(status, body, headers) {
    if (run.phase === 'body_filter' || run.phase === 'log') throw new TypeErrorCtor(`exit() is available in rewrite, access and header_filter, not in ${run.phase}`);
    if (!isInteger(status) || status < 100 || status > 599) throw new TypeErrorCtor(`exit: expected a status 100–599, got ${jsonStringify(status) ?? typeof status}`);
    const e = { status };
    if (body !== undefined && body !== null) {
      if (typeof body !== 'string') throw new TypeErrorCtor(`exit: body must be a string, got ${typeof body}`);
      e.body = body;
    }
    if (headers !== undefined && headers !== null) {
      if (typeof headers !== 'object') throw new TypeErrorCtor('exit: headers must be an object');
      const h = {};
      const names = keysOf(headers);
      for (let i = 0; i < names.length; i++) {
        const name = headerName(names[i]);
        h[name] = headerValue(name, headers[names[i]]);
      }
      e.headers = h;
    }
    run.exit = e;
    throw EXIT;
  };
}

function describe(err) {
  let m;
  let l;
  let c;
  try {
    if (err instanceof ErrorCtor) {
      m = `${err.name}: ${err.message}`;
      const stack = StringCtor(err.stack);
      const hit = fileRe === null ? null : apply(regExec, fileRe, [stack]);
      if (hit !== null) {
        l = +hit[1];
        c = +hit[2];
      }
    } else {
      m = `uncaught ${typeof err}: ${typeof err === 'object' && err !== null ? jsonStringify(err) : StringCtor(err)}`;
    }
  } catch {
    m = 'uncaught exception';
  }
  if (typeof m !== 'string') m = 'uncaught exception';
  if (m.length > 2000) m = apply(strSlice, m, [0, 2000]);
  return l === undefined ? { m } : { m, l, c };
}

function args(run) {
  return [
    uses & U_REQ ? new Req(run) : undefined,
    uses & U_RES ? new Res(run) : undefined,
    uses & U_EXIT ? makeExit(run) : undefined,
    uses & U_VARS ? (run.vars = run.varsJson === '' ? {} : jsonParse(run.varsJson)) : undefined,
    uses & U_LOG ? new Log(run) : undefined,
    uses & U_TIMINGS ? freeze(run.timingsJson === '' ? {} : jsonParse(run.timingsJson)) : undefined,
    uses & U_SHARED ? new Shared(run) : undefined,
    uses & U_REDIS ? new Redis(run) : undefined,
    uses & U_CRYPTO ? cryptoApi : undefined,
  ];
}

function finish(run) {
  try {
    const o = run.output();
    return o === null ? undefined : o;
  } catch (e) {
    run.error = describe(e);
    return undefined;
  }
}

function check(body, params, asyncFlag) {
  // The host compiles "(function (…) {" + body + "})", which the body itself could close early
  // ("}); …") to run code at load time: the Function constructor parses the body on its own and
  // refuses that. Parsing only; nothing runs.
  try {
    if (asyncFlag) new AsyncFunctionCtor(...params, body);
    else new FunctionCtor(...params, body);
  } catch (e) {
    return `the code must be a function body, not close it early (${e instanceof ErrorCtor ? e.message : 'invalid code'})`;
  }
  return undefined;
}

function fetchHeaders(runId) {
  const json = typeof headersOf === 'function' ? headersOf(runId) : headersOf.applySync(undefined, [runId], { result: { copy: true } });
  return typeof json === 'string' ? json : '{}';
}

function install(fn, usesMask, asyncFlag, filename, maxCallsPerRun, headersOfHost) {
  userFn = fn;
  headersOf = headersOfHost;
  uses = usesMask;
  isAsync = asyncFlag;
  maxCalls = maxCallsPerRun;
  fileRe = new RegExpCtor(`${apply(strReplace, filename, [/[.*+?^${}()|[\]\\/]/g, '\\$&'])}:(\\d+):(\\d+)`);
}

function start(runId, phaseIndex, reqJson, headersJson, varsJson, timingsJson, responseJson, body) {
  const run = new Run(runId, PHASES[phaseIndex], reqJson, headersJson, varsJson, timingsJson, responseJson, body);
  if (!isAsync) {
    current = run;
    try {
      apply(userFn, undefined, args(run));
    } catch (e) {
      if (e !== EXIT) return jsonStringify({ e: describe(e), l: run.logs ?? undefined });
    } finally {
      current = null;
    }
    const o = finish(run);
    if (run.error !== null) return jsonStringify({ e: run.error, l: run.logs ?? undefined });
    return o === undefined ? undefined : jsonStringify({ o });
  }
  runs.set(runId, run);
  let p;
  try {
    p = apply(userFn, undefined, args(run));
  } catch (e) {
    p = PromiseCtor.reject(e);
  }
  apply(promiseThen, p, [
    () => {
      run.done = true;
    },
    (e) => {
      if (e === EXIT) run.done = true;
      else run.error = describe(e);
    },
  ]);
  return undefined;
}

function poll(runId) {
  const run = runs.get(runId);
  if (run === undefined) return jsonStringify({ e: { m: 'run not found' } });
  if (run.error === null && run.done) {
    const o = finish(run);
    if (run.error === null) {
      runs.delete(runId);
      return jsonStringify({ o: o ?? null, c: run.takeCalls() ?? undefined });
    }
  }
  if (run.error !== null) {
    runs.delete(runId);
    return jsonStringify({ e: run.error, l: run.logs ?? undefined, c: run.takeCalls() ?? undefined });
  }
  return jsonStringify({ w: 1, c: run.takeCalls() ?? undefined });
}

function resume(runId, resultsJson) {
  const run = runs.get(runId);
  if (run === undefined || run.waiters === null) return;
  const results = jsonParse(resultsJson);
  for (let i = 0; i < results.length; i++) {
    const r = results[i];
    const w = run.waiters.get(r.i);
    if (w === undefined) continue;
    run.waiters.delete(r.i);
    if (r.x !== undefined) w.reject(new ErrorCtor(r.x));
    else w.resolve(r.v);
  }
}

function drop(runId) {
  runs.delete(runId);
}

function logsOf(runId) {
  const run = runId === 0 ? current : runs.get(runId);
  current = null;
  return run === undefined || run === null || run.logs === null ? undefined : jsonStringify(run.logs);
}

return freeze({ check, install, start, poll, resume, drop, logsOf });
