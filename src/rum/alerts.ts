import { createHmac } from 'node:crypto'
import path from 'node:path'
import type { DatabaseSync, SQLOutputValue, StatementSync } from 'node:sqlite'
import type { Clock, Timer } from '../core/clock.ts'
import { ensurePrivateDir, openPrivateDatabase } from '../core/data-dir.ts'
import type { Logger } from '../core/log.ts'
import type { RumConfig } from './config.ts'
import { fingerprint as fingerprintOf, firstFrame } from './store.ts'
import type { RumRow } from './store.ts'

/**
 * Alerts of real-user monitoring (docs/monitoring.md, "Alerts"): a webhook
 * told, with a signed JSON POST, when an error group is new or comes back
 * in a release after it had gone away.
 *
 * What Edgebox knows of groups and releases is kept in its own SQLite file,
 * `<dataDir>/rum/alerts.sqlite`, so a restart neither repeats a `new` alert
 * nor forgets which releases a group was seen in:
 *
 * - a **release** is recorded the first time any stored row (an error or
 *   not) names it, with a sequence number in the order Edgebox first saw
 *   releases: "deployed before" and "after" below mean that order;
 * - a **group** (a fingerprint) is recorded with its first and last seen
 *   times, its total count, and every release it was seen in.
 *
 * Definitions, applied to each error row in the order the collector stored
 * them:
 *
 * - **new**: the fingerprint has never been seen before → one `new` alert.
 * - **regression**: the row has a release R that the group has not been
 *   seen in; the group has been seen in at least one release, the latest
 *   deployed of which is L; R was deployed after L; and at least one release
 *   was deployed after L and before R (the group was never seen in it, since
 *   L is the group's latest): the group went away and came back → one
 *   `regression` alert for (fingerprint, R). A row without a release never
 *   makes one; a group seen in consecutive releases (nothing deployed
 *   between L and R), or appearing in an older release than L (a page still
 *   open on an old version), does not alert.
 *
 * Each (fingerprint, kind, release) alerts at most once, since the state
 * records the group and the release before anything is sent. At most 60
 * alerts a minute are sent; the rest are counted (`suppressed`) and their
 * number is carried by the next alert sent.
 *
 * Delivery: alerts wait in an outbox table of the same file (at most 1,000;
 * more are dropped and counted), sent one at a time, in order, and retried
 * with backoff (1 s, 2 s, 4 s...; `Retry-After` on 429 and 503, at most
 * 60 s). An alert waiting at shutdown is sent after the next start, so a
 * receiver may see one twice when Edgebox stopped during its delivery.
 */

/** What `createAlerts` needs. */
export interface AlertsOptions {
  /** The top-level `rum.alerts` option. */
  readonly config: NonNullable<RumConfig['alerts']>
  /** Edgebox's data folder: the state is `<dataDir>/rum/alerts.sqlite`. */
  readonly dataDir: string
  readonly log: Logger
  /** The time of state and alerts, and the backoff timers between attempts. */
  readonly clock: Clock
  /** The fetch used to POST (default: Node's global fetch). */
  readonly fetch?: typeof fetch
}

/** Counters since the start. */
export interface AlertsStats {
  /** Alerts the webhook accepted (a 2xx). */
  sent: number
  /** Alerts given up on: retries used up, or a 4xx other than 429. */
  failed: number
  /** Attempts after the first. */
  retried: number
  /** Alerts not sent because 60 were sent in the minute before. */
  suppressed: number
  /** Alerts not queued because 1,000 were waiting. */
  dropped: number
}

export interface Alerts {
  /** Tells the alerts of rows just stored (the collector's `onStored`): the state is updated at once, deliveries happen later. */
  onStored(rows: readonly RumRow[]): void
  readonly stats: Readonly<AlertsStats>
  /** Resolves when no alert is waiting or being delivered (tests; a backoff waits on the clock). */
  flush(): Promise<void>
  /** Stops delivering (an attempt in flight is abandoned and the alert kept for the next start) and closes the state. */
  close(): Promise<void>
}

/** The JSON body POSTed to the webhook. */
export interface AlertBody {
  readonly type: 'new' | 'regression'
  readonly fingerprint: string
  /** The message of the event that raised the alert. */
  readonly message: string
  /** Its release; null when the page reported none (a `new` alert only). */
  readonly release: string | null
  readonly env: string | null
  readonly page: string
  /** When the group was first seen (RFC 3339, UTC). */
  readonly firstSeen: string
  /** regression: when the group was last seen before it came back. */
  readonly lastSeen?: string
  /** regression: the latest deployed release the group had been seen in. */
  readonly lastRelease?: string
  /** How many times the group has been seen, in all (the sum of its events' counts). */
  readonly count: number
  /** The first frame of the stack as `url:function` (`firstFrame`), null when none is recognised. */
  readonly topFrame: string | null
  /** The first 20 lines of the stack, null when there was none. */
  readonly stack: string | null
  /** Alerts not sent since the previous one because of the rate cap; absent when none. */
  readonly suppressed?: number
  /** When the alert was raised (RFC 3339, UTC). */
  readonly time: string
}

/** Alerts sent at most in any minute. */
export const ALERTS_PER_MINUTE = 60
/** Alerts waiting at most; more are dropped. */
export const MAX_OUTBOX = 1_000
/** The longest wait between attempts a `Retry-After` can ask for. */
export const MAX_RETRY_AFTER_MS = 60_000
/** Lines of the stack an alert carries. */
export const STACK_LINES = 20

/** The state file in a data folder. */
export const alertsFile = (dataDir: string): string => path.join(dataDir, 'rum', 'alerts.sqlite')

/** The schema version this code reads and writes (`PRAGMA user_version`). */
const SCHEMA_VERSION = 1

const SCHEMA_V1 = `
CREATE TABLE releases (
  seq INTEGER PRIMARY KEY,
  release TEXT NOT NULL UNIQUE,
  first_seen INTEGER NOT NULL
);
CREATE TABLE groups (
  fingerprint TEXT PRIMARY KEY,
  first_seen INTEGER NOT NULL,
  last_seen INTEGER NOT NULL,
  count INTEGER NOT NULL,
  last_release_seq INTEGER
) WITHOUT ROWID;
CREATE TABLE group_releases (
  fingerprint TEXT NOT NULL,
  seq INTEGER NOT NULL,
  first_seen INTEGER NOT NULL,
  PRIMARY KEY (fingerprint, seq)
) WITHOUT ROWID;
CREATE TABLE outbox (
  id INTEGER PRIMARY KEY,
  created INTEGER NOT NULL,
  body TEXT NOT NULL
);
`

type Row = Record<string, SQLOutputValue>

/** The schema version of an open file. */
function userVersion(db: DatabaseSync): number {
  return Number((db.prepare('PRAGMA user_version').get() as Row).user_version)
}

/**
 * Opens `<dataDir>/rum/alerts.sqlite` (folder 0700, file 0600), WAL, and
 * brings its schema to the current version in one transaction; a file
 * written by a newer Edgebox is refused with a message naming it.
 */
async function openState(dataDir: string): Promise<DatabaseSync> {
  await ensurePrivateDir(path.join(dataDir, 'rum'))
  const file = alertsFile(dataDir)
  const db = await openPrivateDatabase(file)
  const newer = (v: number) => new Error(`the RUM alerts state ${file} has schema version ${v}, newer than this Edgebox knows (${SCHEMA_VERSION}); upgrade Edgebox or remove the file`)
  try {
    const found = userVersion(db)
    if (found > SCHEMA_VERSION) throw newer(found)
    db.exec('PRAGMA journal_mode = WAL')
    db.exec('PRAGMA synchronous = NORMAL')
    if (found < SCHEMA_VERSION) {
      db.exec('BEGIN IMMEDIATE')
      try {
        // another process may have got there first
        const now = userVersion(db)
        if (now > SCHEMA_VERSION) throw newer(now)
        if (now < 1) db.exec(SCHEMA_V1)
        db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`)
        db.exec('COMMIT')
      } catch (err) {
        if (db.isTransaction) db.exec('ROLLBACK')
        throw err
      }
    }
  } catch (err) {
    db.close()
    const message = (err as Error).message
    throw message.includes(file) ? err : new Error(`cannot open the RUM alerts state ${file}: ${message}`, { cause: err })
  }
  return db
}

/** The first `STACK_LINES` lines of a stack. */
function stackHead(stack: string | null): string | null {
  if (stack === null || stack === '') return null
  return stack.split('\n').slice(0, STACK_LINES).join('\n')
}

/** A time (ms since the epoch) as RFC 3339 (RFC 3339 §5.6) in UTC. */
const iso = (ms: number): string => new Date(ms).toISOString()

/**
 * The `Edgebox-Signature` header value: `t=<unix seconds>,sha256=<hex>`,
 * the HMAC-SHA256 (RFC 2104) of `<t>.<body>` keyed with the secret. Putting
 * the time under the MAC lets a receiver refuse a replayed old request.
 */
export function signatureHeader(secret: string, unixSeconds: number, body: string): string {
  const mac = createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex')
  return `t=${unixSeconds},sha256=${mac}`
}

/**
 * How long a `Retry-After` (RFC 9110 §10.2.3) asks to wait, in ms: its
 * delay-seconds, or its HTTP-date minus now; null when absent or unreadable.
 * Never negative, at most `MAX_RETRY_AFTER_MS`.
 */
export function retryAfterMs(value: string | null, now: number): number | null {
  if (value === null) return null
  const v = value.trim()
  let ms: number
  if (/^\d+$/.test(v)) ms = Number(v) * 1000
  else {
    const date = Date.parse(v)
    if (!Number.isFinite(date)) return null
    ms = date - now
  }
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(0, ms))
}

/**
 * The webhook URL as fetch takes it and the headers its user part needs:
 * fetch refuses a URL with credentials (WHATWG Fetch, "Request" constructor),
 * so `https://user:pass@host/` becomes `Authorization: Basic` (RFC 7617).
 */
function target(webhook: string): { url: string; origin: string; auth: string | null } {
  const u = new URL(webhook)
  let auth: string | null = null
  if (u.username || u.password) {
    auth = `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64')}`
    u.username = ''
    u.password = ''
  }
  return { url: u.href, origin: u.origin, auth }
}

/** How one attempt ended. */
type Attempt =
  | { readonly outcome: 'sent' }
  | { readonly outcome: 'retry'; readonly why: string; readonly wait: number | null }
  | { readonly outcome: 'fail'; readonly why: string; readonly status: number }
  | { readonly outcome: 'closed' }

/** An alert raised while reading rows, its body made once the whole batch is counted. */
interface Raised {
  readonly type: 'new' | 'regression'
  readonly fingerprint: string
  readonly row: RumRow
  readonly lastSeen?: number
  readonly lastRelease?: string
}

/** Opens the alerts' state and starts delivering what was waiting in it. */
export async function createAlerts(opts: AlertsOptions): Promise<Alerts> {
  const { config, log, clock } = opts
  const doFetch = opts.fetch ?? globalThis.fetch
  const db = await openState(opts.dataDir)
  const to = target(config.webhook)

  const q = {
    releaseSeq: db.prepare('SELECT seq FROM releases WHERE release = ?'),
    releaseName: db.prepare('SELECT release FROM releases WHERE seq = ?'),
    addRelease: db.prepare('INSERT INTO releases (release, first_seen) VALUES (?, ?) RETURNING seq'),
    between: db.prepare('SELECT 1 AS x FROM releases WHERE seq > ? AND seq < ? LIMIT 1'),
    group: db.prepare('SELECT first_seen, last_seen, count, last_release_seq FROM groups WHERE fingerprint = ?'),
    addGroup: db.prepare('INSERT INTO groups (fingerprint, first_seen, last_seen, count, last_release_seq) VALUES (?, ?, ?, ?, ?)'),
    seeGroup: db.prepare('UPDATE groups SET last_seen = max(last_seen, ?), count = count + ?, last_release_seq = CASE WHEN ? IS NULL THEN last_release_seq ELSE max(coalesce(last_release_seq, ?), ?) END WHERE fingerprint = ?'),
    seenIn: db.prepare('SELECT 1 AS x FROM group_releases WHERE fingerprint = ? AND seq = ?'),
    addSeenIn: db.prepare('INSERT INTO group_releases (fingerprint, seq, first_seen) VALUES (?, ?, ?)'),
    enqueue: db.prepare('INSERT INTO outbox (created, body) VALUES (?, ?)'),
    next: db.prepare('SELECT id, body FROM outbox ORDER BY id LIMIT 1'),
    done: db.prepare('DELETE FROM outbox WHERE id = ?'),
    waiting: db.prepare('SELECT COUNT(*) AS n FROM outbox'),
  } satisfies Record<string, StatementSync>

  const stats: AlertsStats = { sent: 0, failed: 0, retried: 0, suppressed: 0, dropped: 0 }
  /** Release name → sequence number, for the releases seen since the start. */
  const releases = new Map<string, number>()
  /** When each of the last `ALERTS_PER_MINUTE` alerts queued was raised, oldest first. */
  const window: number[] = []
  /** Alerts suppressed since the last one queued. */
  let carried = 0
  let waiting = Number((q.waiting.get() as Row).n)
  let closed = false
  let delivering = false
  let lastStateError = -Infinity
  let lastDropLog = -Infinity
  const idle: Array<() => void> = []
  const closing = new AbortController()
  let backoff: { timer: Timer; resolve: (ran: boolean) => void } | null = null

  /** The sequence number of a release, recording it (first seen `time`) when new. */
  function releaseSeq(release: string, time: number): number {
    const known = releases.get(release)
    if (known !== undefined) return known
    const row = (q.releaseSeq.get(release) ?? q.addRelease.get(release, time)) as Row
    const seq = Number(row.seq)
    releases.set(release, seq)
    return seq
  }

  /** Updates a group's state with one error row; returns the alert it raises, if any. */
  function see(row: RumRow): Raised | null {
    const fp = row.fingerprint ?? fingerprintOf(row.message ?? '', row.stack)
    const seq = row.release === null ? null : releaseSeq(row.release, row.time)
    const group = q.group.get(fp) as Row | undefined
    if (!group) {
      q.addGroup.run(fp, row.time, row.time, row.count, seq)
      if (seq !== null) q.addSeenIn.run(fp, seq, row.time)
      return { type: 'new', fingerprint: fp, row }
    }
    const lastSeq = group.last_release_seq === null ? null : Number(group.last_release_seq)
    let raised: Raised | null = null
    if (seq !== null && !q.seenIn.get(fp, seq)) {
      q.addSeenIn.run(fp, seq, row.time)
      if (lastSeq !== null && seq > lastSeq && q.between.get(lastSeq, seq)) {
        const lastRelease = String((q.releaseName.get(lastSeq) as Row).release)
        raised = { type: 'regression', fingerprint: fp, row, lastSeen: Number(group.last_seen), lastRelease }
      }
    }
    q.seeGroup.run(row.time, row.count, seq, seq, seq, fp)
    return raised
  }

  /** The body of a raised alert, with the group's state after the whole batch. */
  function bodyOf(a: Raised, now: number, suppressed: number): AlertBody {
    const g = q.group.get(a.fingerprint) as Row
    const stack = a.row.stack
    const frame = stack ? firstFrame(stack) : ''
    return {
      type: a.type,
      fingerprint: a.fingerprint,
      message: a.row.message ?? '',
      release: a.row.release,
      env: a.row.env,
      page: a.row.page,
      firstSeen: iso(Number(g.first_seen)),
      ...(a.lastSeen !== undefined ? { lastSeen: iso(a.lastSeen) } : {}),
      ...(a.lastRelease !== undefined ? { lastRelease: a.lastRelease } : {}),
      count: Number(g.count),
      topFrame: frame === '' ? null : frame,
      stack: stackHead(stack),
      ...(suppressed > 0 ? { suppressed } : {}),
      time: iso(now),
    }
  }

  /** Whether the rate cap lets one more alert go at `now` (a sliding minute). */
  function allowed(now: number): boolean {
    while (window.length > 0 && window[0]! <= now - 60_000) window.shift()
    if (window.length >= ALERTS_PER_MINUTE) return false
    window.push(now)
    return true
  }

  /** Puts the raised alerts in the outbox, within the rate cap and the outbox's bound. */
  function queue(raised: readonly Raised[], now: number): void {
    for (const a of raised) {
      if (!allowed(now)) {
        stats.suppressed++
        carried++
        continue
      }
      if (waiting >= MAX_OUTBOX) {
        stats.dropped++
        if (now - lastDropLog >= 60_000) {
          lastDropLog = now
          log.warn({ webhook: to.origin, waiting }, 'monitoring alerts dropped: too many waiting for the webhook')
        }
        continue
      }
      q.enqueue.run(now, JSON.stringify(bodyOf(a, now, carried)))
      waiting++
      carried = 0
    }
  }

  function onStored(rows: readonly RumRow[]): void {
    if (closed || rows.length === 0) return
    const now = clock.now()
    try {
      db.exec('BEGIN')
      const raised: Raised[] = []
      for (const row of rows) {
        if (row.kind === 'error') {
          const a = see(row)
          if (a) raised.push(a)
        } else if (row.release !== null) releaseSeq(row.release, row.time)
      }
      queue(raised, now)
      db.exec('COMMIT')
    } catch (err) {
      if (db.isTransaction) db.exec('ROLLBACK')
      // a release cached inside the rolled-back transaction may not be in the file
      releases.clear()
      waiting = Number((q.waiting.get() as Row).n)
      if (now - lastStateError >= 60_000) {
        lastStateError = now
        log.warn({ why: (err as Error).message }, 'the monitoring alerts state could not be updated; these rows raise no alert')
      }
      return
    }
    if (waiting > 0) queueMicrotask(() => void deliverAll())
  }

  /** Waits `ms` on the clock; false when closed meanwhile. */
  function sleep(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = clock.setTimeout(() => {
        backoff = null
        resolve(true)
      }, ms)
      timer.unref()
      backoff = { timer, resolve }
    })
  }

  /** One POST of a body: signed when there is a secret, within `timeout`. */
  async function attempt(body: string): Promise<Attempt> {
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'edgebox' }
    if (to.auth) headers.authorization = to.auth
    if (config.secret !== undefined) headers['edgebox-signature'] = signatureHeader(config.secret, Math.floor(clock.now() / 1000), body)
    let res: Response
    try {
      res = await doFetch(to.url, {
        method: 'POST',
        headers,
        body,
        // a 3xx is the webhook's answer, not a place to POST the alert again
        redirect: 'manual',
        signal: AbortSignal.any([AbortSignal.timeout(config.timeout), closing.signal]),
      })
    } catch (err) {
      if (closing.signal.aborted) return { outcome: 'closed' }
      const e = err as Error & { cause?: { code?: string; message?: string } }
      const why = e.name === 'TimeoutError' ? `no answer within ${config.timeout} ms` : (e.cause?.code ?? e.cause?.message ?? e.message)
      return { outcome: 'retry', why, wait: null }
    }
    await res.body?.cancel().catch(() => {})
    if (res.status >= 200 && res.status < 300) return { outcome: 'sent' }
    if (res.status === 429 || res.status >= 500) {
      const wait = res.status === 429 || res.status === 503 ? retryAfterMs(res.headers.get('retry-after'), clock.now()) : null
      return { outcome: 'retry', why: `status ${res.status}`, wait }
    }
    return { outcome: 'fail', why: `status ${res.status}`, status: res.status }
  }

  /** Delivers one alert, retrying with backoff; false when closed before it ended (it stays in the outbox). */
  async function deliver(body: string): Promise<boolean> {
    const { type, fingerprint } = JSON.parse(body) as AlertBody
    for (let n = 0; ; n++) {
      const a = await attempt(body)
      if (a.outcome === 'closed') return false
      if (a.outcome === 'sent') {
        stats.sent++
        return true
      }
      if (a.outcome === 'fail' || n >= config.retries) {
        stats.failed++
        log.warn({ webhook: to.origin, type, fingerprint, attempts: n + 1, why: a.why, ...(a.outcome === 'fail' ? { status: a.status } : {}) }, a.outcome === 'fail' ? 'the webhook refused a monitoring alert; not retried' : 'a monitoring alert could not be delivered to the webhook; given up')
        return true
      }
      const wait = a.wait ?? 1000 * 2 ** n
      log.debug({ webhook: to.origin, type, fingerprint, why: a.why, wait }, 'a monitoring alert will be retried')
      if (!(await sleep(wait))) return false
      stats.retried++
    }
  }

  /** Sends what waits in the outbox, oldest first, one at a time. */
  async function deliverAll(): Promise<void> {
    if (delivering || closed) return
    delivering = true
    try {
      for (;;) {
        if (closed) return
        const next = q.next.get() as Row | undefined
        if (!next) {
          waiting = 0
          return
        }
        if (!(await deliver(String(next.body)))) return
        if (closed) return
        q.done.run(next.id)
        waiting = Math.max(0, waiting - 1)
      }
    } catch (err) {
      if (!closed) log.warn({ why: (err as Error).message }, 'monitoring alerts stopped being delivered')
    } finally {
      delivering = false
      for (const resolve of idle.splice(0)) resolve()
    }
  }

  if (waiting > 0) queueMicrotask(() => void deliverAll())

  return {
    onStored,
    stats,
    flush(): Promise<void> {
      if (closed || (!delivering && waiting === 0)) return Promise.resolve()
      return new Promise((resolve) => {
        idle.push(resolve)
        if (!delivering) queueMicrotask(() => void deliverAll())
      })
    },
    async close(): Promise<void> {
      if (closed) return
      closed = true
      closing.abort()
      if (backoff) {
        clock.clearTimeout(backoff.timer)
        backoff.resolve(false)
        backoff = null
      }
      // the loop notices `closed` at its next step; wait for it so the file is not closed under it
      if (delivering) await new Promise<void>((resolve) => idle.push(resolve))
      for (const resolve of idle.splice(0)) resolve()
      db.close()
    },
  }
}
