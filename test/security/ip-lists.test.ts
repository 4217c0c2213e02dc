// IP allow/deny lists: configured by name, filled and changed at run time through the admin API,
// reaching the edge without a restart.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/load.ts';
import { securityHooks } from '../../src/security/cascade.ts';
import { createLogger } from '../../src/log/logger.ts';
import { get, originHits, sleep, type Stack, startStack, until } from '../helpers.ts';

let s: Stack | undefined;
afterEach(async () => {
  await s?.close();
  s = undefined;
});

const json = (body: unknown) => ({ headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe('IP lists', () => {
  it('refuses addresses on a stored deny list once it is written, and lets them through once removed', async () => {
    s = await startStack({ security: { ipLists: { deny: ['blocked'] } } });
    const base = s.base;
    expect((await get(`${base}/page`)).status).toBe(200);
    const put = await get(`${s.admin}/lists/blocked`, { method: 'PUT', ...json({ entries: ['192.0.2.0/24', '127.0.0.1'], description: 'abuse' }) });
    expect(put.status).toBe(200);
    expect(JSON.parse(put.text)).toMatchObject({ name: 'blocked', entries: 2, description: 'abuse' });
    const ms = await until('the list to apply', async () => (await get(`${base}/page?x=1`)).status === 403);
    const refused = await get(`${base}/never`);
    expect(refused.status).toBe(403);
    expect(refused.header('cache-control')).toBe('no-store');
    expect(originHits(s.origin, '/never')).toBe(0);

    const removed = await get(`${s.admin}/lists/blocked/remove`, { method: 'POST', ...json({ entries: ['127.0.0.1'] }) });
    expect(JSON.parse(removed.text)).toMatchObject({ entries: 1, removed: 1 });
    await until('the removal to apply', async () => (await get(`${base}/page?x=2`)).status === 200);
    const metrics = await get(`${s.admin}/metrics`);
    expect(metrics.text).toMatch(/outpost_security_refusals_total\{gate="ipLists",status="403"\} [1-9]/);
    console.log(`IP list change applied in ${ms.toFixed(0)} ms`);
  });

  it('lets an allow-listed address through a deny list, and with allowOnly refuses everyone else', async () => {
    s = await startStack({ security: { ipLists: { allow: ['office'], deny: ['127.0.0.0/8'] } } });
    expect((await get(`${s.base}/a`)).status).toBe(403);
    await get(`${s.admin}/lists/office/add`, { method: 'POST', ...json({ entries: ['127.0.0.1'] }) });
    const first = s;
    await until('the allow list to apply', async () => (await get(`${first.base}/a`)).status === 200);
    await s.close();

    s = await startStack({ security: { ipLists: { allow: ['10.0.0.0/8'], allowOnly: true, paths: ['/admin/'] } } });
    expect((await get(`${s.base}/admin/panel`)).status).toBe(403);
    expect((await get(`${s.base}/public`)).status).toBe(200);
  });

  it('takes a 100,000-entry list and still answers every request', async () => {
    s = await startStack({ security: { ipLists: { deny: ['big'] } } });
    const entries: string[] = [];
    for (let i = 0; i < 100_000; i++) entries.push(`${(i >> 16) + 11}.${(i >> 8) & 255}.${i & 255}.0/28`);
    entries.push('2001:db8::/32');
    const t0 = performance.now();
    const put = await get(`${s.admin}/lists/big`, { method: 'PUT', ...json({ entries }) });
    expect(put.status).toBe(200);
    const check = await get(`${s.admin}/lists/big/check?ip=11.0.5.3`);
    expect(JSON.parse(check.text)).toEqual({ list: 'big', ip: '11.0.5.3', listed: true });
    expect(JSON.parse((await get(`${s.admin}/lists/big/check?ip=127.0.0.1`)).text).listed).toBe(false);
    const stack = s;
    await until('the board to hold the list', async () => stack.node.board.get('iplist:big')?.version === JSON.parse(put.text).version, 5000);
    const applied = performance.now() - t0;
    expect((await get(`${s.base}/ok`)).status).toBe(200);
    const lists = JSON.parse((await get(`${s.admin}/lists`)).text) as { lists: Array<{ name: string; entries: number }> };
    expect(lists.lists).toEqual([expect.objectContaining({ name: 'big', entries: 100_001 })]);
    console.log(`100,001-entry list stored and applied in ${applied.toFixed(0)} ms`);
  });

  it('refuses bad entries with the index and the entry, and keeps the previous list', async () => {
    s = await startStack({ security: { ipLists: { deny: ['blocked'] } } });
    await get(`${s.admin}/lists/blocked`, { method: 'PUT', ...json({ entries: ['192.0.2.1'] }) });
    const bad = await get(`${s.admin}/lists/blocked`, { method: 'PUT', ...json({ entries: ['10.0.0.0/8', '10.0.0.0/40'] }) });
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.text).message).toMatch(/entries\[1\]: "10.0.0.0\/40" has a prefix length above 32/);
    const badName = await get(`${s.admin}/lists/Bad%20Name`, { method: 'PUT', ...json({ entries: [] }) });
    expect(badName.status).toBe(400);
    const current = JSON.parse((await get(`${s.admin}/lists/blocked`)).text);
    expect(current.entries).toEqual(['192.0.2.1']);
    expect((await get(`${s.admin}/lists/nope`)).status).toBe(404);
    expect((await get(`${s.admin}/lists/blocked`, { method: 'DELETE' })).status).toBe(200);
    expect((await get(`${s.admin}/lists/blocked`)).status).toBe(404);
  });

  it('is managed with `outpost list` from the command line', async () => {
    s = await startStack({ security: { ipLists: { deny: ['cli'] } } });
    const run = async (args: string[]) => {
      try {
        const r = await promisify(execFile)('bin/outpost', ['list', ...args, '--admin', s!.admin], { timeout: 20_000 });
        return { code: 0, out: r.stdout };
      } catch (err) {
        const e = err as { code: number; stdout: string; stderr: string };
        return { code: e.code, out: e.stdout + e.stderr };
      }
    };
    const file = join(s.dir, 'list.txt');
    writeFileSync(file, '# abusers\n198.51.100.0/24\n2001:db8::/48  # a comment\n\n');
    expect((await run(['load', 'cli', file, '--description', 'from a file'])).out).toMatch(/cli: 2 entries \(version \d+\)/);
    expect((await run(['add', 'cli', '127.0.0.1'])).out).toMatch(/cli: added 1; 3 entries/);
    const stack = s;
    await until('the CLI change to apply', async () => (await get(`${stack.base}/c`)).status === 403);
    expect((await run(['ls'])).out).toMatch(/cli\s+3 entries\s+v\d+\s+\S+\s+from a file/);
    expect((await run(['show', 'cli'])).out.trim().split('\n')).toEqual(['198.51.100.0/24', '2001:db8::/48', '127.0.0.1']);
    expect(await run(['check', 'cli', '198.51.100.7'])).toMatchObject({ code: 0, out: expect.stringContaining('198.51.100.7 is on cli') });
    expect((await run(['check', 'cli', '203.0.113.1'])).code).toBe(1);
    expect((await run(['remove', 'cli', '127.0.0.1'])).out).toMatch(/removed 1; 2 entries/);
    await until('the CLI removal to apply', async () => (await get(`${stack.base}/c`)).status === 200);
    const bad = await run(['add', 'cli', 'not-an-ip']);
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(/entries\[0\]: "not-an-ip" is not an IPv4 or IPv6 address/);
    expect((await run(['rm', 'cli'])).code).toBe(0);
  });

  it('judges the client behind a trusted proxy by X-Forwarded-For (edge.trustedProxies)', async () => {
    s = await startStack({ edge: { trustedProxies: ['127.0.0.1/32'] }, security: { ipLists: { deny: ['203.0.113.0/24'] } } });
    expect((await get(`${s.base}/p`, { headers: { 'x-forwarded-for': '203.0.113.5' } })).status).toBe(403);
    expect((await get(`${s.base}/p`, { headers: { 'x-forwarded-for': '203.0.113.5, 198.51.100.2' } })).status).toBe(200);
    expect((await get(`${s.base}/p`)).status).toBe(200);
    await s.close();
    // Not trusted: the header is the client's own claim and changes nothing.
    s = await startStack({ security: { ipLists: { deny: ['203.0.113.0/24'] } } });
    expect((await get(`${s.base}/p`, { headers: { 'x-forwarded-for': '203.0.113.5' } })).status).toBe(200);
  });

  it('names the setting when the gate options are wrong', () => {
    const log = createLogger('silent');
    expect(() => securityHooks(resolveConfig({ security: { ipLists: { deny: ['10.0.0.0/99'] } } }).security, log)).toThrow(/security\.ipLists: [\s\S]*10\.0\.0\.0\/99/);
    expect(() => securityHooks(resolveConfig({ security: { ipLists: {} } }).security, log)).toThrow(/security\.ipLists: [\s\S]*deny: expected at least one entry/);
    expect(() => securityHooks(resolveConfig({ security: { ipLists: { deny: ['Not A List'] } } }).security, log)).toThrow(/security\.ipLists: [\s\S]*deny\.0: expected a list name/);
  });
});
