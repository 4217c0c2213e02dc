// Admin API routes for the rule set: GET/PUT /rules, POST /rules/validate, POST /rules/explain.
// A set is validated and compiled before it is stored, so a node is never handed one it refuses.
// docs/rules.md lists them with examples.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { parse, readJson, send } from '../control/admin.ts';
import type { Logger } from 'pino';
import { toOutpostError } from '../errors.ts';
import { compileRules, loadRules, type CompiledRules } from './compile.ts';
import { explain, type ExplainOptions } from './explain.ts';
import { parseRuleSet } from './schema.ts';

export interface RulesDoc {
  get(): Promise<{ version: number; updatedAt: string; value: unknown } | undefined>;
  put(value: unknown): Promise<{ version: number; updatedAt: string }>;
}

export interface RulesRoutesOptions extends ExplainOptions {
  /** Configured upstream pools: a set routing to another pool is refused on save. */
  readonly pools?: readonly string[] | undefined;
  /** Where failures that are not the client's fault (the store, say) are logged. */
  readonly log?: Logger | undefined;
}

const ExplainBody = z
  .object({
    request: z
      .object({
        method: z.string().optional(),
        url: z.string().min(1),
        headers: z.record(z.string(), z.string()).optional(),
        ip: z.string().optional(),
        country: z.string().optional(),
      })
      .strict(),
    rules: z.unknown().optional(),
  })
  .strict();

const EMPTY = compileRules({ rules: [] });

export function rulesRoutes(doc: RulesDoc, current: () => CompiledRules | undefined, opts: RulesRoutesOptions = {}) {
  const check = (value: unknown) => compileRules(parseRuleSet(value), { pools: opts.pools });

  const route = async (req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> => {
    const method = req.method ?? 'GET';
    if (path === '/rules' && method === 'GET') {
      const stored = await doc.get();
      const running = current();
      send(res, 200, {
        version: stored?.version ?? 0,
        updatedAt: stored?.updatedAt ?? null,
        value: stored?.value ?? { rules: [] },
        running: running ? { version: running.version ?? null, rules: running.all.length } : null,
      });
      return true;
    }
    if (path === '/rules' && method === 'PUT') {
      const value = await readJson(req);
      const compiled = check(value);
      const saved = await doc.put(value);
      send(res, 200, { ...saved, rules: compiled.all.length });
      return true;
    }
    if (path === '/rules/validate' && method === 'POST') {
      const compiled = check(await readJson(req));
      send(res, 200, { ok: true, rules: compiled.all.length, enabled: compiled.rules.length });
      return true;
    }
    if (path === '/rules/explain' && method === 'POST') {
      const body = parse(ExplainBody, await readJson(req));
      let compiled: CompiledRules;
      if (body.rules !== undefined) compiled = check(body.rules);
      else {
        const running = current();
        if (running) compiled = running;
        else {
          // Not running here yet (a fresh node, or rules saved a moment ago): the stored set.
          const stored = await doc.get();
          compiled = stored ? loadRules(stored.value) : EMPTY;
        }
      }
      send(res, 200, explain(compiled, body.request, opts));
      return true;
    }
    return false;
  };

  // Errors answered here too, so the routes work on any server they are mounted on.
  return async (req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> => {
    if (path !== '/rules' && !path.startsWith('/rules/')) return false;
    try {
      return await route(req, res, path);
    } catch (err) {
      const e = toOutpostError(err);
      if (res.headersSent) res.destroy();
      else send(res, e.status, e.toJSON());
      if (e.source !== 'client') opts.log?.error({ err: e.message, code: e.code, path }, 'rules request failed');
      return true;
    }
  };
}
