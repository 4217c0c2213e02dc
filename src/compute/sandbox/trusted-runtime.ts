// CUs compiled into the worker's own JavaScript realm, with no sandbox: for operators who run only
// code they wrote and want the last microseconds, as OpenResty runs Lua in the nginx worker.
//
// RISKS (stated in docs/cu-api.md too): a CU here can reach everything the worker can — process,
// require through Function('return this')(), the file system, the network, other CUs and the
// worker's memory. Nothing stops an endless loop (the worker hangs and every request on it with it)
// or an allocation without end (the worker dies). Off by default; use it only for code you trust.
//
// The API, the checks on what a CU returns and the protocol are the very same as in the isolate
// runtime (the same runner source, called directly instead of across an isolate boundary).
import vm from 'node:vm';
import type { CuRecord } from '../cu.ts';
import { CuError, type CuHostServices, type CuRunInput, type CuRunOutput, type CuRuntime, type LoadedCu } from '../runtime.ts';
import { CuExecution, type CuLog, type RunnerAccess, type RunnerEntry } from './execution.ts';
import { hostCrypto, PRELUDE_SOURCE } from './protocol.ts';
import { arrowPosition, compileError, CU_PARAMS, lastLineLength, prepareCu, WRAPPER_LINE_OFFSET, wrapperSource } from './source.ts';

const MAX_CALLS_PER_RUN = 100;

type Runner = Record<RunnerEntry | 'check' | 'install', (...args: unknown[]) => unknown>;

export class TrustedRuntime implements CuRuntime {
  readonly name = 'trusted';
  /** No limits, no isolation: see the risks above. */
  readonly capabilities = Object.freeze({ limits: false, isolation: false });
  readonly #services: CuHostServices;
  readonly #log: CuLog;

  constructor(opts: { services: CuHostServices; log?: CuLog }) {
    this.#services = opts.services;
    this.#log = opts.log ?? (() => {});
  }

  load(cu: CuRecord): LoadedCu {
    const p = prepareCu(cu);
    // One runner per CU, so CUs do not share the runner's state (they do share the realm).
    const runner = new Function('$0', PRELUDE_SOURCE)(hostCrypto) as Runner;
    let script: vm.Script;
    try {
      script = new vm.Script(wrapperSource(p), { filename: p.filename, lineOffset: WRAPPER_LINE_OFFSET });
    } catch (e) {
      const err = e as Error;
      const pos = arrowPosition(err.stack);
      throw compileError({ id: p.id, lines: p.lines, lastLineLength: lastLineLength(cu.code) }, `${err.name}: ${err.message}`, pos?.line, pos?.column);
    }
    const refused = runner.check(p.body, [...CU_PARAMS], p.async);
    if (typeof refused === 'string') throw new CuError('compile', cu.id, refused);
    const access: RunnerAccess = {
      call: (entry, args) => runner[entry](...args),
      settle: () => new Promise((resolve) => setImmediate(resolve)),
    };
    const exec = new CuExecution({ prepared: p, timeoutMs: cu.timeoutMs, services: this.#services, log: this.#log }, access);
    runner.install(script.runInThisContext(), p.uses, p.async, p.filename, MAX_CALLS_PER_RUN, (runId: number) => exec.headersOf(runId));
    let disposed = false;
    return {
      id: cu.id,
      version: cu.version,
      async: p.async,
      run(input: CuRunInput): CuRunOutput | Promise<CuRunOutput> {
        if (disposed) throw new CuError('runtime', cu.id, 'the CU was unloaded');
        return exec.run(input);
      },
      dispose(): void {
        disposed = true;
      },
    };
  }

  dispose(): void {}
}
