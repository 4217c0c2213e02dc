// Stand-in for src/origin/main.ts, used only while the demo origin is not in the tree: the same
// endpoints and switches the bench relies on (/static/<size>, JSON API, delay, cc, max_age, stats).
import { createServer } from 'node:http';
import { createHash } from 'node:crypto';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { port: { type: 'string', default: '9000' }, host: { type: 'string', default: '127.0.0.1' }, latency: { type: 'string' } } });

const bodies = new Map<string, { body: Buffer; etag: string }>();
const stats = { requests: 0, byPath: {} as Record<string, number> };

function staticBody(size: string): { body: Buffer; etag: string } | undefined {
  const m = /^(\d+)([kmKM]?)$/.exec(size);
  if (!m) return undefined;
  const n = Number(m[1]) * (m[2]?.toLowerCase() === 'k' ? 1024 : m[2]?.toLowerCase() === 'm' ? 1024 * 1024 : 1);
  if (n > 64 * 1024 * 1024) return undefined;
  let hit = bodies.get(size);
  if (!hit) {
    const body = Buffer.alloc(n, 'outpost-origin ');
    hit = { body, etag: `"${createHash('sha1').update(body).digest('hex').slice(0, 16)}"` };
    bodies.set(size, hit);
  }
  return hit;
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://origin');
  if (url.pathname === '/__origin/stats') {
    res.setHeader('content-type', 'application/json');
    res.setHeader('cache-control', 'no-store');
    res.end(JSON.stringify(stats));
    return;
  }
  if (url.pathname === '/__origin/reset' && req.method === 'POST') {
    stats.requests = 0;
    stats.byPath = {};
    res.statusCode = 204;
    res.end();
    return;
  }
  stats.requests++;
  stats.byPath[url.pathname] = (stats.byPath[url.pathname] ?? 0) + 1;
  const delay = Math.min(60_000, Number(url.searchParams.get('delay') ?? 0) || 0);
  const cc = url.searchParams.get('cc');
  const reply = (): void => {
    if (url.pathname.startsWith('/static/')) {
      const obj = staticBody(url.pathname.slice(8));
      if (!obj) {
        res.statusCode = 404;
        res.end();
        return;
      }
      res.setHeader('cache-control', cc ?? 'public, max-age=3600');
      res.setHeader('etag', obj.etag);
      res.setHeader('content-type', 'application/octet-stream');
      if (req.headers['if-none-match'] === obj.etag) {
        res.statusCode = 304;
        res.end();
        return;
      }
      res.setHeader('content-length', obj.body.length);
      res.end(obj.body);
      return;
    }
    const maxAge = Number(url.searchParams.get('max_age') ?? 10) || 0;
    const body = JSON.stringify({ path: url.pathname, time: Date.now(), n: stats.requests });
    res.setHeader('cache-control', cc ?? `public, max-age=${maxAge}`);
    res.setHeader('content-type', 'application/json');
    res.setHeader('content-length', Buffer.byteLength(body));
    res.end(body);
  };
  if (delay > 0) setTimeout(reply, delay);
  else reply();
});
server.keepAliveTimeout = 75_000;
server.listen(Number(values.port), values.host, () => {
  console.log(`origin listening on http://${values.host}:${Number(values.port)}`);
});
process.on('SIGTERM', () => process.exit(0));
