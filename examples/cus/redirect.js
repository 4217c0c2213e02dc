// phase: rewrite — move an old section permanently, keeping the rest of the path and the query.
if (req.path.startsWith('/old/')) {
  const target = '/new/' + req.path.slice('/old/'.length) + (req.query ? `?${req.query}` : '');
  return exit(301, '', { location: target });
}
