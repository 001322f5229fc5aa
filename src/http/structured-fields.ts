/**
 * Structured Field Values for HTTP (RFC 8941, revised by RFC 9651): the
 * Dictionary parser, which targeted cache-control fields (RFC 9213 §2.1)
 * need. Pure: a field value in, a map of members out, undefined on any parse
 * error (the caller then ignores the whole field, RFC 9651 §4.2).
 *
 * Why not the npm package `structured-headers` (checked at 2.1.0, which
 * claims RFC 9651): its Date parser (RFC 9651 §4.2.9) reads to the end of
 * the input and fails on anything else, so a Date anywhere but last in a
 * field (`a=@1659578233, b=1`, `a=@1659578233;p`, even a trailing space) is
 * a parse error; and it skips the check that the whole value is ASCII
 * (§4.2), so a Display String holding `ő` (U+0151) is taken and decodes as
 * `Q`. RFC 9651 reads a Date as an Integer, which stops at the first
 * non-digit, and refuses any non-ASCII value. This parser follows the RFC
 * on both, has no dependency, and is pinned by
 * test/unit/structured-fields.test.ts.
 */

export type SfBareItem =
  | { type: 'integer'; value: number }
  | { type: 'decimal'; value: number }
  | { type: 'string'; value: string }
  | { type: 'token'; value: string }
  | { type: 'binary' }
  | { type: 'boolean'; value: boolean }
  | { type: 'date'; value: number }
  | { type: 'displaystring'; value: string }
export type SfMember = SfBareItem | { type: 'innerlist' }

class SfError extends Error {}

/**
 * RFC 8941 §4.2.2 (Dictionary) with RFC 9651 additions. Returns a map from key
 * to member (the last occurrence of a key wins, §4.2.2), or undefined on any
 * parse error. Parameters and inner-list contents are validated and dropped.
 */
export function parseSfDictionary(input: string): Map<string, SfMember> | undefined {
  // §4.2: the field value must be ASCII.
  if (!/^[\x00-\x7f]*$/.test(input)) return undefined
  const s = input
  let i = 0
  const fail = (): never => {
    throw new SfError()
  }
  const isDigit = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '9'
  const isLcalpha = (c: string | undefined): boolean => c !== undefined && c >= 'a' && c <= 'z'
  const isAlpha = (c: string | undefined): boolean => c !== undefined && /^[A-Za-z]$/.test(c)
  const skipSp = (): void => {
    while (s[i] === ' ') i++
  }
  const skipOws = (): void => {
    while (s[i] === ' ' || s[i] === '\t') i++
  }

  // §4.2.3.3
  const parseKey = (): string => {
    if (!isLcalpha(s[i]) && s[i] !== '*') fail()
    const start = i
    while (i < s.length && /[a-z0-9_\-.*]/.test(s[i]!)) i++
    return s.slice(start, i)
  }
  // §4.2.4 (Integer or Decimal)
  const parseNumber = (): SfBareItem => {
    const start = i
    if (s[i] === '-') i++
    if (!isDigit(s[i])) fail()
    let decimal = false
    let intDigits = 0
    let fracDigits = 0
    while (i < s.length) {
      const c = s[i]
      if (isDigit(c)) {
        if (decimal) fracDigits++
        else intDigits++
        i++
      } else if (c === '.' && !decimal) {
        if (intDigits > 12) fail()
        decimal = true
        i++
      } else break
      if (!decimal && intDigits > 15) fail()
    }
    if (decimal && (fracDigits === 0 || fracDigits > 3)) fail()
    const value = Number(s.slice(start, i))
    return decimal ? { type: 'decimal', value } : { type: 'integer', value }
  }
  // §4.2.5
  const parseString = (): SfBareItem => {
    i++ // DQUOTE
    let out = ''
    while (i < s.length) {
      const c = s[i++]!
      if (c === '\\') {
        const next = s[i++]
        if (next !== '"' && next !== '\\') fail()
        out += next
      } else if (c === '"') return { type: 'string', value: out }
      else if (c < ' ' || c > '~') fail()
      else out += c
    }
    return fail()
  }
  // §4.2.6: token = ( ALPHA / "*" ) *( tchar / ":" / "/" )
  const parseToken = (): SfBareItem => {
    const start = i
    i++
    while (i < s.length && /[!#$%&'*+.^_`|~0-9A-Za-z:/-]/.test(s[i]!)) i++
    return { type: 'token', value: s.slice(start, i) }
  }
  // §4.2.7
  const parseBinary = (): SfBareItem => {
    i++
    while (i < s.length && s[i] !== ':') {
      if (!/[A-Za-z0-9+/=]/.test(s[i]!)) fail()
      i++
    }
    if (s[i] !== ':') fail()
    i++
    return { type: 'binary' }
  }
  // §4.2.8
  const parseBoolean = (): SfBareItem => {
    i++
    const c = s[i++]
    if (c === '1') return { type: 'boolean', value: true }
    if (c === '0') return { type: 'boolean', value: false }
    return fail()
  }
  // RFC 9651 §4.2.9
  const parseDate = (): SfBareItem => {
    i++
    const n = parseNumber()
    if (n.type !== 'integer') fail()
    return { type: 'date', value: n.type === 'integer' ? n.value : 0 }
  }
  // RFC 9651 §4.2.10
  const parseDisplayString = (): SfBareItem => {
    i++
    if (s[i] !== '"') fail()
    i++
    const bytes: number[] = []
    while (i < s.length) {
      const c = s[i++]!
      if (c < ' ' || c > '~') fail()
      if (c === '%') {
        const hex = s.slice(i, i + 2)
        if (!/^[0-9a-f]{2}$/.test(hex)) fail()
        bytes.push(parseInt(hex, 16))
        i += 2
      } else if (c === '"') {
        try {
          return { type: 'displaystring', value: new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array(bytes)) }
        } catch {
          return fail()
        }
      } else bytes.push(c.charCodeAt(0))
    }
    return fail()
  }
  // §4.2.3.1
  const parseBareItem = (): SfBareItem => {
    const c = s[i]
    if (c === '-' || isDigit(c)) return parseNumber()
    if (c === '"') return parseString()
    if (c === '*' || isAlpha(c)) return parseToken()
    if (c === ':') return parseBinary()
    if (c === '?') return parseBoolean()
    if (c === '@') return parseDate()
    if (c === '%') return parseDisplayString()
    return fail()
  }
  // §4.2.3.2
  const parseParameters = (): void => {
    while (s[i] === ';') {
      i++
      skipSp()
      parseKey()
      if (s[i] === '=') {
        i++
        parseBareItem()
      }
    }
  }
  // §4.2.1.2
  const parseInnerList = (): SfMember => {
    i++ // "("
    while (i < s.length) {
      skipSp()
      if (s[i] === ')') {
        i++
        parseParameters()
        return { type: 'innerlist' }
      }
      parseBareItem()
      parseParameters()
      if (s[i] !== ' ' && s[i] !== ')') fail()
    }
    return fail()
  }

  try {
    const dict = new Map<string, SfMember>()
    skipSp() // §4.2: discard leading SP
    const end = s.replace(/ +$/, '').length // and trailing SP
    while (i < end) {
      const key = parseKey()
      let member: SfMember
      if (s[i] === '=') {
        i++
        if (s[i] === '(') member = parseInnerList()
        else {
          member = parseBareItem()
          parseParameters()
        }
      } else {
        member = { type: 'boolean', value: true }
        parseParameters()
      }
      dict.delete(key) // keep insertion order of the last occurrence
      dict.set(key, member)
      skipOws()
      if (i >= end) break
      if (s[i++] !== ',') fail()
      skipOws()
      if (i >= end) fail() // trailing comma
    }
    return dict
  } catch (e) {
    if (e instanceof SfError) return undefined
    throw e
  }
}
