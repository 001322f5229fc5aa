/**
 * Field lookup in a plain header object whose keys may be in any case (what
 * handlers and upstreams hand to a response, before Node writes it), where a
 * plain `headers[name]` would miss `Content-Type` or `VARY`. Field names are
 * case-insensitive (RFC 9110 §5.1).
 */

/** The key under which `headers` holds the field `name` (given in lower case), or undefined. */
export function headerKey(headers: object, name: string): string | undefined {
  for (const key of Object.keys(headers)) if (key.toLowerCase() === name) return key
  return undefined
}

/** The field `name` (given in lower case) as one value: several lines joined with ", " (RFC 9110 §5.3); undefined when absent. */
export function headerValue(headers: Readonly<Record<string, string | string[] | number | undefined>>, name: string): string | undefined {
  const key = headerKey(headers, name)
  const value = key === undefined ? undefined : headers[key]
  if (value === undefined) return undefined
  return Array.isArray(value) ? value.join(', ') : String(value)
}
