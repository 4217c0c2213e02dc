// Varnish with malloc storage and its built-in VCL (which honours Cache-Control), plus a header that
// says HIT or MISS so the bench can check the cache is warm.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, httpGet, startProcess, waitUntil } from '../proc.ts';
import { treePids } from '../machine.ts';
import type { RunningServer, StartOptions } from './types.ts';

export function varnishVcl(originPort: number): string {
  return `vcl 4.1;
backend origin {
  .host = "127.0.0.1";
  .port = "${originPort}";
}
sub vcl_deliver {
  if (obj.hits > 0) { set resp.http.X-Cache-Status = "HIT"; } else { set resp.http.X-Cache-Status = "MISS"; }
}
`;
}

export async function start(originPort: number, workers: number, opts: StartOptions): Promise<RunningServer> {
  const port = await freePort();
  const vcl = join(opts.dir, 'default.vcl');
  writeFileSync(vcl, varnishVcl(originPort));
  const args = [
    '-F',
    '-j', 'none',
    '-n', join(opts.dir, 'work'),
    '-a', `127.0.0.1:${port}`,
    '-f', vcl,
    '-T', 'none',
    '-s', 'malloc,256m',
    // Varnish's unit of parallelism is the thread pool; one per worker the others get.
    '-p', `thread_pools=${workers}`,
    // Keep idle keep-alive connections open as long as nginx does (default 5 s).
    '-p', 'timeout_idle=75',
  ];
  const proc = startProcess(opts.bin, args, { cpus: opts.cpus });
  await waitUntil('varnishd', proc, 30_000, async () => (await httpGet(port, '/__bench_ready', { timeoutMs: 1_000 })).status > 0);
  return { id: 'varnish', port, pid: proc.pid, pids: () => treePids(proc.pid), stop: () => proc.stop() };
}
