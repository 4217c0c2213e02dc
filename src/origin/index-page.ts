// The page a newcomer sees with `curl localhost:8080/`: what the demo origin can do, in one screen.

const SWITCHES: readonly (readonly [string, string])[] = [
  ['max_age=N', 'Cache-Control: public, max-age=N'],
  ['cc=VALUE', 'Cache-Control replaced by VALUE (cc= with nothing: no Cache-Control at all)'],
  ['status=NNN', 'answer with that status'],
  ['delay=MS', 'wait before answering (overrides the latency model)'],
  ['hang=1', 'never answer'],
  ['tags=a,b', 'Surrogate-Key: a b and Cache-Tag: a,b'],
  ['vary=Accept-Encoding', 'Vary header'],
  ['etag="v1"', 'ETag, and 304 when If-None-Match matches'],
  ['lm=UNIX_SECONDS', 'Last-Modified, and 304 for If-Modified-Since'],
  ['set_cookie=1', 'Set-Cookie: session=abc; Path=/'],
  ['h=Name:Value', 'any response header (repeatable)'],
  ['chunked=1', 'chunked transfer, body in two writes'],
  ['slow_body=MS', 'half the body, a pause of MS, then the rest'],
  ['location=/x', 'Location and Content-Location'],
  ['ce=gzip|br', 'body sent compressed with that Content-Encoding, whatever Accept-Encoding says'],
];

const ENDPOINTS: readonly (readonly [string, string])[] = [
  ['GET /any/path', 'JSON {"service":"api","value":42,"request":"/any/path"}, cacheable 10 s'],
  ['POST|PUT|PATCH|DELETE /any/path', 'JSON echo of the method, Cache-Control: no-store'],
  ['GET /static/SIZE[.ext]', 'SIZE bytes (1234, 16k, 1m; at most 64m) with ETag and Last-Modified, cacheable 1 h'],
  ['GET /__origin/stats', 'request counters (never counted themselves)'],
  ['POST /__origin/reset', 'zero the counters'],
  ['POST /__origin/mode', '{"mode":"ok"} | {"mode":"error","status":503} | {"mode":"hang"}'],
];

function escape(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');
}

function rows(items: readonly (readonly [string, string])[]): string {
  return items.map(([what, does]) => `<tr><td><code>${escape(what)}</code></td><td>${escape(does)}</td></tr>`).join('\n');
}

export const INDEX_PAGE: Buffer = Buffer.from(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Outpost demo origin</title></head>
<body>
<h1>Outpost demo origin</h1>
<p>The backend behind the Outpost edge. Fetch it through the edge and watch <code>X-Cache-Status</code>.</p>
<h2>Endpoints</h2>
<table>
${rows(ENDPOINTS)}
</table>
<h2>Query switches (JSON API and /static)</h2>
<table>
${rows(SWITCHES)}
</table>
<p>Example: <code>curl -i 'localhost:8080/static/16k.txt?max_age=60&amp;tags=demo'</code></p>
</body>
</html>
`);
