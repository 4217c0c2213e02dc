// phase: header_filter — expose timings in response headers (seed 000's X-Metrics-*).
res.headers['x-metrics-request-time'] = (timings.requestMs / 1000).toFixed(6);
if (timings.upstreamResponseMs !== undefined) res.headers['x-metrics-upstream-response-time'] = (timings.upstreamResponseMs / 1000).toFixed(6);
if (timings.upstreamConnectMs !== undefined) res.headers['x-metrics-upstream-connect-time'] = (timings.upstreamConnectMs / 1000).toFixed(6);
if (timings.cacheStatus) res.headers['x-metrics-cache-status'] = timings.cacheStatus;
res.headers['x-metrics-time-iso8601'] = new Date().toISOString();
