// Admin API routes for IP lists (docs/security-gates.md, "IP lists"):
//   GET    /lists                  names, sizes, versions
//   GET    /lists/:name            one list with its entries
//   PUT    /lists/:name            replace it: {"entries": [...], "description": "..."}
//   POST   /lists/:name/add        {"entries": [...]} added (duplicates ignored); creates the list
//   POST   /lists/:name/remove     {"entries": [...]} removed (exact text of the entry)
//   DELETE /lists/:name
//   GET    /lists/:name/check?ip=A whether the address is on the list
// Changes are written to the store with a new version and reach every worker like CUs do.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CuStore, StoredDoc } from '../compute/store/store.ts';
import { readJson, send } from '../control/admin.ts';
import { OutpostError } from '../errors.ts';
import type { Logger } from '../log/logger.ts';
import { IpSet } from './ip-set.ts';
import { LIST_DOC_PREFIX, checkListName, checkListValue, listDocName, listOfDoc, type IpListValue } from './lists.ts';

function summary(doc: StoredDoc, list: IpListValue | undefined) {
  return {
    name: doc.name.slice(LIST_DOC_PREFIX.length),
    entries: list?.entries.length ?? 0,
    version: doc.version,
    updatedAt: doc.updatedAt,
    ...(list?.description !== undefined ? { description: list.description } : {}),
    ...(list ? {} : { invalid: true }),
  };
}

export function listRoutes(store: CuStore, log: Logger) {
  // Adds and removes are read-modify-write: one at a time in this process, so that two admin
  // calls to one node cannot lose each other's entries.
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(fn, fn);
    queue = run.catch(() => undefined);
    return run;
  };
  const docOf = async (name: string): Promise<StoredDoc | undefined> => (await store.readAll()).docs.find((d) => d.name === listDocName(name));

  return async (req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> => {
    if (path !== '/lists' && !path.startsWith('/lists/')) return false;
    const parts = path.split('/').filter(Boolean); // ['lists', name?, action?]
    const method = req.method ?? 'GET';
    if (parts.length === 1) {
      if (method !== 'GET') throw new OutpostError('METHOD_NOT_ALLOWED', `${method} /lists: expected GET`);
      const docs = (await store.readAll()).docs.filter((d) => d.name.startsWith(LIST_DOC_PREFIX));
      send(res, 200, { lists: docs.map((d) => summary(d, listOfDoc(d))) });
      return true;
    }
    const name = checkListName(decodeURIComponent(parts[1]!));
    const action = parts[2];
    if (parts.length > 3) return false;

    if (action === undefined && method === 'GET') {
      const doc = await docOf(name);
      const list = listOfDoc(doc);
      if (!doc || !list) throw new OutpostError('NOT_FOUND', `no IP list "${name}"`);
      send(res, 200, { ...summary(doc, list), entries: list.entries });
      return true;
    }
    if (action === undefined && method === 'PUT') {
      const value = checkListValue(await readJson(req));
      const doc = await serial(() => store.putDoc(listDocName(name), value));
      log.info({ list: name, entries: value.entries.length, version: doc.version }, `IP list ${name} replaced`);
      send(res, 200, summary(doc, value));
      return true;
    }
    if (action === undefined && method === 'DELETE') {
      if (!(await serial(() => store.deleteDoc(listDocName(name))))) throw new OutpostError('NOT_FOUND', `no IP list "${name}"`);
      log.info({ list: name }, `IP list ${name} deleted`);
      send(res, 200, { deleted: name });
      return true;
    }
    if ((action === 'add' || action === 'remove') && method === 'POST') {
      const body = (await readJson(req)) as { entries?: unknown };
      const given = checkListValue({ entries: body.entries }).entries;
      const doc = await serial(async () => {
        const current = listOfDoc(await docOf(name));
        if (!current && action === 'remove') throw new OutpostError('NOT_FOUND', `no IP list "${name}"`);
        const entries = new Set(current?.entries ?? []);
        const before = entries.size;
        for (const e of given) {
          if (action === 'add') entries.add(e);
          else entries.delete(e);
        }
        const value: IpListValue = { entries: [...entries], ...(current?.description !== undefined ? { description: current.description } : {}) };
        const written = await store.putDoc(listDocName(name), checkListValue(value));
        return { written, value, changed: Math.abs(entries.size - before) };
      });
      log.info({ list: name, [action === 'add' ? 'added' : 'removed']: doc.changed, entries: doc.value.entries.length, version: doc.written.version }, `IP list ${name}: ${action}`);
      send(res, 200, { ...summary(doc.written, doc.value), [action === 'add' ? 'added' : 'removed']: doc.changed });
      return true;
    }
    if (action === 'check' && method === 'GET') {
      const ip = new URL(req.url ?? '/', 'http://x').searchParams.get('ip') ?? '';
      const list = listOfDoc(await docOf(name));
      if (!list) throw new OutpostError('NOT_FOUND', `no IP list "${name}"`);
      send(res, 200, { list: name, ip, listed: IpSet.from(list.entries).has(ip) });
      return true;
    }
    throw new OutpostError('NOT_FOUND', `no admin route ${method} ${path}`);
  };
}
