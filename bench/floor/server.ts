// A minimal node:http server answering 1 KB from memory, optionally making N empty synchronous
// calls into an isolated-vm isolate per request, with no time limit or with a 50 ms one put on
// Outpost's grid (alignedTimeout). Started by bench/isolate-floor.ts; prints "ready" once listening.
//   node bench/floor/server.ts PORT CALLS [none|grid]
import { createServer } from 'node:http';
import ivm from 'isolated-vm';
import { alignedTimeout } from '../../src/compute/sandbox/isolate-runtime.ts';

const port = Number(process.argv[2]);
const calls = Number(process.argv[3] ?? 0);
const isolate = new ivm.Isolate({ memoryLimit: 16 });
const fn = isolate.createContextSync().evalSync('(function () {})', { reference: true }) as ivm.Reference<() => void>;
const body = Buffer.alloc(1024, 97);
const limited = process.argv[4] === 'grid';

createServer((_req, res) => {
  for (let i = 0; i < calls; i++) fn.applySync(undefined, [], limited ? alignedTimeout(50) : undefined);
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '1024' });
  res.end(body);
}).listen(port, '127.0.0.1', () => console.log('ready'));
