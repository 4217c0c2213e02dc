// Admin API routes for the WAF rules saved at run time (docs/waf.md, "Rules saved at run time"):
//   GET  /waf/rules           the stored set: {"version", "updatedAt", "value": {"rules": [...]}}
//   PUT  /waf/rules           validate and store {"rules": [...]}; every worker applies it
//   POST /waf/rules/validate  check a set without storing it
//   POST /waf/test            {"url", "method"?, "headers"?, "body"?, "ip"?, "rules"?}: which rules match
// A set is checked before it is stored, so no worker is handed one the primary would refuse.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { z } from 'zod';
import type { CuStore } from '../../compute/store/store.ts';
import { parse, readJson, send } from '../../control/admin.ts';
import { newContext } from '../../edge/request.ts';
import { OutpostError } from '../../errors.ts';
import type { Logger } from '../../log/logger.ts';
import type { RuleSpec } from './rules.ts';
import { compileStoredRules, wafRulesDoc, type WafRulesValue } from './stored.ts';
import { DEFAULT_BODY_BYTES, waf, type WafMatch, type WafOptions } from './waf.ts';

const TestBody = z
  .object({
    url: z.string().min(1),
    method: z.string().regex(/^[A-Za-z]+$/).optional(),
    headers: z.record(z.string(), z.string()).optional(),
    body: z.string().optional(),
    ip: z.string().optional(),
    rules: z.unknown().optional(),
  })
  .strict();

/** What POST /waf/test answers. */
export interface WafTestResult {
  /** Every rule that matches, in the order the WAF checks them (path, query, headers, body). */
  readonly matches: ReadonlyArray<Pick<WafMatch, 'rule' | 'category' | 'where' | 'sample' | 'flags'>>;
  /** The rule that would answer 403 in block mode; null when the request passes. */
  readonly blockedBy: string | null;
  /** The mode the node's WAF runs in; null when security.waf is off on this node. */
  readonly mode: 'block' | 'detect' | null;
  /** Whether this node inspects bodies (security.waf.body.enabled); the test always does when given one. */
  readonly bodyInspection: boolean;
}

const silent = pino({ level: 'silent' }, new Writable({ write: (_c, _e, cb) => cb() }));

/** Splits a URL without normalising it: the edge sees `..` and `%2e` as sent, so the test does too. */
function splitUrl(url: string): { scheme: 'http' | 'https'; host: string; path: string; query: string } {
  const m = /^(?:(https?):\/\/([^/?#]+))?(\/[^?#]*)?(?:\?([^#]*))?/i.exec(url);
  if (!m || (!m[2] && !m[3])) throw new OutpostError('BAD_REQUEST', `url: expected http(s)://host/path?query or /path?query, got ${JSON.stringify(url)}`);
  return { scheme: m[1]?.toLowerCase() === 'https' ? 'https' : 'http', host: (m[2] ?? 'localhost').toLowerCase(), path: m[3] ?? '/', query: m[4] ?? '' };
}

/**
 * The WAF admin routes. `settings` is the node's security.waf (undefined when the WAF is off):
 * stored rules may not reuse the ids of its rules, and /waf/test runs with its headers,
 * exclusions and disabled rules.
 */
export function wafRoutes(store: CuStore, settings: Record<string, unknown> | undefined, log: Logger) {
  const doc = wafRulesDoc(store);
  const enabled = settings !== undefined && settings.enabled !== false;
  const configured = Array.isArray(settings?.rules) ? (settings.rules as RuleSpec[]) : [];
  const taken = new Set(configured.map((r) => r.id));
  const check = (value: unknown) => compileStoredRules(value, taken);

  const test = async (req: IncomingMessage): Promise<WafTestResult> => {
    const body = parse(TestBody, await readJson(req));
    let stored: unknown;
    if (body.rules !== undefined) stored = body.rules;
    else stored = (await doc.get())?.value ?? { rules: [] };
    check(stored);
    const matches: WafMatch[] = [];
    const { enabled: _e, mode, body: bodySettings, ...rest } = settings ?? {};
    const maxBytes = (bodySettings as { maxBytes?: number | string } | undefined)?.maxBytes ?? DEFAULT_BODY_BYTES;
    const w = waf({
      ...(rest as Partial<WafOptions>),
      mode: 'detect',
      log: silent,
      body: { enabled: true, maxBytes },
      rules: [...configured, ...(stored as WafRulesValue).rules],
      onMatch: (m) => matches.push(m),
    });
    const { scheme, host, path, query } = splitUrl(body.url);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(body.headers ?? {})) headers[k.toLowerCase()] = v;
    const method = (body.method ?? (body.body !== undefined ? 'POST' : 'GET')).toUpperCase();
    const ctx = newContext({ method, scheme, httpVersion: '1.1', clientIp: body.ip ?? '127.0.0.1', host, path, query, headers });
    w.access(ctx);
    if (body.body !== undefined) w.inspectBody(ctx, Buffer.from(body.body));
    return {
      matches: matches.map((m) => ({ rule: m.rule, category: m.category, where: m.where, sample: m.sample, flags: m.flags })),
      blockedBy: matches[0]?.rule ?? null,
      mode: enabled ? (mode === 'detect' ? 'detect' : 'block') : null,
      bodyInspection: enabled && (bodySettings as { enabled?: boolean } | undefined)?.enabled === true,
    };
  };

  return async (req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> => {
    if (path !== '/waf' && !path.startsWith('/waf/')) return false;
    const method = req.method ?? 'GET';
    const route = `${method} ${path}`;
    switch (route) {
      case 'GET /waf/rules': {
        const stored = await doc.get();
        send(res, 200, { version: stored?.version ?? 0, updatedAt: stored?.updatedAt ?? null, value: stored?.value ?? { rules: [] }, wafEnabled: enabled });
        return true;
      }
      case 'PUT /waf/rules': {
        const value = await readJson(req);
        const rules = check(value);
        const saved = await doc.put(value as WafRulesValue);
        log.info({ version: saved.version, rules: rules.length }, 'waf rules saved');
        send(res, 200, { version: saved.version, updatedAt: saved.updatedAt, rules: rules.length, wafEnabled: enabled });
        return true;
      }
      case 'POST /waf/rules/validate': {
        const rules = check(await readJson(req));
        send(res, 200, { ok: true, rules: rules.length });
        return true;
      }
      case 'POST /waf/test':
        send(res, 200, await test(req));
        return true;
      default:
        if (['/waf/rules', '/waf/rules/validate', '/waf/test'].includes(path)) throw new OutpostError('METHOD_NOT_ALLOWED', `${route}: expected ${path === '/waf/rules' ? 'GET or PUT' : 'POST'}`);
        throw new OutpostError('NOT_FOUND', `no admin route ${route}`);
    }
  };
}
