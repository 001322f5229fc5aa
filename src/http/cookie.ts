/**
 * Reading the `Cookie` request field (RFC 6265 §5.4: `name=value` pairs
 * separated by `; `). Pure: a header value in, a value out.
 */

/**
 * The value of the first cookie called `name` in a `Cookie` field, or
 * undefined. Surrounding whitespace is dropped; a value in double quotes is
 * returned as sent (quotes included), as RFC 6265 §4.1.1 makes them part of
 * the value.
 */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined
  let at = 0
  while (at < header.length) {
    let end = header.indexOf(';', at)
    if (end === -1) end = header.length
    const eq = header.indexOf('=', at)
    if (eq !== -1 && eq < end && header.slice(at, eq).trim() === name) return header.slice(eq + 1, end).trim()
    at = end + 1
  }
  return undefined
}
