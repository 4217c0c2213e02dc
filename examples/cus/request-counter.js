// phase: access — count requests per client address in Redis and show the count (seed 000).
const count = await redis.incr(`counter:${req.ip}`);
res.headers['x-request-counter'] = String(count);
