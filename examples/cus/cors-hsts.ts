// phase: header_filter — CORS for a public API, and HSTS on every response. (TypeScript: types are stripped.)
const origin: string | undefined = req.headers.origin;
if (origin !== undefined) {
  res.headers['access-control-allow-origin'] = origin;
  res.headers['vary'] = res.headers['vary'] ? `${res.headers['vary']}, Origin` : 'Origin';
}
res.headers['strict-transport-security'] = 'max-age=31536000; includeSubDomains';
