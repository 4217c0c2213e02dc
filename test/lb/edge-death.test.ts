// An edge dies under load behind the load balancer. Requests in flight on it at that moment may
// fail; every other request succeeds (those that reach the dead edge before the balancer knows are
// sent to another edge), and traffic leaves the dead edge within the health-check interval.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { LoadBalancer } from '../../src/lb/lb.ts';
import { startDemoOrigin, type DemoOrigin } from '../../src/origin/demo-origin.ts';
import { startNodeProcess, workerPids, type NodeProcess } from '../cluster/node-process.ts';
import { tempDir } from '../helpers.ts';
import { startTcpProxy, type TcpProxy } from '../support/redis-server.ts';
import { drive, startEdges, startLb, type Outcome, type TestEdge } from './support.ts';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/** Cache hits, slow misses (in flight at the edge before any byte) and slow bodies (in flight mid-body). */
const mixedLoad = (i: number): string => {
  switch (i % 4) {
    case 0:
      return `/slow/${i}?delay=40&cc=no-store`;
    case 1:
      return `/static/64k?slow_body=150&cc=no-store&n=${i}`;
    default:
      return `/hot/${i % 50}?max_age=60`;
  }
};

interface Watch {
  readonly killAt: number;
  /** Date.now() at the kill, to compare with the member's `since`. */
  readonly killWall: number;
  readonly inFlightAtKill: number;
  /** Requests the balancer had sent to the dead edge one interval (and some slack) after the kill. */
  readonly requestsAfterInterval: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs the load; once the victim has answered a fair share of it (a busy machine may need more
 * than a second), kills it, and keeps the load on for `afterMs`.
 */
async function loadAndKill(lb: LoadBalancer, dead: string, kill: () => void | Promise<void>, intervalMs: number, afterMs = 1800): Promise<{ outcomes: Outcome[]; watch: Watch }> {
  const member = lb.balancer.members.get(dead)!;
  let watch: Watch | undefined;
  let stop!: () => void;
  const stopped = new Promise<void>((r) => (stop = r));
  const killer = (async () => {
    const t0 = performance.now();
    while ((performance.now() - t0 < 1000 || member.requests - member.inFlight < 30) && performance.now() - t0 < 15_000) await sleep(10);
    const killAt = performance.now();
    const killWall = Date.now();
    const inFlightAtKill = member.inFlight;
    await kill();
    await sleep(intervalMs + 200);
    watch = { killAt, killWall, inFlightAtKill, requestsAfterInterval: member.requests };
    await sleep(afterMs - intervalMs - 200);
    stop();
  })();
  const outcomes = await drive(`http://127.0.0.1:${lb.port}`, { concurrency: 24, stop: stopped, path: mixedLoad });
  await killer;
  return { outcomes, watch: watch! };
}

function check(outcomes: readonly Outcome[], watch: Watch, dead: string, survivors: readonly string[]): Outcome[] {
  const failed = outcomes.filter((o) => o.error !== undefined || (o.status ?? 0) >= 500);
  const ok = outcomes.filter((o) => !failed.includes(o));
  // Under load on every edge before the kill, and plenty of traffic after it.
  expect(ok.filter((o) => o.endedAt < watch.killAt && o.servedBy === dead).length).toBeGreaterThan(20);
  expect(watch.inFlightAtKill).toBeGreaterThan(0);
  const after = ok.filter((o) => o.startedAt > watch.killAt);
  expect(after.length).toBeGreaterThan(50);
  expect(new Set(after.map((o) => o.servedBy)).size).toBe(survivors.length);
  for (const o of after) expect(survivors).toContain(o.servedBy);
  // Only requests in flight on the dead edge when it died may fail.
  expect(failed.length, JSON.stringify(failed.slice(0, 5))).toBeLessThanOrEqual(watch.inFlightAtKill);
  for (const f of failed) {
    expect(f.startedAt).toBeLessThan(watch.killAt);
    if (f.servedBy !== undefined) expect(f.servedBy).toBe(dead);
  }
  return failed;
}

describe('an edge dies under load', () => {
  it('SIGKILL of an outpost edge process: no request fails but those in flight on it, and its traffic moves at once', async () => {
    const origin: DemoOrigin = await startDemoOrigin();
    cleanups.push(() => origin.close());
    // edge-2 is a whole `outpost start` node (primary and worker processes), the victim; edge-1
    // and edge-3 run in this process (starting three nodes takes long on a busy machine).
    const dir = tempDir('outpost-lb-node-');
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const victim: NodeProcess = await startNodeProcess(dir, {
      edge: { workers: 1, name: 'edge-2' },
      upstream: { pools: { default: { peers: [origin.url], readTimeout: '5s' } } },
      demoOrigin: { enabled: false },
      compute: { enabled: false, store: { path: join(dir, 'store') } },
      cache: { disk: { path: join(dir, 'cache') } },
      log: { level: 'warn' },
    });
    cleanups.push(() => victim.stop('SIGKILL'));
    const [one, three] = await startEdges(2, origin.url);
    cleanups.push(() => Promise.all([one!.close(), three!.close()]));
    const lb = await startLb(
      [
        { name: 'edge-1', url: one!.url },
        { name: 'edge-2', url: victim.base },
        { name: 'edge-3', url: three!.url },
      ],
      { healthCheck: { interval: '300ms', timeout: '300ms', fall: 1, rise: 2 } },
    );
    cleanups.push(() => lb.close());
    const workers = await workerPids(victim.admin);
    expect(workers.length).toBe(1);

    // Warm the victim up (its first requests compile its code) before it counts.
    for (let i = 0; i < 30; i++) await fetch(`${victim.base}/hot/${i}?max_age=60`).then((r) => r.arrayBuffer());
    const interval = 300;
    const { outcomes, watch } = await loadAndKill(
      lb,
      'edge-2',
      () => {
        // The worker serves; the primary would start another, so both go at once.
        for (const pid of [...workers, victim.child.pid!]) process.kill(pid, 'SIGKILL');
      },
      interval,
    );
    const failed = check(outcomes, watch, 'edge-2', ['edge-1', 'edge-3']);
    // Passive health (refused connections) takes it out before an active check even has to.
    const member = lb.balancer.members.get('edge-2')!;
    expect(member.snapshot().state).toBe('down');
    const movedMs = member.since - watch.killWall;
    expect(movedMs).toBeLessThan(interval);
    expect(member.requests).toBe(watch.requestsAfterInterval);
    console.log(`SIGKILL: ${outcomes.length} requests, ${failed.length} failed (in flight on the dead edge: ${watch.inFlightAtKill}), taken out ${movedMs} ms after the kill`);
  });

  it('with passive health off, active checks move traffic within one interval (edges cut off the network)', async () => {
    const origin: DemoOrigin = await startDemoOrigin();
    cleanups.push(() => origin.close());
    const edges: TestEdge[] = await startEdges(3, origin.url);
    cleanups.push(() => Promise.all(edges.map((e) => e.close())));
    // Each edge is reached through a TCP proxy: cutting it is the edge's host vanishing.
    const proxies: TcpProxy[] = await Promise.all(edges.map((e) => startTcpProxy(e.node.edge.port)));
    cleanups.push(() => Promise.all(proxies.map((p) => p.close())));
    const interval = 300;
    const lb = await startLb(
      edges.map((e, i) => ({ name: e.name, url: `http://127.0.0.1:${proxies[i]!.port}` })),
      { policy: 'leastconn', healthCheck: { interval: `${interval}ms`, timeout: '300ms', fall: 1, rise: 2 }, passive: { enabled: false } },
    );
    cleanups.push(() => lb.close());

    const { outcomes, watch } = await loadAndKill(lb, 'edge-3', () => proxies[2]!.cut(), interval);
    const failed = check(outcomes, watch, 'edge-3', ['edge-1', 'edge-2']);
    // Requests that reached it in the meantime were refused and sent elsewhere (no failures above).
    const member = lb.balancer.members.get('edge-3')!;
    expect(member.snapshot()).toMatchObject({ state: 'down', down: ['check'] });
    const moved = member.since - watch.killWall;
    // One interval, plus some scheduling slack: this process also runs the edges and the load.
    expect(moved).toBeLessThan(interval + 150);
    expect(member.requests).toBe(watch.requestsAfterInterval);
    console.log(`cut: ${outcomes.length} requests, ${failed.length} failed (in flight: ${watch.inFlightAtKill}), taken out ${moved} ms after the cut`);
  });
});
