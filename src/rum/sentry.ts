import { randomBytes, timingSafeEqual } from 'node:crypto'
import { jsonDepthProblem } from '../http/json-limits.ts'
import { batchSchema, MAX_STACK, MAX_STRING, PV, type Batch } from './schema.ts'
import { scrubText } from './scrub.ts'

/**
 * The Sentry protocol, as far as the collector takes it (docs/monitoring.md,
 * "Sentry's protocol"): an app already using a Sentry SDK (`@sentry/browser`)
 * reports its errors to Edgebox by changing its DSN to
 * `https://<key>@<site>/_edgebox/rum/sentry/<project>`, which makes the SDK
 * post to
 *
 *   POST /_edgebox/rum/sentry/api/<project>/envelope/   an envelope
 *   POST /_edgebox/rum/sentry/api/<project>/store/      one event as JSON (older SDKs)
 *
 * Only error events are taken, each made into a one-event batch of the wire
 * format (an `error` event) so it gets the same scrubbing, rows and
 * fingerprint as an error the Edgebox SDK sends. Sessions, client reports,
 * transactions, attachments and every other item type are skipped. Pure
 * functions: bytes in, batches (or a one-line reason) out.
 *
 * Envelopes: https://develop.sentry.dev/sdk/data-model/envelopes/ ; events:
 * https://develop.sentry.dev/sdk/data-model/event-payloads/ .
 */

/** The most an envelope or a store body may be, in bytes. */
export const MAX_SENTRY_BYTES = 200 * 1024
/** The most items one envelope may carry. */
export const MAX_SENTRY_ITEMS = 100
/** The deepest an envelope's headers or an event's JSON may nest arrays and objects. */
export const MAX_SENTRY_DEPTH = 16
/** The most stack frames made into a stack text (the newest ones). */
export const MAX_SENTRY_FRAMES = 100

/** The `sentry` part of a site's `rum` option: the DSN's project id and public key. */
export interface SentryOptions {
  readonly project: string
  readonly key: string
}

/** The paths of a project's two endpoints. */
export function sentryPaths(project: string): { envelope: string; store: string } {
  return { envelope: `/_edgebox/rum/sentry/api/${project}/envelope/`, store: `/_edgebox/rum/sentry/api/${project}/store/` }
}

/**
 * The public key a request names: `sentry_key` of an `X-Sentry-Auth:
 * Sentry sentry_key=..., sentry_version=7` header (or `Authorization` with
 * the same form), else the `sentry_key` query parameter (what the browser
 * SDK sends, since sendBeacon and simple fetches carry no such header).
 */
export function sentryKeyOf(headers: { auth?: string | undefined; authorization?: string | undefined }, query: string): string | undefined {
  for (const h of [headers.auth, headers.authorization]) {
    if (!h || !/^\s*Sentry\s/i.test(h)) continue
    const m = /(?:^|[\s,])sentry_key\s*=\s*([^,\s]+)/i.exec(h.replace(/^\s*Sentry\s+/i, ' '))
    if (m) return m[1]
  }
  const q = new URLSearchParams(query.startsWith('?') ? query.slice(1) : query).get('sentry_key')
  return q ?? undefined
}

/** The key a request named matches the configured one (compared in constant time). */
export function sentryKeyMatches(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false
  const a = Buffer.from(given.toLowerCase())
  const b = Buffer.from(expected.toLowerCase())
  return a.length === b.length && timingSafeEqual(a, b)
}

/** What parseEnvelope answers: the `event` payloads (parsed JSON) and how many other items were skipped. */
export type EnvelopeResult = { readonly ok: true; readonly events: unknown[]; readonly skipped: number } | { readonly ok: false; readonly error: string }

const NEWLINE = 0x0a

/** A JSON line: parsed when it is valid and nests at most MAX_SENTRY_DEPTH deep, else the reason. */
function parseJsonLine(text: string, what: string): { ok: true; value: unknown } | { ok: false; error: string } {
  const deep = jsonDepthProblem(text, MAX_SENTRY_DEPTH)
  if (deep) return { ok: false, error: `${what}: ${deep}` }
  try {
    return { ok: true, value: JSON.parse(text) }
  } catch (err) {
    return { ok: false, error: `${what}: invalid JSON: ${(err as Error).message.split('\n')[0]}` }
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/**
 * Splits an envelope: a header line (a JSON object), then items, each an
 * item header line (a JSON object with a string `type` and an optional
 * `length`) and a payload of exactly `length` bytes (then an optional
 * newline), or, without `length`, up to the next newline or the end. Only
 * `event` payloads are parsed and kept; the others are counted as skipped.
 * Refused (the reason names the item): a header that is not a JSON object, a
 * `length` that is not a non-negative integer or runs past the end, an item
 * header without `type`, more than MAX_SENTRY_ITEMS items, JSON nested deeper
 * than MAX_SENTRY_DEPTH, a body over MAX_SENTRY_BYTES.
 */
export function parseEnvelope(body: Uint8Array): EnvelopeResult {
  if (body.length > MAX_SENTRY_BYTES) return { ok: false, error: `envelope larger than ${MAX_SENTRY_BYTES} bytes` }
  const buf = Buffer.from(body.buffer, body.byteOffset, body.length)
  let pos = 0
  /** The line from pos to the next newline (or the end), moving past the newline. */
  const line = (): string => {
    let end = buf.indexOf(NEWLINE, pos)
    if (end === -1) end = buf.length
    const text = buf.toString('utf8', pos, end)
    pos = end + 1
    return text
  }
  const header = parseJsonLine(line(), 'envelope header')
  if (!header.ok) return header
  if (!isObject(header.value)) return { ok: false, error: 'envelope header: expected a JSON object' }
  const events: unknown[] = []
  let skipped = 0
  for (let n = 0; pos < buf.length; ) {
    const text = line()
    // a trailing newline (or blank lines between items) is allowed
    if (text.trim() === '') continue
    if (++n > MAX_SENTRY_ITEMS) return { ok: false, error: `more than ${MAX_SENTRY_ITEMS} items` }
    const what = `item ${n - 1}`
    const h = parseJsonLine(text, `${what} header`)
    if (!h.ok) return h
    if (!isObject(h.value)) return { ok: false, error: `${what} header: expected a JSON object` }
    const type = h.value['type']
    if (typeof type !== 'string' || type === '') return { ok: false, error: `${what} header: no type` }
    const length = h.value['length']
    let payload: Buffer
    if (length === undefined || length === null) {
      let end = buf.indexOf(NEWLINE, pos)
      if (end === -1) end = buf.length
      payload = buf.subarray(Math.min(pos, buf.length), end)
      pos = end + 1
    } else {
      if (typeof length !== 'number' || !Number.isSafeInteger(length) || length < 0) return { ok: false, error: `${what} header: length is not a non-negative integer` }
      if (pos + length > buf.length) return { ok: false, error: `${what} header: length ${length} runs past the end of the envelope` }
      payload = buf.subarray(pos, pos + length)
      pos += length
      if (buf[pos] === NEWLINE) pos++
    }
    if (type !== 'event') {
      skipped++
      continue
    }
    const p = parseJsonLine(payload.toString('utf8'), `${what} (event)`)
    if (!p.ok) return p
    if (!isObject(p.value)) return { ok: false, error: `${what} (event): expected a JSON object` }
    events.push(p.value)
  }
  return { ok: true, events, skipped }
}

/** A store request's body: one event as a JSON object, at most MAX_SENTRY_BYTES, nested at most MAX_SENTRY_DEPTH. */
export function parseStoreBody(body: Uint8Array): EnvelopeResult {
  if (body.length > MAX_SENTRY_BYTES) return { ok: false, error: `event larger than ${MAX_SENTRY_BYTES} bytes` }
  const p = parseJsonLine(Buffer.from(body.buffer, body.byteOffset, body.length).toString('utf8'), 'event')
  if (!p.ok) return p
  if (!isObject(p.value)) return { ok: false, error: 'event: expected a JSON object' }
  return { ok: true, events: [p.value], skipped: 0 }
}

/** A Sentry event made into the wire format: a one-event batch, and what else it said (`json` of its row). */
export interface SentryBatch {
  readonly batch: Batch
  /** The event's id, timestamp (ms since the epoch) and a few string contexts, as JSON text, scrubbed. */
  readonly json: string
}

/** What eventToBatch answers: a batch, nothing (not an error event), or the reason it cannot be one. */
export type EventResult = { readonly ok: true; readonly value: SentryBatch | null } | { readonly ok: false; readonly error: string }

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined)
const cut = (s: string, max: number): string => (s.length > max ? s.slice(0, max) : s)

/**
 * A Sentry stacktrace's frames (oldest first) as a V8 stack text (newest
 * first): `    at fn (url:line:col)`, or `    at url:line:col` for an
 * anonymous function (`?`), the way `firstFrame` reads the SDK's stacks.
 */
export function framesToStack(head: string, frames: readonly unknown[]): string {
  const lines = [head]
  const newest = frames.slice(-MAX_SENTRY_FRAMES).reverse()
  for (const f of newest) {
    if (!isObject(f)) continue
    const file = str(f['abs_path']) ?? str(f['filename'])
    if (!file) continue
    let where = file
    if (typeof f['lineno'] === 'number') where += `:${f['lineno']}`
    if (typeof f['lineno'] === 'number' && typeof f['colno'] === 'number') where += `:${f['colno']}`
    const fn = str(f['function'])
    lines.push(fn && fn !== '?' && fn !== '<anonymous>' ? `    at ${fn} (${where})` : `    at ${where}`)
  }
  let text = lines.join('\n')
  if (text.length > MAX_STACK) text = text.slice(0, text.lastIndexOf('\n', MAX_STACK) > 0 ? text.lastIndexOf('\n', MAX_STACK) : MAX_STACK)
  return text
}

/** An event's `timestamp` (seconds since the epoch, or RFC 3339 text) in ms, or undefined. */
function timestampMs(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isFinite(v) && v > 0) return Math.round(v * 1000)
  if (typeof v === 'string') {
    const t = Date.parse(v)
    return Number.isFinite(t) ? t : undefined
  }
  return undefined
}

/** The page of an event's `request.url`: its path and query (scrubbed later), or `/` when there is none. */
function pageOf(event: Record<string, unknown>): string {
  const req = event['request']
  const url = isObject(req) ? str(req['url']) : undefined
  if (url && URL.canParse(url)) {
    const u = new URL(url)
    if (u.protocol === 'http:' || u.protocol === 'https:') return cut(`${u.pathname}${u.search}`, MAX_STRING)
  }
  if (url?.startsWith('/') && !url.startsWith('//')) return cut(url, MAX_STRING)
  return '/'
}

/** `contexts` loosely: for each context (browser, os, device...), its short string and number values, scrubbed; at most 8 contexts of 8 values. */
function looseContexts(v: unknown): Record<string, Record<string, string | number>> | undefined {
  if (!isObject(v)) return undefined
  const out: Record<string, Record<string, string | number>> = {}
  for (const [name, ctx] of Object.entries(v).slice(0, 8)) {
    if (!isObject(ctx) || name === 'trace') continue
    const kept: Record<string, string | number> = {}
    for (const [k, val] of Object.entries(ctx)) {
      if (Object.keys(kept).length >= 8) break
      if (typeof val === 'string' && val.length <= 128) kept[cut(k, 64)] = scrubText(val)
      else if (typeof val === 'number' && Number.isFinite(val)) kept[cut(k, 64)] = val
    }
    if (Object.keys(kept).length > 0) out[cut(name, 64)] = kept
  }
  return Object.keys(out).length > 0 ? out : undefined
}

/**
 * A Sentry event as a one-event batch. The message is the thrown exception's
 * `type: value` (the last of `exception.values`: Sentry orders chained
 * exceptions oldest first, the SDK puts causes before the error thrown), its
 * stack the exception's frames in V8 form newest first, so an error the
 * Edgebox SDK reports and the same error from a Sentry SDK get one
 * fingerprint; an event without an exception takes its `message` (or
 * `logentry`). The page is `request.url`'s path; `release` and `environment`
 * carry over; the page view is the event's trace id (one per page load in
 * the browser SDK), else its `event_id`. Everything else (breadcrumbs, user,
 * tags, extra) is left out. An event with neither an exception nor a
 * message gives null (skipped).
 */
export function eventToBatch(event: unknown): EventResult {
  if (!isObject(event)) return { ok: false, error: 'event: expected a JSON object' }
  const exc = event['exception']
  const values = isObject(exc) && Array.isArray(exc['values']) ? exc['values'].filter(isObject) : Array.isArray(exc) ? exc.filter(isObject) : []
  const thrown = values.at(-1)
  let message: string | undefined
  let stack: string | undefined
  let kind: 'error' | 'unhandledrejection' = 'error'
  if (thrown) {
    const type = str(thrown['type'])
    const value = str(thrown['value'])
    message = type && value !== undefined ? `${type}: ${value}` : (type ?? value ?? 'Error')
    const st = thrown['stacktrace']
    const frames = isObject(st) && Array.isArray(st['frames']) ? st['frames'] : []
    if (frames.length > 0) stack = framesToStack(message, frames)
    const mech = thrown['mechanism']
    if (isObject(mech) && /unhandledrejection/i.test(str(mech['type']) ?? '')) kind = 'unhandledrejection'
  } else {
    const m = event['message']
    const log = event['logentry']
    message = str(m) ?? (isObject(m) ? (str(m['formatted']) ?? str(m['message'])) : undefined) ?? (isObject(log) ? (str(log['formatted']) ?? str(log['message'])) : undefined)
  }
  if (message === undefined || message === '') return { ok: true, value: null }
  const contexts = event['contexts']
  const trace = isObject(contexts) && isObject(contexts['trace']) ? str(contexts['trace']['trace_id']) : undefined
  const eventId = str(event['event_id'])
  const pv = trace && PV.test(trace) ? trace : eventId && PV.test(eventId) ? eventId : randomBytes(9).toString('base64url')
  const release = str(event['release'])
  const env = str(event['environment'])
  const candidate = {
    v: 1,
    pv,
    page: pageOf(event),
    ...(release ? { release: cut(release, 128) } : {}),
    ...(env ? { env: cut(env, 128) } : {}),
    events: [{ t: 'error', at: 0, kind, message: cut(message, MAX_STRING), ...(stack ? { stack } : {}), count: 1 }],
  }
  const checked = batchSchema.safeParse(candidate)
  if (!checked.success) {
    const issue = checked.error.issues[0]!
    return { ok: false, error: `event: ${issue.path.join('.') || '(root)'}: ${issue.message}` }
  }
  const extra = {
    sentry: {
      ...(eventId && /^[0-9a-f-]{32,36}$/i.test(eventId) ? { id: eventId } : {}),
      ...(timestampMs(event['timestamp']) !== undefined ? { timestamp: timestampMs(event['timestamp']) } : {}),
      ...(str(event['platform']) && /^[a-z0-9_-]{1,32}$/i.test(str(event['platform'])!) ? { platform: str(event['platform']) } : {}),
      ...(looseContexts(contexts) ? { contexts: looseContexts(contexts) } : {}),
    },
  }
  return { ok: true, value: { batch: checked.data, json: JSON.stringify(extra) } }
}
