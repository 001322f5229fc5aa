import { timingSafeEqual } from 'node:crypto'

/**
 * Whether a secret someone presented (a token, a password, a signature) equals
 * the expected one, in time that does not depend on where they first differ,
 * so that timing the answers does not reveal the secret byte by byte. Strings
 * are compared as their UTF-8 bytes. A different length answers at once: the
 * length of a secret is not what this protects (compare fixed-length digests
 * where it must not leak either).
 */
export function safeEqual(a: string | Buffer, b: string | Buffer): boolean {
  const x = typeof a === 'string' ? Buffer.from(a) : a
  const y = typeof b === 'string' ? Buffer.from(b) : b
  return x.length === y.length && timingSafeEqual(x, y)
}
