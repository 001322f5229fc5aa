import { createHash } from 'node:crypto'
import { channel as diagnosticsChannel } from 'node:diagnostics_channel'
import path from 'node:path'
import type { DatabaseSync, SQLOutputValue, StatementSync } from 'node:sqlite'
import { ensurePrivateDir, openPrivateDatabase } from '../core/data-dir.ts'
import type { Batch, EventKind, RumEvent, VitalName } from './schema.ts'
import { truncateAddress } from './scrub.ts'

/**
 * Where real-user-monitoring events are kept (docs/monitoring.md, "The
 * store"): an interface with one contract suite (test/contracts/rum-stores.test.ts),
 * node:sqlite by default and an in-memory store for tests.
 *
 * A batch becomes rows with `toRows` (one row per event, with the batch's
 * context), after the collector has checked it (`parseBatch`) and scrubbed it
 * (`scrubBatch`). Times: `time` is when the server received the batch (ms
 * since the epoch), `offset` the event's own `at` (ms since its page view
 * began). Every query window is `since <= time < until`.
 */

/** A metric `percentiles` and `histogram` can be asked about. */
export type RumMetric = VitalName
/**
 * How `percentiles` groups: by page, device class, browser family, country,
 * client network (the truncated address), connection type (the batch's
 * `device.conn`), or all together (key `all`). A row without the value
 * (no country looked up, no address, no `conn`) is in the group `unknown`.
 */
export type RumGrouping = 'page' | 'device' | 'browser' | 'country' | 'network' | 'conn' | 'none'
/** Every grouping, for the query API's `by`. */
export const GROUPINGS: readonly RumGrouping[] = ['page', 'device', 'browser', 'country', 'network', 'conn', 'none']
/** The device class of a row. */
export type DeviceClass = 'mobile' | 'desktop' | 'unknown'
/** The browser engine family of a row. */
export type BrowserFamily = 'chromium' | 'firefox' | 'safari' | 'other'
/**
 * A row's kind: an event's `t`, or `server`, Edgebox's own view of a page
 * view (src/rum/page-view.ts). No batch can carry `server`: the wire format's
 * kinds are EVENT_KINDS only.
 */
export type RowKind = EventKind | 'server'

/** One event flattened with its batch's context: one row of `rum_events`. */
export interface RumRow {
  /** When the server received the batch, ms since the epoch (a `server` row: when the answer finished). */
  readonly time: number
  /** The event's `at`: ms since its page view began. */
  readonly offset: number
  /** The page view the event belongs to. */
  readonly pv: string
  /** The page (path or URL) of that page view. */
  readonly page: string
  readonly release: string | null
  readonly env: string | null
  /** The page came from the browser's cache (the SDK made `pv`). */
  readonly cached: boolean
  readonly deviceClass: DeviceClass
  readonly browser: BrowserFamily
  /** ISO 3166-1 alpha-2, null: unknown (not looked up yet). */
  readonly country: string | null
  /** The client's network (`truncateAddress`), never a full address; null: unknown. */
  readonly address: string | null
  /** The connection type the batch's `device.conn` named (Network Information API `effectiveType`: `4g`...); null: not said. */
  readonly conn: string | null
  /** The event's `t`, or `server`. */
  readonly kind: RowKind
  /** vital: the metric (`LCP`...); error: its kind (`error`, `unhandledrejection`, `resource`); else null. */
  readonly name: string | null
  /** vital: its value; else null. */
  readonly value: number | null
  /** vital: `good`, `needs-improvement`, `poor`; else null. */
  readonly rating: string | null
  /** error: its message; else null. */
  readonly message: string | null
  /** error: its stack, null when none. */
  readonly stack: string | null
  /** error: `fingerprint(message, stack)`; else null. */
  readonly fingerprint: string | null
  /** error: how many times the SDK saw it (its `count`); 1 for every other event. */
  readonly count: number
  /** resource and api: the URL; route: `to`; else null. */
  readonly url: string | null
  /** resource, api and server: the HTTP status (0: none); else null. */
  readonly status: number | null
  /** resource and api: ms; server: ms from the request's start to the response's end (the access log's `ms`); else null. */
  readonly duration: number | null
  /** api: `ok`, `error`, `abort`, `network`; else null. */
  readonly outcome: string | null
  /**
   * What else the event had, as JSON text (vital: `{attr}`; nav: `{type,
   * protocol, phases}`; resource: `{initiator, size, failed}`; api:
   * `{method}`; route: `{pv, from}`; server: `{method, route, handler,
   * cache, protocol, edge}`), null when nothing.
   */
  readonly json: string | null
}

/** A window of receive times: `since <= time < until`, ms since the epoch. */
export interface TimeWindow {
  /** ms since the epoch, inclusive. */
  readonly since: number
  /** ms since the epoch, exclusive. */
  readonly until: number
}

/** A `percentiles` question. */
export interface PercentileQuery extends TimeWindow {
  readonly metric: RumMetric
  readonly by: RumGrouping
  /** Also by time: rows grouped by floor(time / bucket), a whole number of ms (> 0). */
  readonly bucket?: number | undefined
}

/** One group's percentiles (nearest rank, see `nearestRank`). */
export interface PercentileRow {
  /** With `bucket`: the bucket's start, floor(time / bucket) * bucket. */
  readonly bucket?: number
  /** The page, the device class, the browser, the country, the network, the connection type, or `all`. */
  readonly key: string
  readonly n: number
  readonly p50: number
  readonly p75: number
  readonly p95: number
}

/** One bin of a histogram: values in [from, to); the last bin has no end (`to` null). */
export interface HistogramBin {
  readonly from: number
  readonly to: number | null
  readonly count: number
}

/** A `histogram` question: one vital in a window, of every row or (`of`) of the rows whose `by` group is `key` (groupKey: `unknown` for no value). */
export interface HistogramQuery extends TimeWindow {
  readonly metric: RumMetric
  readonly of?: { readonly by: Exclude<RumGrouping, 'none'>; readonly key: string } | undefined
}

/** How one vital's values are spread over its fixed bins (HISTOGRAM_EDGES). */
export interface Histogram {
  readonly metric: RumMetric
  /** Every value counted. */
  readonly n: number
  /** Every bin, empty ones too, in order. */
  readonly bins: HistogramBin[]
}

/** The phases of a page load, in order (the nav event's `phases`, W3C Navigation Timing Level 2). */
export const NAV_PHASES = ['redirect', 'dns', 'tcp', 'tls', 'ttfb', 'transfer', 'dom', 'load'] as const
/** A phase of a page load. */
export type NavPhase = (typeof NAV_PHASES)[number]

/** One page's timing breakdown: the median of each phase over its page loads. */
export interface PhaseBreakdown {
  readonly page: string
  /** Page loads (nav rows with phases) counted. */
  readonly n: number
  /** Each phase's median (nearest rank), ms; null when no load had it. */
  readonly medians: Readonly<Record<NavPhase, number | null>>
  /** The phase with the largest median (the first in NAV_PHASES order on a tie); null when none. */
  readonly dominant: NavPhase | null
}

/** How `apiCalls` orders and picks. */
export type ApiCallSort = 'slowest' | 'failing'

/** The fetch and XHR calls to one method and URL. */
export interface ApiCallGroup {
  readonly method: string
  readonly url: string
  readonly count: number
  /** Calls whose outcome was not `ok`, or whose status was 500 or more. */
  readonly failures: number
  /** The 75th percentile (nearest rank) of their durations, ms; null when none had one. */
  readonly p75: number | null
}

/** One group of errors with the same fingerprint, within the window asked about. */
export interface ErrorGroup {
  readonly fingerprint: string
  /** The message of the group's earliest row in the window. */
  readonly message: string
  /** The sum of the rows' `count`. */
  readonly count: number
  /** How many distinct page views saw it. */
  readonly pageViews: number
  /** The earliest and latest `time` in the window. */
  readonly firstSeen: number
  readonly lastSeen: number
  /** The first frame of the latest stack in the window, as written there (symbolicated when it was); null: no stack. */
  readonly topFrame: string | null
  /** The releases that reported it, sorted; rows without a release are not listed. */
  readonly releases: string[]
}

/** Edgebox's own view of a page view: its `server` row. */
export interface ServerView {
  readonly time: number
  readonly status: number | null
  /** ms, the access log's figure. */
  readonly duration: number | null
  /** The rest of the row's JSON: `method`, `route`, `handler`, `cache`, `protocol`, `edge`. */
  readonly [field: string]: unknown
}

/** The browser's view of a page view: its vitals (the latest of each) and its navigation timing. */
export interface BrowserView {
  /** The earliest receive time of its rows. */
  readonly time: number
  readonly TTFB: number | null
  readonly FCP: number | null
  readonly LCP: number | null
  readonly INP: number | null
  readonly CLS: number | null
  /** The nav event's `type`, `protocol` and `phases` (the latest one); null when none came. */
  readonly nav: { readonly type?: unknown; readonly protocol?: unknown; readonly phases?: unknown } | null
}

/** A page view seen from both sides, joined on its id. */
export interface PageViewPair {
  readonly pv: string
  /** The server row's page, else the browser's. */
  readonly page: string
  readonly server: ServerView | null
  readonly browser: BrowserView | null
}

/** What `sweep` keeps. */
export interface RetentionLimits {
  /** Rows at least this old (ms) go. */
  readonly maxAge: number
  /** While the store's data (`size()`) is larger than this (bytes), its oldest 10% of rows go, at most MAX_SIZE_ROUNDS times a sweep. */
  readonly maxSize: number
}

/** How many rows one sweep deleted, and why. */
export interface SweepResult {
  readonly byAge: number
  readonly bySize: number
}

/**
 * Where RUM rows live. Every method may be async so a networked store fits.
 * After close(), every method but close() rejects with RUM_STORE_CLOSED.
 * Lists are ordered fully (ties broken by text, compared as code points), so
 * every store answers the same question with the same list.
 */
export interface RumStore {
  /** Adds rows, all or none. */
  insert(rows: readonly RumRow[]): Promise<void>
  /** How many rows there are. */
  count(): Promise<number>
  /**
   * Nearest-rank p50/p75/p95 of one vital's values per group, most samples
   * first (then key); with `bucket`, per bucket and group, the earliest
   * bucket first.
   */
  percentiles(q: PercentileQuery): Promise<PercentileRow[]>
  /** How many of one vital's values fall in each of its fixed bins (HISTOGRAM_EDGES); with `of`, only the rows of one group (a page, a device class, a country...). */
  histogram(q: HistogramQuery): Promise<Histogram>
  /** Per page (or the one asked), the median of each navigation phase and the dominant one; most loads first (then page). */
  breakdown(q: TimeWindow & { readonly page?: string | undefined }): Promise<PhaseBreakdown[]>
  /**
   * API calls grouped by method and URL, at most `limit`: `slowest` by p75
   * (largest first, then most calls); `failing` only those with failures,
   * most failures first (then most calls). Ties by method, then URL.
   */
  apiCalls(q: TimeWindow & { readonly sort: ApiCallSort; readonly limit: number }): Promise<ApiCallGroup[]>
  /** Errors grouped by fingerprint, the most counted first (then the latest seen, then fingerprint); at most `limit` when given. */
  errorGroups(q: TimeWindow & { readonly limit?: number | undefined }): Promise<ErrorGroup[]>
  /**
   * Page views side by side: the browser's view beside Edgebox's `server`
   * row, joined on the page-view id. With `pv`, that one (whenever its rows
   * came; [] when none); else those with a `server` or `nav` row in the
   * window, the latest first, at most `limit`.
   */
  pageViews(q: TimeWindow & { readonly pv?: string | undefined; readonly limit: number }): Promise<PageViewPair[]>
  /**
   * Every row of one page view (every kind, whenever it came), in the order
   * the rows were stored, at most `limit` (a whole number; the first ones);
   * [] when none.
   * What a page's own report looks like once stored: its server row, its
   * vitals, its errors with their (symbolicated) stacks.
   */
  pageViewEvents(pv: string, limit: number): Promise<RumRow[]>
  /** The bytes the rows take (SQLite: the pages in use, (page_count - freelist_count) * page_size; memory: ROW_OVERHEAD plus the characters of each row's text). */
  size(): Promise<number>
  /**
   * Deletes rows at least `maxAge` old (`time + maxAge <= now`), then, while
   * the store is larger than `maxSize`, the oldest 10% of the rows (by
   * time, then by insertion), at most MAX_SIZE_ROUNDS times.
   */
  sweep(now: number, limits: RetentionLimits): Promise<SweepResult>
  /** Releases the store; calling it again does nothing. */
  close(): Promise<void>
}

/** The message every method of a closed store rejects with. */
export const RUM_STORE_CLOSED = 'rum store is closed'

/** The key of every row when `by` is `none`. */
export const ALL_KEY = 'all'
/** The group of rows without the value grouped by (no country, no address, no connection type). */
export const UNKNOWN_KEY = 'unknown'
/** The most rounds of "delete the oldest 10%" one sweep makes: the next sweep goes on. */
export const MAX_SIZE_ROUNDS = 20
/** The estimated bytes of a row in the memory store besides its text. */
export const ROW_OVERHEAD = 64

/**
 * The fixed bin edges of each vital's histogram: a bin is [edge, next edge),
 * the last one open-ended. The thresholds web.dev rates by are edges (LCP
 * 2500/4000 ms, FCP 1800/3000 ms as 2000/3000, TTFB 800/1800 ms as
 * 1000/2000, INP 200/500 ms, CLS 0.1/0.25).
 */
export const HISTOGRAM_EDGES: Readonly<Record<RumMetric, readonly number[]>> = Object.freeze({
  LCP: [0, 500, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 4500, 5000, 6000, 8000, 10000],
  FCP: [0, 500, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 4500, 5000, 6000, 8000, 10000],
  TTFB: [0, 200, 400, 600, 800, 1000, 1500, 2000, 3000, 5000],
  INP: [0, 50, 100, 150, 200, 300, 400, 500, 750, 1000, 2000],
  CLS: [0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 1],
})

/** Text order as SQLite's BINARY collation has it (UTF-8 bytes, so code points), not UTF-16 code units. */
export function compareText(a: string, b: string): number {
  if (a === b) return 0
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!
    const y = b.codePointAt(i)!
    if (x !== y) return x < y ? -1 : 1
    if (x > 0xffff) i++
  }
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0
}

/**
 * The nearest-rank percentile (the smallest value such that at least p% of
 * the values are at most it): in ascending `sorted` of n values, the one at
 * rank ceil(p/100 * n), counting from 1 (so p75 of 1..100 is 75, p50 of
 * [1, 2, 3] is 2). Computed in integers, (p*n + 99) div 100, so both stores
 * agree exactly. NaN for no values.
 */
export function nearestRank(sorted: readonly number[], p: number): number {
  const n = sorted.length
  if (n === 0) return NaN
  const rank = Math.max(1, Math.floor((p * n + 99) / 100))
  return sorted[rank - 1]!
}

// ---------------------------------------------------------------------------
// Fingerprints
// ---------------------------------------------------------------------------

/** An error message with what varies between occurrences replaced: quoted strings by `<s>`, numbers (hex too) by `<n>`, whitespace collapsed. */
export function normaliseMessage(message: string): string {
  return message
    .replace(/"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`(?:[^`\\]|\\.)*`/g, '<s>')
    .replace(/\b0x[0-9a-fA-F]+\b|(?<![A-Za-z0-9_])\d+(?:\.\d+)?(?:e[+-]?\d+)?/g, '<n>')
    .replace(/\s+/g, ' ')
    .trim()
}

/** A frame's location without `:line:column`, query and fragment. */
function frameUrl(location: string): string {
  return location
    .trim()
    .replace(/(?::\d+){1,2}$/, '')
    .replace(/[?#].*$/, '')
}

/**
 * The first frame of a stack as `url:function` (no line or column), or ''
 * when none is recognised. V8 (`    at fn (url:1:2)`, `    at url:1:2`) and
 * SpiderMonkey/JavaScriptCore (`fn@url:1:2`, `@url:1:2`) forms.
 */
export function firstFrame(stack: string): string {
  const lines = stack.split('\n')
  const v8 = lines.some((l) => /^\s*at\s/.test(l))
  for (const line of lines) {
    if (v8) {
      const m = /^\s*at\s+(.*)$/.exec(line)
      if (!m) continue
      const rest = m[1]!.trim()
      const paren = /^(.*?)\s+\((.*)\)$/.exec(rest)
      const fn = paren ? paren[1]!.replace(/^async\s+/, '') : ''
      return `${frameUrl(paren ? paren[2]! : rest)}:${fn}`
    }
    const at = line.lastIndexOf('@')
    if (at === -1) continue
    return `${frameUrl(line.slice(at + 1))}:${line.slice(0, at).trim()}`
  }
  return ''
}

/**
 * The first frame of a stack as written there (`at f (https://x/app.ts:3:7)`,
 * `f@https://x/app.js:1:2`), trimmed; null when none is recognised. Where
 * the stack was symbolicated, this is the source's file and line.
 */
export function topFrame(stack: string | null): string | null {
  if (!stack) return null
  const lines = stack.split('\n')
  const v8 = lines.some((l) => /^\s*at\s/.test(l))
  for (const line of lines) {
    if (v8 ? /^\s*at\s/.test(line) : line.includes('@')) return line.trim()
  }
  return null
}

/**
 * An error group's fingerprint: SHA-256 (FIPS 180-4) of the normalised
 * message and the first stack frame's `url:function`, the first 16 hex
 * digits. Line numbers do not count, so a rebuild that moves code keeps the
 * group; a different function or file makes a new one.
 */
export function fingerprint(message: string, stack?: string | null): string {
  const frame = stack ? firstFrame(stack) : ''
  return createHash('sha256').update(`${normaliseMessage(message)}\n${frame}`).digest('hex').slice(0, 16)
}

// ---------------------------------------------------------------------------
// From a batch to rows
// ---------------------------------------------------------------------------

/**
 * The engine family a User-Agent (RFC 9110 §10.1.5) names: every iOS browser
 * is WebKit (`safari`); `Firefox/` is `firefox`; `Chrome/`, `Chromium/`,
 * `Edg/`, `OPR/` are `chromium` (legacy EdgeHTML `Edge/` is `other`); a
 * remaining `AppleWebKit` is `safari`; anything else `other`.
 */
export function classifyBrowser(userAgent: string | undefined): BrowserFamily {
  const ua = userAgent ?? ''
  if (/\b(?:iPhone|iPad|iPod)\b/.test(ua)) return 'safari'
  if (/\bEdge\/\d/.test(ua)) return 'other'
  if (/\b(?:Firefox|FxiOS)\//.test(ua)) return 'firefox'
  if (/\b(?:Chrome|Chromium|CriOS|Edg|OPR|HeadlessChrome)\//.test(ua)) return 'chromium'
  if (/\bAppleWebKit\//.test(ua)) return 'safari'
  return 'other'
}

/** The device class: the SDK's `device.mobile` (User-Agent Client Hints), else `Mobi` in the User-Agent (MDN's advice), else desktop when there is a User-Agent, else unknown. */
export function classifyDevice(batch: Pick<Batch, 'device'>, userAgent: string | undefined): DeviceClass {
  if (batch.device?.mobile !== undefined) return batch.device.mobile ? 'mobile' : 'desktop'
  if (!userAgent) return 'unknown'
  return /Mobi/.test(userAgent) ? 'mobile' : 'desktop'
}

/** What the collector knows of a batch besides the batch. */
export interface ReceiveContext {
  /** When it was received, ms since the epoch. */
  readonly time: number
  readonly userAgent?: string | undefined
  /** The client address; truncated here (`truncateAddress`) if it was not already. */
  readonly address?: string | undefined
  readonly country?: string | null | undefined
}

type KindColumns = Pick<RumRow, 'kind' | 'name' | 'value' | 'rating' | 'message' | 'stack' | 'fingerprint' | 'count' | 'url' | 'status' | 'duration' | 'outcome' | 'json'>

/** The event columns of a row with none of them (every kind sets the ones it has; Edgebox's `server` rows too). */
export const NO_EVENT_COLUMNS: Readonly<Omit<KindColumns, 'kind'>> = {
  name: null,
  value: null,
  rating: null,
  message: null,
  stack: null,
  fingerprint: null,
  count: 1,
  url: null,
  status: null,
  duration: null,
  outcome: null,
  json: null,
}

/** A row being made (toRows): every column, writable. */
type RowDraft = { -readonly [K in keyof RumRow]: RumRow[K] }

/**
 * One event's row: the batch's columns, then the event's own over the empty
 * ones. One object of one shape per row (ingest makes ten a beacon): no
 * intermediate objects spread into it.
 */
function eventRow(c: Omit<RumRow, 'offset' | 'pv' | 'page' | keyof KindColumns>, e: RumEvent, pv: string, page: string): RumRow {
  const r: RowDraft = {
    time: c.time,
    offset: e.at,
    pv,
    page,
    release: c.release,
    env: c.env,
    cached: c.cached,
    deviceClass: c.deviceClass,
    browser: c.browser,
    country: c.country,
    address: c.address,
    conn: c.conn,
    kind: e.t,
    name: null,
    value: null,
    rating: null,
    message: null,
    stack: null,
    fingerprint: null,
    count: 1,
    url: null,
    status: null,
    duration: null,
    outcome: null,
    json: null,
  }
  switch (e.t) {
    case 'vital':
      r.name = e.name
      r.value = e.value
      r.rating = e.rating
      if (e.attr) r.json = JSON.stringify({ attr: e.attr })
      break
    case 'nav':
      r.json = JSON.stringify({ type: e.type, protocol: e.protocol, phases: e.phases })
      break
    case 'resource':
      r.url = e.url
      r.status = e.status
      r.duration = e.duration
      r.json = JSON.stringify({ initiator: e.initiator, size: e.size, failed: e.failed })
      break
    case 'error':
      r.name = e.kind
      r.message = e.message
      r.stack = e.stack ?? null
      r.fingerprint = fingerprint(e.message, e.stack)
      r.count = e.count
      break
    case 'api':
      r.url = e.url
      r.status = e.status
      r.duration = e.duration
      r.outcome = e.outcome
      r.json = JSON.stringify({ method: e.method })
      break
    case 'route':
      r.url = e.to
      r.json = JSON.stringify({ pv: e.pv, from: e.from })
      break
  }
  return r
}

/**
 * The rows of a checked, scrubbed batch: one per event, in order, every one
 * under the batch's page view and page. A batch is one page view's: a
 * `route` event says that view was left for a new one (its row, under the
 * view it left, names the new `pv` and the `to` page, whose own events come
 * in batches of their own), and what the page reports after it (the final
 * CLS and INP of the view it left, when the page is hidden) is still that
 * view's.
 */
export function toRows(batch: Batch, ctx: ReceiveContext): RumRow[] {
  const common = {
    time: ctx.time,
    release: batch.release ?? null,
    env: batch.env ?? null,
    cached: batch.cached,
    deviceClass: classifyDevice(batch, ctx.userAgent),
    browser: classifyBrowser(ctx.userAgent),
    country: ctx.country ?? null,
    address: ctx.address === undefined ? null : truncateAddress(ctx.address),
    conn: batch.device?.conn ?? null,
  }
  const rows: RumRow[] = []
  for (const e of batch.events) rows.push(eventRow(common, e, batch.pv, batch.page))
  return rows
}

/** A row as stored: an error row without a fingerprint gets one. */
function normaliseRow(r: RumRow): RumRow {
  const copy = { ...r }
  if (copy.kind === 'error' && copy.fingerprint === null) return { ...copy, fingerprint: fingerprint(copy.message ?? '', copy.stack) }
  return copy
}

// ---------------------------------------------------------------------------
// What both stores share: the definitions, written once
// ---------------------------------------------------------------------------

/** The bin of `value` among `edges` (the last edge at most it), -1 below the first. */
function binOf(edges: readonly number[], value: number): number {
  for (let i = edges.length - 1; i >= 0; i--) if (value >= edges[i]!) return i
  return -1
}

/** Fixed bins with their counts. */
export function histogramOf(metric: RumMetric, counts: ReadonlyMap<number, number>): Histogram {
  const edges = HISTOGRAM_EDGES[metric]
  const bins = edges.map((from, i) => ({ from, to: i + 1 < edges.length ? edges[i + 1]! : null, count: counts.get(i) ?? 0 }))
  return { metric, n: bins.reduce((sum, b) => sum + b.count, 0), bins }
}

/** A page's medians made a breakdown: the dominant phase is the one with the largest median. */
export function breakdownOf(page: string, n: number, medians: ReadonlyMap<NavPhase, number>): PhaseBreakdown {
  const out = {} as Record<NavPhase, number | null>
  let dominant: NavPhase | null = null
  for (const phase of NAV_PHASES) {
    const m = medians.get(phase)
    out[phase] = m ?? null
    if (m !== undefined && (dominant === null || m > medians.get(dominant)!)) dominant = phase
  }
  return { page, n, medians: out, dominant }
}

/** Pages with the most loads first, then by page. */
function compareBreakdowns(a: PhaseBreakdown, b: PhaseBreakdown): number {
  return b.n - a.n || compareText(a.page, b.page)
}

/** The order `apiCalls` lists groups in. */
function compareApiCalls(sort: ApiCallSort): (a: ApiCallGroup, b: ApiCallGroup) => number {
  const ties = (a: ApiCallGroup, b: ApiCallGroup) => b.count - a.count || compareText(a.method, b.method) || compareText(a.url, b.url)
  if (sort === 'failing') return (a, b) => b.failures - a.failures || ties(a, b)
  // slowest: the largest p75 first, groups without a duration last
  return (a, b) => (a.p75 === null ? (b.p75 === null ? 0 : 1) : b.p75 === null ? -1 : b.p75 - a.p75) || ties(a, b)
}

function compareGroups(a: ErrorGroup, b: ErrorGroup): number {
  return b.count - a.count || b.lastSeen - a.lastSeen || compareText(a.fingerprint, b.fingerprint)
}

/** An api row failed: an outcome other than `ok`, or a 5xx status. */
function apiFailed(outcome: string | null, status: number | null): boolean {
  return (outcome ?? '') !== 'ok' || (status ?? 0) >= 500
}

/** A row's JSON as an object, or null (none, not JSON, not an object). */
export function jsonObject(text: string | null): Record<string, unknown> | null {
  if (text === null) return null
  try {
    const v: unknown = JSON.parse(text)
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null
  } catch {
    return null
  }
}

/** What `pageViews` reads of a row. */
export type PairRow = Pick<RumRow, 'time' | 'pv' | 'page' | 'kind' | 'name' | 'value' | 'status' | 'duration' | 'json'>

/** One page view's rows (in insertion order) joined: the server row beside the browser's vitals and nav (the latest of each). */
export function pairOf(pv: string, rows: readonly PairRow[]): PageViewPair {
  let server: ServerView | null = null
  let page: string | null = null
  let browserTime = Infinity
  let browserPage: string | null = null
  const vitals: Record<string, number | null> = { TTFB: null, FCP: null, LCP: null, INP: null, CLS: null }
  let nav: BrowserView['nav'] = null
  let seen = false
  for (const r of rows) {
    if (r.kind === 'server') {
      server = { ...jsonObject(r.json), time: r.time, status: r.status, duration: r.duration }
      page = r.page
      continue
    }
    seen = true
    if (r.time < browserTime) browserTime = r.time
    browserPage ??= r.page
    if (r.kind === 'vital' && r.name !== null && r.name in vitals) vitals[r.name] = r.value
    else if (r.kind === 'nav') {
      const j = jsonObject(r.json)
      nav = { type: j?.type ?? null, protocol: j?.protocol ?? null, phases: j?.phases ?? null }
    }
  }
  const browser: BrowserView | null = seen ? { time: browserTime, TTFB: vitals.TTFB!, FCP: vitals.FCP!, LCP: vitals.LCP!, INP: vitals.INP!, CLS: vitals.CLS!, nav } : null
  return { pv, page: page ?? browserPage ?? '', server, browser }
}

/** The text of a row the memory store counts as its size. */
function rowBytes(r: RumRow): number {
  let n = ROW_OVERHEAD
  for (const v of [r.pv, r.page, r.release, r.env, r.country, r.address, r.conn, r.kind, r.name, r.rating, r.message, r.stack, r.fingerprint, r.url, r.outcome, r.json]) {
    if (v !== null) n += v.length
  }
  return n
}

// ---------------------------------------------------------------------------
// In memory
// ---------------------------------------------------------------------------

/** The percentiles of groups of values: most values first, then key; with buckets, the earliest bucket first. */
function summarise(groups: Map<string, { bucket: number | undefined; key: string; values: number[] }>): PercentileRow[] {
  const out: PercentileRow[] = []
  for (const { bucket, key, values } of groups.values()) {
    values.sort((a, b) => a - b)
    const stats = { key, n: values.length, p50: nearestRank(values, 50), p75: nearestRank(values, 75), p95: nearestRank(values, 95) }
    out.push(bucket === undefined ? stats : { bucket, ...stats })
  }
  return out.sort((a, b) => (a.bucket ?? 0) - (b.bucket ?? 0) || b.n - a.n || compareText(a.key, b.key))
}

/** The grouping key of a row. */
function groupKey(r: RumRow, by: RumGrouping): string {
  switch (by) {
    case 'page':
      return r.page
    case 'device':
      return r.deviceClass
    case 'browser':
      return r.browser
    case 'country':
      return r.country ?? UNKNOWN_KEY
    case 'network':
      return r.address ?? UNKNOWN_KEY
    case 'conn':
      return r.conn ?? UNKNOWN_KEY
    case 'none':
      return ALL_KEY
  }
}

/** Nearest rank of unsorted values (sorted here), or null when none. */
function rankOf(values: number[], p: number): number | null {
  if (values.length === 0) return null
  values.sort((a, b) => a - b)
  return nearestRank(values, p)
}

/** An in-memory RUM store: an array in insertion order. Rows end with the process. */
export class MemoryRumStore implements RumStore {
  private rows: RumRow[]
  private closed: boolean

  constructor() {
    this.rows = []
    this.closed = false
  }

  private check(): void {
    if (this.closed) throw new Error(RUM_STORE_CLOSED)
  }

  /** The rows of a kind within a window (nav, api and server rows: those without a name, as the SQLite store's index reads them). */
  private within(kind: RowKind, q: TimeWindow, name?: string): RumRow[] {
    return this.rows.filter((r) => r.kind === kind && r.time >= q.since && r.time < q.until && (name === undefined ? kind === 'vital' || kind === 'error' || r.name === null : r.name === name))
  }

  async insert(rows: readonly RumRow[]): Promise<void> {
    this.check()
    const copies = rows.map(normaliseRow)
    for (const r of copies) this.rows.push(r)
  }

  async count(): Promise<number> {
    this.check()
    return this.rows.length
  }

  async percentiles(q: PercentileQuery): Promise<PercentileRow[]> {
    this.check()
    const groups = new Map<string, { bucket: number | undefined; key: string; values: number[] }>()
    for (const r of this.within('vital', q, q.metric)) {
      if (r.value === null) continue
      const key = groupKey(r, q.by)
      const bucket = q.bucket === undefined ? undefined : Math.floor(r.time / q.bucket) * q.bucket
      const id = bucket === undefined ? key : `${bucket}\u0000${key}`
      let g = groups.get(id)
      if (!g) groups.set(id, (g = { bucket, key, values: [] }))
      g.values.push(r.value)
    }
    return summarise(groups)
  }

  async histogram(q: HistogramQuery): Promise<Histogram> {
    this.check()
    const counts = new Map<number, number>()
    for (const r of this.within('vital', q, q.metric)) {
      if (r.value === null || (q.of && groupKey(r, q.of.by) !== q.of.key)) continue
      const bin = binOf(HISTOGRAM_EDGES[q.metric], r.value)
      if (bin >= 0) counts.set(bin, (counts.get(bin) ?? 0) + 1)
    }
    return histogramOf(q.metric, counts)
  }

  async breakdown(q: TimeWindow & { readonly page?: string | undefined }): Promise<PhaseBreakdown[]> {
    this.check()
    const pages = new Map<string, { n: number; values: Map<NavPhase, number[]> }>()
    for (const r of this.within('nav', q)) {
      if (q.page !== undefined && r.page !== q.page) continue
      const phases = jsonObject(r.json)?.phases
      if (phases === null || typeof phases !== 'object' || Array.isArray(phases)) continue
      let p = pages.get(r.page)
      if (!p) pages.set(r.page, (p = { n: 0, values: new Map() }))
      p.n++
      for (const phase of NAV_PHASES) {
        const v = (phases as Record<string, unknown>)[phase]
        if (typeof v !== 'number') continue
        let list = p.values.get(phase)
        if (!list) p.values.set(phase, (list = []))
        list.push(v)
      }
    }
    const out: PhaseBreakdown[] = []
    for (const [page, p] of pages) {
      const medians = new Map<NavPhase, number>()
      for (const [phase, values] of p.values) medians.set(phase, rankOf(values, 50)!)
      out.push(breakdownOf(page, p.n, medians))
    }
    return out.sort(compareBreakdowns)
  }

  async apiCalls(q: TimeWindow & { readonly sort: ApiCallSort; readonly limit: number }): Promise<ApiCallGroup[]> {
    this.check()
    const groups = new Map<string, { method: string; url: string; count: number; failures: number; durations: number[] }>()
    for (const r of this.within('api', q)) {
      const method = jsonObject(r.json)?.method
      const m = typeof method === 'string' ? method : ''
      const url = r.url ?? ''
      const id = `${m}\u0000${url}`
      let g = groups.get(id)
      if (!g) groups.set(id, (g = { method: m, url, count: 0, failures: 0, durations: [] }))
      g.count++
      if (apiFailed(r.outcome, r.status)) g.failures++
      if (r.duration !== null) g.durations.push(r.duration)
    }
    return [...groups.values()]
      .map((g) => ({ method: g.method, url: g.url, count: g.count, failures: g.failures, p75: rankOf(g.durations, 75) }))
      .filter((g) => q.sort !== 'failing' || g.failures > 0)
      .sort(compareApiCalls(q.sort))
      .slice(0, Math.max(0, q.limit))
  }

  async errorGroups(q: TimeWindow & { readonly limit?: number | undefined }): Promise<ErrorGroup[]> {
    this.check()
    const groups = new Map<string, { first: RumRow; stack: RumRow | null; count: number; pvs: Set<string>; releases: Set<string>; firstSeen: number; lastSeen: number }>()
    for (const r of this.within('error', q)) {
      if (r.fingerprint === null) continue
      let g = groups.get(r.fingerprint)
      if (!g) groups.set(r.fingerprint, (g = { first: r, stack: null, count: 0, pvs: new Set(), releases: new Set(), firstSeen: r.time, lastSeen: r.time }))
      g.count += r.count
      g.pvs.add(r.pv)
      if (r.release !== null) g.releases.add(r.release)
      if (r.time < g.firstSeen) {
        g.firstSeen = r.time
        g.first = r
      }
      if (r.time > g.lastSeen) g.lastSeen = r.time
      // the latest stack: by time, then by insertion
      if (r.stack !== null && (g.stack === null || r.time >= g.stack.time)) g.stack = r
    }
    const out = [...groups.entries()]
      .map(([fp, g]): ErrorGroup => ({
        fingerprint: fp,
        message: g.first.message ?? '',
        count: g.count,
        pageViews: g.pvs.size,
        firstSeen: g.firstSeen,
        lastSeen: g.lastSeen,
        topFrame: topFrame(g.stack?.stack ?? null),
        releases: [...g.releases].sort(compareText),
      }))
      .sort(compareGroups)
    return q.limit === undefined ? out : out.slice(0, Math.max(0, q.limit))
  }

  async pageViews(q: TimeWindow & { readonly pv?: string | undefined; readonly limit: number }): Promise<PageViewPair[]> {
    this.check()
    const joined = (r: RumRow) => r.kind === 'server' || r.kind === 'nav' || r.kind === 'vital'
    let ids: string[]
    if (q.pv !== undefined) ids = this.rows.some((r) => r.pv === q.pv && joined(r)) ? [q.pv] : []
    else {
      const last = new Map<string, number>()
      for (const r of [...this.within('server', q), ...this.within('nav', q)]) last.set(r.pv, Math.max(last.get(r.pv) ?? -Infinity, r.time))
      ids = [...last.entries()]
        .sort((a, b) => b[1] - a[1] || compareText(a[0], b[0]))
        .slice(0, Math.max(0, q.limit))
        .map(([pv]) => pv)
    }
    return ids.map((pv) => pairOf(pv, this.rows.filter((r) => r.pv === pv && joined(r))))
  }

  async pageViewEvents(pv: string, limit: number): Promise<RumRow[]> {
    this.check()
    const out: RumRow[] = []
    const most = Math.max(0, Math.floor(limit))
    for (const r of this.rows) {
      if (out.length >= most) break
      if (r.pv === pv) out.push({ ...r })
    }
    return out
  }

  async size(): Promise<number> {
    this.check()
    let n = 0
    for (const r of this.rows) n += rowBytes(r)
    return n
  }

  async sweep(now: number, limits: RetentionLimits): Promise<SweepResult> {
    this.check()
    const before = this.rows.length
    this.rows = this.rows.filter((r) => r.time + limits.maxAge > now)
    const byAge = before - this.rows.length
    let bySize = 0
    // oldest first: by time, then by insertion (a stable sort keeps the array's order)
    for (let round = 0; round < MAX_SIZE_ROUNDS && this.rows.length > 0 && (await this.size()) > limits.maxSize; round++) {
      const drop = Math.ceil(this.rows.length / 10)
      const order = this.rows.map((r, i) => ({ r, i })).sort((a, b) => a.r.time - b.r.time || a.i - b.i)
      const gone = new Set(order.slice(0, drop).map((x) => x.i))
      this.rows = this.rows.filter((_, i) => !gone.has(i))
      bySize += drop
    }
    return { byAge, bySize }
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.rows = []
  }
}

// ---------------------------------------------------------------------------
// SQLite
// ---------------------------------------------------------------------------

/** The schema version this code writes and reads (`PRAGMA user_version`). */
export const RUM_SCHEMA_VERSION = 2

/**
 * The file: one table, one row per event.
 *
 * ```sql
 * rum_events (
 *   id            INTEGER PRIMARY KEY  -- insertion order (the tie-break when sweeping)
 *   time          INTEGER NOT NULL     -- receive time, ms since the epoch
 *   offset_ms     REAL NOT NULL        -- the event's `at`
 *   pv, page      TEXT NOT NULL
 *   release, env  TEXT
 *   cached        INTEGER NOT NULL     -- 0 / 1
 *   device_class  TEXT NOT NULL        -- mobile / desktop / unknown
 *   browser       TEXT NOT NULL        -- chromium / firefox / safari / other
 *   country       TEXT
 *   address       TEXT                 -- truncated: /24 or /48
 *   kind          TEXT NOT NULL        -- vital / nav / resource / error / api / route / server
 *   name, value, rating                -- vital (name also the error's kind)
 *   message, stack, fingerprint        -- error
 *   count         INTEGER NOT NULL     -- error: its count; else 1
 *   url, status, duration, outcome     -- resource, api (url also a route's `to`; status and duration also a server row's)
 *   json          TEXT                 -- the rest of the event
 *   conn          TEXT                 -- version 2: the batch's device.conn (4g, 3g...)
 * )
 * rum_vitals  ON (kind, name, time)              -- percentiles, histograms: kind = 'vital' AND name = ? AND time in [since, until);
 *                                                --   nav, api and server rows (name NULL): kind = ? AND name IS NULL AND time in [...)
 * rum_errors  ON (kind, fingerprint, time)       -- errorGroups: grouped in index order, and each group's first message
 * rum_time    ON (time)                          -- sweep, oldest first
 * rum_pv      ON (pv)                            -- version 2: a page view's rows, for the side-by-side view
 * ```
 *
 * Version 1 had every column but `conn`, and no `rum_pv`; opening a version
 * 1 file adds both in one transaction (SCHEMA_V2).
 */
/** The table and its indexes (version 1); with SCHEMA_V2 after it, the current file. */
export const SCHEMA_V1 = `
CREATE TABLE IF NOT EXISTS rum_events (
  id INTEGER PRIMARY KEY,
  time INTEGER NOT NULL,
  offset_ms REAL NOT NULL,
  pv TEXT NOT NULL,
  page TEXT NOT NULL,
  release TEXT,
  env TEXT,
  cached INTEGER NOT NULL,
  device_class TEXT NOT NULL,
  browser TEXT NOT NULL,
  country TEXT,
  address TEXT,
  kind TEXT NOT NULL,
  name TEXT,
  value REAL,
  rating TEXT,
  message TEXT,
  stack TEXT,
  fingerprint TEXT,
  count INTEGER NOT NULL,
  url TEXT,
  status INTEGER,
  duration REAL,
  outcome TEXT,
  json TEXT
);
CREATE INDEX IF NOT EXISTS rum_vitals ON rum_events (kind, name, time);
CREATE INDEX IF NOT EXISTS rum_errors ON rum_events (kind, fingerprint, time);
CREATE INDEX IF NOT EXISTS rum_time ON rum_events (time);
`

/** From version 1 to 2: the connection type column, and the page-view index. */
export const SCHEMA_V2 = `
ALTER TABLE rum_events ADD COLUMN conn TEXT;
CREATE INDEX IF NOT EXISTS rum_pv ON rum_events (pv);
`

/** A new file's schema, at RUM_SCHEMA_VERSION: run once on an empty file (the benchmark's bare server makes the same, bench/servers/rum-bare.mjs). */
export const RUM_SCHEMA = SCHEMA_V1 + SCHEMA_V2

/** The version 1 columns, in order (a version 1 row). */
export const INSERT_COLUMNS =
  'time, offset_ms, pv, page, release, env, cached, device_class, browser, country, address, kind, name, value, rating, message, stack, fingerprint, count, url, status, duration, outcome, json'

/** The columns a row is inserted with now, in order: INSERT_COLUMNS, then `conn`. */
export const ROW_COLUMNS = `${INSERT_COLUMNS}, conn`

/** The SQL expression a grouping reads. */
const GROUP_COLUMN: Readonly<Record<RumGrouping, string>> = {
  page: 'page',
  device: 'device_class',
  browser: 'browser',
  country: `COALESCE(country, '${UNKNOWN_KEY}')`,
  network: `COALESCE(address, '${UNKNOWN_KEY}')`,
  conn: `COALESCE(conn, '${UNKNOWN_KEY}')`,
  none: `'${ALL_KEY}'`,
}

/**
 * Nearest rank in SQL integers: (p*n + 99) / 100, as nearestRank. Parameters:
 * ?1 the metric, ?2 since, ?3 until, and with buckets ?4 the bucket (an
 * integer: integer division is floor for times after 1970).
 */
const percentileSql = (by: RumGrouping, bucketed: boolean): string => {
  const key = GROUP_COLUMN[by]
  const bucket = bucketed ? '(time / ?4) * ?4' : 'NULL'
  const partition = bucketed ? `${bucket}, ${key}` : key
  return `
WITH v AS (
  SELECT ${key} AS key, ${bucket} AS bucket, value,
    ROW_NUMBER() OVER (PARTITION BY ${partition} ORDER BY value) AS rn,
    COUNT(*) OVER (PARTITION BY ${partition}) AS n
  FROM rum_events
  WHERE kind = 'vital' AND name = ?1 AND time >= ?2 AND time < ?3 AND value IS NOT NULL
)
SELECT key, bucket, n,
  MAX(CASE WHEN rn = MAX(1, (50 * n + 99) / 100) THEN value END) AS p50,
  MAX(CASE WHEN rn = MAX(1, (75 * n + 99) / 100) THEN value END) AS p75,
  MAX(CASE WHEN rn = MAX(1, (95 * n + 99) / 100) THEN value END) AS p95
FROM v GROUP BY bucket, key ORDER BY bucket, n DESC, key`
}

/**
 * A vital's values counted per bin: ?1 the metric, ?2 since, ?3 until, ?4...
 * the edges (bound, so both stores compare the same numbers), and with a
 * grouping, the group's key after them.
 */
const histogramSql = (edges: readonly number[], by?: Exclude<RumGrouping, 'none'>): string => {
  const cases = edges.map((_, i) => `WHEN value >= ?${4 + i} THEN ${i}`).reverse().join(' ')
  return `
SELECT bin, COUNT(*) AS n FROM (
  SELECT CASE ${cases} ELSE -1 END AS bin FROM rum_events
  WHERE kind = 'vital' AND name = ?1 AND time >= ?2 AND time < ?3 AND value IS NOT NULL${by ? ` AND ${GROUP_COLUMN[by]} = ?${4 + edges.length}` : ''}
) GROUP BY bin`
}

/** The page loads of a window (?1 since, ?2 until, ?3 a page or NULL for every page) with a phases object. */
const NAV_ROWS = `
SELECT page, json FROM rum_events
WHERE kind = 'nav' AND name IS NULL AND time >= ?1 AND time < ?2 AND (?3 IS NULL OR page = ?3)
  AND (CASE WHEN json_valid(json) THEN json_type(json, '$.phases') END) = 'object'`

const BREAKDOWN_COUNTS_SQL = `SELECT page, COUNT(*) AS n FROM (${NAV_ROWS}) GROUP BY page`

const BREAKDOWN_SQL = `
WITH nav AS (${NAV_ROWS}),
phase(name) AS (VALUES ${NAV_PHASES.map((p) => `('${p}')`).join(', ')}),
long AS (SELECT nav.page AS page, phase.name AS phase, json_extract(nav.json, '$.phases.' || phase.name) AS v FROM nav, phase),
ranked AS (
  SELECT page, phase, v,
    ROW_NUMBER() OVER (PARTITION BY page, phase ORDER BY v) AS rn,
    COUNT(*) OVER (PARTITION BY page, phase) AS n
  FROM long WHERE typeof(v) IN ('integer', 'real')
)
SELECT page, phase, MAX(CASE WHEN rn = MAX(1, (50 * n + 99) / 100) THEN v END) AS p50
FROM ranked GROUP BY page, phase`

/** API calls by method and URL: ?1 since, ?2 until, ?3 the limit. */
const apiCallsSql = (sort: ApiCallSort): string => `
WITH a AS (
  SELECT COALESCE(CASE WHEN json_valid(json) THEN (CASE WHEN json_type(json, '$.method') = 'text' THEN json_extract(json, '$.method') END) END, '') AS method,
    COALESCE(url, '') AS url, duration,
    (COALESCE(outcome, '') <> 'ok' OR COALESCE(status, 0) >= 500) AS failed
  FROM rum_events
  WHERE kind = 'api' AND name IS NULL AND time >= ?1 AND time < ?2
),
r AS (
  SELECT method, url, duration, failed,
    ROW_NUMBER() OVER (PARTITION BY method, url ORDER BY duration NULLS LAST) AS rn,
    COUNT(duration) OVER (PARTITION BY method, url) AS dn
  FROM a
)
SELECT method, url, COUNT(*) AS count, SUM(failed) AS failures,
  MAX(CASE WHEN dn > 0 AND rn = MAX(1, (75 * dn + 99) / 100) THEN duration END) AS p75
FROM r GROUP BY method, url
${sort === 'failing' ? 'HAVING SUM(failed) > 0 ORDER BY failures DESC, count DESC, method, url' : 'ORDER BY p75 IS NULL, p75 DESC, count DESC, method, url'}
LIMIT ?3`

/** ?1 since, ?2 until, ?3 the limit (-1: none). */
const ERROR_GROUPS_SQL = `
SELECT fingerprint, SUM(count) AS count, COUNT(DISTINCT pv) AS page_views, MIN(time) AS first_seen, MAX(time) AS last_seen,
  (SELECT e.message FROM rum_events e
    WHERE e.kind = 'error' AND e.fingerprint = g.fingerprint AND e.time >= ?1 AND e.time < ?2
    ORDER BY e.time, e.id LIMIT 1) AS message,
  (SELECT e.stack FROM rum_events e
    WHERE e.kind = 'error' AND e.fingerprint = g.fingerprint AND e.time >= ?1 AND e.time < ?2 AND e.stack IS NOT NULL
    ORDER BY e.time DESC, e.id DESC LIMIT 1) AS stack,
  json_group_array(DISTINCT release) AS releases
FROM rum_events g
WHERE kind = 'error' AND time >= ?1 AND time < ?2 AND fingerprint IS NOT NULL
GROUP BY fingerprint
ORDER BY count DESC, last_seen DESC, fingerprint
LIMIT ?3`

/** The page views with a server or nav row in ?1..?2, the latest first, at most ?3. */
const PAGE_VIEW_IDS_SQL = `
SELECT pv, MAX(time) AS last FROM rum_events
WHERE kind IN ('server', 'nav') AND name IS NULL AND time >= ?1 AND time < ?2
GROUP BY pv ORDER BY last DESC, pv LIMIT ?3`

const PAGE_VIEW_ROWS_SQL = `
SELECT time, pv, page, kind, name, value, status, duration, json FROM rum_events
WHERE pv = ? AND kind IN ('server', 'nav', 'vital') ORDER BY id`

/** One page view's rows (?1 the id), in insertion order, at most ?2: read through the `rum_pv` index. */
export const PAGE_VIEW_EVENTS_SQL = `SELECT ${ROW_COLUMNS} FROM rum_events WHERE pv = ?1 ORDER BY id LIMIT ?2`

/** A stored row read back (the columns of ROW_COLUMNS). */
function rowOf(r: Row): RumRow {
  return {
    time: num(r, 'time'),
    offset: num(r, 'offset_ms'),
    pv: str(r, 'pv'),
    page: str(r, 'page'),
    release: strOrNull(r, 'release'),
    env: strOrNull(r, 'env'),
    cached: num(r, 'cached') !== 0,
    deviceClass: str(r, 'device_class') as DeviceClass,
    browser: str(r, 'browser') as BrowserFamily,
    country: strOrNull(r, 'country'),
    address: strOrNull(r, 'address'),
    conn: strOrNull(r, 'conn'),
    kind: str(r, 'kind') as RowKind,
    name: strOrNull(r, 'name'),
    value: numOrNull(r, 'value'),
    rating: strOrNull(r, 'rating'),
    message: strOrNull(r, 'message'),
    stack: strOrNull(r, 'stack'),
    fingerprint: strOrNull(r, 'fingerprint'),
    count: num(r, 'count'),
    url: strOrNull(r, 'url'),
    status: numOrNull(r, 'status'),
    duration: numOrNull(r, 'duration'),
    outcome: strOrNull(r, 'outcome'),
    json: strOrNull(r, 'json'),
  }
}

/** Rows deleted per statement: a sweep of millions of rows leaves the event loop (and the collector's writes) a turn between chunks. */
const SWEEP_CHUNK = 10_000

/**
 * A pause between a sweep's chunks: what is waiting runs before the next
 * one. Longer than a bare turn of the loop: the sweep runs on the query
 * worker's connection (src/rum/worker-store.ts) while the collector writes
 * on its own every 100 ms, and a collector write that finds the file locked
 * gives up after 10 ms (RUM_BUSY_TIMEOUT_MS) and tries at its next flush.
 * A pause of 110 ms always holds one of those flushes, so the collector's
 * rows get in between any two chunks however long the sweep.
 */
const SWEEP_PAUSE_MS = 110
const nextTurn = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, SWEEP_PAUSE_MS))

type Row = Record<string, SQLOutputValue>

function num(row: Row, column: string): number {
  const v = row[column]
  if (typeof v === 'number') return v
  if (typeof v === 'bigint') return Number(v)
  throw new Error(`rum store: column ${column} is not a number`)
}
function numOrNull(row: Row, column: string): number | null {
  return row[column] === null ? null : num(row, column)
}
function str(row: Row, column: string): string {
  const v = row[column]
  if (typeof v !== 'string') throw new Error(`rum store: column ${column} is not text`)
  return v
}
function strOrNull(row: Row, column: string): string | null {
  return row[column] === null ? null : str(row, column)
}

function userVersion(db: DatabaseSync): number {
  const row = db.prepare('PRAGMA user_version').get() as Row | undefined
  return row ? num(row, 'user_version') : 0
}

const newerMessage = (file: string, found: number): string =>
  `the RUM store ${file} has schema version ${found}, newer than this Edgebox knows (${RUM_SCHEMA_VERSION}); upgrade Edgebox or remove the file`

/**
 * A RUM store in one SQLite file (node:sqlite): WAL journal,
 * `synchronous=NORMAL` (a power cut may lose the last transactions, never
 * corrupt the file: fine for monitoring data), one transaction per insert,
 * prepared statements. The schema version is the file's `user_version`; a
 * file written by a newer Edgebox is refused, naming the file; an older one
 * is brought up to date in one transaction. Open it with `openSqliteRumStore`.
 */
export class SqliteRumStore implements RumStore {
  /** The database file. */
  readonly file: string
  private readonly db: DatabaseSync
  private closed: boolean
  private readonly sInsert: StatementSync
  private readonly sCount: StatementSync
  /** Per grouping: ?1 metric, ?2 since, ?3 until (the benchmark runs `page` directly). */
  private readonly sPercentiles: Readonly<Record<RumGrouping, StatementSync>>
  /** Per grouping, by time: ?4 the bucket. */
  private readonly sBucketed: Readonly<Record<RumGrouping, StatementSync>>
  private readonly sHistogram: Readonly<Record<RumMetric, StatementSync>>
  private readonly sHistogramOf = new Map<string, StatementSync>()
  private readonly sBreakdownCounts: StatementSync
  private readonly sBreakdown: StatementSync
  private readonly sApiCalls: Readonly<Record<ApiCallSort, StatementSync>>
  private readonly sErrorGroups: StatementSync
  private readonly sPageViewIds: StatementSync
  private readonly sPageViewRows: StatementSync
  private readonly sPageViewEvents: StatementSync
  private readonly sSize: StatementSync
  private readonly sSweepAge: StatementSync
  private readonly sSweepOldest: StatementSync

  /** Takes an open connection to `file` (closed here if the schema is refused) and brings its schema to the current version. */
  constructor(db: DatabaseSync, file: string) {
    this.file = file
    this.db = db
    this.closed = false
    try {
      const found = userVersion(db)
      if (found > RUM_SCHEMA_VERSION) throw new Error(newerMessage(file, found))
      db.exec('PRAGMA journal_mode = WAL')
      db.exec('PRAGMA synchronous = NORMAL')
      this.migrate()
      const byGrouping = (bucketed: boolean) => Object.fromEntries(GROUPINGS.map((g) => [g, db.prepare(percentileSql(g, bucketed))])) as Record<RumGrouping, StatementSync>
      this.sInsert = db.prepare(`INSERT INTO rum_events (${ROW_COLUMNS}) VALUES (${ROW_COLUMNS.split(',').map(() => '?').join(', ')})`)
      this.sCount = db.prepare('SELECT COUNT(*) AS n FROM rum_events')
      this.sPercentiles = byGrouping(false)
      this.sBucketed = byGrouping(true)
      this.sHistogram = Object.fromEntries(Object.entries(HISTOGRAM_EDGES).map(([m, edges]) => [m, db.prepare(histogramSql(edges))])) as Record<RumMetric, StatementSync>
      this.sBreakdownCounts = db.prepare(BREAKDOWN_COUNTS_SQL)
      this.sBreakdown = db.prepare(BREAKDOWN_SQL)
      this.sApiCalls = { slowest: db.prepare(apiCallsSql('slowest')), failing: db.prepare(apiCallsSql('failing')) }
      this.sErrorGroups = db.prepare(ERROR_GROUPS_SQL)
      this.sPageViewIds = db.prepare(PAGE_VIEW_IDS_SQL)
      this.sPageViewRows = db.prepare(PAGE_VIEW_ROWS_SQL)
      this.sPageViewEvents = db.prepare(PAGE_VIEW_EVENTS_SQL)
      this.sSize = db.prepare('SELECT (p.page_count - f.freelist_count) * s.page_size AS size FROM pragma_page_count() p, pragma_freelist_count() f, pragma_page_size() s')
      this.sSweepAge = db.prepare('DELETE FROM rum_events WHERE id IN (SELECT id FROM rum_events WHERE time <= ?1 ORDER BY time, id LIMIT ?2)')
      this.sSweepOldest = db.prepare('DELETE FROM rum_events WHERE id IN (SELECT id FROM rum_events ORDER BY time, id LIMIT ?1)')
    } catch (err) {
      db.close()
      const message = (err as Error).message
      throw message.includes(file) ? err : new Error(`cannot open the RUM store ${file}: ${message}`, { cause: err })
    }
  }

  /** Brings the schema to the current version in one write transaction (re-checked inside it: another process may have got there first). */
  private migrate(): void {
    if (userVersion(this.db) === RUM_SCHEMA_VERSION) return
    this.db.exec('BEGIN IMMEDIATE')
    try {
      const version = userVersion(this.db)
      if (version > RUM_SCHEMA_VERSION) throw new Error(newerMessage(this.file, version))
      if (version < 1) this.db.exec(SCHEMA_V1)
      if (version < 2) this.db.exec(SCHEMA_V2)
      this.db.exec(`PRAGMA user_version = ${RUM_SCHEMA_VERSION}`)
      this.db.exec('COMMIT')
    } catch (err) {
      if (this.db.isTransaction) this.db.exec('ROLLBACK')
      throw err
    }
  }

  private check(): void {
    if (this.closed) throw new Error(RUM_STORE_CLOSED)
  }

  async insert(rows: readonly RumRow[]): Promise<void> {
    this.check()
    if (rows.length === 0) return
    const insert = this.sInsert
    this.db.exec('BEGIN')
    try {
      // the values read straight off each row, no array or copy made: an error row without a fingerprint gets one, as normaliseRow gives it
      for (const r of rows) {
        const fp = r.kind === 'error' && r.fingerprint === null ? fingerprint(r.message ?? '', r.stack) : r.fingerprint
        insert.run(r.time, r.offset, r.pv, r.page, r.release, r.env, r.cached ? 1 : 0, r.deviceClass, r.browser, r.country, r.address, r.kind, r.name, r.value, r.rating, r.message, r.stack, fp, r.count, r.url, r.status, r.duration, r.outcome, r.json, r.conn)
      }
      this.db.exec('COMMIT')
    } catch (err) {
      if (this.db.isTransaction) this.db.exec('ROLLBACK')
      throw err
    }
  }

  async count(): Promise<number> {
    this.check()
    return num(this.sCount.get() as Row, 'n')
  }

  async percentiles(q: PercentileQuery): Promise<PercentileRow[]> {
    this.check()
    const rows = (q.bucket === undefined ? this.sPercentiles[q.by].all(q.metric, q.since, q.until) : this.sBucketed[q.by].all(q.metric, q.since, q.until, BigInt(q.bucket))) as Row[]
    return rows.map((r) => {
      const stats = { key: str(r, 'key'), n: num(r, 'n'), p50: num(r, 'p50'), p75: num(r, 'p75'), p95: num(r, 'p95') }
      return q.bucket === undefined ? stats : { bucket: num(r, 'bucket'), ...stats }
    })
  }

  async histogram(q: HistogramQuery): Promise<Histogram> {
    this.check()
    const counts = new Map<number, number>()
    const edges = HISTOGRAM_EDGES[q.metric]
    let statement = this.sHistogram[q.metric]
    if (q.of) {
      // one statement per metric and grouping, made when first asked for
      const name = `${q.metric} ${q.of.by}`
      statement = this.sHistogramOf.get(name) ?? this.sHistogramOf.set(name, this.db.prepare(histogramSql(edges, q.of.by))).get(name)!
    }
    const args = q.of ? [q.metric, q.since, q.until, ...edges, q.of.key] : [q.metric, q.since, q.until, ...edges]
    for (const r of statement.all(...args) as Row[]) {
      const bin = num(r, 'bin')
      if (bin >= 0) counts.set(bin, num(r, 'n'))
    }
    return histogramOf(q.metric, counts)
  }

  async breakdown(q: TimeWindow & { readonly page?: string | undefined }): Promise<PhaseBreakdown[]> {
    this.check()
    const page = q.page ?? null
    const medians = new Map<string, Map<NavPhase, number>>()
    for (const r of this.sBreakdown.all(q.since, q.until, page) as Row[]) {
      const p = str(r, 'page')
      let m = medians.get(p)
      if (!m) medians.set(p, (m = new Map()))
      m.set(str(r, 'phase') as NavPhase, num(r, 'p50'))
    }
    return (this.sBreakdownCounts.all(q.since, q.until, page) as Row[]).map((r) => breakdownOf(str(r, 'page'), num(r, 'n'), medians.get(str(r, 'page')) ?? new Map())).sort(compareBreakdowns)
  }

  async apiCalls(q: TimeWindow & { readonly sort: ApiCallSort; readonly limit: number }): Promise<ApiCallGroup[]> {
    this.check()
    return (this.sApiCalls[q.sort].all(q.since, q.until, Math.max(0, q.limit)) as Row[]).map((r) => ({
      method: str(r, 'method'),
      url: str(r, 'url'),
      count: num(r, 'count'),
      failures: num(r, 'failures'),
      p75: numOrNull(r, 'p75'),
    }))
  }

  async errorGroups(q: TimeWindow & { readonly limit?: number | undefined }): Promise<ErrorGroup[]> {
    this.check()
    return (this.sErrorGroups.all(q.since, q.until, q.limit === undefined ? -1 : Math.max(0, q.limit)) as Row[]).map((r) => ({
      fingerprint: str(r, 'fingerprint'),
      message: str(r, 'message'),
      count: num(r, 'count'),
      pageViews: num(r, 'page_views'),
      firstSeen: num(r, 'first_seen'),
      lastSeen: num(r, 'last_seen'),
      topFrame: topFrame(strOrNull(r, 'stack')),
      releases: (JSON.parse(str(r, 'releases')) as Array<string | null>).filter((x): x is string => x !== null).sort(compareText),
    }))
  }

  async pageViews(q: TimeWindow & { readonly pv?: string | undefined; readonly limit: number }): Promise<PageViewPair[]> {
    this.check()
    const ids = q.pv !== undefined ? [q.pv] : (this.sPageViewIds.all(q.since, q.until, Math.max(0, q.limit)) as Row[]).map((r) => str(r, 'pv'))
    const out: PageViewPair[] = []
    for (const pv of ids) {
      const rows = (this.sPageViewRows.all(pv) as Row[]).map((r): PairRow => ({
        time: num(r, 'time'),
        pv: str(r, 'pv'),
        page: str(r, 'page'),
        kind: str(r, 'kind') as RowKind,
        name: strOrNull(r, 'name'),
        value: numOrNull(r, 'value'),
        status: numOrNull(r, 'status'),
        duration: numOrNull(r, 'duration'),
        json: strOrNull(r, 'json'),
      }))
      if (rows.length > 0) out.push(pairOf(pv, rows))
    }
    return out
  }

  async pageViewEvents(pv: string, limit: number): Promise<RumRow[]> {
    this.check()
    return (this.sPageViewEvents.all(pv, Math.max(0, Math.floor(limit))) as Row[]).map(rowOf)
  }

  async size(): Promise<number> {
    this.check()
    return num(this.sSize.get() as Row, 'size')
  }

  /**
   * Deletes in chunks of SWEEP_CHUNK rows, each its own statement, with a
   * turn of the event loop between them: node:sqlite is synchronous, and one
   * DELETE of millions of rows would hold every request (and the collector's
   * writes) until it ends.
   */
  async sweep(now: number, limits: RetentionLimits): Promise<SweepResult> {
    this.check()
    let byAge = 0
    for (;;) {
      this.check()
      const n = Number(this.sSweepAge.run(now - limits.maxAge, SWEEP_CHUNK).changes)
      byAge += n
      if (n < SWEEP_CHUNK) break
      await nextTurn()
    }
    let bySize = 0
    for (let round = 0; round < MAX_SIZE_ROUNDS; round++) {
      this.check()
      if (num(this.sSize.get() as Row, 'size') <= limits.maxSize) break
      const count = num(this.sCount.get() as Row, 'n')
      if (count === 0) break
      for (let left = Math.ceil(count / 10); left > 0; ) {
        this.check()
        const n = Number(this.sSweepOldest.run(Math.min(left, SWEEP_CHUNK)).changes)
        bySize += n
        left -= n
        if (n === 0) break
        if (left > 0) await nextTurn()
      }
    }
    return { byAge, bySize }
  }

  /**
   * Caps the file at `pages` pages for this connection's writes (SQLite's
   * max_page_count, https://sqlite.org/pragma.html#pragma_max_page_count);
   * null: SQLite's largest again. A write that needs a page past the cap
   * fails the way a full disk makes it fail, SQLITE_FULL ("database or disk
   * is full"), and none of its transaction's rows are kept (`insert` is one
   * transaction, rolled back whole). SQLite never sets the cap below the
   * file's size now. Returns the cap in force.
   * Nothing in Edgebox sets one: what a test of a full disk uses.
   */
  limitPages(pages: number | null): number {
    this.check()
    const n = pages ?? SQLITE_MAX_PAGE_COUNT
    if (!Number.isInteger(n) || n < 1 || n > SQLITE_MAX_PAGE_COUNT) throw new RangeError(`a page cap is a whole number from 1 to ${SQLITE_MAX_PAGE_COUNT}, not ${n}`)
    return num(this.db.prepare(`PRAGMA max_page_count = ${n}`).get() as Row, 'max_page_count')
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.db.close()
  }
}

/** The most pages an SQLite file may have (its default max_page_count, SQLITE_MAX_PAGE_COUNT). */
const SQLITE_MAX_PAGE_COUNT = 0xfffffffe

/** The RUM store file in a data folder. */
export const rumStoreFile = (dataDir: string): string => path.join(dataDir, 'rum', 'rum.sqlite')

/**
 * How long, in ms, a RUM store's connection waits for another process's
 * lock before its statement fails with "database is locked" (SQLite's
 * busy_timeout). node:sqlite is synchronous: while a statement waits, the
 * event loop waits, and with it every request Edgebox is serving. With the
 * 2 seconds the data folder's other databases wait, a store held by another
 * process (`sqlite3 rum.sqlite 'BEGIN EXCLUSIVE'`, a tool writing to it)
 * would stall every page for 2 seconds at each of the collector's writes,
 * ten a second. 10 ms still rides out a lock held for an ordinary short
 * write or a checkpoint (SQLite's busy handler tries again after 1, 2 and
 * 5 ms, then once more at 10) and holds the event loop 10 ms at most per
 * write; past it the write fails, and the collector tries its rows again
 * 100 ms later, dropping and counting them once the store has been locked
 * for a second (src/rum/collector.ts). Reads need no wait: in WAL mode
 * (https://sqlite.org/wal.html) a reader never waits for a writer.
 */
export const RUM_BUSY_TIMEOUT_MS = 10

/** How openSqliteRumStore opens the store. */
export interface RumStoreOpenOptions {
  /** How long, in ms, the connection waits for another process's lock; default RUM_BUSY_TIMEOUT_MS. */
  readonly busyTimeout?: number
}

/**
 * The diagnostics channel (node:diagnostics_channel) each store
 * openSqliteRumStore opens is announced on, as `{ store }`, in the thread
 * that opened it: a diagnostic tool or a fault test subscribes to reach the
 * connections a running Edgebox opened (to cap one with `limitPages`, a full
 * disk). Nothing is published while no one subscribes.
 */
export const RUM_STORE_OPENED_CHANNEL = 'edgebox:rum:store-opened'
const storeOpened = diagnosticsChannel(RUM_STORE_OPENED_CHANNEL)

/**
 * Opens the RUM store in a data folder: `<dataDir>/rum/rum.sqlite`, the
 * folder made private (0700) and the file 0600, its connection waiting
 * `busyTimeout` ms at most for another process's lock (the schema's
 * upgrade at open too: a store locked then fails to open, naming the file).
 */
export async function openSqliteRumStore(dataDir: string, opts: RumStoreOpenOptions = {}): Promise<SqliteRumStore> {
  await ensurePrivateDir(path.join(dataDir, 'rum'))
  const file = rumStoreFile(dataDir)
  let db: DatabaseSync
  try {
    db = await openPrivateDatabase(file, { busyTimeout: opts.busyTimeout ?? RUM_BUSY_TIMEOUT_MS })
  } catch (err) {
    throw new Error(`cannot open the RUM store ${file}: ${(err as Error).message}`, { cause: err })
  }
  const store = new SqliteRumStore(db, file)
  if (storeOpened.hasSubscribers) storeOpened.publish({ store })
  return store
}
