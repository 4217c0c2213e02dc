// phase: access — seed 000's token auth: a valid ?token= (or the cookie it sets) lets the request in.
// outpost cu add examples/cus/token-auth.js --phase access --failure closed
const token = req.args.token ?? req.cookies.superstition;
if (token !== 'token') return exit(403, 'forbidden\n');
res.headers['set-cookie'] = 'superstition=token';
