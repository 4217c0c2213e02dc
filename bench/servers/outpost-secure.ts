// Outpost with issue 5's security gates on, for the gate-overhead scenario: a 10,000-entry IP deny list
// (stored at run time through the admin API, as users load theirs), a node-wide rate limit far above
// any rate the bench reaches (so it never refuses, but every request spends a leased token and the
// workers keep renewing leases), and the WAF in block mode. Same config as `outpost` otherwise.
import { OutpostError } from '../../src/errors.ts';
import { sleep } from '../proc.ts';
import { adminJson, adminMetrics, adminPortOf, httpCall, metricSum, type OutpostServer } from './outpost-admin.ts';
import * as outpost from './outpost.ts';
import type { RunningServer } from './types.ts';

export const DENY_LIST = 'bench-deny';
export const DENY_ENTRIES = 10_000;
/** Inside one of the list's blocks; loopback, so the bench can send from it and see the list refuse. */
export const DENIED_PROBE_ADDRESS = '127.66.0.1';
const PROBE_BLOCK = '127.66.0.0/16';
/** An XSS payload the WAF's `xss-script-tag` rule blocks. */
export const WAF_ATTACK_PATH = '/static/1k?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E';

export const SECURITY_CONFIG = {
  ipLists: { deny: [DENY_LIST] },
  rateLimit: { rate: '1000000/s', burst: 1_000_000, key: 'ip' },
  waf: { mode: 'block' },
} as const;

/** mulberry32: the same list every run, so runs compare. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/**
 * `count` distinct IPv4 CIDR blocks (mostly /32, some /24 to /16), none inside 127.0.0.0/8 but the probe
 * block 127.66.0.0/16, so 127.0.0.1 (where every measured request comes from) is never denied.
 */
export function denyEntries(count = DENY_ENTRIES, seed = 5): string[] {
  const next = random(seed);
  const out = new Set<string>([PROBE_BLOCK]);
  while (out.size < count) {
    const r = next();
    const prefix = r < 0.7 ? 32 : r < 0.9 ? 24 : 16 + Math.floor(next() * 8);
    const first = 1 + Math.floor(next() * 223);
    if (first === 127) continue;
    const addr = ((first << 24) | Math.floor(next() * 2 ** 24)) >>> 0;
    const masked = prefix === 32 ? addr : (addr & ~(2 ** (32 - prefix) - 1)) >>> 0;
    const text = [24, 16, 8, 0].map((s) => (masked >>> s) & 255).join('.');
    out.add(prefix === 32 ? text : `${text}/${prefix}`);
  }
  return [...out];
}

/** Starts Outpost with the gates, stores the deny list and waits until the worker(s) refuse the probe address. */
export async function start(originPort: number, workers: number, opts: outpost.OutpostOptions): Promise<OutpostServer> {
  const server = await outpost.start(originPort, workers, { ...opts, id: 'outpost-secure', extra: { security: SECURITY_CONFIG } });
  try {
    await adminJson(server.adminPort, 'PUT', `/lists/${DENY_LIST}`, { entries: denyEntries(), description: 'bench: 10,000 random blocks' });
    // Workers may be round-robined: the list is applied once several probes in a row are refused.
    const deadline = Date.now() + 20_000;
    let refusedInARow = 0;
    while (refusedInARow < 2 * workers) {
      if (Date.now() > deadline) throw new OutpostError('INTERNAL', `outpost-secure: the deny list did not reach every worker within 20 s`);
      const r = await httpCall(server.port, '/static/1k', { localAddress: DENIED_PROBE_ADDRESS });
      refusedInARow = r.status === 403 ? refusedInARow + 1 : 0;
      if (r.status !== 403) await sleep(100);
    }
    return server;
  } catch (e) {
    await server.stop();
    throw e;
  }
}

export interface GateCheck {
  readonly listEntries: number;
  readonly deniedStatus: number;
  readonly wafStatus: number;
  readonly wafRule: string;
  /** outpost_security_refusals_total deltas around one request from a denied address and one attack. */
  readonly ipRefusals: number;
  readonly wafRefusals: number;
  readonly rateLimitMode: string;
}

/** Proves the gates are on in the running server; throws when one is not, so no ratio is reported for a plain server. */
export async function checkGates(server: RunningServer): Promise<GateCheck> {
  const admin = adminPortOf(server);
  const lists = (await adminJson(admin, 'GET', '/lists')) as { lists: Array<{ name: string; entries: number }> };
  const listEntries = lists.lists.find((l) => l.name === DENY_LIST)?.entries ?? 0;
  const before = await adminMetrics(admin);
  const denied = await httpCall(server.port, '/static/1k', { localAddress: DENIED_PROBE_ADDRESS });
  const attack = await httpCall(server.port, WAF_ATTACK_PATH);
  const after = await adminMetrics(admin);
  const refusals = (gate: string): number =>
    metricSum(after, 'outpost_security_refusals_total', { gate }) - metricSum(before, 'outpost_security_refusals_total', { gate });
  const mode = ['local', 'global'].find((m) => metricSum(after, 'outpost_ratelimit_mode', { mode: m }) > 0) ?? 'not configured';
  const check: GateCheck = {
    listEntries,
    deniedStatus: denied.status,
    wafStatus: attack.status,
    wafRule: String(attack.headers['x-outpost-waf'] ?? ''),
    ipRefusals: refusals('ipLists'),
    wafRefusals: refusals('waf'),
    rateLimitMode: mode,
  };
  const wrong: string[] = [];
  if (check.listEntries !== DENY_ENTRIES) wrong.push(`GET /lists shows ${check.listEntries} entries in ${DENY_LIST}, expected ${DENY_ENTRIES}`);
  if (check.deniedStatus !== 403 || check.ipRefusals !== 1) wrong.push(`a request from ${DENIED_PROBE_ADDRESS} got ${check.deniedStatus} (ipLists refusals +${check.ipRefusals}), expected 403 and +1`);
  if (check.wafStatus !== 403 || check.wafRefusals !== 1) wrong.push(`the WAF attack got ${check.wafStatus} (waf refusals +${check.wafRefusals}), expected 403 and +1`);
  if (check.rateLimitMode === 'not configured') wrong.push('outpost_ratelimit_mode is absent: no rate limit is configured');
  if (wrong.length > 0) throw new OutpostError('INTERNAL', `outpost-secure gates are not all on: ${wrong.join('; ')}`);
  return check;
}
