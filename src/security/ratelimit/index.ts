// Rate limiting (security.rateLimit): the gate each worker runs, the node's authority that holds
// the buckets, and the channel between them.
export { rateLimit, type RateLimitEnv } from './gate.ts';
export { RateLimitAuthority } from './authority.ts';
export { IpcRateLimitChannel, type RateLimitChannel, type RateLimitMode, type RateLimitModes, type RateLimitPrimaryMessage, type RateLimitWorkerMessage } from './channel.ts';
export { parseRate, rateLimitSettings, type GlobalOptions, type KeyPart, type RateInput, type RateLimitOptions, type RateLimitPolicy } from './policy.ts';
