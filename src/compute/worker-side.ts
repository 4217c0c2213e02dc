// The edge-computing part of one edge process: a sandbox runtime, the registry of compiled CUs and
// the phase hooks that run them. It receives whole snapshots from the node's ComputePlane.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { OutpostConfig } from '../config/load.ts';
import type { EdgeHooks } from '../edge/phases.ts';
import { cuHooks } from './hooks.ts';
import { CuMetrics } from './metrics.ts';
import { CuRegistry, type CuStatus } from './registry.ts';
import type { CuHostServices } from './runtime.ts';
import { IsolateRuntime } from './sandbox/isolate-runtime.ts';
import { TrustedRuntime } from './sandbox/trusted-runtime.ts';
import type { StoreSnapshot } from './store/store.ts';

export interface ComputeWorker {
  readonly hooks: EdgeHooks;
  apply(snapshot: StoreSnapshot): void;
  status(): CuStatus[];
  close(): void;
}

export function createComputeWorker(opts: { config: OutpostConfig; log: Logger; registry: Registry; services: CuHostServices }): ComputeWorker {
  const { config, log } = opts;
  const metrics = new CuMetrics(opts.registry);
  const cuLog = log.child({ type: 'cu' });
  const runtimeOpts = { services: opts.services, log: (cu: string, level: string, msg: string) => cuLog.info({ cu, level }, msg) };
  const runtime = config.compute.runtime === 'trusted' ? new TrustedRuntime(runtimeOpts) : new IsolateRuntime(runtimeOpts);
  if (config.compute.runtime === 'trusted') log.warn({ event: 'trusted runtime' }, 'compute.runtime is "trusted": CUs run unsandboxed, without time or memory limits');
  const registry = new CuRegistry(runtime, { log, metrics, breaker: { failures: config.compute.breaker.failures, coolDownMs: config.compute.breaker.coolDown } });
  return {
    hooks: cuHooks(registry, { log, metrics, cuLog }),
    apply: (s) => registry.apply(s),
    status: () => registry.status(),
    close: () => {
      registry.dispose();
      runtime.dispose();
    },
  };
}
