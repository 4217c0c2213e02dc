// A real Redis Cluster for tests: three masters (no replicas) on free ports in a temp dir, joined
// with `redis-cli --cluster create`, ready once every node reports cluster_state:ok.
import type { ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { portIsFree, redisCli, spawnRedis, stopChild } from './redis-server.ts';

const run = promisify(execFile);

export interface RedisCluster {
  readonly ports: readonly number[];
  /** redis:// URLs of the masters (seed nodes for ioredis). */
  readonly nodes: readonly string[];
  readonly dir: string;
  /** Stops every node and removes the directory. */
  stop(): Promise<void>;
}

/** A port P such that P and its cluster bus port P + 10000 are both free. */
async function clusterPort(taken: ReadonlySet<number>): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20_000 + Math.floor(Math.random() * 10_000);
    if (taken.has(port)) continue;
    if ((await portIsFree(port)) && (await portIsFree(port + 10_000))) return port;
  }
  throw new Error('no free port pair for a cluster node');
}

export async function startRedisCluster(masters = 3): Promise<RedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'outpost-redis-cluster-'));
  const children: ChildProcess[] = [];
  const ports: number[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(children.map((c) => stopChild(c)));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let n = 0; n < masters; n++) {
      for (let attempt = 1; ; attempt++) {
        const port = await clusterPort(new Set(ports));
        const nodeDir = join(dir, String(port));
        mkdirSync(nodeDir, { recursive: true });
        try {
          children.push(
            await spawnRedis(port, nodeDir, ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '5000', '--save', '', '--appendonly', 'no']),
          );
          ports.push(port);
          break;
        } catch (err) {
          // Someone took the port between the check and the bind: try another.
          if (attempt >= 5) throw err;
        }
      }
    }
    await run('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { timeout: 30_000 });
    const deadline = Date.now() + 20_000;
    for (;;) {
      const infos = await Promise.all(ports.map((p) => redisCli(p, 'cluster', 'info').catch(() => '')));
      if (infos.every((i) => /cluster_state:ok/.test(i) && new RegExp(`cluster_known_nodes:${masters}\\b`).test(i))) break;
      if (Date.now() > deadline) throw new Error(`the cluster did not become ready: ${infos.join('\n')}`);
      await sleep(100);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { ports, nodes: ports.map((p) => `redis://127.0.0.1:${p}`), dir, stop };
}
