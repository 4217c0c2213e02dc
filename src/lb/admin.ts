// The load balancer's admin API, on its own port (lb.admin, 127.0.0.1:8001 by default) so that no
// path of the sites behind it is taken: member state, members added and removed at run time,
// metrics. With lb.admin.apiKey set, every route but /health wants `Authorization: Bearer KEY`.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { Balancer } from '../balance/balancer.ts';
import { parse, readJson, send } from '../control/admin.ts';
import { OutpostError, toOutpostError } from '../errors.ts';
import type { LbMetrics } from './metrics.ts';

export interface LbAdminDeps {
  readonly balancer: Balancer<unknown>;
  readonly metrics: LbMetrics;
  readonly log: Logger;
  readonly apiKey: string | undefined;
}

const MemberBody = z.object({ name: z.string(), url: z.string(), weight: z.number().optional() }).strict();

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export function createLbAdmin(deps: LbAdminDeps): Server {
  const { balancer } = deps;
  const keyDigest = deps.apiKey ? digest(deps.apiKey) : undefined;
  const authorized = (req: IncomingMessage): boolean => {
    if (!keyDigest) return true;
    const h = req.headers.authorization;
    const given = typeof h === 'string' && h.startsWith('Bearer ') ? h.slice(7) : undefined;
    return given !== undefined && timingSafeEqual(digest(given), keyDigest);
  };
  const members = () => ({ policy: balancer.policyName, up: balancer.availableCount, members: balancer.members.snapshot() });

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (path === '/health') return send(res, 200, 'ok\n', 'text/plain');
    if (!authorized(req)) throw new OutpostError('UNAUTHORIZED');
    if (req.method === 'GET' && path === '/metrics') return send(res, 200, await deps.metrics.registry.metrics(), deps.metrics.registry.contentType);
    if (req.method === 'GET' && path === '/members') return send(res, 200, members());
    if (req.method === 'POST' && path === '/members') {
      const body = parse(MemberBody, await readJson(req));
      const m = balancer.members.add({ name: body.name, url: body.url, ...(body.weight !== undefined ? { weight: body.weight } : {}) });
      deps.log.info({ member: m.name, url: m.url.origin, weight: m.weight }, 'member added through the admin API');
      return send(res, 201, m.snapshot());
    }
    const one = /^\/members\/([^/]+)$/.exec(path);
    if (one) {
      const name = decodeURIComponent(one[1]!);
      const m = balancer.members.get(name);
      if (!m) throw new OutpostError('NOT_FOUND', `no member named ${name}`);
      if (req.method === 'GET') return send(res, 200, m.snapshot());
      if (req.method === 'DELETE') {
        balancer.members.remove(name);
        deps.log.info({ member: name }, 'member removed through the admin API');
        return send(res, 200, { removed: name });
      }
    }
    throw new OutpostError('NOT_FOUND', `no admin route ${req.method} ${path}`);
  };

  return createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      const e = toOutpostError(err);
      if (e.source !== 'client') deps.log.error({ err: e.message, code: e.code }, 'admin request failed');
      if (!res.headersSent) send(res, e.status, e.toJSON());
      else res.destroy();
    });
  });
}
