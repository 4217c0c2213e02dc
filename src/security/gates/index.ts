// The access-phase gates of the security cascade, each a factory `(options) => EdgeHooks`.
export { originLock, type OriginLockOptions } from './origin-lock.ts';
export { jwtGate, JWT_ALGORITHMS, JWT_CLAIMS_VAR, type JwtAlgorithm, type JwtGateOptions, type JwtKeys, type TokenSource } from './jwt.ts';
export { signedUrls, signUrl, signatureMessage, type SignedUrlOptions, type SignUrlOptions, type SigningKey } from './signed-url.ts';
export { tokenCookie, type TokenCookieOptions, type TokenValidator } from './token-cookie.ts';
export { refererCheck, type RefererCheckOptions } from './referer.ts';
export { geoBlock, GEO_COUNTRY_VAR, type GeoBlockOptions } from './geo.ts';
export { ipListGate, type IpListGateOptions } from './ip-lists.ts';
