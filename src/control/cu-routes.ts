// Admin API routes for computing units: /cus, /cus/:id, enable/disable, validate, dry run, status
// per worker, and the global settings. docs/edge-computing.md lists them with examples.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { CU_ID_RE } from '../compute/cu.ts';
import type { ComputePlane } from '../compute/plane.ts';
import type { CuStatus } from '../compute/registry.ts';
import { OutpostError } from '../errors.ts';
import { parse, readJson, send } from './admin.ts';

export interface WorkerCuStatus {
  readonly worker: number | string;
  readonly pid: number;
  readonly cus: readonly CuStatus[];
}

const DryRunBody = z
  .object({
    id: z.string().optional(),
    cu: z.record(z.string(), z.unknown()).optional(),
    request: z.object({
      method: z.string().optional(),
      url: z.string(),
      headers: z.record(z.string(), z.string()).optional(),
      ip: z.string().optional(),
      response: z.object({ status: z.number().int().optional(), headers: z.record(z.string(), z.string()).optional(), body: z.string().optional() }).optional(),
    }),
  })
  .strict()
  .refine((b) => (b.id === undefined) !== (b.cu === undefined), 'give either id (a stored CU) or cu (a CU to try)');

export function cuRoutes(plane: ComputePlane, workerStatus: () => Promise<WorkerCuStatus[]>) {
  return async (req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> => {
    const parts = path.split('/').filter(Boolean); // ['cus', id?, action?]
    const method = req.method ?? 'GET';
    const id = parts[1] !== undefined ? decodeURIComponent(parts[1]) : undefined;
    const action = parts[2];

    if (parts.length === 1) {
      if (method === 'GET') {
        const snap = await plane.list();
        send(res, 200, { cus: snap.cus, invalid: snap.invalid, settings: snap.settings, store: { kind: plane.store.kind, healthy: plane.healthy } });
        return true;
      }
      if (method === 'POST') {
        send(res, 201, await plane.put(await readJson(req)));
        return true;
      }
      return false;
    }
    if (id === 'status' && method === 'GET' && !action) {
      send(res, 200, { store: { kind: plane.store.kind, healthy: plane.healthy }, workers: await workerStatus() });
      return true;
    }
    if (id === 'settings' && !action) {
      if (method === 'GET') send(res, 200, await plane.settings());
      else if (method === 'PUT') send(res, 200, await plane.putSettings(await readJson(req)));
      else return false;
      return true;
    }
    if (id === 'validate' && method === 'POST' && !action) {
      const spec = plane.check(await readJson(req));
      send(res, 200, { ok: true, cu: spec });
      return true;
    }
    if (id === 'test' && method === 'POST' && !action) {
      const body = parse(DryRunBody, await readJson(req));
      const cu = body.id !== undefined ? await plane.get(body.id) : body.cu!;
      send(res, 200, await plane.dryRun(cu as never, body.request));
      return true;
    }
    if (id === undefined || !CU_ID_RE.test(id)) throw new OutpostError('BAD_REQUEST', `invalid CU id ${JSON.stringify(id)}`);
    if (!action) {
      switch (method) {
        case 'GET':
          send(res, 200, await plane.get(id));
          return true;
        case 'PUT': {
          const body = (await readJson(req)) as Record<string, unknown>;
          if (body.id !== undefined && body.id !== id) throw new OutpostError('CU_INVALID', `id: the body says "${String(body.id)}" but the URL says "${id}"`);
          send(res, 200, await plane.put({ ...body, id }));
          return true;
        }
        case 'DELETE':
          await plane.delete(id);
          send(res, 200, { deleted: id });
          return true;
        default:
          return false;
      }
    }
    if (method === 'POST' && (action === 'enable' || action === 'disable')) {
      send(res, 200, await plane.setEnabled(id, action === 'enable'));
      return true;
    }
    return false;
  };
}
