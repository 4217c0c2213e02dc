// nginx proxy_cache configured the way a CDN operator would for a fair comparison: cache lock,
// stale-while-updating with background update, upstream keep-alive, no access log.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, httpGet, startProcess, waitUntil } from '../proc.ts';
import { openFilesLimit, treePids } from '../machine.ts';
import type { RunningServer, StartOptions } from './types.ts';

export interface NginxOptions extends StartOptions {
  /** false serves cached bodies with read()+write() instead of sendfile(), like a user-space proxy must. */
  readonly sendfile?: boolean;
}

export function nginxConfig(p: { dir: string; port: number; originPort: number; workers: number; sendfile: boolean; maxFiles: number; root: boolean }): string {
  // As root, workers would switch to www-data and could not use the bench's private scratch folder.
  return `daemon off;
${p.root ? 'user root;\n' : ''}master_process on;
worker_processes ${p.workers};
worker_rlimit_nofile ${p.maxFiles};
pid ${join(p.dir, 'nginx.pid')};
error_log ${join(p.dir, 'error.log')} warn;
events { worker_connections ${Math.max(1024, p.maxFiles - 1000)}; }
http {
  access_log off;
  sendfile ${p.sendfile ? 'on' : 'off'};
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_timeout 75s;
  keepalive_requests 1000000;
  default_type application/octet-stream;
  client_body_temp_path ${join(p.dir, 'tmp/body')};
  proxy_temp_path ${join(p.dir, 'tmp/proxy')};
  fastcgi_temp_path ${join(p.dir, 'tmp/fastcgi')};
  uwsgi_temp_path ${join(p.dir, 'tmp/uwsgi')};
  scgi_temp_path ${join(p.dir, 'tmp/scgi')};
  proxy_cache_path ${join(p.dir, 'cache')} levels=1:2 keys_zone=edge:64m max_size=2g inactive=10m use_temp_path=off;
  upstream origin {
    server 127.0.0.1:${p.originPort};
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${p.port} backlog=4096;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache edge;
      proxy_cache_lock on;
      proxy_cache_lock_timeout 10s;
      proxy_cache_use_stale updating error timeout;
      proxy_cache_background_update on;
      proxy_cache_revalidate on;
      add_header X-Cache-Status $upstream_cache_status;
    }
  }
}
`;
}

export async function start(originPort: number, workers: number, opts: NginxOptions): Promise<RunningServer> {
  const sendfile = opts.sendfile ?? true;
  const port = await freePort();
  mkdirSync(join(opts.dir, 'tmp'), { recursive: true });
  mkdirSync(join(opts.dir, 'cache'), { recursive: true });
  const conf = join(opts.dir, 'nginx.conf');
  writeFileSync(conf, nginxConfig({ dir: opts.dir, port, originPort, workers, sendfile, maxFiles: openFilesLimit().hard, root: process.getuid?.() === 0 }));
  const proc = startProcess(opts.bin, ['-p', opts.dir, '-c', conf, '-e', join(opts.dir, 'error.log')], { cpus: opts.cpus });
  const label = sendfile ? 'nginx' : 'nginx (sendfile off)';
  await waitUntil(label, proc, 20_000, async () => (await httpGet(port, '/__bench_ready', { timeoutMs: 1_000 })).status > 0);
  return { id: sendfile ? 'nginx' : 'nginx-nosendfile', port, pid: proc.pid, pids: () => treePids(proc.pid), stop: () => proc.stop() };
}
