// The client's address behind trusted proxies, as nginx's realip module finds it: when the peer of
// the connection is a trusted proxy (a load balancer, another Outpost in front), the client is the
// rightmost address of X-Forwarded-For (or the configured header) that is not itself a trusted
// proxy. Addresses that are not valid IPs end the walk: a client cannot forge its way past them.
import { isIP } from 'node:net';
import type { IncomingHttpHeaders } from 'node:http';
import { IpSet } from '../lists/ip-set.ts';

export type RealIp = (peer: string, headers: IncomingHttpHeaders) => string;

export function realIpResolver(trusted: readonly string[], header: string): RealIp | undefined {
  if (trusted.length === 0) return undefined;
  const set = IpSet.from(trusted, 'edge.trustedProxies');
  const name = header.toLowerCase();
  return (peer, headers) => {
    if (!set.has(peer)) return peer;
    const raw = headers[name];
    if (raw === undefined) return peer;
    const list = (Array.isArray(raw) ? raw.join(',') : raw).split(',');
    let client = peer;
    for (let i = list.length - 1; i >= 0; i--) {
      let a = list[i]!.trim();
      if (a.startsWith('::ffff:') && a.includes('.')) a = a.slice(7);
      if (isIP(a) === 0) break;
      client = a;
      if (!set.has(a)) break;
    }
    return client;
  };
}
