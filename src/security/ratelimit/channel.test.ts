// The worker side of the IPC channel: one message per turn of the event loop, answers matched
// back in order, modes passed on only when they change.
import { describe, expect, it } from 'vitest';
import { IpcRateLimitChannel, type RateLimitModes, type RateLimitWorkerMessage } from './channel.ts';

describe('the rate-limit IPC channel of a worker', () => {
  it('sends the asks of one turn in one message and resolves each with its own grant', async () => {
    const sent: RateLimitWorkerMessage[] = [];
    const ch = new IpcRateLimitChannel((m) => sent.push(m));
    const answers = [ch.lease(0, 'a', 5), ch.lease(0, 'b', 1), ch.lease(1, 'a', 2)];
    expect(sent).toHaveLength(0);
    await new Promise((r) => setImmediate(r));
    expect(sent).toEqual([{ t: 'outpost:rl-lease', id: 1, asks: [[0, 'a', 5], [0, 'b', 1], [1, 'a', 2]] }]);
    ch.receive({ t: 'outpost:rl-grant', id: 1, grants: [[5, 10, 0], [0, 0, 40], [2, 7, 0]], modes: ['local', 'global'] });
    expect(await Promise.all(answers)).toEqual([
      { granted: 5, remaining: 10, waitMs: 0 },
      { granted: 0, remaining: 0, waitMs: 40 },
      { granted: 2, remaining: 7, waitMs: 0 },
    ]);
  });

  it('asks for the modes once and reports only changes', async () => {
    const sent: RateLimitWorkerMessage[] = [];
    const ch = new IpcRateLimitChannel((m) => sent.push(m));
    const seen: RateLimitModes[] = [];
    ch.watchModes((m) => seen.push(m));
    ch.watchModes(() => undefined);
    expect(sent).toEqual([{ t: 'outpost:rl-lease', id: 1, asks: [] }]);
    ch.receive({ t: 'outpost:rl-grant', id: 1, grants: [], modes: ['global'] });
    ch.receive({ t: 'outpost:rl-modes', modes: ['global'] });
    ch.receive({ t: 'outpost:rl-modes', modes: ['local'] });
    expect(seen).toEqual([['global'], ['local']]);
  });

  it('sends unspent tokens back in one message per limit', () => {
    const sent: RateLimitWorkerMessage[] = [];
    const ch = new IpcRateLimitChannel((m) => sent.push(m));
    ch.giveBack(2, []);
    ch.giveBack(2, [['k', 3], ['j', 1]]);
    expect(sent).toEqual([{ t: 'outpost:rl-return', index: 2, returns: [['k', 3], ['j', 1]] }]);
  });
});
