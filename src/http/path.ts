/**
 * Request-target helpers (RFC 9112 §3.2, RFC 3986 §5.2.4). Pure functions.
 */

/** Characters that make a path need the slow, careful path. */
const NEEDS_WORK = /[%\\]|\/\.|\/\/|\0/

/**
 * Decodes and normalizes an origin-form path. Returns null for anything that
 * could reach outside the tree it is resolved against, or that is not a
 * faithful path: invalid percent-encoding, invalid or overlong UTF-8, NUL
 * bytes, encoded slashes (`%2F`), backslashes (literal or `%5C`), and `..`
 * segments that climb above the root. Repeated slashes are merged.
 */
export function normalizePath(raw: string): string | null {
  if (raw.charCodeAt(0) !== 47 /* / */) return null
  if (!NEEDS_WORK.test(raw)) return raw
  if (raw.includes('\\')) return null
  const segments = raw.split('/')
  const out: string[] = []
  for (let i = 1; i < segments.length; i++) {
    const enc = segments[i]!
    let seg: string
    try {
      // decodeURIComponent rejects malformed escapes and invalid or overlong UTF-8.
      seg = enc.includes('%') ? decodeURIComponent(enc) : enc
    } catch {
      return null
    }
    if (seg.includes('/') || seg.includes('\\') || seg.includes('\0')) return null
    const last = i === segments.length - 1
    if (seg === '.' || (seg === '' && !last)) {
      if (last) out.push('')
      continue
    }
    if (seg === '..') {
      if (out.length === 0) return null
      out.pop()
      if (last) out.push('')
      continue
    }
    out.push(seg)
  }
  return '/' + out.join('/')
}

/** Splits a request target into path and query (`?` included). */
export function splitTarget(target: string): [path: string, query: string] {
  const q = target.indexOf('?')
  return q === -1 ? [target, ''] : [target.slice(0, q), target.slice(q)]
}

/** `Example.COM:8080` -> `example.com`; `[::1]:80` -> `::1`. Returns '' for an invalid value. */
export function hostname(authority: string): string {
  let h = authority
  if (h.charCodeAt(0) === 91 /* [ */) {
    const end = h.indexOf(']')
    if (end === -1) return ''
    return h.slice(1, end).toLowerCase()
  }
  const colon = h.indexOf(':')
  if (colon !== -1) h = h.slice(0, colon)
  // `example.com.` is the same name as `example.com` (RFC 1034 §3.1)
  if (h.length > 1 && h.charCodeAt(h.length - 1) === 46) h = h.slice(0, -1)
  if (h.length > 253 || !/^[a-zA-Z0-9._-]*$/.test(h)) return ''
  return h.toLowerCase()
}

/** Percent-encodes a decoded path for use in a Location header. */
export function encodePath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/')
}
