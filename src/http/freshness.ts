/**
 * The HTTP caching model of RFC 9111 for a SHARED cache: storability (§3),
 * freshness (§4.2), age (§4.2.3, §5.1), reuse (§4, §4.2.4, §5.2.1, RFC 5861),
 * Vary (§4.1) and header updates after validation (§3.2, §4.3.4).
 * Pure functions; times are milliseconds since the epoch unless noted.
 *
 * Response directives are passed in by the caller, who decides precedence
 * between a targeted field (RFC 9213, see targetedCacheControl) and
 * Cache-Control. Directives coming from a targeted field carry `targeted`,
 * and then Expires is ignored as RFC 9213 §2.2 requires.
 *
 * Decisions where the RFCs leave room:
 *
 * - 304 responses are not stored (a 304 only updates a stored response,
 *   §4.3.4). 206 responses are storable only when the caller says it
 *   understands them (`partialContent`: it stores and combines partial
 *   content, §3.3, §3.4); the caller checks the Content-Range and validator
 *   requirements itself. HEAD responses only update stored GET responses
 *   (§4.3.5).
 * - Qualified `no-cache="f"` and `private="f"` are honoured by storing the
 *   response without those fields (§5.2.2.4, §5.2.2.7); they do not force
 *   revalidation. Unqualified no-cache always forces it.
 * - A response with `Vary: *` is not stored: it could never be reused (§4.1).
 * - A missing Date is replaced by the response time (RFC 9110 §6.6.1, as
 *   §4.2.1 says for Expires); if neither is known, Expires cannot be
 *   evaluated and the response is treated as already expired.
 * - Heuristic freshness (§4.2.2) applies to heuristically cacheable statuses
 *   and to responses marked `public` (§5.2.2.9 says those are heuristically
 *   cacheable too), and only with Last-Modified: 10% of Date - Last-Modified,
 *   capped by maxHeuristic (default one day).
 * - Serving stale (§4.2.4): unqualified no-cache, must-revalidate and
 *   proxy-revalidate forbid it in every case. s-maxage "incorporates the
 *   semantics of proxy-revalidate" (§5.2.2.10), so it forbids stale serving
 *   granted by the client (max-stale, request stale-if-error), but the
 *   origin's own stale-while-revalidate / stale-if-error in the same response
 *   are honoured as behavioural extensions that modify it (§5.2.3, RFC 5861,
 *   §4.2.4 "explicitly permitted by ... the origin server"). This keeps the
 *   common `s-maxage=1, stale-while-revalidate=59` pattern working.
 * - Request `max-age=0` is treated like request no-cache (revalidate), the
 *   conventional meaning of a reload, even though a response whose age
 *   rounds to 0 would satisfy it literally (§5.2.1.1).
 * - Request directives are advisory (§5.2.1); CDN mode ignores them.
 * - `immutable` (RFC 8246) only concerns clients; it does not change
 *   decisions here.
 */

import { DELTA_SECONDS_MAX, parseCacheControl, type CacheDirectives, type Headers } from './cache-control.ts'
import { parseHttpDate } from './date.ts'

export interface StoredResponse {
  status: number
  headers: Headers
  /** When the request that produced the stored response was sent (ms since the epoch). */
  requestTime: number
  /** When the response was received, or last successfully validated (ms since the epoch). */
  responseTime: number
}

export type Usability = 'fresh' | 'stale-while-revalidate' | 'revalidate'

const DAY = 24 * 60 * 60 * 1000

/** RFC 9110 §15.1 / RFC 9111 §4.2.2: heuristically cacheable status codes. */
export const HEURISTICALLY_CACHEABLE = new Set([200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501])

/**
 * Final status codes whose caching requirements this cache implements (§3
 * "understood", used with must-understand, §5.2.2.3): the RFC 9110 codes,
 * except 206 (understood only with `partialContent`, see storability) and 304
 * (only updates, §4.3.4).
 */
const UNDERSTOOD = new Set([
  200, 201, 202, 203, 204, 205, 300, 301, 302, 303, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409,
  410, 411, 412, 413, 414, 415, 416, 417, 421, 422, 426, 500, 501, 502, 503, 504, 505,
])

/** §3.1: fields specific to the proxy a cache forwards through; never stored. */
const PROXY_FIELDS = ['proxy-authenticate', 'proxy-authentication-info', 'proxy-authorization']

/** A singleton field: the first line if there are several (§4.2.1: "the first occurrence"). */
function single(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v
}

/** A list field: lines combined with ", " (RFC 9110 §5.3). */
function combined(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v
}

/**
 * RFC 9111 §3, for a shared cache. `directives` are the effective response
 * directives (targeted field or Cache-Control). `stripFields` lists fields to
 * remove before storing: those named by `private="..."` and `no-cache="..."`
 * and the proxy-specific fields of §3.1, when present in the response.
 * `reason` says in words why a response is refused (for Cache-Status detail).
 * `partialContent`: the caller stores and combines 206 responses (§3.3,
 * §3.4), so 206 is understood; otherwise 206 is refused.
 */
export function storability(
  req: { method: string; headers: Headers },
  res: { status: number; headers: Headers },
  directives: CacheDirectives,
  opts: { partialContent?: boolean } = {},
): { storable: boolean; reason?: string; stripFields: string[] } {
  const refuse = (reason: string) => ({ storable: false, reason, stripFields: [] as string[] })
  const method = req.method.toUpperCase()
  // §3: the request method is understood. §4.3.5: HEAD only freshens stored GET responses.
  if (method === 'HEAD') return refuse('HEAD responses only update stored responses')
  if (method !== 'GET') return refuse(`method ${method} is not cacheable`)
  // §3: the status code is final.
  if (!Number.isInteger(res.status) || res.status < 200 || res.status > 999) return refuse(`status ${res.status} is not final`)
  // §3: 206, 304 and must-understand require the status to be understood.
  const partialContent = res.status === 206 && opts.partialContent === true
  if (res.status === 206 && !partialContent) return refuse('partial content (206) is not stored')
  if (res.status === 304) return refuse('304 only updates a stored response')
  const understood = UNDERSTOOD.has(res.status) || partialContent
  if (directives.mustUnderstand && !understood) return refuse(`must-understand with status ${res.status}`)
  // §5.2.1.5: no-store in the request.
  if (parseCacheControl(req.headers['cache-control']).noStore) return refuse('no-store in request')
  // §5.2.2.5, §5.2.2.3: no-store, unless must-understand and the status is understood.
  if (directives.noStore && !(directives.mustUnderstand && understood)) return refuse('no-store in response')
  // §5.2.2.7: unqualified private forbids a shared cache to store.
  if (directives.private === true) return refuse('private')
  // §3.5: Authorization needs an explicit permission for shared caches.
  if (req.headers['authorization'] !== undefined && !directives.public && !directives.mustRevalidate && directives.sMaxage === undefined) {
    return refuse('authorization without public, s-maxage or must-revalidate')
  }
  // §4.1: Vary: * never matches, so such a response could never be reused.
  const vary = combined(res.headers['vary'])
  if (vary !== undefined && vary.split(',').some((v) => v.trim() === '*')) return refuse('vary: *')
  // §3: explicit freshness, public, or a heuristically cacheable status.
  const hasExpires = directives.targeted === undefined && res.headers['expires'] !== undefined
  if (
    directives.maxAge === undefined &&
    directives.sMaxage === undefined &&
    !hasExpires &&
    !directives.public &&
    !HEURISTICALLY_CACHEABLE.has(res.status)
  ) {
    return refuse(`no explicit freshness and status ${res.status} is not heuristically cacheable`)
  }
  const strip = new Set<string>()
  for (const list of [directives.private, directives.noCache]) {
    if (Array.isArray(list)) for (const name of list) strip.add(name)
  }
  for (const name of PROXY_FIELDS) if (res.headers[name] !== undefined) strip.add(name)
  return { storable: true, stripFields: [...strip] }
}

/**
 * §4.2.1 for a shared cache, in ms: s-maxage, else max-age, else Expires -
 * Date (ignored when the directives come from a targeted field, RFC 9213
 * §2.2; an invalid Expires such as "0" means already expired, §5.3), else the
 * §4.2.2 heuristic. `responseTime` stands in for a missing or invalid Date.
 */
export function freshnessLifetime(
  res: { status: number; headers: Headers },
  directives: CacheDirectives,
  opts: { maxHeuristic?: number; responseTime?: number } = {},
): number {
  if (directives.sMaxage !== undefined) return directives.sMaxage * 1000
  if (directives.maxAge !== undefined) return directives.maxAge * 1000
  const date = parseHttpDate(single(res.headers['date'])) ?? opts.responseTime
  if (directives.targeted === undefined && res.headers['expires'] !== undefined) {
    const expires = parseHttpDate(single(res.headers['expires']))
    if (expires === undefined || date === undefined) return 0
    return Math.max(0, expires - date)
  }
  if (!HEURISTICALLY_CACHEABLE.has(res.status) && !directives.public) return 0
  const lastModified = parseHttpDate(single(res.headers['last-modified']))
  if (lastModified === undefined || date === undefined || date <= lastModified) return 0
  return Math.max(0, Math.min((date - lastModified) / 10, opts.maxHeuristic ?? DAY))
}

/**
 * §5.1: Age = delta-seconds (seconds). "Although it is defined as a singleton
 * header field, a cache encountering a message with a list-based Age field
 * value SHOULD use the first member of the field value, discarding subsequent
 * ones. If the field value (after discarding additional members ...) is
 * invalid ... a cache SHOULD ignore the field." So only the first member
 * counts: `10, 20` -> 10, but `abc, 10` -> undefined. Several field lines are
 * one list (RFC 9110 §5.3); empty list elements are skipped (§5.6.1). Values
 * above 2^31 are capped (§1.2.2).
 */
export function parseAge(value: string | string[] | undefined): number | undefined {
  const v = combined(value)
  if (v === undefined) return undefined
  const first = v.split(',').find((m) => m.trim() !== '')
  if (first === undefined) return undefined
  const m = /^[ \t]*([0-9]+)[ \t]*$/.exec(first)
  if (!m) return undefined
  const n = Number(m[1])
  return n > DELTA_SECONDS_MAX ? DELTA_SECONDS_MAX : n
}

/**
 * corrected_initial_age (§4.2.3) depends only on what was stored, so it is
 * kept per stored response and recomputed only when its header fields or
 * times change (a 304 refresh replaces the headers object): a cache hit then
 * parses no Date or Age field.
 */
const initialAges = new WeakMap<StoredResponse, { headers: Headers; requestTime: number; responseTime: number; value: number }>()

function correctedInitialAge(stored: StoredResponse): number {
  const memo = initialAges.get(stored)
  if (memo && memo.headers === stored.headers && memo.responseTime === stored.responseTime && memo.requestTime === stored.requestTime) return memo.value
  const dateValue = parseHttpDate(single(stored.headers['date'])) ?? stored.responseTime
  const ageValue = (parseAge(stored.headers['age']) ?? 0) * 1000
  const apparentAge = Math.max(0, stored.responseTime - dateValue)
  // Clamped: a request time after the response time can only be a caller error.
  const responseDelay = Math.max(0, stored.responseTime - stored.requestTime)
  const correctedAgeValue = ageValue + responseDelay
  const value = Math.max(apparentAge, correctedAgeValue)
  initialAges.set(stored, { headers: stored.headers, requestTime: stored.requestTime, responseTime: stored.responseTime, value })
  return value
}

/** §4.2.3 in ms (not rounded). */
export function currentAgeMs(stored: StoredResponse, now: number): number {
  // Clamped: a clock that went backwards must not make the age negative.
  const residentTime = Math.max(0, now - stored.responseTime)
  return correctedInitialAge(stored) + residentTime
}

/**
 * §4.2.3: current_age = max(apparent_age, age_value + response_delay) +
 * resident_time, in whole seconds (floor). A missing Date counts as the
 * response time (apparent_age 0).
 */
export function currentAge(stored: StoredResponse, now: number): number {
  return Math.floor(currentAgeMs(stored, now) / 1000)
}

/**
 * How a stored response can be used for a request (§4, §4.2.4, §5.2.1,
 * RFC 5861 §3). `age` is current_age in seconds; `ttl` is the remaining
 * freshness in seconds, floor(freshness_lifetime) - age, negative when stale
 * (as in Cache-Status, RFC 9211 §2.5). Checks, in order:
 *
 * 1. response no-cache (unqualified) -> revalidate (§5.2.2.4);
 * 2. unless ignoreRequestDirectives: request no-cache or max-age=0 ->
 *    revalidate (§5.2.1.4); age > request max-age -> revalidate (§5.2.1.1);
 *    remaining freshness < min-fresh -> revalidate (§5.2.1.3);
 * 3. fresh (freshness_lifetime > current_age, §4.2) -> fresh;
 * 4. stale: must-revalidate / proxy-revalidate -> revalidate (§5.2.2.2,
 *    §5.2.2.8); within the response's stale-while-revalidate window ->
 *    stale-while-revalidate (RFC 5861 §3); within request max-stale (not with
 *    s-maxage, §5.2.2.10) -> stale-while-revalidate too: the client accepts
 *    the stale response, and refreshing it in the background is harmless;
 *    otherwise revalidate.
 */
export function usability(
  stored: StoredResponse,
  resDirectives: CacheDirectives,
  reqDirectives: CacheDirectives,
  now: number,
  opts: { ignoreRequestDirectives?: boolean; maxHeuristic?: number } = {},
): { use: Usability; age: number; ttl: number } {
  const ageMs = currentAgeMs(stored, now)
  const age = Math.floor(ageMs / 1000)
  const lifetime = freshnessLifetime(stored, resDirectives, {
    maxHeuristic: opts.maxHeuristic,
    responseTime: stored.responseTime,
  })
  const ttl = Math.floor(lifetime / 1000) - age
  const result = (use: Usability) => ({ use, age, ttl })

  if (resDirectives.noCache === true) return result('revalidate')
  if (!opts.ignoreRequestDirectives) {
    if (reqDirectives.noCache !== undefined || reqDirectives.maxAge === 0) return result('revalidate')
    if (reqDirectives.maxAge !== undefined && age > reqDirectives.maxAge) return result('revalidate')
    if (reqDirectives.minFresh !== undefined && lifetime - ageMs < reqDirectives.minFresh * 1000) return result('revalidate')
  }
  if (lifetime > ageMs) return result('fresh')

  const staleness = ageMs - lifetime
  if (resDirectives.mustRevalidate || resDirectives.proxyRevalidate) return result('revalidate')
  if (resDirectives.staleWhileRevalidate !== undefined && staleness <= resDirectives.staleWhileRevalidate * 1000) {
    return result('stale-while-revalidate')
  }
  if (!opts.ignoreRequestDirectives && resDirectives.sMaxage === undefined) {
    const maxStale = reqDirectives.maxStale
    if (maxStale === true || (maxStale !== undefined && staleness <= maxStale * 1000)) return result('stale-while-revalidate')
  }
  return result('revalidate')
}

/**
 * RFC 5861 §4, RFC 9111 §4.2.4, §4.3.3: may this stored response be served
 * because the origin failed (5xx or unreachable)? A fresh response may always
 * be served. A stale one may not with unqualified no-cache, must-revalidate
 * (§5.2.2.2: "if a cache is disconnected, the cache MUST generate an error
 * response") or proxy-revalidate; otherwise it may within the response's
 * stale-if-error window, or, when the response has no s-maxage, within the
 * request's stale-if-error or max-stale. Pass `{}` as reqDirectives to ignore
 * the request (CDN mode).
 */
export function staleIfErrorAllowed(
  stored: StoredResponse,
  resDirectives: CacheDirectives,
  reqDirectives: CacheDirectives,
  now: number,
): boolean {
  if (resDirectives.noCache === true) return false
  const ageMs = currentAgeMs(stored, now)
  const lifetime = freshnessLifetime(stored, resDirectives, { responseTime: stored.responseTime })
  if (lifetime > ageMs) return true
  if (resDirectives.mustRevalidate || resDirectives.proxyRevalidate) return false
  const staleness = ageMs - lifetime
  const within = (seconds: number | undefined) => seconds !== undefined && staleness <= seconds * 1000
  if (within(resDirectives.staleIfError)) return true
  if (resDirectives.sMaxage !== undefined) return false
  const maxStale = reqDirectives.maxStale
  return maxStale === true || within(maxStale) || within(reqDirectives.staleIfError)
}

/**
 * §4.1: the Vary part of a cache key, or null for `Vary: *` (never matches).
 * Nominated field names are lower-cased, deduplicated and sorted. One line
 * per field, `name:value`, or just `name` when the request lacks the field
 * (so absent differs from empty, §4.1). No Vary -> ''. Each value is
 * normalized as varyValue says (§4.1: "a cache MAY normalize the field
 * values of request header fields with a defined syntax").
 */
export function varyKey(vary: string | string[] | undefined, reqHeaders: Headers): string | null {
  const v = combined(vary)
  if (v === undefined) return ''
  const names = new Set<string>()
  for (const member of v.split(',')) {
    const name = member.trim().toLowerCase()
    if (name === '*') return null
    if (name !== '') names.add(name)
  }
  return [...names]
    .sort()
    .map((name) => {
      const value = reqHeaders[name]
      return value === undefined ? name : `${name}:${varyValue(name, value)}`
    })
    .join('\n')
}

/**
 * How the value of each request field a response varies on is compared. The
 * weighted lists of content negotiation (RFC 9110 §12.5) are parsed: `set`
 * members have no order (Accept, Accept-Charset, Accept-Encoding: preference
 * is given by q-values only); `ranked` members are ordered by q-value but
 * keep their order among equal weights, which some origins read as a
 * preference (Accept-Language, RFC 9110 §12.5.4). `names` is a set of field
 * names (Access-Control-Request-Headers, Fetch). `list` keeps its members in
 * order and only drops the whitespace around commas (RFC 9110 §5.6.1).
 * Any other field (Cookie, Origin, User-Agent...) is compared as it came.
 */
const VARY_SYNTAX: Record<string, 'set' | 'ranked' | 'names' | 'list'> = {
  accept: 'set',
  'accept-charset': 'set',
  'accept-encoding': 'set',
  'accept-language': 'ranked',
  'access-control-request-headers': 'names',
  'cache-control': 'list',
  forwarded: 'list',
  'if-match': 'list',
  'if-none-match': 'list',
  te: 'list',
  via: 'list',
  'x-forwarded-for': 'list',
}

/**
 * The normalized value of request field `name` (lower case) for varyKey.
 * Several field lines are one list (RFC 9110 §5.3). Weighted lists: members
 * split at commas outside quoted-strings, empty members dropped (§5.6.1),
 * codings, charsets, language ranges, media types and parameter names
 * lower-cased (case-insensitive, §8.3.1, §8.4.1, §8.5.1, §12.5.1), a quoted
 * parameter value that is a token unquoted (§5.6.6), q-values written in
 * their shortest form with q=1 left out (§12.4.2), then duplicates dropped and
 * the members sorted. When one range appears with different weights, which
 * of them counts is the origin's choice, so such a list keeps its order and
 * duplicates. Unknown fields: lines joined with ", ", ends trimmed.
 */
export function varyValue(name: string, value: string | string[]): string {
  const syntax = VARY_SYNTAX[name]
  const joined = Array.isArray(value) ? value.join(', ') : value
  if (syntax === undefined) return joined.trim()
  const members = splitOutsideQuotes(joined, ',')
    .map((m) => m.trim())
    .filter((m) => m !== '')
  if (syntax === 'list') return members.join(',')
  if (syntax === 'names') return [...new Set(members.map((m) => m.toLowerCase()))].sort().join(',')
  const parsed = members.map(weightedMember)
  const weightOf = new Map<string, string>()
  for (const m of parsed) {
    const seen = weightOf.get(m.range)
    if (seen !== undefined && seen !== m.weight) return parsed.map((p) => p.text).join(',')
    weightOf.set(m.range, m.weight)
  }
  const unique = [...new Map(parsed.map((m) => [m.text, m])).values()]
  if (syntax === 'ranked') {
    // A stable sort: equal weights keep their order. An invalid weight leaves the order alone.
    if (unique.some((m) => m.q === undefined)) return unique.map((m) => m.text).join(',')
    return unique
      .sort((a, b) => b.q! - a.q!)
      .map((m) => m.text)
      .join(',')
  }
  return unique
    .map((m) => m.text)
    .sort()
    .join(',')
}

/** RFC 9110 §12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ). */
const QVALUE = /^(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)$/

/**
 * A member of a weighted list, normalized: `range` (with its parameters)
 * identifies it, `weight` is its q parameter as written back ('' for 1),
 * `q` its value (undefined if invalid), `text` the whole member.
 */
function weightedMember(member: string): { range: string; weight: string; q: number | undefined; text: string } {
  const [head = '', ...rest] = splitOutsideQuotes(member, ';')
  const params: string[] = []
  let weight: string | undefined
  let q: number | undefined = 1
  for (const raw of rest) {
    const p = raw.trim()
    if (p === '') continue
    const eq = p.indexOf('=')
    const pname = (eq < 0 ? p : p.slice(0, eq)).trim().toLowerCase()
    let pvalue = eq < 0 ? undefined : p.slice(eq + 1).trim()
    if (pname === 'q' && weight === undefined && pvalue !== undefined) {
      // RFC 9110 §12.4.2: the weight; what follows it, if anything, stays after it.
      q = QVALUE.test(pvalue) ? Number(pvalue) : undefined
      weight = q === undefined ? `q=${pvalue}` : q === 1 ? '' : `q=${q}`
      params.push('\0')
      continue
    }
    if (pvalue !== undefined && /^"[!#$%&'*+.^_`|~0-9A-Za-z-]+"$/.test(pvalue)) pvalue = pvalue.slice(1, -1)
    params.push(pvalue === undefined ? pname : `${pname}=${pvalue}`)
  }
  // Parameter values keep their case: whether it matters depends on the parameter (RFC 9110 §8.3.1).
  const base = head.trim().toLowerCase()
  const w = weight ?? ''
  const before: string[] = []
  const after: string[] = []
  let seenWeight = false
  for (const p of params) {
    if (p === '\0') seenWeight = true
    else (seenWeight ? after : before).push(p)
  }
  const range = [base, ...before].join(';') + (after.length ? `;;${after.join(';')}` : '')
  const weightText = w === '' && after.length ? 'q=1' : w
  const text = [base, ...before, ...(weightText ? [weightText] : []), ...after].join(';')
  return { range, weight: weightText, q, text }
}

/** Splits at `sep` outside quoted-strings (RFC 9110 §5.6.4), keeping empty parts. */
function splitOutsideQuotes(value: string, sep: string): string[] {
  const parts: string[] = []
  let start = 0
  let quoted = false
  for (let i = 0; i < value.length; i++) {
    const c = value[i]
    if (quoted) {
      if (c === '\\') i++
      else if (c === '"') quoted = false
    } else if (c === '"') quoted = true
    else if (c === sep) {
      parts.push(value.slice(start, i))
      start = i + 1
    }
  }
  parts.push(value.slice(start))
  return parts
}

/**
 * §4: "When more than one suitable response is stored, a cache MUST use the
 * most recent one (as determined by the Date header field)". Whether `a` is
 * more recent than `b`: the later Date (the response time without a valid
 * one), then the later response time; a tie counts as more recent, so the one
 * stored last wins.
 */
export function moreRecent(a: StoredResponse, b: StoredResponse): boolean {
  const da = parseHttpDate(single(a.headers['date'])) ?? a.responseTime
  const db = parseHttpDate(single(b.headers['date'])) ?? b.responseTime
  return da !== db ? da > db : a.responseTime >= b.responseTime
}

/** A message's validators: its entity tag (RFC 9110 §8.8.3) and its Last-Modified time (§8.8.2), each weak or strong. */
interface Validators {
  etag?: { tag: string; weak: boolean }
  lastModified?: { time: number; strong: boolean }
}

/**
 * RFC 9110 §8.8.3: `W/` marks a weak entity tag. §8.8.2.2: a cache may take
 * a Last-Modified time as strong when the message's Date is at least 60
 * seconds after it; otherwise it is weak. A malformed ETag counts as none.
 */
function validatorsOf(h: Headers): Validators {
  const v: Validators = {}
  const etag = /^(W\/)?("[^"]*")$/.exec(single(h['etag'])?.trim() ?? '')
  if (etag) v.etag = { tag: etag[2]!, weak: etag[1] !== undefined }
  const lm = parseHttpDate(single(h['last-modified']))
  if (lm !== undefined) {
    const date = parseHttpDate(single(h['date']))
    v.lastModified = { time: lm, strong: date !== undefined && date - lm >= 60_000 }
  }
  return v
}

/**
 * RFC 9111 §4.3.4: of `initial` (the stored responses the request could have
 * chosen, freshness aside), those a 304 with header fields `fresh` updates,
 * by the first rule that applies:
 *
 * 1. the 304 has a strong validator (a strong ETag, or a strong
 *    Last-Modified): every stored response with the same strong validator;
 *    none if no stored response has it ("MUST NOT use the new response to
 *    update any stored responses");
 * 2. it has only weak validators: the most recent (§4) stored response whose
 *    validator matches by weak comparison (RFC 9110 §8.8.3.2);
 * 3. it has no validator: the one stored response, if there is just one and
 *    it has no validator either.
 *
 * A stored response whose validators contradict the 304's (another entity
 * tag, another Last-Modified) is never selected, whatever else it shares.
 */
export function selectForUpdate<T extends StoredResponse>(initial: readonly T[], fresh: Headers): T[] {
  const n = validatorsOf(fresh)
  const sameTag = (s: Validators) => n.etag !== undefined && s.etag !== undefined && s.etag.tag === n.etag.tag
  const sameTime = (s: Validators) => n.lastModified !== undefined && s.lastModified !== undefined && s.lastModified.time === n.lastModified.time
  const agrees = (s: Validators) => (n.etag === undefined || s.etag === undefined || sameTag(s)) && (n.lastModified === undefined || s.lastModified === undefined || sameTime(s))
  const strongEtag = n.etag !== undefined && !n.etag.weak
  const strongTime = n.lastModified?.strong === true
  if (strongEtag || strongTime) {
    return initial.filter((e) => {
      const s = validatorsOf(e.headers)
      if (!agrees(s)) return false
      return (strongEtag && sameTag(s) && !s.etag!.weak) || (strongTime && sameTime(s) && s.lastModified!.strong)
    })
  }
  if (n.etag !== undefined || n.lastModified !== undefined) {
    let best: T | undefined
    for (const e of initial) {
      const s = validatorsOf(e.headers)
      if ((sameTag(s) || sameTime(s)) && agrees(s) && (best === undefined || moreRecent(e, best))) best = e
    }
    return best === undefined ? [] : [best]
  }
  const only = initial.length === 1 ? initial[0]! : undefined
  if (only === undefined) return []
  const s = validatorsOf(only.headers)
  return s.etag === undefined && s.lastModified === undefined ? [only] : []
}

/** §3.2 exceptions besides §3.1's: Content-Length, and fields the stored content depends on. */
const NOT_UPDATED = new Set(['content-length', 'content-encoding', 'content-range', ...PROXY_FIELDS])

/**
 * §3.2, §4.3.4, §4.3.5: the stored headers updated with the fields of a 304
 * (or 200 to HEAD): each field replaces the stored one, except hop-by-hop
 * fields (§3.1, RFC 9110 §7.6.1), the proxy-specific fields of §3.1,
 * Content-Length (§3.2), and fields the stored content depends on or that are
 * processed on receipt (Content-Encoding, Content-Range; §3.2
 * allows omitting these). The stored Age is dropped: it described the old
 * response, and the new response's Age (if any) replaces it, for the
 * response time of the validation. Returns a new object.
 */
export function updateStoredHeaders(stored: Headers, fresh: Headers): Headers {
  const out: Headers = { ...stored }
  delete out['age']
  for (const [name, value] of Object.entries(withoutHopByHop(fresh))) {
    const lower = name.toLowerCase()
    if (value === undefined || NOT_UPDATED.has(lower)) continue
    for (const key of Object.keys(out)) if (key !== lower && key.toLowerCase() === lower) delete out[key]
    out[lower] = Array.isArray(value) ? [...value] : value
  }
  return out
}

/** RFC 9110 §7.6.1 (and RFC 9111 §3.1): fields that apply to one connection. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  ...PROXY_FIELDS,
])

/**
 * RFC 9110 §7.6.1: a copy without Connection, the fields it names,
 * Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade and
 * the proxy-specific Proxy-Authenticate, Proxy-Authentication-Info and
 * Proxy-Authorization (RFC 9111 §3.1). Names are matched case-insensitively.
 */
export function withoutHopByHop(headers: Headers): Headers {
  // Fields named by Connection are hop-by-hop too; no allocation when there is none (the common case).
  let named: Set<string> | undefined
  for (const name in headers) {
    const value = headers[name]
    if (value === undefined || name.length !== 10 || name.toLowerCase() !== 'connection') continue
    for (const token of (Array.isArray(value) ? value.join(',') : value).split(',')) {
      const t = token.trim().toLowerCase()
      if (t) (named ??= new Set()).add(t)
    }
  }
  const out: Headers = {}
  for (const name in headers) {
    const lower = name.toLowerCase()
    if (!HOP_BY_HOP.has(lower) && !named?.has(lower)) out[name] = headers[name]
  }
  return out
}
