/**
 * Cache-Control (RFC 9111 §5.2) and targeted cache-control fields such as
 * CDN-Cache-Control (RFC 9213). Pure functions over plain header maps with
 * lower-case names (like Node's IncomingHttpHeaders).
 *
 * Two parsers, because the two field kinds have different error handling:
 *
 * - Cache-Control is `#cache-directive`, `token [ "=" ( token / quoted-string ) ]`
 *   (§5.2). It is parsed leniently, directive by directive: a directive that
 *   cannot be understood is dropped, the rest still apply (§5.2.3: unrecognized
 *   directives are ignored).
 * - Targeted fields are Structured Field Dictionaries (RFC 9213 §2.1, RFC 8941
 *   §3.2, RFC 9651; the parser is structured-fields.ts). They are parsed
 *   strictly: any parse error means the whole field is ignored, as if absent
 *   (RFC 9213 §2.1).
 *
 * Decisions where the RFCs leave room (documented again where they apply):
 *
 * - Duplicated directives keep the most restrictive value (§4.2.1 allows "the
 *   first occurrence" or "considered stale"; the most restrictive value is
 *   never less safe than the first): the smallest max-age, s-maxage,
 *   stale-while-revalidate, stale-if-error and max-stale (a bounded max-stale
 *   beats an unbounded one), the largest min-fresh; an unqualified no-cache or
 *   private beats a qualified one; qualified field lists are merged.
 * - An invalid max-age or s-maxage (not delta-seconds, e.g. `max-age=abc`,
 *   `max-age=-1`, `max-age=1.5`, or no argument) is read as 0: §4.2.1
 *   encourages caches "to consider responses that have invalid freshness
 *   information ... to be stale". Other invalid numeric arguments are ignored
 *   (ignoring stale-while-revalidate, stale-if-error or max-stale is the
 *   restrictive choice).
 * - Directives that restrict caching (no-store, no-cache, private,
 *   must-revalidate, proxy-revalidate, no-transform, only-if-cached) count
 *   even when they carry an argument they do not define; directives that widen
 *   caching (public, must-understand, immutable) are ignored if they carry one.
 */

import { parseSfDictionary, type SfMember } from './structured-fields.ts'
import { isToken } from './token.ts'

/** A header map with lower-case names, like Node's IncomingHttpHeaders. */
export type Headers = Record<string, string | string[] | undefined>

export interface CacheDirectives {
  maxAge?: number
  sMaxage?: number
  noCache?: true | string[]
  noStore?: true
  private?: true | string[]
  public?: true
  mustRevalidate?: true
  proxyRevalidate?: true
  mustUnderstand?: true
  noTransform?: true
  immutable?: true
  staleWhileRevalidate?: number
  staleIfError?: number
  // request directives (RFC 9111 §5.2.1)
  maxStale?: number | true
  minFresh?: number
  onlyIfCached?: true
  /**
   * Set by targetedCacheControl: the name of the targeted field these
   * directives came from. RFC 9213 §2.2: when a targeted field is used, the
   * cache MUST ignore Cache-Control *and Expires*, so freshnessLifetime skips
   * Expires when this is set.
   */
  targeted?: string
}

/** §1.2.2: values above the greatest representable integer become 2^31. */
export const DELTA_SECONDS_MAX = 2147483648

/** §1.2.2: delta-seconds = 1*DIGIT, capped at 2^31. undefined when invalid. */
export function parseDeltaSeconds(value: string | undefined): number | undefined {
  if (value === undefined || !/^[0-9]+$/.test(value)) return undefined
  const n = Number(value) // long digit strings become huge or Infinity, both capped
  return n > DELTA_SECONDS_MAX ? DELTA_SECONDS_MAX : n
}

/**
 * Parses Cache-Control (§5.2). Several field lines (an array) are parsed
 * one by one and merged, as if combined with commas (RFC 9110 §5.3), without
 * letting an unbalanced quote in one line swallow the next. Never throws.
 */
export function parseCacheControl(value: string | string[] | undefined): Readonly<CacheDirectives> {
  if (value === undefined) return NONE
  // A cache parses the same few values for every hit: keep the results (frozen, so shared safely).
  if (typeof value === 'string') {
    const known = parsed.get(value)
    if (known) return known
    const result = Object.freeze(parseFields(value))
    if (parsed.size >= 1024) parsed.clear()
    parsed.set(value, result)
    return result
  }
  return parseFields(value)
}

const NONE: Readonly<CacheDirectives> = Object.freeze({})
const parsed = new Map<string, Readonly<CacheDirectives>>()

function parseFields(value: string | string[]): CacheDirectives {
  const out: CacheDirectives = {}
  for (const line of Array.isArray(value) ? value : [value]) {
    if (typeof line !== 'string') continue
    for (const element of splitList(line)) {
      const eq = element.indexOf('=')
      const name = (eq === -1 ? element : element.slice(0, eq)).trim().toLowerCase()
      if (!isToken(name)) continue // §5.6.1: empty elements and junk are skipped
      const arg = eq === -1 ? undefined : unquote(element.slice(eq + 1).trim())
      applyDirective(out, name, arg)
    }
  }
  return out
}

/** Splits a #list on commas that are not inside a quoted-string (RFC 9110 §5.6.1, §5.6.4). */
function splitList(line: string): string[] {
  const parts: string[] = []
  let start = 0
  let quoted = false
  for (let i = 0; i < line.length; i++) {
    const c = line[i]
    if (quoted) {
      if (c === '\\') i++ // quoted-pair
      else if (c === '"') quoted = false
    } else if (c === '"') quoted = true
    else if (c === ',') {
      parts.push(line.slice(start, i))
      start = i + 1
    }
  }
  parts.push(line.slice(start))
  return parts
}

/** A token is returned as is; a quoted-string loses its quotes and quoted-pairs (RFC 9110 §5.6.4). */
function unquote(arg: string): string {
  if (!arg.startsWith('"')) return arg
  let out = ''
  for (let i = 1; i < arg.length; i++) {
    const c = arg[i]!
    if (c === '\\' && i + 1 < arg.length) out += arg[++i]
    else if (c === '"') break
    else out += c
  }
  return out
}

/** `no-cache="a, B"` -> ['a', 'b']; an empty or junk list -> undefined (treated as unqualified). */
function fieldNames(arg: string): string[] | undefined {
  const names = arg
    .split(',')
    .map((n) => n.trim().toLowerCase())
    .filter((n) => isToken(n))
  return names.length ? [...new Set(names)] : undefined
}

function minOf(a: number | undefined, b: number): number {
  return a === undefined ? b : Math.min(a, b)
}

/** Merges two qualified/unqualified no-cache or private values: unqualified wins, lists are merged. */
function mergeQualified(a: true | string[] | undefined, b: true | string[]): true | string[] {
  if (a === true || b === true) return true
  if (a === undefined) return b
  return [...new Set([...a, ...b])]
}

function applyDirective(out: CacheDirectives, name: string, arg: string | undefined): void {
  switch (name) {
    // §4.2.1: invalid freshness information -> stale (0).
    case 'max-age':
      out.maxAge = minOf(out.maxAge, parseDeltaSeconds(arg) ?? 0)
      break
    case 's-maxage':
      out.sMaxage = minOf(out.sMaxage, parseDeltaSeconds(arg) ?? 0)
      break
    // RFC 5861 §3, §4: an invalid window is ignored (no stale serving).
    case 'stale-while-revalidate': {
      const n = parseDeltaSeconds(arg)
      if (n !== undefined) out.staleWhileRevalidate = minOf(out.staleWhileRevalidate, n)
      break
    }
    case 'stale-if-error': {
      const n = parseDeltaSeconds(arg)
      if (n !== undefined) out.staleIfError = minOf(out.staleIfError, n)
      break
    }
    // §5.2.1.2: without a value the client accepts any staleness.
    case 'max-stale': {
      if (arg === undefined) {
        if (out.maxStale === undefined) out.maxStale = true
        break
      }
      const n = parseDeltaSeconds(arg)
      if (n !== undefined) out.maxStale = out.maxStale === undefined || out.maxStale === true ? n : Math.min(out.maxStale, n)
      break
    }
    // §5.2.1.3: the larger min-fresh is the more restrictive.
    case 'min-fresh': {
      const n = parseDeltaSeconds(arg)
      if (n !== undefined) out.minFresh = out.minFresh === undefined ? n : Math.max(out.minFresh, n)
      break
    }
    // §5.2.2.4, §5.2.2.7: qualified forms list field names (case-insensitive).
    case 'no-cache':
      out.noCache = mergeQualified(out.noCache, (arg !== undefined && fieldNames(arg)) || true)
      break
    case 'private':
      out.private = mergeQualified(out.private, (arg !== undefined && fieldNames(arg)) || true)
      break
    // Restrictive flags count whatever their argument.
    case 'no-store':
      out.noStore = true
      break
    case 'must-revalidate':
      out.mustRevalidate = true
      break
    case 'proxy-revalidate':
      out.proxyRevalidate = true
      break
    case 'no-transform':
      out.noTransform = true
      break
    case 'only-if-cached':
      out.onlyIfCached = true
      break
    // Permissive flags are ignored when they carry an argument they do not define (§5.2).
    case 'public':
      if (arg === undefined) out.public = true
      break
    case 'must-understand':
      if (arg === undefined) out.mustUnderstand = true
      break
    case 'immutable': // RFC 8246
      if (arg === undefined) out.immutable = true
      break
    default:
    // §5.2.3: a cache MUST ignore unrecognized cache directives.
  }
}

// ---------------------------------------------------------------------------
// Targeted fields (RFC 9213)

/**
 * RFC 9213 §2.2: returns the directives of the first field in `fieldNames`
 * (the target list, most specific first, e.g. ['edgebox-cache-control',
 * 'cdn-cache-control']) that is present, non-empty and valid; undefined if
 * none is, in which case the caller uses Cache-Control and Expires.
 *
 * "Valid" means: the value parses as a Structured Field Dictionary (RFC 8941
 * §4.2.2, with RFC 9651's Date and Display String types), and every directive
 * this module knows has a value of the type RFC 9213 §2.1 infers for it
 * (Integer >= 0 for max-age and the like; Boolean for flags; Boolean true or a
 * String listing field names for no-cache and private). RFC 9213 §2.1 says
 * implementations SHOULD NOT consume values that violate those constraints;
 * a field such as `max-age=a` or `max-age=1.5` is therefore treated as
 * invalid as a whole and the next mechanism is used, rather than being
 * half-applied while still overriding Cache-Control. A Boolean false
 * (`no-store=?0`) means the directive is absent. Parameters are ignored
 * (§2.1). Directives that only exist in requests are ignored.
 */
export function targetedCacheControl(headers: Headers, fieldNames: readonly string[]): CacheDirectives | undefined {
  for (const fieldName of fieldNames) {
    const name = fieldName.toLowerCase()
    const raw = headers[name]
    if (raw === undefined) continue
    // RFC 8941 §4.2: several field lines are combined with ", " before parsing.
    const value = Array.isArray(raw) ? raw.join(', ') : raw
    if (value.trim() === '') continue // §2.1: an empty field is ignored
    const dict = parseSfDictionary(value)
    if (!dict) continue
    const directives = fromSfDictionary(dict)
    if (!directives) continue
    directives.targeted = name
    return directives
  }
  return undefined
}

const INTEGER_DIRECTIVES: Record<string, 'maxAge' | 'sMaxage' | 'staleWhileRevalidate' | 'staleIfError'> = {
  'max-age': 'maxAge',
  's-maxage': 'sMaxage',
  'stale-while-revalidate': 'staleWhileRevalidate',
  'stale-if-error': 'staleIfError',
}
const FLAG_DIRECTIVES: Record<
  string,
  'noStore' | 'public' | 'mustRevalidate' | 'proxyRevalidate' | 'mustUnderstand' | 'noTransform' | 'immutable'
> = {
  'no-store': 'noStore',
  public: 'public',
  'must-revalidate': 'mustRevalidate',
  'proxy-revalidate': 'proxyRevalidate',
  'must-understand': 'mustUnderstand',
  'no-transform': 'noTransform',
  immutable: 'immutable',
}

/** RFC 9213 §2.1 type mapping. undefined when a known directive has a value of the wrong type. */
function fromSfDictionary(dict: Map<string, SfMember>): CacheDirectives | undefined {
  const out: CacheDirectives = {}
  for (const [key, member] of dict) {
    const numeric = Object.hasOwn(INTEGER_DIRECTIVES, key) ? INTEGER_DIRECTIVES[key] : undefined
    const flag = Object.hasOwn(FLAG_DIRECTIVES, key) ? FLAG_DIRECTIVES[key] : undefined
    if (numeric) {
      if (member.type !== 'integer' || member.value < 0) return undefined
      out[numeric] = Math.min(member.value, DELTA_SECONDS_MAX)
    } else if (flag) {
      if (member.type !== 'boolean') return undefined
      if (member.value) out[flag] = true
    } else if (key === 'no-cache' || key === 'private') {
      const prop = key === 'no-cache' ? 'noCache' : 'private'
      if (member.type === 'boolean') {
        if (member.value) out[prop] = true
      } else if (member.type === 'string') {
        out[prop] = fieldNames(member.value) ?? true
      } else return undefined
    }
    // Anything else (extensions, request-only directives) is ignored.
  }
  return out
}
