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

/**
 * A `Cookie` field without the cookies called one of `names`, or undefined
 * when none is left. The others keep their order and text.
 */
export function withoutCookies(header: string, names: readonly string[]): string | undefined {
  const kept: string[] = []
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    const name = (eq === -1 ? part : part.slice(0, eq)).trim()
    if (name !== '' && !names.includes(name)) kept.push(part.trim())
  }
  return kept.length === 0 ? undefined : kept.join('; ')
}
