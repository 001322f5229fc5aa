/**
 * Where a user goes back to after signing in. The path comes from the
 * request that needed a login (a query parameter or a cookie an attacker
 * can write), so it is an open redirect (RFC 9700 §4.11.2) unless it is
 * held to a path on this same site. Only a path-absolute reference
 * (RFC 3986 §4.2) passes: one `/` and then anything but a second `/` or a
 * `\`, since `//host` is a network-path reference and browsers treat `\`
 * like `/` (WHATWG URL Standard, "special" schemes). Browsers also drop
 * tabs and newlines from anywhere in a URL and C0 controls and spaces from
 * its ends, so `/\t/evil.example` becomes `//evil.example`: any control
 * character or whitespace is refused. The same checks are made on each
 * percent-decoded form (RFC 3986 §2.1), for code further on that decodes
 * before it redirects.
 */

/** The longest return path kept; anything longer goes to '/'. */
export const MAX_RETURN_PATH = 2048

/** Times percent-decoding is applied (`%25252F` is three layers of `/`). */
const DECODE_LAYERS = 3

const BASE = 'https://edgebox.invalid'

/** C0 controls, space, DEL, C1 controls, backslash, and any Unicode white space. */
const FORBIDDEN = /[\u0000-\u0020\u007f-\u009f\\\s]/u
/**
 * The same in a decoded form, but for the space: `%20` in a path or query is
 * common (`/search?q=a%20b`), and a decoded form always starts with `/`, so
 * a space in it can be neither the leading one a browser trims nor an
 * authority's start.
 */
const FORBIDDEN_DECODED = /[\u0000-\u001f\u007f-\u009f\\]|(?! )\s/u

/**
 * Whether one form of the candidate is a same-site path: it begins with
 * exactly one `/` (so it has no scheme, RFC 3986 §3.1, and no authority,
 * §3.2), holds no forbidden character, and resolved against a base URL it
 * keeps that origin and does not end up with a `//` path (dot segments
 * such as `/.//evil.example` resolve to one, RFC 3986 §5.2.4).
 */
function sameSitePath(form: string, forbidden = FORBIDDEN): boolean {
  if (form.charCodeAt(0) !== 47 /* / */) return false
  const second = form.charCodeAt(1)
  if (second === 47 /* / */ || second === 92 /* \ */) return false
  if (forbidden.test(form)) return false
  let url: URL
  try {
    url = new URL(form, BASE)
  } catch {
    return false
  }
  return url.origin === BASE && !url.pathname.startsWith('//')
}

/**
 * The path a user returns to after login, or '/' when `candidate` is not a
 * same-site path. Accepted: a path-absolute reference of at most
 * MAX_RETURN_PATH characters whose every percent-decoded form (decoded up
 * to three times, until stable) is also one; a malformed escape, or one
 * still left after three layers, is refused. The query is kept; the
 * fragment is dropped. Dot segments are allowed, as they cannot leave the
 * origin.
 */
export function safeReturnPath(candidate: string | null | undefined): string {
  if (typeof candidate !== 'string' || candidate === '' || candidate.length > MAX_RETURN_PATH) return '/'
  if (!sameSitePath(candidate)) return '/'
  let form = candidate
  for (let layer = 0; ; layer++) {
    let decoded: string
    try {
      decoded = decodeURIComponent(form)
    } catch {
      return '/'
    }
    if (decoded === form) break
    // still encoded after three layers: nothing legitimate is, refuse rather than guess
    if (layer === DECODE_LAYERS) return '/'
    if (!sameSitePath(decoded, FORBIDDEN_DECODED)) return '/'
    form = decoded
  }
  const hash = candidate.indexOf('#')
  const path = hash === -1 ? candidate : candidate.slice(0, hash)
  // a Location holds ASCII only (RFC 9110 §5.5): characters beyond it go percent-encoded, as a browser would send them
  return /[^\x21-\x7e]/.test(path) ? path.replace(/[^\x21-\x7e]+/gu, (c) => encodeURIComponent(c)) : path
}
