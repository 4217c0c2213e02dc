// The one origin every server under test fetches from: the project's demo origin, latency simulation
// off (the scenarios ask for delays per request with ?delay=).
import { join } from 'node:path';
import { freePort, httpGet, startProcess, waitUntil } from '../proc.ts';

export interface Origin {
  readonly port: number;
  readonly pid: number;
  readonly source: string;
  /** Total requests the origin has answered so far (its own counter). */
  requests(): Promise<number>;
  stop(): Promise<void>;
}

export const ORIGIN_SCRIPT = 'src/origin/main.ts';

export async function startOrigin(root: string, nodePath: string): Promise<Origin> {
  const port = await freePort();
  const proc = startProcess(nodePath, [join(root, ORIGIN_SCRIPT), '--port', String(port), '--host', '127.0.0.1', '--latency', 'off'], { cwd: root });
  await waitUntil('origin', proc, 20_000, async () => proc.output().includes('origin listening on'));
  const requests = async (): Promise<number> => {
    const r = await httpGet(port, '/__origin/stats', { timeoutMs: 5_000 });
    const parsed: unknown = JSON.parse(r.body);
    return typeof parsed === 'object' && parsed !== null && 'requests' in parsed ? Number(parsed.requests) : NaN;
  };
  return { port, pid: proc.pid, source: ORIGIN_SCRIPT, requests, stop: () => proc.stop() };
}
