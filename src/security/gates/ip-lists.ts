// IP allow and deny lists. Entries name stored lists (changed at run time, see src/lists/) or are
// addresses/CIDR blocks written in the configuration. An address on an allow list always passes
// (it skips the deny lists, as Cloudflare's IP access rules do); one on a deny list is refused;
// with `allowOnly`, everyone not on an allow list is refused. Stored lists are compiled into an
// IpSet (binary search, src/lists/ip-set.ts) once per version, when the worker receives it.
import { z } from 'zod';
import type { DocBoard } from '../../control/doc-board.ts';
import type { EdgeHooks } from '../../edge/phases.ts';
import { IpSet } from '../../lists/ip-set.ts';
import { LIST_DOC_PREFIX, LIST_NAME_RE, listOfDoc } from '../../lists/lists.ts';
import type { Logger } from '../../log/logger.ts';
import { common, describe, gateLogger, parseOptions } from './options.ts';
import { refuse } from './refuse.ts';
import { compileScope } from './scope.ts';

export interface IpListGateOptions {
  name?: string;
  hosts?: string[];
  paths?: string[];
  /** Stored list names or addresses/CIDR blocks; an address on one passes. */
  allow?: string[];
  /** Stored list names or addresses/CIDR blocks; an address on one is refused. */
  deny?: string[];
  /** Refuse every address that is on no allow list (default false). */
  allowOnly?: boolean;
  /** Default 403. */
  status?: number;
  log?: Logger;
  /** Where stored lists come from (absent: only literal entries, as when the primary checks the settings). */
  board?: DocBoard;
}

const entry = z.string().refine((v) => LIST_NAME_RE.test(v) || /^[0-9a-fA-F:.]+(\/\d{1,3})?$/.test(v), {
  error: (iss) => `expected a list name (lower-case letter first) or an address/CIDR block, got ${describe(iss.input)}`,
});

const Schema = z
  .strictObject({
    ...common,
    allow: z.array(entry).default([]),
    deny: z.array(entry).default([]),
    allowOnly: z.boolean().default(false),
    status: z.number().int().min(400).max(599).default(403),
    board: z.custom<DocBoard>((v) => typeof v === 'object' && v !== null && 'watch' in v).optional(),
  })
  .refine((o) => o.allow.length + o.deny.length > 0, { path: ['deny'], message: 'expected at least one entry in allow or deny' })
  .refine((o) => !o.allowOnly || o.allow.length > 0, { path: ['allow'], message: 'allowOnly needs at least one allow entry' });

export function ipListGate(options: IpListGateOptions): EdgeHooks {
  const o = parseOptions('ipLists', Schema, options);
  const name = o.name ?? 'ip-lists';
  const log = gateLogger(o.log, name);
  const inScope = compileScope(o);
  const isList = (e: string) => LIST_NAME_RE.test(e);
  const literal = (entries: string[], what: string) => {
    const cidrs = entries.filter((e) => !isList(e));
    return cidrs.length ? [IpSet.from(cidrs, `security.ipLists.${what}`)] : [];
  };
  const allowLiteral = literal(o.allow, 'allow');
  const denyLiteral = literal(o.deny, 'deny');
  const allowNames = o.allow.filter(isList);
  const denyNames = o.deny.filter(isList);
  let allowSets: IpSet[] = allowLiteral;
  let denySets: IpSet[] = denyLiteral;

  const board = o.board;
  const missing = new Set<string>();
  const compile = (names: string[]): IpSet[] =>
    names.flatMap((n) => {
      const list = listOfDoc(board?.get(LIST_DOC_PREFIX + n));
      if (!list) {
        if (!missing.has(n)) log.warn({ list: n }, `IP list "${n}" is not in the store (or not valid); treated as empty until it arrives`);
        missing.add(n);
        return [];
      }
      missing.delete(n);
      return [IpSet.from(list.entries)];
    });
  const rebuild = () => {
    allowSets = [...allowLiteral, ...compile(allowNames)];
    denySets = [...denyLiteral, ...compile(denyNames)];
  };
  if (board && allowNames.length + denyNames.length > 0) {
    const watched = new Set([...allowNames, ...denyNames].map((n) => LIST_DOC_PREFIX + n));
    rebuild();
    board.watch((changed) => {
      if (changed.some((c) => watched.has(c))) rebuild();
    });
  }
  const allowOnly = o.allowOnly;
  const status = o.status;

  return {
    name,
    access(ctx) {
      if (!inScope(ctx)) return;
      const ip = ctx.clientIp;
      for (const s of allowSets) if (s.has(ip)) return;
      let denied = allowOnly;
      if (!denied) {
        for (const s of denySets) {
          if (s.has(ip)) {
            denied = true;
            break;
          }
        }
      }
      if (!denied) return;
      log.info({ ip, uri: ctx.path, code: 'IP_DENIED' }, allowOnly ? 'refused: address on no allow list' : 'refused: address on a deny list');
      return refuse(status, 'your address is not allowed here');
    },
  };
}
