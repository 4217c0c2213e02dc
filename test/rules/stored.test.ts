// Rules stored through the admin API reach the edge without a restart, like CUs, and a rule set
// that does not compile in this node leaves the last good one running.
import { afterEach, describe, expect, it } from 'vitest';
import { get, sleep, startStack, type Stack, until } from '../helpers.ts';

let s: Stack | undefined;
afterEach(async () => {
  await s?.close();
  s = undefined;
});

const put = (admin: string, value: unknown) =>
  get(`${admin}/rules`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(value) });

describe('stored rules', () => {
  it('apply at the edge once saved, and change when saved again', async () => {
    s = await startStack();
    const stack = s;
    expect((await put(s.admin, { rules: [{ name: 'deny-admin', when: { path: '/admin/' }, then: { deny: 403 } }] })).status).toBe(200);
    await until('the rule to apply', async () => (await get(`${stack.base}/admin/x`)).status === 403);
    expect((await get(`${s.base}/public`)).status).toBe(200);
    await put(s.admin, { rules: [{ name: 'tag', when: { path: '/public' }, then: { responseHeaders: { set: { 'x-rule': 'yes' } } } }] });
    await until('the new set to apply', async () => (await get(`${stack.base}/admin/x`)).status === 200);
    expect((await get(`${s.base}/public`)).header('x-rule')).toBe('yes');
    const explained = await get(`${s.admin}/rules/explain`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ request: { url: 'http://x.test/public' } }) });
    expect(explained.status).toBe(200);
    expect(explained.text).toContain('tag');
  });

  it('are refused with the exact place of the mistake, the running set unchanged', async () => {
    s = await startStack();
    const bad = await put(s.admin, { rules: [{ when: { path: '/a/' }, then: { deny: 403 } }, { when: { header: { name: 'bad header' } }, then: { deny: 403 } }] });
    expect(bad.status).toBe(400);
    expect(bad.text).toMatch(/rules\[1\]\.when\.header\.name/);
    expect((await get(`${s.base}/a/x`)).status).toBe(200);
  });

  it('skip a version written behind the API that does not compile, keeping the last good set', async () => {
    s = await startStack();
    const stack = s;
    await put(s.admin, { rules: [{ when: { path: '/a/' }, then: { deny: 451 } }] });
    await until('the good set', async () => (await get(`${stack.base}/a/x`)).status === 451);
    // Straight into the store, as redis-cli could: routes to a pool this node does not have.
    await s.node.plane.store.putDoc('rules', { rules: [{ when: { path: '/a/' }, then: { pool: 'nowhere' } }] });
    await sleep(200);
    expect((await get(`${s.base}/a/x`)).status).toBe(451);
  });
});
