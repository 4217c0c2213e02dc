// Constant-time comparison of presented credentials with secrets known at start. Both sides are
// reduced to SHA-256 digests first, so timingSafeEqual always sees equal lengths and the time
// taken says nothing about the secret's length or where the values differ.
import { createHash, timingSafeEqual } from 'node:crypto';

export function sha256(value: string | Buffer): Buffer {
  return createHash('sha256').update(value).digest();
}

/** Equal-length buffers compared in constant time; unequal lengths compared via their digests. */
export function safeEqual(a: Buffer, b: Buffer): boolean {
  if (a.length === b.length) return timingSafeEqual(a, b);
  timingSafeEqual(sha256(a), sha256(b));
  return false;
}

/**
 * A matcher against several secrets (rotation). Every secret is compared on every call, so the
 * time taken does not tell which one matched.
 */
export function secretMatcher(secrets: readonly string[]): (presented: string) => boolean {
  const digests = secrets.map((s) => sha256(s));
  return (presented) => {
    const d = sha256(presented);
    let ok = false;
    for (const s of digests) ok = timingSafeEqual(d, s) || ok;
    return ok;
  };
}
