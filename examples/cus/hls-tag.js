// phase: body_filter — add a tag to HLS playlists on the fly (seed 000). Content-Length is fixed up
// by the edge; segments and other bodies pass untouched.
// outpost cu add examples/cus/hls-tag.js --phase body_filter
if ((res.headers['content-type'] ?? '').includes('mpegurl')) {
  res.body = res.body.replace(/\n?$/, '\n#COPYRIGHT:Outpost\n');
}
