// IP lists as stored documents: `iplist:<name>` holds {"entries": [...], "description": "..."}.
// They are changed at run time through the admin API (src/lists/routes.ts) or `outpost list`, and
// reach every worker of every node like CUs do; the ipLists gate (src/security/gates/ip-lists.ts)
// looks them up.
import type { StoredDoc } from '../compute/store/store.ts';
import { OutpostError } from '../errors.ts';
import { IpSet } from './ip-set.ts';

export const LIST_NAME_RE = /^[a-z][a-z0-9_-]{0,63}$/;
export const LIST_DOC_PREFIX = 'iplist:';
/** Most entries one list may hold. */
export const MAX_LIST_ENTRIES = 1_000_000;

export interface IpListValue {
  readonly entries: readonly string[];
  readonly description?: string;
}

export function checkListName(name: string): string {
  if (!LIST_NAME_RE.test(name)) {
    throw new OutpostError('BAD_REQUEST', `list name ${JSON.stringify(name)}: expected a lower-case letter, then letters, digits, '-' or '_' (at most 64)`);
  }
  return name;
}

export const listDocName = (name: string): string => LIST_DOC_PREFIX + checkListName(name);

/** Validates a list's value, every entry an address or CIDR block; returns it with entries trimmed and de-duplicated. */
export function checkListValue(value: unknown): IpListValue {
  const v = value as { entries?: unknown; description?: unknown } | null;
  if (typeof v !== 'object' || v === null || !Array.isArray(v.entries)) throw new OutpostError('BAD_REQUEST', 'entries: expected an array of addresses or CIDR blocks');
  if (v.entries.length > MAX_LIST_ENTRIES) throw new OutpostError('BAD_REQUEST', `entries: expected at most ${MAX_LIST_ENTRIES} entries, got ${v.entries.length}`);
  if (v.description !== undefined && typeof v.description !== 'string') throw new OutpostError('BAD_REQUEST', 'description: expected a string');
  const entries = [...new Set((v.entries as unknown[]).map((e) => (typeof e === 'string' ? e.trim() : (e as string))))];
  IpSet.from(entries);
  return { entries, ...(v.description !== undefined ? { description: v.description } : {}) };
}

/** The list a document holds, or undefined when the document is not a valid list (it was written by hand). */
export function listOfDoc(doc: StoredDoc | undefined): IpListValue | undefined {
  if (!doc) return undefined;
  try {
    return checkListValue(doc.value);
  } catch {
    return undefined;
  }
}
