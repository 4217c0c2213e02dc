import { describe, expect, it } from 'vitest';
import { KV_COMMANDS, MemoryKv, parseKvCommand } from './kv-commands.ts';

describe('CU data API commands', () => {
  it('normalizes a valid call: lower-case name, keys apart, numbers as strings', () => {
    expect(parseKvCommand('SET', ['k', 5, 'ex', '10'])).toEqual({ name: 'set', keys: ['k'], args: ['5', 'EX', '10'] });
    expect(parseKvCommand('del', ['a', 'b'])).toEqual({ name: 'del', keys: ['a', 'b'], args: [] });
    expect(parseKvCommand('hset', ['h', 'f', 1, 'g', 'x'])).toEqual({ name: 'hset', keys: ['h'], args: ['f', '1', 'g', 'x'] });
    expect(parseKvCommand('incrby', ['n', '-3'])).toEqual({ name: 'incrby', keys: ['n'], args: ['-3'] });
  });

  it('lists exactly the allowed commands', () => {
    expect([...KV_COMMANDS]).toEqual(['get', 'set', 'incr', 'incrby', 'decr', 'expire', 'pexpire', 'ttl', 'del', 'exists', 'hget', 'hset', 'hincrby', 'hgetall', 'sadd', 'srem', 'smembers', 'sismember']);
  });

  it('refuses keys that are not non-empty strings of at most 1024 bytes', () => {
    expect(() => parseKvCommand('get', ['k'.repeat(1025)])).toThrow(/at most 1024 bytes/);
    expect(() => parseKvCommand('del', ['a', null as unknown as string])).toThrow(/expected a key .*got null/);
    expect(() => parseKvCommand('get', 'k' as unknown as string[])).toThrow(/expected an array of arguments/);
  });

  it('counts TTLs on its own clock, as Redis rounds them', () => {
    let now = 1_000_000;
    const kv = new MemoryKv({ now: () => now });
    kv.run(parseKvCommand('set', ['k', 'v', 'PX', 2600]));
    expect(kv.run(parseKvCommand('ttl', ['k']))).toBe(3);
    now += 2000;
    expect(kv.run(parseKvCommand('ttl', ['k']))).toBe(1);
    now += 600;
    expect(kv.run(parseKvCommand('get', ['k']))).toBeNull();
    // set without EX clears an earlier TTL; incr keeps it.
    kv.run(parseKvCommand('set', ['c', '1', 'EX', 10]));
    kv.run(parseKvCommand('incr', ['c']));
    expect(kv.run(parseKvCommand('ttl', ['c']))).toBe(10);
    kv.run(parseKvCommand('set', ['c', '1']));
    expect(kv.run(parseKvCommand('ttl', ['c']))).toBe(-1);
  });

  it('sweeps expired keys in bounded steps', () => {
    let now = 0;
    const kv = new MemoryKv({ now: () => now });
    for (let i = 0; i < 100; i++) kv.run(parseKvCommand('set', [`k${i}`, 'v', 'PX', i < 50 ? 10 : 1000]));
    now = 20;
    expect(kv.sweep(30)).toBe(30);
    expect(kv.sweep(30)).toBe(20);
    expect(kv.sweep(60)).toBe(0);
    expect(kv.size).toBe(50);
  });

  it('refuses counters beyond the safe integer range instead of losing precision', () => {
    const kv = new MemoryKv();
    kv.run(parseKvCommand('set', ['n', String(Number.MAX_SAFE_INTEGER)]));
    expect(() => kv.run(parseKvCommand('incr', ['n']))).toThrow(/would overflow/);
    kv.run(parseKvCommand('set', ['lead', '007']));
    expect(() => kv.run(parseKvCommand('incr', ['lead']))).toThrow(/not an integer/);
  });
});
