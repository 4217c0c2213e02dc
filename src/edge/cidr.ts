// Address lists on Node's own net.BlockList (it matches IPv4, IPv6 and IPv4-mapped IPv6).
import { BlockList, isIP } from 'node:net';

export function parseCidrList(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const e of entries) {
    const [addr, bits] = e.split('/') as [string, string | undefined];
    const type = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(addr, type);
    else list.addSubnet(addr, Number(bits), type);
  }
  return list;
}

export function isAllowed(list: BlockList, ip: string): boolean {
  const type = isIP(ip);
  if (type === 0) return false;
  return list.check(ip, type === 6 ? 'ipv6' : 'ipv4');
}
