import { isIP } from 'node:net'
import { ipv6Text } from '../http/address.ts'
import type { Batch, RumEvent } from './schema.ts'

/**
 * Scrubbing what browsers report before it is stored (docs/monitoring.md):
 * the SDK already removes query values and credentials from URLs, but an
 * error message or a stack can carry anything, and a page may run an older
 * or altered SDK, so the collector never trusts it to have. Pure functions.
 *
 * The markers that replace what is removed (exact text):
 *
 * | marker       | replaces                                                                                   |
 * |--------------|--------------------------------------------------------------------------------------------|
 * | `[redacted]` | a query or fragment parameter's value (`?a=[redacted]&b=[redacted]`, names kept), URL userinfo |
 * | `[email]`    | an e-mail address                                                                          |
 * | `[token]`    | `Bearer`/`Basic` credentials (the scheme word kept), a JWT, a long key-like string          |
 * | `[card]`     | 13 to 19 digits (spaces or dashes between them allowed) that pass the Luhn check            |
 *
 * Scrubbing errs towards removing too much: a 13-digit number that happens
 * to pass Luhn, or a 32-character identifier with digits, goes too. It is
 * idempotent (scrubbing scrubbed text changes nothing), and the markers never
 * match a pattern. A scrubbed string can be a little longer than the original.
 */

/** The exact markers scrubText writes. */
export const SCRUB_MARKERS = Object.freeze({ value: '[redacted]', email: '[email]', token: '[token]', card: '[card]' })

/**
 * A query (`?...`) or a fragment (`#...`) up to whitespace, a quote, an angle
 * bracket or a closing parenthesis (the end of a stack frame's location).
 */
const QUERY = /([?#])([^\s"'<>`)]*)/g
/** A stack frame's `:line:column` at the end of a URL (kept, so stacks still point somewhere). */
const LINE_COLUMN = /(?::\d+){2}$/
/** `scheme://user:password@` (RFC 3986 §3.2.1 userinfo). */
const USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@"'<>]+@/gi
/** RFC 6750 §2.1 `Bearer b64token`, RFC 7617 `Basic`, case-insensitive; credentials of 8+ characters (so "Bearer token missing" stays). */
const AUTH_SCHEME = /\b(Bearer|Basic)(\s+)[A-Za-z0-9._~+/-]{8,}=*/gi
/** A JWS/JWT compact serialisation (RFC 7515 §7.1): a JSON header (`eyJ` is base64url for `{"`), or three long base64url parts. */
const JWT = /(?<![A-Za-z0-9_-])(?:eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*|[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,})(?![A-Za-z0-9_-])/g
/** An e-mail address (the practical subset of RFC 5322 §3.4.1 addr-spec). */
const EMAIL = /[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/g
/** 13 to 19 digits, single spaces or dashes between them allowed, not inside a longer run of digits. */
const CARD = /(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])/g
/** 32 or more hex/base64/base64url characters in a row (an API key, a hash, a session id). */
const KEY = /(?<![A-Za-z0-9_+-])[A-Za-z0-9_+-]{32,}={0,2}(?![A-Za-z0-9_+=-])/g

/**
 * What every rule needs somewhere in a string before it can change it: `?`
 * or `#` (QUERY), `@` (USERINFO, EMAIL), `bearer` or `basic` (AUTH_SCHEME),
 * `eyJ` or 16 key characters in a row (JWT, KEY), 13 digits with single
 * separators (CARD). A string without any of them is already scrubbed.
 */
const MAY_MATCH = /[?#@]|bearer|basic|eyJ|[A-Za-z0-9_+-]{16}|[0-9](?:[ -]?[0-9]){12}/i

/** The Luhn check (ISO/IEC 7812-1 annex B) over a string of digits. */
export function luhn(digits: string): boolean {
  let sum = 0
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48
    if (i % 2 === 1) {
      d *= 2
      if (d > 9) d -= 9
    }
    sum += d
  }
  return sum % 10 === 0
}

/** The parameters of a query or fragment with their values replaced: `a=1&b=2` -> `a=[redacted]&b=[redacted]`. */
function scrubParams(params: string): string {
  const tail = LINE_COLUMN.exec(params)?.[0] ?? ''
  const body = tail ? params.slice(0, -tail.length) : params
  if (!body.includes('=')) return params
  return (
    body
      .split('&')
      .map((part) => {
        const eq = part.indexOf('=')
        return eq === -1 || eq === part.length - 1 ? part : `${part.slice(0, eq)}=${SCRUB_MARKERS.value}`
      })
      .join('&') + tail
  )
}

/**
 * Replaces what may identify a person or grant access with the markers
 * above: query and fragment parameter values (names kept), URL userinfo,
 * `Bearer`/`Basic` credentials, JWTs, e-mail addresses, Luhn-valid card-like
 * numbers, and long key-like strings (32+ characters with both letters and
 * digits).
 */
export function scrubText(s: string): string {
  // most strings (paths, plain URLs) hold nothing any rule could match: one scan says so
  if (!MAY_MATCH.test(s)) return s
  // a marker put in by one rule can make a boundary another rule needs (`[card]Bearer ...`):
  // passes run until nothing changes (no rule matches a marker, so this ends quickly), so scrubbed text is a fixed point
  let out = s
  for (let i = 0; i < 8; i++) {
    const next = scrubPass(out)
    if (next === out) break
    out = next
  }
  return out
}

/** One pass of every rule, in order. */
function scrubPass(s: string): string {
  if (s === '') return s
  let out = s.replace(QUERY, (_, mark: string, params: string) => mark + scrubParams(params))
  out = out.replace(USERINFO, `$1${SCRUB_MARKERS.value}@`)
  out = out.replace(AUTH_SCHEME, `$1$2${SCRUB_MARKERS.token}`)
  out = out.replace(JWT, SCRUB_MARKERS.token)
  out = out.replace(EMAIL, SCRUB_MARKERS.email)
  out = out.replace(CARD, (m) => {
    const digits = m.replace(/[ -]/g, '')
    return digits.length >= 13 && digits.length <= 19 && luhn(digits) ? SCRUB_MARKERS.card : m
  })
  out = out.replace(KEY, (m) => (/[0-9]/.test(m) && /[A-Za-z]/.test(m) ? SCRUB_MARKERS.token : m))
  return out
}

/** An attribution record with each string value scrubbed: the same record when none changed. */
function scrubAttr(attr: Readonly<Record<string, string | number>>): Readonly<Record<string, string | number>> {
  let out: Record<string, string | number> | null = null
  for (const k in attr) {
    const v = attr[k]!
    const s = typeof v === 'string' ? scrubText(v) : v
    if (s !== v) out ??= { ...attr }
    if (out) out[k] = s
  }
  return out ?? attr
}

/**
 * One event with its free-text fields scrubbed: a new object when one
 * changed, else the event itself (most events carry nothing to scrub, and a
 * beacon makes ten of them; nothing downstream changes an event).
 */
function scrubEvent(e: RumEvent): RumEvent {
  switch (e.t) {
    case 'vital': {
      if (!e.attr) return e
      const attr = scrubAttr(e.attr)
      return attr === e.attr ? e : { ...e, attr }
    }
    case 'nav':
      return e
    case 'resource':
    case 'api': {
      const url = scrubText(e.url)
      return url === e.url ? e : { ...e, url }
    }
    case 'error': {
      const message = scrubText(e.message)
      const stack = e.stack === undefined ? undefined : scrubText(e.stack)
      if (message === e.message && stack === e.stack) return e
      return stack === undefined ? { ...e, message } : { ...e, message, stack }
    }
    case 'route': {
      const from = scrubText(e.from)
      const to = scrubText(e.to)
      return from === e.from && to === e.to ? e : { ...e, from, to }
    }
  }
}

/**
 * A checked batch with scrubText applied to the page and every event's
 * message, stack, URL (`url`, `from`, `to`) and attribution string. The
 * batch given is not changed: a new batch, sharing the events (and device)
 * that had nothing to scrub.
 */
export function scrubBatch(batch: Batch): Batch {
  return { ...batch, page: scrubText(batch.page), events: batch.events.map(scrubEvent) }
}

/** Eight 16-bit groups of an IPv6 address (zone removed), or null. */
function ipv6Groups(address: string): number[] | null {
  let a = address
  const zone = a.indexOf('%')
  if (zone !== -1) a = a.slice(0, zone)
  if (isIP(a) !== 6) return null
  // a trailing dotted quad (`::ffff:192.0.2.1`, `64:ff9b::192.0.2.1`) is the last two groups
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(a)
  if (quad) {
    const [b0, b1, b2, b3] = quad.slice(1).map(Number) as [number, number, number, number]
    a = `${a.slice(0, quad.index)}${((b0 << 8) | b1).toString(16)}:${((b2 << 8) | b3).toString(16)}`
  }
  const [head = '', tail = ''] = a.split('::')
  const left = head === '' ? [] : head.split(':')
  const right = tail === '' ? [] : tail.split(':')
  const parts = a.includes('::') ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right] : left
  return parts.map((g) => parseInt(g, 16))
}

/**
 * A client address cut to the network it came from, so that no stored row
 * names one subscriber: IPv4 to its /24 (`192.0.2.77` -> `192.0.2.0`), IPv6
 * to its /48 (`2001:db8:1:2::5` -> `2001:db8:1::`, RFC 5952 text), an
 * IPv4-mapped IPv6 address (RFC 4291 §2.5.5.2, `::ffff:192.0.2.77`) as the
 * IPv4 address it is. Anything that is not an IP address gives null.
 * Idempotent.
 */
export function truncateAddress(ip: string): string | null {
  const a = ip.trim()
  if (isIP(a) === 4) return a.replace(/\.\d+$/, '.0')
  const groups = ipv6Groups(a)
  if (!groups || groups.length !== 8 || groups.some((g) => !Number.isInteger(g) || g < 0 || g > 0xffff)) return null
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `${groups[6]! >> 8}.${groups[6]! & 0xff}.${groups[7]! >> 8}.0`
  }
  return ipv6Text([...groups.slice(0, 3), 0, 0, 0, 0, 0])
}
