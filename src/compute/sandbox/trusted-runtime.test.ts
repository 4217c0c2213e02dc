import { describeCuRuntime } from './runtime-suite.ts';
import { TrustedRuntime } from './trusted-runtime.ts';

describeCuRuntime('trusted (no sandbox)', (services, log) => new TrustedRuntime({ services, ...(log ? { log } : {}) }));
