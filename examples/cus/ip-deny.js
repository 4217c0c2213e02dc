// phase: access — a deny list that changes at run time, without a reload: add addresses with
//   redis-cli SADD '{outpost}:data:denied-ips' 203.0.113.7      (or the admin API's data commands)
// outpost cu add examples/cus/ip-deny.js --phase access
if (await redis.sismember('denied-ips', req.ip)) return exit(403, 'forbidden\n');
