// The admin API: metrics, status, purge and prefetch. Bound to 127.0.0.1 by default; when it
// listens elsewhere the configuration requires an API key, sent as `Authorization: Bearer KEY`.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { PurgeSpec } from '../cache/storage/tier.ts';
import { OutpostError, toOutpostError } from '../errors.ts';
import type { PrefetchResult } from './prefetch.ts';
import { PurgeBody, purgeSpecs, type KeyOf } from './purge-request.ts';

export interface AdminDeps {
  readonly log: Logger;
  readonly apiKey?: string | undefined;
  readonly keyOf: KeyOf;
  metrics(): Promise<{ contentType: string; body: string }>;
  status(): Promise<Record<string, unknown>>;
  purge(spec: PurgeSpec, soft: boolean): Promise<number>;
  prefetch(urls: readonly string[]): Promise<PrefetchResult[]>;
  /** Routes under /cus (edge computing); absent when compute is off. */
  readonly compute?: (req: IncomingMessage, res: ServerResponse, path: string) => Promise<boolean>;
  /** More route sets (IP lists, rules, nodes): each answers and resolves true, or resolves false to pass. */
  readonly routes?: ReadonlyArray<(req: IncomingMessage, res: ServerResponse, path: string) => Promise<boolean>>;
}

const PrefetchBody = z.object({ urls: z.array(z.string()).min(1).max(10_000) }).strict();
const MAX_BODY = 16 * 1024 * 1024;

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > MAX_BODY) throw new OutpostError('BODY_TOO_LARGE', `admin request body exceeds ${MAX_BODY} bytes`);
    chunks.push(c);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text) return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new OutpostError('BAD_REQUEST', 'request body is not valid JSON');
  }
}

export function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const first = r.error.issues[0]!;
  throw new OutpostError('BAD_REQUEST', `${first.path.join('.') || 'body'}: ${first.message}`);
}

export function send(res: ServerResponse, status: number, body: unknown, contentType = 'application/json'): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

export function createAdminServer(deps: AdminDeps): Server {
  const keyDigest = deps.apiKey ? digest(deps.apiKey) : undefined;
  const authorized = (req: IncomingMessage): boolean => {
    if (!keyDigest) return true;
    const h = req.headers.authorization;
    const given = typeof h === 'string' && h.startsWith('Bearer ') ? h.slice(7) : req.headers['x-api-key'];
    return typeof given === 'string' && timingSafeEqual(digest(given), keyDigest);
  };

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/health') return send(res, 200, 'ok\n', 'text/plain');
    if (!authorized(req)) throw new OutpostError('UNAUTHORIZED');
    const route = `${req.method} ${path}`;
    if (path !== undefined && (path === '/cus' || path.startsWith('/cus/')) && deps.compute && (await deps.compute(req, res, path))) return;
    for (const r of deps.routes ?? []) if (path !== undefined && (await r(req, res, path))) return;
    switch (route) {
      case 'GET /metrics': {
        const m = await deps.metrics();
        return send(res, 200, m.body, m.contentType);
      }
      case 'GET /status':
        return send(res, 200, await deps.status());
      case 'POST /purge': {
        const body = parse(PurgeBody, await readJson(req));
        const specs = purgeSpecs(body, deps.keyOf);
        const t0 = performance.now();
        let purged = 0;
        for (const spec of specs) purged += await deps.purge(spec, body.soft);
        const took = Math.round(performance.now() - t0);
        deps.log.info({ purged, soft: body.soft, specs: specs.length, took_ms: took }, 'purge');
        return send(res, 200, { purged, soft: body.soft, took_ms: took });
      }
      case 'POST /prefetch': {
        const body = parse(PrefetchBody, await readJson(req));
        const results = await deps.prefetch(body.urls);
        const failed = results.filter((r) => r.error || r.status >= 400).length;
        deps.log.info({ urls: results.length, failed }, 'prefetch');
        return send(res, 200, { results, failed });
      }
      default:
        throw new OutpostError('NOT_FOUND', `no admin route ${route}`);
    }
  };

  return createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      const e = toOutpostError(err);
      if (e.source !== 'client') deps.log.error({ err: e.message, code: e.code }, 'admin request failed');
      else deps.log.info({ code: e.code, msg0: e.message, url: req.url }, 'admin request refused');
      const where = err as { line?: number; column?: number };
      if (!res.headersSent) send(res, e.status, { ...e.toJSON(), ...(where.line !== undefined ? { line: where.line, column: where.column } : {}) });
      else res.destroy();
    });
  });
}
