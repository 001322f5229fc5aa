import { z } from 'zod'
import { jsonDepthProblem } from '../http/json-limits.ts'
import { TOKEN } from '../http/token.ts'
import { checkBatchFast } from './batch-check.ts'

/**
 * The wire format of a real-user-monitoring batch, version 1
 * (docs/monitoring.md, "The wire format"): what the SDK sends to
 * `POST /_edgebox/rum/batch` (JSON, RFC 8259) or, base64url-encoded
 * (RFC 4648 §5), in `GET /_edgebox/rum/beacon.gif?d=...`. Everything here is
 * pure: text in, a checked batch (or a one-line reason) out.
 *
 * Every object is strict (an unknown key is refused, never silently dropped),
 * every number finite (`1e999` parses to Infinity and is refused), every
 * string bounded.
 */

/** The most a batch body may be, in bytes (UTF-8). */
export const MAX_BATCH_BYTES = 64 * 1024
/** The most a GIF beacon's `d=` value may be, in characters (base64url is ASCII: characters are bytes). */
export const MAX_GIF_DATA = 8 * 1024
/** The deepest a batch's JSON may nest arrays and objects. */
export const MAX_BATCH_DEPTH = 8
/** The most events one batch may carry. */
export const MAX_EVENTS = 100
/** The longest ordinary string (messages, URLs, attribution values). */
export const MAX_STRING = 2048
/** The longest stack. */
export const MAX_STACK = 16 * 1024
/** The latest `at` an event may have: a day after its page view began, in ms. */
export const MAX_AT = 86_400_000

/** The web-vitals a `vital` event names. */
export const VITAL_NAMES = ['LCP', 'INP', 'CLS', 'FCP', 'TTFB'] as const
/** A web-vital's name. */
export type VitalName = (typeof VITAL_NAMES)[number]

/** The event kinds (`t`). */
export const EVENT_KINDS = ['vital', 'nav', 'resource', 'error', 'api', 'route'] as const
/** An event kind (`t`). */
export type EventKind = (typeof EVENT_KINDS)[number]

/** A page-view id: 1 to 64 of [A-Za-z0-9_-] (what `Server-Timing: pv;desc=...` carries, RFC 8941 token-safe). */
export const PV = /^[A-Za-z0-9_-]{1,64}$/

/** A non-negative finite number (a duration, a size in ms or bytes). */
const nonNegative = () => z.number().min(0)

/** A short lower-case word such as a navigation type or an initiator type. */
const word = (max: number) => z.string().regex(/^[A-Za-z0-9_./-]+$/, 'expected a short word of [A-Za-z0-9_./-]').max(max)

/**
 * A same-origin path (`/docs/intro`, not `//host`) or an absolute http(s) URL,
 * at most 2,048 characters.
 */
export const pathOrUrl = () =>
  z
    .string()
    .max(MAX_STRING)
    .refine((v) => (v.startsWith('/') && !v.startsWith('//')) || (/^https?:\/\//i.test(v) && URL.canParse(v)), 'expected a path (/...) or an http(s) URL')

/**
 * What a resource or api event's `url` may be: pathOrUrl, or a bare scheme
 * (`data:`, `blob:`), which is all the SDK reports of such URLs.
 */
export const eventUrl = () =>
  z
    .string()
    .max(MAX_STRING)
    .refine(
      (v) => /^[a-z][a-z0-9+.-]*:$/i.test(v) || (v.startsWith('/') && !v.startsWith('//')) || (/^https?:\/\//i.test(v) && URL.canParse(v)),
      'expected a path (/...), an http(s) URL, or a bare scheme (data:)',
    )

const at = z.number().min(0).max(MAX_AT)

const pv = z.string().regex(PV, 'expected 1 to 64 of [A-Za-z0-9_-]')

/** Attribution: at most 16 keys, each a string or a finite number. */
const attr = z
  .record(z.string().min(1).max(64), z.union([z.string().max(MAX_STRING), z.number()]))
  .refine((r) => Object.keys(r).length <= 16, 'at most 16 attribution keys')

/** A web-vital measurement (https://web.dev/articles/vitals); `value` in ms, CLS unitless. */
export const vitalEventSchema = z.strictObject({
  t: z.literal('vital'),
  at,
  name: z.enum(VITAL_NAMES),
  value: nonNegative(),
  rating: z.enum(['good', 'needs-improvement', 'poor']),
  attr: attr.optional(),
})

/** The navigation timing breakdown (W3C Navigation Timing Level 2), each phase in ms. */
export const navEventSchema = z.strictObject({
  t: z.literal('nav'),
  at,
  /** `navigate`, `reload`, `back_forward`, `prerender`, `back-forward-cache`, `restore`... */
  type: word(32),
  /** `nextHopProtocol`: `h2`, `h3`, `http/1.1`; empty when the browser does not say (a cached or cross-origin answer). */
  protocol: z.string().regex(/^[A-Za-z0-9_./-]*$/, 'expected a protocol such as h2 or http/1.1').max(32).optional(),
  phases: z.strictObject({
    redirect: nonNegative(),
    dns: nonNegative(),
    tcp: nonNegative(),
    tls: nonNegative(),
    ttfb: nonNegative(),
    transfer: nonNegative(),
    dom: nonNegative(),
    load: nonNegative(),
  }),
})

/** A slow or failed resource (Resource Timing). `status` 0: unknown (cross-origin without Timing-Allow-Origin). */
export const resourceEventSchema = z.strictObject({
  t: z.literal('resource'),
  at,
  url: eventUrl(),
  initiator: word(32),
  duration: nonNegative(),
  status: z.number().int().min(0).max(999),
  size: z.number().int().min(0),
  failed: z.boolean(),
})

/** An error: a thrown error, an unhandled rejection, or a resource that failed to load; `count` repeats folded by the SDK. */
export const errorEventSchema = z.strictObject({
  t: z.literal('error'),
  at,
  kind: z.enum(['error', 'unhandledrejection', 'resource']),
  message: z.string().max(MAX_STRING),
  stack: z.string().max(MAX_STACK).optional(),
  count: z.number().int().min(1).max(10_000),
})

/** A fetch or XHR call. `status` 0: none (network failure, abort). */
export const apiEventSchema = z.strictObject({
  t: z.literal('api'),
  at,
  /** An RFC 9110 §9.1 method token. */
  method: z.string().max(32).regex(TOKEN, 'expected an HTTP method token'),
  url: eventUrl(),
  status: z.number().int().min(0).max(999),
  duration: nonNegative(),
  outcome: z.enum(['ok', 'error', 'abort', 'network']),
})

/** A soft navigation: a new page view `pv` from `from` to `to`. */
export const routeEventSchema = z.strictObject({
  t: z.literal('route'),
  at,
  pv,
  from: pathOrUrl(),
  to: pathOrUrl(),
})

/** One event, by its `t`. */
export const eventSchema = z.discriminatedUnion('t', [
  vitalEventSchema,
  navEventSchema,
  resourceEventSchema,
  errorEventSchema,
  apiEventSchema,
  routeEventSchema,
])

/** A batch, version 1. */
export const batchSchema = z.strictObject({
  v: z.literal(1),
  pv,
  cached: z.boolean().default(false),
  page: pathOrUrl(),
  release: z.string().max(128).optional(),
  env: z.string().max(128).optional(),
  device: z
    .strictObject({
      /** The viewport width in CSS pixels. */
      w: z.number().int().min(0).max(100_000).optional(),
      /** devicePixelRatio. */
      dpr: z.number().min(0).max(100).optional(),
      /** Network Information API `effectiveType`: `slow-2g`, `2g`, `3g`, `4g`. */
      conn: word(16).optional(),
      saveData: z.boolean().optional(),
      /** User-Agent Client Hints `mobile`. */
      mobile: z.boolean().optional(),
    })
    .optional(),
  events: z.array(eventSchema).max(MAX_EVENTS),
})

/** A checked batch. */
export type Batch = z.output<typeof batchSchema>
/** A checked event. */
export type RumEvent = Batch['events'][number]

/** What parseBatch and parseGifQuery answer. */
export type ParseResult = { readonly ok: true; readonly batch: Batch } | { readonly ok: false; readonly error: string }

/** `['events', 3, 'value']` -> `events[3].value`. */
function formatPath(p: ReadonlyArray<PropertyKey>): string {
  let out = ''
  for (const k of p) out += typeof k === 'number' ? `[${k}]` : out ? `.${String(k)}` : String(k)
  return out || '(root)'
}

/** One issue as `path: message`. */
function describeIssue(issue: z.core.$ZodIssue): string {
  const where = formatPath(issue.path)
  if (issue.code === 'unrecognized_keys') return `${where}: unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`
  return `${where}: ${issue.message}`
}

/**
 * Checks a batch body: at most 64 KiB (UTF-8), JSON nested at most 8 deep
 * (counted before parsing), valid JSON, and the version 1 schema. The error
 * is one line naming the first problem's path (`events[3].value: ...`), with
 * how many more there were.
 */
export function parseBatch(text: string): ParseResult {
  // a UTF-16 code unit is at least one UTF-8 byte: a long string is over without counting
  if (text.length > MAX_BATCH_BYTES || Buffer.byteLength(text, 'utf8') > MAX_BATCH_BYTES) {
    return { ok: false, error: `batch larger than ${MAX_BATCH_BYTES} bytes` }
  }
  const deep = jsonDepthProblem(text, MAX_BATCH_DEPTH)
  if (deep) return { ok: false, error: deep }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    return { ok: false, error: `invalid JSON: ${(err as Error).message.split('\n')[0]}` }
  }
  // the common case without the schema's cost; anything it is not sure of goes to the schema
  const fast = checkBatchFast(value)
  if (fast) return { ok: true, batch: fast }
  const result = batchSchema.safeParse(value)
  if (!result.success) {
    const issues = result.error.issues
    const more = issues.length > 1 ? ` (and ${issues.length - 1} more problem${issues.length > 2 ? 's' : ''})` : ''
    return { ok: false, error: `${describeIssue(issues[0]!)}${more}` }
  }
  return { ok: true, batch: result.data }
}

const BASE64URL = /^[A-Za-z0-9_-]*={0,2}$/

/**
 * Checks a GIF beacon's `d` (the query value, already percent-decoded): at
 * most 8 KiB of base64url (RFC 4648 §5, padding optional) whose bytes are
 * UTF-8 JSON, then everything parseBatch checks.
 */
export function parseGifQuery(d: string): ParseResult {
  if (d.length > MAX_GIF_DATA) return { ok: false, error: `d larger than ${MAX_GIF_DATA} characters` }
  if (d === '') return { ok: false, error: 'd is empty' }
  if (!BASE64URL.test(d) || d.replace(/=+$/, '').length % 4 === 1) return { ok: false, error: 'd is not base64url' }
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(d, 'base64url'))
  } catch {
    return { ok: false, error: 'd is not UTF-8' }
  }
  return parseBatch(text)
}
