// phase: access — content generated at the edge: the origin is never asked for /edge/hello.
if (req.path === '/edge/hello') {
  return exit(200, JSON.stringify({ hello: 'from the edge', ip: req.ip, host: req.host }) + '\n', {
    'content-type': 'application/json',
    'cache-control': 'no-store',
  });
}
