// phase: access — hot-link protection (seed 000): streams may be embedded only by our own pages.
// Requests without a Referer (direct visits, players that send none) are let through.
// (Only JavaScript itself exists in the sandbox — no URL class — so the host is parsed by hand.)
const allowed = ['localhost', '127.0.0.1', 'example.com'];
const referer = req.headers.referer;
if (referer) {
  const m = /^[a-z][a-z0-9+.-]*:\/\/(?:[^@/?#]*@)?(\[[^\]]+\]|[^:/?#]+)/i.exec(referer);
  if (!m) return exit(403, 'bad referer\n');
  const host = m[1].toLowerCase();
  if (!allowed.some((a) => host === a || host.endsWith(`.${a}`))) return exit(403, 'hot-linking is not allowed\n');
}
