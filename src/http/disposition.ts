/**
 * Content-Disposition field values (RFC 6266, with RFC 8187 for non-ASCII
 * names). Pure functions.
 *
 * Both parameters are always sent, in this order, so the output does not
 * depend on the name:
 *
 *   attachment; filename="naive_.txt"; filename*=UTF-8''na%C3%AFve%20.txt
 *
 * `filename` is an ASCII fallback for old clients (RFC 6266 §4.3, Appendix D):
 * a quoted-string in which every non-ASCII or control character, `"`, `\`,
 * and the `%` of a `%XX` sequence (which some clients would decode) becomes `_`.
 * `filename*` carries the exact name as percent-encoded UTF-8 (RFC 8187 §3.2.1);
 * clients that understand it prefer it (RFC 6266 §4.3).
 */

import { Buffer } from 'node:buffer'

// RFC 8187 §3.2.1: attr-char = ALPHA / DIGIT / "!" / "#" / "$" / "&" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~"
const ATTR_CHAR = /^[A-Za-z0-9!#$&+\-.^_`|~]$/

/** Content-Disposition for a file name; an empty name gives just the type. */
export function contentDisposition(filename: string, type: 'attachment' | 'inline' = 'attachment'): string {
  if (filename === '') return type
  return `${type}; filename="${asciiFallback(filename)}"; filename*=UTF-8''${encodeExtValue(filename)}`
}

function asciiFallback(name: string): string {
  return name.replace(/[^\x20-\x7e]|["\\]|%(?=[0-9A-Fa-f]{2})/gu, '_')
}

/** Percent-encodes the UTF-8 bytes of `value`, except attr-chars (RFC 8187 §3.2.1). */
function encodeExtValue(value: string): string {
  let out = ''
  for (const byte of Buffer.from(value, 'utf8')) {
    const c = String.fromCharCode(byte)
    out += ATTR_CHAR.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`
  }
  return out
}
