import { describe, expect, it } from 'vitest';
import { RamTier } from './ram.ts';
import { bodyOf, describeStorageTier, put } from './tier-suite.ts';

describeStorageTier('ram', async (opts) => new RamTier(opts));

describe('ram tier', () => {
  it('hands out the body as a Buffer and the same entry on every hit', async () => {
    const tier = new RamTier({ maxBytes: 1 << 20, maxObjectBytes: 1 << 16 });
    const body = bodyOf(5000, 1);
    await put(tier, 'https://h/a', body);
    const first = tier.get('https://h/a');
    expect(first?.body.buffer?.equals(body)).toBe(true);
    expect(tier.get('https://h/a')).toBe(first);
  });

  it('keeps its own copy of the bytes written', async () => {
    const tier = new RamTier({ maxBytes: 1 << 20, maxObjectBytes: 1 << 16 });
    const chunk = Buffer.from('hello');
    const w = tier.openWrite('https://h/a')!;
    await w.write(chunk);
    chunk.fill(0);
    // Filled after write() but before commit: the caller still owned the chunk until then.
    await w.commit({ key: 'https://h/a', status: 200, headers: [], requestTime: 0, responseTime: 0, ttlMs: 0, swrMs: 0, sieMs: 0, tags: [], vary: [], size: 5 });
    const stored = tier.get('https://h/a')!.body.buffer!;
    chunk.write('world');
    expect(stored.equals(Buffer.alloc(5))).toBe(true);
  });

  it('refuses options that cannot work, naming the setting', () => {
    expect(() => new RamTier({ maxBytes: 0, maxObjectBytes: 1 })).toThrow(/maxBytes: expected a positive integer, got 0/);
    expect(() => new RamTier({ maxBytes: 100, maxObjectBytes: 200 })).toThrow(/maxObjectBytes: expected a positive integer no larger than maxBytes/);
  });
});
