/**
 * The caches between the client and the origin, from what they write into
 * the response (docs/inspect.md): Cache-Status (RFC 9211), Age (RFC 9111
 * §5.1), Via (RFC 9110 §7.6.3) and X-Cache (no standard, but what most CDNs
 * and Varnish or Squid send). Which cache answered, hit or miss, how old.
 */

type Fields = Record<string, string | string[] | undefined>

const one = (h: Fields, name: string): string | undefined => {
  const v = h[name]
  return Array.isArray(v) ? v.join(', ') : v
}

/** One member of Cache-Status: one cache's account of what it did (RFC 9211 §2). */
export interface CacheStatusEntry {
  /** The cache's name (a Token or String). */
  cache: string
  /** It answered from a stored response (§2.1). */
  hit: boolean
  /** Why it went forward instead, toward the origin (§2.2): bypass, method, uri-miss, vary-miss, miss, request, stale, partial. */
  fwd: string | null
  /** The status the next hop answered with (§2.3). */
  fwdStatus: number | null
  /** Seconds of freshness left (§2.4); 0 when stale. */
  ttl: number | null
  /** Seconds past freshness, for a negative ttl (a stale response): never a negative duration. */
  stale: number | null
  /** Whether it stored the response it forwarded for (§2.5); null when not said. */
  stored: boolean | null
  /** The request was collapsed with another (§2.6). */
  collapsed: boolean
  /** The cache key (§2.7). */
  key: string | null
  /** Anything more, for people (§2.8). */
  detail: string | null
}

export interface CacheTrail {
  /** Cache-Status in order, nearest the origin first; null when absent or not a valid list. */
  cacheStatus: CacheStatusEntry[] | null
  /** Age in seconds: how long caches held the response (RFC 9111 §5.1); null when absent or invalid. */
  age: number | null
  /** Via entries, nearest the origin first. */
  via: string[]
  /** X-Cache values, in order. */
  xCache: string[]
  /** The cache that answered from its copy, when one says so by name. */
  answeredBy: string | null
  /** hit: a cache answered; revalidated: one answered after the origin said unchanged; miss: the origin answered; unknown: caches spoke, but not of this; none: nothing said. */
  outcome: 'hit' | 'revalidated' | 'miss' | 'unknown' | 'none'
  lines: string[]
}

// --- Structured Field List (RFC 9651 §4.2.1), just what Cache-Status needs: items with parameters ---

type Bare = { t: 'integer' | 'decimal'; v: number } | { t: 'string' | 'token'; v: string } | { t: 'boolean'; v: boolean } | { t: 'binary' }

interface Item {
  value: Bare
  params: Map<string, Bare>
}

class ListError extends Error {}

/** An RFC 9651 List of Items (an Inner List is refused: Cache-Status has none); null on any error, as §4.2 says to ignore the field. */
function parseList(input: string): Item[] | null {
  if (!/^[\x20-\x7e\t]*$/.test(input)) return null
  const s = input.replace(/^ +| +$/g, '')
  let i = 0
  const fail = (): never => {
    throw new ListError()
  }
  const bare = (): Bare => {
    const c = s[i] ?? ''
    if (c === '-' || /[0-9]/.test(c)) {
      const m = /^-?(\d{1,15})(\.\d{1,3})?/.exec(s.slice(i))
      if (!m || (m[2] && m[1]!.length > 12)) fail()
      i += m![0].length
      return { t: m![2] ? 'decimal' : 'integer', v: Number(m![0]) }
    }
    if (c === '"') {
      let out = ''
      for (i++; i < s.length; ) {
        const ch = s[i++]!
        if (ch === '"') return { t: 'string', v: out }
        if (ch === '\\') {
          const next = s[i++]
          if (next !== '"' && next !== '\\') fail()
          out += next
        } else if (ch < ' ' || ch > '~') fail()
        else out += ch
      }
      return fail()
    }
    if (c === '*' || /[A-Za-z]/.test(c)) {
      const m = /^[A-Za-z*][!#$%&'*+.^_`|~0-9A-Za-z:/-]*/.exec(s.slice(i))!
      i += m[0].length
      return { t: 'token', v: m[0] }
    }
    if (c === '?') {
      const v = s[i + 1]
      if (v !== '0' && v !== '1') fail()
      i += 2
      return { t: 'boolean', v: v === '1' }
    }
    if (c === ':') {
      const m = /^:[A-Za-z0-9+/=]*:/.exec(s.slice(i))
      if (!m) fail()
      i += m![0].length
      return { t: 'binary' }
    }
    return fail()
  }
  const params = (): Map<string, Bare> => {
    const out = new Map<string, Bare>()
    while (s[i] === ';') {
      i++
      while (s[i] === ' ') i++
      const m = /^[a-z*][a-z0-9_.*-]*/.exec(s.slice(i))
      if (!m) fail()
      i += m![0].length
      let v: Bare = { t: 'boolean', v: true }
      if (s[i] === '=') {
        i++
        v = bare()
      }
      out.set(m![0], v)
    }
    return out
  }
  try {
    const items: Item[] = []
    while (i < s.length) {
      if (s[i] === '(') fail() // an Inner List: not a cache
      const value = bare()
      items.push({ value, params: params() })
      while (s[i] === ' ' || s[i] === '\t') i++
      if (i >= s.length) break
      if (s[i++] !== ',') fail()
      while (s[i] === ' ' || s[i] === '\t') i++
      if (i >= s.length) fail() // a trailing comma
    }
    return items
  } catch (err) {
    if (err instanceof ListError) return null
    throw err
  }
}

/**
 * Cache-Status (RFC 9211 §2), one or more field lines read as one list:
 * each member a cache, nearest the origin first. A parameter of the wrong
 * type is ignored (§2); a value that is not a list of Tokens or Strings
 * makes the whole field ignored (null).
 */
export function parseCacheStatus(value: string | string[]): CacheStatusEntry[] | null {
  const items = parseList(Array.isArray(value) ? value.join(', ') : value)
  if (!items) return null
  const entries: CacheStatusEntry[] = []
  for (const { value: name, params } of items) {
    if (name.t !== 'token' && name.t !== 'string') return null
    const bool = (k: string): boolean | null => {
      const p = params.get(k)
      return p?.t === 'boolean' ? p.v : null
    }
    const int = (k: string): number | null => {
      const p = params.get(k)
      return p?.t === 'integer' ? p.v : null
    }
    const text = (k: string, token: boolean): string | null => {
      const p = params.get(k)
      return p?.t === 'string' || (token && p?.t === 'token') ? p.v : null
    }
    const ttl = int('ttl')
    const fwd = params.get('fwd')
    entries.push({
      cache: name.v,
      hit: bool('hit') === true,
      fwd: fwd?.t === 'token' ? fwd.v : null,
      fwdStatus: int('fwd-status'),
      ttl: ttl === null ? null : Math.max(0, ttl),
      stale: ttl !== null && ttl < 0 ? -ttl : null,
      stored: bool('stored'),
      collapsed: bool('collapsed') === true,
      key: text('key', false),
      detail: text('detail', true),
    })
  }
  return entries
}

/** RFC 9211 §2.2, in words. */
const FWD_WORDS: Record<string, string> = {
  bypass: 'set up to send this on (bypass)',
  method: 'the request method is not one it caches',
  'uri-miss': 'a miss (nothing stored for this URL)',
  'vary-miss': 'a miss (stored, but for other values of the headers in Vary)',
  miss: 'a miss (nothing stored for this request)',
  request: 'the request asked for a fresh answer (no-cache, or a reload)',
  stale: 'its copy was stale, so it checked',
  partial: 'it had only part of the response',
}

function entryLine(e: CacheStatusEntry, nearerOrigin: string): string {
  const detail = e.detail ? ` (detail: ${e.detail})` : ''
  const freshness = e.stale !== null ? `stale by ${e.stale} s` : e.ttl !== null ? `fresh for ${e.ttl} s more` : ''
  if (e.hit) return `${e.cache}: a hit${freshness ? `, ${freshness}` : ''}${detail}.`
  if (e.fwd !== null) {
    const asked = `it asked ${nearerOrigin}${e.fwdStatus !== null ? `, which answered ${e.fwdStatus}` : ''}`
    const kept = e.stored === true ? `; it stored the response${freshness ? `, ${freshness}` : ''}` : '; it did not store the response'
    return `${e.cache}: ${FWD_WORDS[e.fwd] ?? `fwd=${e.fwd}`}: ${asked}${e.fwd === 'stale' && e.fwdStatus === 304 ? ' (unchanged: it served its copy)' : kept}${e.collapsed ? '; it waited on the same request of another client (collapsed)' : ''}${detail}.`
  }
  return `${e.cache}: neither a hit nor a reason to forward: the entry does not say what it did${detail}.`
}

/** X-Cache values: HIT or MISS (and their CDN variants: TCP_HIT, RefreshHit, Hit from cloudfront). */
function xCacheOutcome(values: string[]): 'hit' | 'miss' | 'unknown' {
  if (values.some((v) => /hit/i.test(v) && !/miss/i.test(v))) return 'hit'
  if (values.length && values.every((v) => /miss/i.test(v))) return 'miss'
  return 'unknown'
}

/** Comma-separated elements, but not the commas inside a (comment). */
function viaEntries(value: string): string[] {
  const out: string[] = []
  let depth = 0
  let start = 0
  for (let i = 0; i < value.length; i++) {
    if (value[i] === '(') depth++
    else if (value[i] === ')') depth = Math.max(0, depth - 1)
    else if (value[i] === ',' && depth === 0) {
      out.push(value.slice(start, i))
      start = i + 1
    }
  }
  out.push(value.slice(start))
  return out.map((v) => v.trim()).filter(Boolean)
}

export function explainCaches(h: Fields): CacheTrail {
  const lines: string[] = []
  const statusValue = h['cache-status']
  let cacheStatus: CacheStatusEntry[] | null = null
  if (statusValue !== undefined) {
    cacheStatus = parseCacheStatus(statusValue)
    if (cacheStatus === null) lines.push(`Cache-Status: ${one(h, 'cache-status')} is not a valid list (RFC 9211, RFC 9651): ignored, as a client must.`)
  }
  const ageValue = one(h, 'age')
  let age: number | null = null
  if (ageValue !== undefined) {
    // RFC 9111 §1.2.2: delta-seconds, a non-negative integer
    if (/^\d+$/.test(ageValue.trim())) age = Math.min(Number(ageValue.trim()), 2 ** 31)
    else lines.push(`Age: ${ageValue} is not a whole number of seconds: ignored.`)
  }
  const viaValue = one(h, 'via')
  const via = viaValue ? viaEntries(viaValue) : []
  const xCacheValue = one(h, 'x-cache')
  const xCache = xCacheValue ? xCacheValue.split(',').map((v) => v.trim()).filter(Boolean) : []
  const aged = age !== null ? `, ${age} s old (Age: ${age})` : ''

  let outcome: CacheTrail['outcome'] = 'none'
  let answeredBy: string | null = null
  let main: string | null = null
  if (cacheStatus?.length) {
    // RFC 9211 §2: the last member is the cache nearest the user; the first going back toward the origin that did not forward answered
    outcome = 'unknown'
    for (let i = cacheStatus.length - 1; i >= 0; i--) {
      const e = cacheStatus[i]!
      if (e.hit) {
        outcome = 'hit'
        answeredBy = e.cache
        main = `Answered by the cache ${e.cache} from its copy (a hit)${aged}.`
        break
      }
      if (e.fwd === 'stale' && e.fwdStatus === 304) {
        outcome = 'revalidated'
        answeredBy = e.cache
        main = `Answered by the cache ${e.cache} from its copy, after the next hop said it was unchanged (304)${aged}.`
        break
      }
      if (e.fwd === null) break
      if (i === 0) {
        outcome = 'miss'
        main = `No cache had it: ${cacheStatus.length === 1 ? `${e.cache} forwarded` : `each of ${cacheStatus.map((c) => c.cache).join(', ')} forwarded`} the request, and the origin answered.`
      }
    }
  }
  if (xCache.length) {
    const x = xCacheOutcome(xCache)
    const said = `X-Cache: ${xCache.join(', ')}`
    const note = '(X-Cache is no standard: each CDN words it its own way)'
    const line =
      x === 'hit' ? `${said}: a cache answered from its copy ${note}${main ? '' : aged}.` : x === 'miss' ? `${said}: no cache had it, the origin answered ${note}.` : `${said}: no HIT or MISS in it ${note}.`
    if (outcome === 'none' || outcome === 'unknown') {
      outcome = x
      main = line
    } else lines.push(line)
  }
  if (outcome === 'none' && age !== null) {
    // RFC 9111 §5.1: an Age field means a cache, not the origin, produced or validated this response
    outcome = 'hit'
    main = `Age: ${age}: a cache held this response for ${age} s before it reached you (RFC 9111 §5.1); nothing says which.`
  }
  if (main) lines.unshift(main)
  if (cacheStatus)
    lines.push(...cacheStatus.map((e, i) => entryLine(e, i === 0 ? 'the origin' : cacheStatus![i - 1]!.cache)))
  if (via.length) {
    lines.push(via.length === 1 ? `Via: the response passed 1 intermediary: ${via[0]}.` : `Via: the response passed ${via.length} intermediaries, nearest the origin first: ${via.join(', ')}.`)
    if (outcome === 'none') outcome = 'unknown'
  }
  if (outcome === 'none' && (statusValue !== undefined || ageValue !== undefined)) outcome = 'unknown'
  if (!lines.length) lines.push('No Cache-Status, Age, X-Cache or Via: nothing says a cache was on the way.')
  return { cacheStatus, age, via, xCache, answeredBy, outcome, lines }
}
