import { TOKEN } from '../http/token.ts'
import type { Batch, RumEvent } from './schema.ts'

/**
 * The fast path of `parseBatch` (src/rum/schema.ts): the version 1 batch
 * schema checked by hand, for the beacons every page sends. Checking a
 * 10-event batch with the zod schema costs about a fifth of the collector's
 * CPU per beacon (the benchmark's profile, bench/README.md); this does the
 * same checks on the parsed JSON in place and returns the batch as the
 * schema would (`cached` defaulted, `phases` in the schema's key order), or
 * `null`. `null` only means "not sure": parseBatch then asks the schema,
 * which alone decides what is refused and says why. So this may refuse more
 * than the schema (an odd but valid batch just takes the slow path), never
 * less: test/unit/rum-batch-check.test.ts checks that on generated batches
 * and on every mutation of them it makes.
 */

const MAX_STRING = 2048
const MAX_STACK = 16 * 1024
const MAX_AT = 86_400_000
const MAX_EVENTS = 100

const PV = /^[A-Za-z0-9_-]{1,64}$/
const WORD = /^[A-Za-z0-9_./-]+$/
const PROTOCOL = /^[A-Za-z0-9_./-]*$/
const HTTP_URL = /^https?:\/\//i
const BARE_SCHEME = /^[a-z][a-z0-9+.-]*:$/i

type Obj = Record<string, unknown>

const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)
const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v)
const nonNegative = (v: unknown): boolean => finite(v) && v >= 0
const int = (v: unknown, min: number, max: number): boolean => Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max
const str = (v: unknown, max: number): v is string => typeof v === 'string' && v.length <= max
const word = (v: unknown, max: number): boolean => str(v, max) && WORD.test(v)
const atOk = (v: unknown): boolean => finite(v) && v >= 0 && v <= MAX_AT
const pathOrUrl = (v: unknown): boolean => str(v, MAX_STRING) && ((v.startsWith('/') && !v.startsWith('//')) || (HTTP_URL.test(v) && URL.canParse(v)))
const eventUrl = (v: unknown): boolean => str(v, MAX_STRING) && (BARE_SCHEME.test(v) || (v.startsWith('/') && !v.startsWith('//')) || (HTTP_URL.test(v) && URL.canParse(v)))

/** Every own key of `o` is one of `allowed`. */
function onlyKeys(o: Obj, allowed: ReadonlySet<string>): boolean {
  for (const k in o) if (!allowed.has(k)) return false
  return true
}
const keys = (...names: string[]): ReadonlySet<string> => new Set(names)

const BATCH_KEYS = keys('v', 'pv', 'cached', 'page', 'release', 'env', 'device', 'events')
const DEVICE_KEYS = keys('w', 'dpr', 'conn', 'saveData', 'mobile')
const VITAL_KEYS = keys('t', 'at', 'name', 'value', 'rating', 'attr')
const NAV_KEYS = keys('t', 'at', 'type', 'protocol', 'phases')
const PHASES = ['redirect', 'dns', 'tcp', 'tls', 'ttfb', 'transfer', 'dom', 'load'] as const
const PHASE_KEYS = keys(...PHASES)
const RESOURCE_KEYS = keys('t', 'at', 'url', 'initiator', 'duration', 'status', 'size', 'failed')
const ERROR_KEYS = keys('t', 'at', 'kind', 'message', 'stack', 'count')
const API_KEYS = keys('t', 'at', 'method', 'url', 'status', 'duration', 'outcome')
const ROUTE_KEYS = keys('t', 'at', 'pv', 'from', 'to')
const VITALS = keys('LCP', 'INP', 'CLS', 'FCP', 'TTFB')
const RATINGS = keys('good', 'needs-improvement', 'poor')
const ERROR_KINDS = keys('error', 'unhandledrejection', 'resource')
const OUTCOMES = keys('ok', 'error', 'abort', 'network')

const has = (o: Obj, k: string): boolean => Object.hasOwn(o, k)

function attrOk(a: unknown): boolean {
  if (!isObject(a) || Object.getPrototypeOf(a) !== Object.prototype) return false
  let n = 0
  for (const k in a) {
    if (++n > 16 || k.length < 1 || k.length > 64 || k === '__proto__') return false
    const v = a[k]
    if (!(str(v, MAX_STRING) || finite(v))) return false
  }
  return true
}

/** One event checked in place; the nav event's phases are rebuilt in the schema's order. */
function event(e: unknown): boolean {
  if (!isObject(e) || !atOk(e.at)) return false
  switch (e.t) {
    case 'vital':
      return onlyKeys(e, VITAL_KEYS) && typeof e.name === 'string' && VITALS.has(e.name) && nonNegative(e.value) && typeof e.rating === 'string' && RATINGS.has(e.rating) && (!has(e, 'attr') || attrOk(e.attr))
    case 'nav': {
      if (!onlyKeys(e, NAV_KEYS) || !word(e.type, 32) || (has(e, 'protocol') && !(str(e.protocol, 32) && PROTOCOL.test(e.protocol)))) return false
      const p = e.phases
      if (!isObject(p) || !onlyKeys(p, PHASE_KEYS)) return false
      const ordered: Obj = {}
      for (const k of PHASES) {
        if (!nonNegative(p[k])) return false
        ordered[k] = p[k]
      }
      e.phases = ordered
      return true
    }
    case 'resource':
      return onlyKeys(e, RESOURCE_KEYS) && eventUrl(e.url) && word(e.initiator, 32) && nonNegative(e.duration) && int(e.status, 0, 999) && int(e.size, 0, Number.MAX_SAFE_INTEGER) && typeof e.failed === 'boolean'
    case 'error':
      return onlyKeys(e, ERROR_KEYS) && typeof e.kind === 'string' && ERROR_KINDS.has(e.kind) && str(e.message, MAX_STRING) && (!has(e, 'stack') || str(e.stack, MAX_STACK)) && int(e.count, 1, 10_000)
    case 'api':
      return onlyKeys(e, API_KEYS) && str(e.method, 32) && TOKEN.test(e.method) && eventUrl(e.url) && int(e.status, 0, 999) && nonNegative(e.duration) && typeof e.outcome === 'string' && OUTCOMES.has(e.outcome)
    case 'route':
      return onlyKeys(e, ROUTE_KEYS) && typeof e.pv === 'string' && PV.test(e.pv) && pathOrUrl(e.from) && pathOrUrl(e.to)
    default:
      return false
  }
}

function deviceOk(d: unknown): boolean {
  if (!isObject(d) || !onlyKeys(d, DEVICE_KEYS)) return false
  if (has(d, 'w') && !int(d.w, 0, 100_000)) return false
  if (has(d, 'dpr') && !(finite(d.dpr) && d.dpr >= 0 && d.dpr <= 100)) return false
  if (has(d, 'conn') && !word(d.conn, 16)) return false
  if (has(d, 'saveData') && typeof d.saveData !== 'boolean') return false
  if (has(d, 'mobile') && typeof d.mobile !== 'boolean') return false
  return true
}

/**
 * The batch, checked, when `value` (freshly parsed JSON, which this may
 * change in place) is certainly a valid version 1 batch; else null.
 */
export function checkBatchFast(value: unknown): Batch | null {
  if (!isObject(value) || !onlyKeys(value, BATCH_KEYS)) return null
  const b = value
  if (b.v !== 1 || typeof b.pv !== 'string' || !PV.test(b.pv) || !pathOrUrl(b.page)) return null
  if (has(b, 'cached') ? typeof b.cached !== 'boolean' : false) return null
  if (has(b, 'release') && !str(b.release, 128)) return null
  if (has(b, 'env') && !str(b.env, 128)) return null
  if (has(b, 'device') && !deviceOk(b.device)) return null
  const events = b.events
  if (!Array.isArray(events) || events.length > MAX_EVENTS) return null
  for (let i = 0; i < events.length; i++) if (!event(events[i])) return null
  if (!has(b, 'cached')) b.cached = false
  return b as unknown as Batch & { events: RumEvent[] }
}
