// The rules a process runs: compiled from the `rules` document each time a new version arrives
// (on the DocBoard of a worker, or from the store in the primary for explain). A version that does
// not compile — written by hand, or against pools this node lacks — is reported and skipped: the
// last good set keeps running, as with CUs.
import type { StoredDoc } from '../compute/store/store.ts';
import type { CuStore } from '../compute/store/store.ts';
import type { DocBoard } from '../control/doc-board.ts';
import type { Logger } from '../log/logger.ts';
import { loadRules, type CompiledRules } from './compile.ts';
import type { RulesDoc } from './routes.ts';

export const RULES_DOC = 'rules';

export interface LiveRules {
  current(): CompiledRules | undefined;
}

/** Compiles `doc` unless its version is the one already compiled; keeps the last good set on errors. */
function compiler(pools: readonly string[], log: Logger) {
  let compiled: CompiledRules | undefined;
  let version: number | undefined;
  let failed: number | undefined;
  return {
    update(doc: StoredDoc | undefined): void {
      if (!doc) {
        compiled = undefined;
        version = undefined;
        return;
      }
      if (doc.version === version || doc.version === failed) return;
      try {
        compiled = loadRules(doc.value, { pools, version: doc.version });
        version = doc.version;
        failed = undefined;
      } catch (err) {
        failed = doc.version;
        log.error({ version: doc.version, err: (err as Error).message }, 'rules: the stored version does not compile; keeping the last good set');
      }
    },
    current: () => compiled,
  };
}

/** Rules that follow a process's DocBoard. */
export function boardRules(board: DocBoard, pools: readonly string[], log: Logger): LiveRules {
  const c = compiler(pools, log);
  c.update(board.get(RULES_DOC));
  board.watch((changed) => {
    if (changed.includes(RULES_DOC)) c.update(board.get(RULES_DOC));
  });
  return { current: c.current };
}

/** Rules as the store holds them now (for the admin API's explain in a primary). */
export function storeRules(latest: () => StoredDoc | undefined, pools: readonly string[], log: Logger): LiveRules {
  const c = compiler(pools, log);
  return {
    current() {
      c.update(latest());
      return c.current();
    },
  };
}

/** The `rules` document of a store, as the admin routes read and write it. */
export function rulesDoc(store: CuStore): RulesDoc {
  return {
    get: async () => (await store.readAll()).docs.find((d) => d.name === RULES_DOC),
    put: (value) => store.putDoc(RULES_DOC, value),
  };
}
