// The one origin every server under test fetches from: the project's demo origin, or the bench's
// stand-in while the demo origin is not in the tree.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, httpGet, startProcess, waitUntil, type Started } from '../proc.ts';

export interface Origin {
  readonly port: number;
  readonly pid: number;
  /** Which implementation is running: 'src/origin/main.ts' or the bench's stand-in. */
  readonly source: string;
  /** Total requests the origin has answered so far (its own counter). */
  requests(): Promise<number>;
  stop(): Promise<void>;
}

export async function startOrigin(root: string, nodePath: string): Promise<Origin> {
  const real = join(root, 'src/origin/main.ts');
  const script = existsSync(real) ? real : join(root, 'bench/servers/temp-origin.ts');
  const port = await freePort();
  const proc: Started = startProcess(nodePath, [script, '--port', String(port), '--host', '127.0.0.1', '--latency', 'off'], { cwd: root });
  await waitUntil('origin', proc, 20_000, async () => proc.output().includes('origin listening on'));
  const requests = async (): Promise<number> => {
    const r = await httpGet(port, '/__origin/stats', { timeoutMs: 5_000 });
    const parsed: unknown = JSON.parse(r.body);
    const n = typeof parsed === 'object' && parsed !== null && 'requests' in parsed ? Number(parsed.requests) : NaN;
    return n;
  };
  return { port, pid: proc.pid, source: script === real ? 'src/origin/main.ts' : 'bench/servers/temp-origin.ts', requests, stop: () => proc.stop() };
}
