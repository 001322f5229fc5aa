import { STATUS_CODES, type OutgoingHttpHeaders } from 'node:http'

/** Response fields as handlers give them: a header object, names in any case, a field without a value left out. */
export type H2Fields = Record<string, string | number | readonly string[] | undefined>

/** '200', '304', ...: status codes as field values, made once. */
const STATUS_TEXT: Record<number, string> = Object.fromEntries(Object.keys(STATUS_CODES).map((code) => [code, code]))

/**
 * The head for `stream.respond`: the flat [name, value, ...] form with
 * lower-case names (Node copies a header object into one of its own first).
 * A name given twice in different cases (`Vary` and `vary`) is one field
 * with the later value, as in a header object: the object form then.
 * `Connection` is dropped (a connection-specific field, RFC 9113 §8.2.2,
 * which the compatibility layer dropped too); fields without a value are left out.
 */
export function h2Fields(status: number, headers: H2Fields | undefined): string[] | OutgoingHttpHeaders {
  const fields: string[] = [':status', STATUS_TEXT[status] ?? String(status)]
  for (const name in headers) {
    const value = headers[name]
    if (value === undefined) continue
    const lower = name.toLowerCase()
    if (lower !== name && headers[lower] !== undefined) return objectFields(status, headers)
    if (lower === 'connection') continue
    if (typeof value === 'string') fields.push(lower, value)
    else if (typeof value === 'number') fields.push(lower, String(value))
    else for (let i = 0; i < value.length; i++) fields.push(lower, value[i]!)
  }
  return fields
}

function objectFields(status: number, headers: H2Fields): OutgoingHttpHeaders {
  const fields: OutgoingHttpHeaders = { ':status': status }
  for (const name in headers) {
    const value = headers[name]
    const lower = name.toLowerCase()
    if (value !== undefined && lower !== 'connection') fields[lower] = typeof value === 'object' ? [...value] : value
  }
  return fields
}
