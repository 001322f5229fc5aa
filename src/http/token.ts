/**
 * The RFC 9110 token (§5.6.2): field names (§5.1), methods (§9.1), and the
 * names and values of most parameters and directives. One definition, so that
 * every place that checks one agrees.
 *
 *   token = 1*tchar
 *   tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
 *           "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
 */

/** One tchar, as a regular-expression class, for patterns that embed a token (`header:<name>`, `Name: value`). */
export const TCHAR = "[!#$%&'*+.^_`|~0-9A-Za-z-]"

/** A whole string that is one token (for schema checks such as zod's `.regex`). */
export const TOKEN = new RegExp(`^${TCHAR}+$`)

export function isToken(s: string): boolean {
  return TOKEN.test(s)
}

/** RFC 9110 §5.5: a field value that can be written on a field line as is (no CR, LF or NUL, which would end or corrupt the line). */
export function isSafeFieldValue(value: string): boolean {
  return !/[\0\r\n]/.test(value)
}
