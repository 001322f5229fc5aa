/**
 * The head of an HTTP/1.x response read from a raw socket (RFC 9112 §4, §5):
 * what a tunnel reads from its upstream, and what an upgrade handler writes to
 * a socket that stands for an HTTP/2 stream. Pure: the head's text in (up to,
 * not including, the blank line), its parts out.
 *
 * Strict, since whatever reads it relays it or acts on it: a status line that
 * is not `HTTP/1.0` or `HTTP/1.1`, a 3-digit status from 100 to 599 and an
 * optional reason; a field line without a colon, with a name that is not a
 * token (which also refuses obs-fold, a line starting with white space), or
 * with CR, LF or NUL in its value (RFC 9110 §5.5) makes the whole head
 * malformed (null).
 */

import { isSafeFieldValue, isToken } from './token.ts'

/** The blank line that ends a head. */
export const HEAD_END = Buffer.from('\r\n\r\n')

export interface ResponseHead {
  status: number
  /** As received, for relaying. */
  statusLine: string
  /** Field lines in order, names as received, values without surrounding white space. */
  fields: [string, string][]
}

const STATUS_LINE = /^HTTP\/1\.[01] ([1-5]\d\d)(?: [^\r\n]*)?$/

export function parseResponseHead(text: string): ResponseHead | null {
  const lines = text.split('\r\n')
  const m = STATUS_LINE.exec(lines[0]!)
  if (!m) return null
  const fields: [string, string][] = []
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!
    const colon = line.indexOf(':')
    if (colon <= 0) return null
    const name = line.slice(0, colon)
    if (!isToken(name)) return null
    const value = line.slice(colon + 1).trim()
    if (!isSafeFieldValue(value)) return null
    fields.push([name, value])
  }
  return { status: Number(m[1]), statusLine: lines[0]!, fields }
}
