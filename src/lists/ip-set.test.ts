import { BlockList } from 'node:net';
import { describe, expect, it } from 'vitest';
import { IpSet, ipv4ToNumber, ipv6ToBigInt } from './ip-set.ts';

describe('IpSet', () => {
  it('parses dotted quads and refuses what is not one', () => {
    expect(ipv4ToNumber('0.0.0.0')).toBe(0);
    expect(ipv4ToNumber('255.255.255.255')).toBe(0xffffffff);
    expect(ipv4ToNumber('10.1.2.3')).toBe(0x0a010203);
    for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '1..2.3', '1.2.3.', 'a.b.c.d', '1.2.3.4 ', '1234.1.1.1']) expect(ipv4ToNumber(bad)).toBe(-1);
  });

  it('parses IPv6 with ::, an embedded IPv4 tail and a zone', () => {
    expect(ipv6ToBigInt('::')).toBe(0n);
    expect(ipv6ToBigInt('::1')).toBe(1n);
    expect(ipv6ToBigInt('2001:db8::1')).toBe((0x20010db8n << 96n) | 1n);
    expect(ipv6ToBigInt('::ffff:192.0.2.1')).toBe((0xffffn << 32n) | 0xc0000201n);
    expect(ipv6ToBigInt('fe80::1%eth0')).toBe((0xfe80n << 112n) | 1n);
    expect(ipv6ToBigInt('1:2:3:4:5:6:7:8')).toBe(0x00010002000300040005000600070008n);
    expect(ipv6ToBigInt('not-an-address')).toBeUndefined();
  });

  it('matches addresses and CIDR blocks of both families', () => {
    const set = IpSet.from(['192.0.2.7', '10.0.0.0/8', '172.16.0.0/12', '2001:db8::/32', '::1', '203.0.113.0/24']);
    const inside = ['192.0.2.7', '10.0.0.0', '10.255.255.255', '172.31.1.1', '2001:db8::1', '2001:db8:ffff:ffff:ffff:ffff:ffff:ffff', '::1', '203.0.113.255', '::ffff:10.1.1.1'];
    const outside = ['192.0.2.6', '192.0.2.8', '11.0.0.0', '9.255.255.255', '172.32.0.0', '2001:db9::', '2001:db7:ffff::', '::2', '203.0.114.0', '', 'garbage', '::ffff:11.0.0.1'];
    for (const ip of inside) expect(set.has(ip), ip).toBe(true);
    for (const ip of outside) expect(set.has(ip), ip).toBe(false);
  });

  it('normalises a block given with host bits set, and merges overlapping and adjacent blocks', () => {
    const set = IpSet.from(['10.1.2.3/16', '10.0.0.0/16', '10.2.0.0/15', '10.1.0.0/24']);
    expect(set.has('10.0.0.1')).toBe(true);
    expect(set.has('10.3.255.255')).toBe(true);
    expect(set.has('10.4.0.0')).toBe(false);
    expect(set.ranges).toEqual({ v4: 1, v6: 0 });
    expect(set.size).toBe(4);
  });

  it('treats an IPv4-mapped IPv6 block as the IPv4 block it carries', () => {
    const set = IpSet.from(['::ffff:198.51.100.0/120']);
    expect(set.has('198.51.100.9')).toBe(true);
    expect(set.has('::ffff:198.51.100.9')).toBe(true);
    expect(set.has('198.51.101.0')).toBe(false);
  });

  it('matches everything with 0.0.0.0/0 and ::/0', () => {
    const set = IpSet.from(['0.0.0.0/0', '::/0']);
    for (const ip of ['0.0.0.0', '255.255.255.255', '::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff']) expect(set.has(ip)).toBe(true);
  });

  it('refuses bad entries, naming the first one and its index', () => {
    expect(() => IpSet.from(['10.0.0.0/8', '10.0.0.0/33'], 'deny')).toThrow(/deny\[1\]: "10.0.0.0\/33" has a prefix length above 32/);
    expect(() => IpSet.from(['::/129'])).toThrow(/prefix length above 128/);
    expect(() => IpSet.from(['1.2.3.4/x'])).toThrow(/bad prefix length/);
    expect(() => IpSet.from(['example.com'])).toThrow(/entries\[0\]: "example.com" is not an IPv4 or IPv6 address/);
    expect(() => IpSet.from(['1.2.3.4', ''])).toThrow(/entries\[1\]/);
  });

  it('agrees with node:net BlockList on 2,000 random addresses against 1,000 random blocks', () => {
    let seed = 42;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0), seed);
    const entries: string[] = [];
    const reference = new BlockList();
    for (let i = 0; i < 1000; i++) {
      const n = rnd();
      const ip = `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
      const bits = 8 + (rnd() % 25);
      entries.push(`${ip}/${bits}`);
      reference.addSubnet(ip, bits, 'ipv4');
    }
    const set = IpSet.from(entries);
    let agreed = 0;
    let hits = 0;
    for (let i = 0; i < 2000; i++) {
      const n = rnd();
      const ip = `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
      const want = reference.check(ip, 'ipv4');
      if (set.has(ip) === want) agreed++;
      if (want) hits++;
    }
    expect(agreed).toBe(2000);
    expect(hits).toBeGreaterThan(0);
  });

  it('answers for a 100,000-entry list in a binary search (figure printed)', () => {
    const entries: string[] = [];
    for (let i = 0; i < 100_000; i++) entries.push(`${(i >> 16) + 1}.${(i >> 8) & 255}.${i & 255}.0/28`);
    const t0 = performance.now();
    const set = IpSet.from(entries);
    const buildMs = performance.now() - t0;
    expect(set.has('1.0.5.3')).toBe(true);
    expect(set.has('1.0.5.17')).toBe(false);
    const probes = ['1.0.5.3', '2.128.7.15', '200.1.1.1', '1.0.5.17'];
    const n = 200_000;
    let found = 0;
    const t1 = performance.now();
    for (let i = 0; i < n; i++) if (set.has(probes[i & 3]!)) found++;
    const perLookupNs = ((performance.now() - t1) * 1e6) / n;
    expect(found).toBe(n / 2);
    console.log(`IpSet: 100,000 entries built in ${buildMs.toFixed(0)} ms; ${perLookupNs.toFixed(0)} ns per IPv4 lookup`);
  });
});
