import { createHash } from 'node:crypto'
import path from 'node:path'
import type { DatabaseSync, SQLInputValue, SQLOutputValue, StatementSync } from 'node:sqlite'
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

/** A metric `percentiles` can be asked about. */
export type RumMetric = VitalName
/** How `percentiles` groups: by page, by device class, or all together (key `all`). */
export type RumGrouping = 'page' | 'device' | 'none'
/** The device class of a row. */
export type DeviceClass = 'mobile' | 'desktop' | 'unknown'
/** The browser engine family of a row. */
export type BrowserFamily = 'chromium' | 'firefox' | 'safari' | 'other'

/** One event flattened with its batch's context: one row of `rum_events`. */
export interface RumRow {
  /** When the server received the batch, ms since the epoch. */
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
  /** The event's `t`. */
  readonly kind: EventKind
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
  /** resource and api: the HTTP status (0: none); else null. */
  readonly status: number | null
  /** resource and api: ms; else null. */
  readonly duration: number | null
  /** api: `ok`, `error`, `abort`, `network`; else null. */
  readonly outcome: string | null
  /** What else the event had, as JSON text (vital: `{attr}`; nav: `{type, protocol, phases}`; resource: `{initiator, size, failed}`; api: `{method}`; route: `{pv, from}`), null when nothing. */
  readonly json: string | null
}

/** A `percentiles` question. */
export interface PercentileQuery {
  readonly metric: RumMetric
  readonly by: RumGrouping
  /** ms since the epoch, inclusive. */
  readonly since: number
  /** ms since the epoch, exclusive. */
  readonly until: number
}

/** One group's percentiles (nearest rank, see `nearestRank`). */
export interface PercentileRow {
  /** The page, the device class, or `all`. */
  readonly key: string
  readonly n: number
  readonly p50: number
  readonly p75: number
  readonly p95: number
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
}

/**
 * Where RUM rows live. Every method may be async so a networked store fits.
 * After close(), every method but close() rejects with RUM_STORE_CLOSED.
 */
export interface RumStore {
  /** Adds rows, all or none. */
  insert(rows: readonly RumRow[]): Promise<void>
  /** How many rows there are. */
  count(): Promise<number>
  /** Nearest-rank p50/p75/p95 of one vital's values per group, most samples first (then key). */
  percentiles(q: PercentileQuery): Promise<PercentileRow[]>
  /** Errors grouped by fingerprint, the most counted first (then the latest seen, then fingerprint). */
  errorGroups(q: { readonly since: number; readonly until: number }): Promise<ErrorGroup[]>
  /**
   * Deletes rows at least `maxAgeMs` old (`time + maxAgeMs <= now`), then the
   * oldest (by time, then by insertion) beyond `maxRows`; returns how many went.
   */
  sweep(now: number, maxAgeMs: number, maxRows: number): Promise<number>
  /** Releases the store; calling it again does nothing. */
  close(): Promise<void>
}

/** The message every method of a closed store rejects with. */
export const RUM_STORE_CLOSED = 'rum store is closed'

/** The key of every row when `by` is `none`. */
export const ALL_KEY = 'all'

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

const NONE: Omit<KindColumns, 'kind'> = {
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

function kindColumns(e: RumEvent): KindColumns {
  switch (e.t) {
    case 'vital':
      return { ...NONE, kind: 'vital', name: e.name, value: e.value, rating: e.rating, json: e.attr ? JSON.stringify({ attr: e.attr }) : null }
    case 'nav':
      return { ...NONE, kind: 'nav', json: JSON.stringify({ type: e.type, protocol: e.protocol, phases: e.phases }) }
    case 'resource':
      return { ...NONE, kind: 'resource', url: e.url, status: e.status, duration: e.duration, json: JSON.stringify({ initiator: e.initiator, size: e.size, failed: e.failed }) }
    case 'error':
      return { ...NONE, kind: 'error', name: e.kind, message: e.message, stack: e.stack ?? null, fingerprint: fingerprint(e.message, e.stack), count: e.count }
    case 'api':
      return { ...NONE, kind: 'api', url: e.url, status: e.status, duration: e.duration, outcome: e.outcome, json: JSON.stringify({ method: e.method }) }
    case 'route':
      return { ...NONE, kind: 'route', url: e.to, json: JSON.stringify({ pv: e.pv, from: e.from }) }
  }
}

/**
 * The rows of a checked, scrubbed batch: one per event, in order. A `route`
 * event starts a new page view: it is kept under the page view it left, and
 * the events after it in the batch belong to its `pv` and its `to` page.
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
  }
  let pv = batch.pv
  let page = batch.page
  const rows: RumRow[] = []
  for (const e of batch.events) {
    rows.push({ ...common, offset: e.at, pv, page, ...kindColumns(e) })
    if (e.t === 'route') {
      pv = e.pv
      page = e.to
    }
  }
  return rows
}

/** A row as stored: an error row without a fingerprint gets one. */
function normaliseRow(r: RumRow): RumRow {
  const copy = { ...r }
  if (copy.kind === 'error' && copy.fingerprint === null) return { ...copy, fingerprint: fingerprint(copy.message ?? '', copy.stack) }
  return copy
}

// ---------------------------------------------------------------------------
// In memory
// ---------------------------------------------------------------------------

/** The percentiles of groups of values (shared by both stores' tests of the definition). */
function summarise(groups: Map<string, number[]>): PercentileRow[] {
  const out: PercentileRow[] = []
  for (const [key, values] of groups) {
    values.sort((a, b) => a - b)
    out.push({ key, n: values.length, p50: nearestRank(values, 50), p75: nearestRank(values, 75), p95: nearestRank(values, 95) })
  }
  return out.sort((a, b) => b.n - a.n || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
}

/** The grouping key of a row. */
function groupKey(r: RumRow, by: RumGrouping): string {
  return by === 'page' ? r.page : by === 'device' ? r.deviceClass : ALL_KEY
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
    const groups = new Map<string, number[]>()
    for (const r of this.rows) {
      if (r.kind !== 'vital' || r.name !== q.metric || r.value === null || r.time < q.since || r.time >= q.until) continue
      const key = groupKey(r, q.by)
      let list = groups.get(key)
      if (!list) groups.set(key, (list = []))
      list.push(r.value)
    }
    return summarise(groups)
  }

  async errorGroups(q: { readonly since: number; readonly until: number }): Promise<ErrorGroup[]> {
    this.check()
    const groups = new Map<string, { first: RumRow; count: number; pvs: Set<string>; firstSeen: number; lastSeen: number }>()
    for (const r of this.rows) {
      if (r.kind !== 'error' || r.fingerprint === null || r.time < q.since || r.time >= q.until) continue
      const g = groups.get(r.fingerprint)
      if (!g) {
        groups.set(r.fingerprint, { first: r, count: r.count, pvs: new Set([r.pv]), firstSeen: r.time, lastSeen: r.time })
        continue
      }
      g.count += r.count
      g.pvs.add(r.pv)
      if (r.time < g.firstSeen) {
        g.firstSeen = r.time
        g.first = r
      }
      if (r.time > g.lastSeen) g.lastSeen = r.time
    }
    return [...groups.entries()]
      .map(([fp, g]) => ({ fingerprint: fp, message: g.first.message ?? '', count: g.count, pageViews: g.pvs.size, firstSeen: g.firstSeen, lastSeen: g.lastSeen }))
      .sort(compareGroups)
  }

  async sweep(now: number, maxAgeMs: number, maxRows: number): Promise<number> {
    this.check()
    const before = this.rows.length
    // oldest first: by time, then by insertion (the array's order)
    let kept = this.rows.filter((r) => r.time + maxAgeMs > now)
    const excess = kept.length - Math.max(0, maxRows)
    if (excess > 0) {
      const order = kept.map((r, i) => ({ r, i })).sort((a, b) => a.r.time - b.r.time || a.i - b.i)
      const drop = new Set(order.slice(0, excess).map((x) => x.i))
      kept = kept.filter((_, i) => !drop.has(i))
    }
    this.rows = kept
    return before - kept.length
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.rows = []
  }
}

function compareGroups(a: ErrorGroup, b: ErrorGroup): number {
  return b.count - a.count || b.lastSeen - a.lastSeen || (a.fingerprint < b.fingerprint ? -1 : a.fingerprint > b.fingerprint ? 1 : 0)
}

// ---------------------------------------------------------------------------
// SQLite
// ---------------------------------------------------------------------------

/** The schema version this code writes and reads (`PRAGMA user_version`). */
export const RUM_SCHEMA_VERSION = 1

/**
 * Version 1 of the file: one table, one row per event.
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
 *   kind          TEXT NOT NULL        -- vital / nav / resource / error / api / route
 *   name, value, rating                -- vital (name also the error's kind)
 *   message, stack, fingerprint        -- error
 *   count         INTEGER NOT NULL     -- error: its count; else 1
 *   url, status, duration, outcome     -- resource, api (url also a route's `to`)
 *   json          TEXT                 -- the rest of the event
 * )
 * rum_vitals  ON (kind, name, time)              -- percentiles: kind = 'vital' AND name = ? AND time in [since, until)
 * rum_errors  ON (kind, fingerprint, time)       -- errorGroups: grouped in index order, and each group's first message
 * rum_time    ON (time)                          -- sweep, oldest first
 * ```
 */
/** The table and its indexes (version 1); the benchmark's bare server makes the same (bench/servers/rum-bare.mjs). */
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

/** The columns a row is inserted with, in order. */
export const INSERT_COLUMNS =
  'time, offset_ms, pv, page, release, env, cached, device_class, browser, country, address, kind, name, value, rating, message, stack, fingerprint, count, url, status, duration, outcome, json'

/** The SQL column a grouping reads. */
const GROUP_COLUMN: Readonly<Record<RumGrouping, string>> = { page: 'page', device: 'device_class', none: `'${ALL_KEY}'` }

/** Nearest rank in SQL integers: (p*n + 99) / 100, as nearestRank. */
const percentileSql = (by: RumGrouping): string => `
WITH v AS (
  SELECT ${GROUP_COLUMN[by]} AS key, value,
    ROW_NUMBER() OVER (PARTITION BY ${GROUP_COLUMN[by]} ORDER BY value) AS rn,
    COUNT(*) OVER (PARTITION BY ${GROUP_COLUMN[by]}) AS n
  FROM rum_events
  WHERE kind = 'vital' AND name = ? AND time >= ? AND time < ? AND value IS NOT NULL
)
SELECT key, n,
  MAX(CASE WHEN rn = MAX(1, (50 * n + 99) / 100) THEN value END) AS p50,
  MAX(CASE WHEN rn = MAX(1, (75 * n + 99) / 100) THEN value END) AS p75,
  MAX(CASE WHEN rn = MAX(1, (95 * n + 99) / 100) THEN value END) AS p95
FROM v GROUP BY key ORDER BY n DESC, key`

const ERROR_GROUPS_SQL = `
SELECT fingerprint, SUM(count) AS count, COUNT(DISTINCT pv) AS page_views, MIN(time) AS first_seen, MAX(time) AS last_seen,
  (SELECT e.message FROM rum_events e
    WHERE e.kind = 'error' AND e.fingerprint = g.fingerprint AND e.time >= ?1 AND e.time < ?2
    ORDER BY e.time, e.id LIMIT 1) AS message
FROM rum_events g
WHERE kind = 'error' AND time >= ?1 AND time < ?2 AND fingerprint IS NOT NULL
GROUP BY fingerprint
ORDER BY count DESC, last_seen DESC, fingerprint`

type Row = Record<string, SQLOutputValue>

function num(row: Row, column: string): number {
  const v = row[column]
  if (typeof v === 'number') return v
  if (typeof v === 'bigint') return Number(v)
  throw new Error(`rum store: column ${column} is not a number`)
}
function str(row: Row, column: string): string {
  const v = row[column]
  if (typeof v !== 'string') throw new Error(`rum store: column ${column} is not text`)
  return v
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
 * file written by a newer Edgebox is refused, naming the file. Open it with
 * `openSqliteRumStore`.
 */
export class SqliteRumStore implements RumStore {
  /** The database file. */
  readonly file: string
  private readonly db: DatabaseSync
  private closed: boolean
  private readonly sInsert: StatementSync
  private readonly sCount: StatementSync
  private readonly sPercentiles: Readonly<Record<RumGrouping, StatementSync>>
  private readonly sErrorGroups: StatementSync
  private readonly sSweepAge: StatementSync
  private readonly sSweepExcess: StatementSync

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
      this.sInsert = db.prepare(`INSERT INTO rum_events (${INSERT_COLUMNS}) VALUES (${INSERT_COLUMNS.split(',').map(() => '?').join(', ')})`)
      this.sCount = db.prepare('SELECT COUNT(*) AS n FROM rum_events')
      this.sPercentiles = {
        page: db.prepare(percentileSql('page')),
        device: db.prepare(percentileSql('device')),
        none: db.prepare(percentileSql('none')),
      }
      this.sErrorGroups = db.prepare(ERROR_GROUPS_SQL)
      this.sSweepAge = db.prepare('DELETE FROM rum_events WHERE time <= ?')
      this.sSweepExcess = db.prepare('DELETE FROM rum_events WHERE id IN (SELECT id FROM rum_events ORDER BY time, id LIMIT ?)')
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
    const values = rows.map((row): SQLInputValue[] => {
      const r = normaliseRow(row)
      return [r.time, r.offset, r.pv, r.page, r.release, r.env, r.cached ? 1 : 0, r.deviceClass, r.browser, r.country, r.address, r.kind, r.name, r.value, r.rating, r.message, r.stack, r.fingerprint, r.count, r.url, r.status, r.duration, r.outcome, r.json]
    })
    this.db.exec('BEGIN')
    try {
      for (const v of values) this.sInsert.run(...v)
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
    return (this.sPercentiles[q.by].all(q.metric, q.since, q.until) as Row[]).map((r) => ({
      key: str(r, 'key'),
      n: num(r, 'n'),
      p50: num(r, 'p50'),
      p75: num(r, 'p75'),
      p95: num(r, 'p95'),
    }))
  }

  async errorGroups(q: { readonly since: number; readonly until: number }): Promise<ErrorGroup[]> {
    this.check()
    return (this.sErrorGroups.all(q.since, q.until) as Row[]).map((r) => ({
      fingerprint: str(r, 'fingerprint'),
      message: str(r, 'message'),
      count: num(r, 'count'),
      pageViews: num(r, 'page_views'),
      firstSeen: num(r, 'first_seen'),
      lastSeen: num(r, 'last_seen'),
    }))
  }

  async sweep(now: number, maxAgeMs: number, maxRows: number): Promise<number> {
    this.check()
    this.db.exec('BEGIN IMMEDIATE')
    try {
      let n = Number(this.sSweepAge.run(now - maxAgeMs).changes)
      const excess = num(this.sCount.get() as Row, 'n') - Math.max(0, maxRows)
      if (excess > 0) n += Number(this.sSweepExcess.run(excess).changes)
      this.db.exec('COMMIT')
      return n
    } catch (err) {
      if (this.db.isTransaction) this.db.exec('ROLLBACK')
      throw err
    }
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.db.close()
  }
}

/** The RUM store file in a data folder. */
export const rumStoreFile = (dataDir: string): string => path.join(dataDir, 'rum', 'rum.sqlite')

/** Opens the RUM store in a data folder: `<dataDir>/rum/rum.sqlite`, the folder made private (0700) and the file 0600. */
export async function openSqliteRumStore(dataDir: string): Promise<SqliteRumStore> {
  await ensurePrivateDir(path.join(dataDir, 'rum'))
  const file = rumStoreFile(dataDir)
  let db: DatabaseSync
  try {
    db = await openPrivateDatabase(file)
  } catch (err) {
    throw new Error(`cannot open the RUM store ${file}: ${(err as Error).message}`, { cause: err })
  }
  return new SqliteRumStore(db, file)
}
