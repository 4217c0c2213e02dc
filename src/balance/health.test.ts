// Active checks against real HTTP servers that go bad, hang and die; passive ejection and cool-down.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Balancer, type BalancerOptions, type HealthCheckOptions } from './balancer.ts';

const servers: Server[] = [];
const balancers: Balancer<null>[] = [];
afterEach(async () => {
  await Promise.all(balancers.splice(0).map((b) => b.close()));
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    s.close();
  }
});

interface Backend {
  readonly url: string;
  /** What /health answers: a status, or 'hang' (never answers). */
  health: number | 'hang';
  checks: number;
  kill(): Promise<void>;
  revive(): Promise<void>;
}

async function backend(): Promise<Backend> {
  const b: Backend = {
    url: '',
    health: 200,
    checks: 0,
    kill: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
    revive: () => new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r())),
  };
  const server = createServer((req, res) => {
    if (req.url !== '/health') return res.end('hello');
    b.checks++;
    if (b.health === 'hang') return;
    res.writeHead(b.health).end();
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  (b as { url: string }).url = `http://127.0.0.1:${port}`;
  return b;
}

const fast: HealthCheckOptions = { path: '/health', interval: 50, timeout: 150, rise: 2, fall: 2, expect: [200] };

function balancer(urls: string[], extra: Partial<BalancerOptions<null>> = {}): Balancer<null> {
  const b = new Balancer<null>({ policy: 'rr', create: () => null, healthCheck: fast, ...extra }, urls.map((url, i) => ({ name: `m${i + 1}`, url })));
  balancers.push(b);
  return b;
}

async function until(cond: () => boolean, ms = 3000): Promise<number> {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > ms) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
  return performance.now() - t0;
}

describe('active health checks', () => {
  it('takes a member down after `fall` bad statuses and back up after `rise` good ones', async () => {
    const a = await backend();
    const b = balancer([a.url]);
    const m = b.members.get('m1')!;
    await until(() => a.checks >= 2);
    expect(m.available).toBe(true);
    a.health = 503;
    const checksAtChange = a.checks;
    await until(() => !m.available);
    // Two failed checks in a row, no fewer.
    expect(a.checks - checksAtChange).toBeGreaterThanOrEqual(2);
    expect(m.snapshot()).toMatchObject({ state: 'down', down: ['check'], lastError: 'check: status 503' });
    a.health = 200;
    const checksAtRecovery = a.checks;
    await until(() => m.available);
    expect(a.checks - checksAtRecovery).toBeGreaterThanOrEqual(2);
  });

  it('counts a refused connection and a check that exceeds its timeout as failures', async () => {
    const dead = await backend();
    const hung = await backend();
    const fine = await backend();
    await dead.kill();
    hung.health = 'hang';
    const states: string[] = [];
    const b = balancer([dead.url, hung.url, fine.url], { onState: (m, up) => states.push(`${m.name} ${up ? 'up' : 'down'}`) });
    const took = await until(() => !b.members.get('m1')!.available && !b.members.get('m2')!.available);
    // fall 2 × (interval 50 ms or timeout 150 ms): well under a second.
    expect(took).toBeLessThan(1000);
    expect(b.members.get('m1')!.lastError).toMatch(/ECONNREFUSED/);
    expect(b.members.get('m2')!.lastError).toBe('check: timeout');
    expect(b.members.get('m3')!.available).toBe(true);
    expect(states.sort()).toEqual(['m1 down', 'm2 down']);
    // Requests now go to the only healthy member.
    for (let i = 0; i < 6; i++) expect(b.acquire()!.name).toBe('m3');
  });

  it('moves traffic off a member that dies within fall × interval, and back when it returns', async () => {
    const a = await backend();
    const c = await backend();
    const b = balancer([a.url, c.url]);
    await until(() => a.checks >= 1 && c.checks >= 1);
    await a.kill();
    const took = await until(() => !b.members.get('m1')!.available);
    expect(took).toBeLessThan(2 * fast.interval + 200);
    await a.revive();
    await until(() => b.members.get('m1')!.available);
    const names = new Set(Array.from({ length: 4 }, () => b.acquire()!.name));
    expect([...names].sort()).toEqual(['m1', 'm2']);
  });

  it('checks members added at run time at once and stops checking removed ones', async () => {
    const a = await backend();
    const late = await backend();
    const b = balancer([a.url]);
    late.health = 500;
    b.members.add({ name: 'late', url: late.url });
    await until(() => !b.members.get('late')!.available);
    b.members.remove('late');
    const n = late.checks;
    await new Promise((r) => setTimeout(r, 200));
    expect(late.checks).toBeLessThanOrEqual(n + 1);
  });
});

describe('passive health', () => {
  it('ejects a member after consecutive failures, for the cool-down, then gives it one trial', async () => {
    const b = balancer(['http://127.0.0.1:1', 'http://127.0.0.1:2'], {
      healthCheck: undefined,
      passive: { enabled: true, failures: 3, coolDown: 150, statuses: ['5xx'] },
    });
    const m = b.members.get('m1')!;
    b.failure(m, 'connect');
    b.failure(m, 'connect');
    b.success(m); // a success in between starts the count again
    b.failure(m, 'connect');
    b.status(m, 503);
    expect(m.available).toBe(true);
    b.status(m, 500);
    expect(m.available).toBe(false);
    expect(m.snapshot()).toMatchObject({ state: 'down', down: ['passive'], failures: 5, lastError: 'status 500' });
    for (let i = 0; i < 4; i++) expect(b.acquire()!.name).toBe('m2');
    await until(() => m.available);
    // Half-open: a single failure ejects it again…
    b.failure(m, 'timeout');
    expect(m.available).toBe(false);
    await until(() => m.available);
    // …while a success (a 404 is one) makes it fully trusted again.
    b.status(m, 404);
    b.failure(m, 'timeout');
    expect(m.available).toBe(true);
  });

  it('ignores statuses it is not told to count, and does nothing when switched off', () => {
    const b = balancer(['http://127.0.0.1:1'], { healthCheck: undefined, passive: { enabled: true, failures: 1, coolDown: 1000, statuses: [503] } });
    const m = b.members.get('m1')!;
    b.status(m, 500);
    expect(m.available).toBe(true);
    const off = balancer(['http://127.0.0.1:1'], { healthCheck: undefined, passive: { enabled: false, failures: 1, coolDown: 1000, statuses: [503] } });
    const o = off.members.get('m1')!;
    off.failure(o, 'connect');
    expect(o.available).toBe(true);
    expect(o.failures).toBe(1);
  });

  it('tries every member anyway when none is healthy (panic mode)', () => {
    const b = balancer(['http://127.0.0.1:1', 'http://127.0.0.1:2'], { healthCheck: undefined, passive: { enabled: true, failures: 1, coolDown: 10_000, statuses: [] } });
    for (const m of b.members.list()) b.failure(m, 'connect');
    expect(b.availableCount).toBe(0);
    const first = b.acquire()!;
    const second = b.acquire('', new Set([first]))!;
    expect(new Set([first.name, second.name]).size).toBe(2);
    expect(b.acquire('', new Set([first, second]))).toBeUndefined();
  });
});
