import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { BodyLimits } from '../core/body.ts'
import { readSmall } from '../core/body.ts'
import type { Clock, Timer } from '../core/clock.ts'
import type { Context } from '../core/context.ts'
import type { Endpoint } from '../core/endpoints.ts'
import { httpError } from '../core/errors.ts'
import type { Logger } from '../core/log.ts'
import type { OriginPolicy } from '../core/origin.ts'
import { MemoryRateLimitStore } from '../core/rate-limit-store.ts'
import { PreparedResponse } from '../core/respond.ts'
import { clientNetwork } from '../http/address.ts'
import { countryOf } from './country.ts'
import { MAX_BATCH_BYTES, parseBatch, parseGifQuery, type ParseResult } from './schema.ts'
import { scrubBatch } from './scrub.ts'
import { eventToBatch, MAX_SENTRY_BYTES, parseEnvelope, parseStoreBody, sentryKeyMatches, sentryKeyOf, sentryPaths, type EnvelopeResult, type SentryBatch, type SentryOptions } from './sentry.ts'
import { toRows, type ReceiveContext, type RumRow, type RumStore } from './store.ts'
import type { Batch, RumEvent } from './schema.ts'
import type { Symbolicator } from './symbolicate.ts'

/**
 * The collector of real-user monitoring (docs/monitoring.md): on every site
 * with `rum`,
 *
 *   GET  /_edgebox/rum/sdk.js      the SDK's script build
 *   POST /_edgebox/rum/batch       a batch as JSON (sendBeacon, fetch): 204
 *   GET  /_edgebox/rum/beacon.gif  the same batch, base64url, in `d=`: the 43-byte transparent GIF
 *
 * and, with `rum.sentry` (src/rum/sentry.ts), a Sentry SDK's
 *
 *   POST /_edgebox/rum/sentry/api/<project>/envelope/   an envelope: 200 `{"id":...}`
 *   POST /_edgebox/rum/sentry/api/<project>/store/      one event: 200 `{"id":...}`
 *
 * whose key is checked (401) and whose error events take the same path as
 * a batch's.
 *
 * A beacon is checked (its size, depth and schema: 400 with the reason,
 * counted, nothing stored), limited per client network (429), scrubbed
 * (emails, tokens, card numbers, query values; the address truncated) and
 * queued; the queue is written to the store in transactions every 100 ms
 * or 100 rows, off the request. A full queue or a failing store drops rows
 * and counts them (a store locked by another process once it has been for
 * a second: until then its rows wait in the queue); a write never waits
 * long for a lock (src/rum/store.ts): a page is never slowed by its
 * monitoring.
 *
 * On a site with `rum.symbolicate`, a beacon whose error stacks point at the
 * site's own scripts waits in a bounded queue of its own while its frames
 * are mapped to their sources (src/rum/symbolicate.ts), off the request;
 * its rows are then made from the mapped stacks (so an error's fingerprint
 * is its source's, whatever build ran) and queued like any other. The
 * stack as sent is kept in the row's `json` as `rawStack`. A full queue
 * stores the beacon as sent and counts it.
 */

/**
 * The SDK's script build (client/build.ts writes it; the package ships it),
 * served on every site with `rum` at `/_edgebox/rum/sdk.js`, so a page needs
 * nothing copied: `<script src="/_edgebox/rum/sdk.js" data-release="...">`.
 * From src/rum/ and from dist/rum/ alike, the package's lab/www/assets.
 */
const SDK_FILE = fileURLToPath(new URL('../../lab/www/assets/edgebox-rum.js', import.meta.url))

/** The answer to a stored batch from the site's own pages: 204, not to be stored by any cache. */
const NO_CONTENT = new PreparedResponse(204, { 'cache-control': 'no-store' })

/** GIF89a, 1x1, one transparent pixel: the 43 bytes a beacon image answers with. */
export const TRANSPARENT_GIF = Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==', 'base64')

/** What the collector counts since it started. */
export interface CollectorStats {
  /** Beacons stored (their rows queued). */
  accepted: number
  /** Beacons refused, by reason (`invalid`, `too large`, `rate`, `origin`, `key`, `encoding`). */
  refused: Record<string, number>
  /** Sentry items skipped, not refused: sessions, client reports, transactions, attachments, events without an error. */
  ignored: number
  /** Rows dropped: the queue was full, or the store failed. */
  dropped: number
  /** Rows written to the store. */
  stored: number
  /** Mapping error stacks to their sources (sites with `rum.symbolicate`). */
  symbolication: SymbolicationStats
}

/** What symbolication counts since the collector started. */
export interface SymbolicationStats {
  /** Error events whose stack had at least one frame mapped. */
  events: number
  /** Stack frames mapped to a source. */
  frames: number
  /** Scripts of a site's own whose source map was not found or not readable (once per event and script). */
  missing: number
  /** Source maps not read: larger than `maxMapSize` (once per event and script). */
  tooLarge: number
  /** Error events stored as sent: the symbolication queue was full, or mapping failed. */
  skipped: number
}

export interface CollectorOptions {
  readonly store: RumStore
  readonly log: Logger
  readonly clock: Clock
  readonly limits: BodyLimits
  /** Beacons per client network per minute (a page sends one or two per view). */
  readonly perMinute?: number
  /** Rows waiting for the store at most; more are dropped. */
  readonly maxQueue?: number
  /** The request field a trusted proxy names the client's country in (`rum.countryHeader`, src/rum/country.ts). */
  readonly countryHeader?: string | undefined
  /** Told of the rows of each transaction once it is written (alerts). */
  readonly onStored?: (rows: readonly RumRow[]) => void
  /** Error events waiting for symbolication at most; more are stored as sent (counted as skipped). */
  readonly maxSymbolicationQueue?: number
}

/** What a site's `rum` option asks of the collector besides its own endpoints. */
export interface SiteRumOptions {
  /** Take a Sentry SDK's envelopes and events under this DSN's project and key. */
  readonly sentry?: SentryOptions | undefined
  /** Map error stacks with the site's source maps (`rum.symbolicate`); absent: stacks are stored as sent. */
  readonly symbolicator?: Symbolicator | undefined
}

export interface Collector {
  /** The endpoints of a site with `rum`, answering cross-origin requests from its origins only; with `sentry`, the Sentry endpoints too. */
  endpointsFor(origins: OriginPolicy, site?: SiteRumOptions): Endpoint[]
  readonly stats: CollectorStats
  /** Queues rows Edgebox made itself (its own view of a page view), with the beacons' rows; false when the queue had no room (counted as dropped). */
  record(rows: RumRow[]): boolean
  /** Writes what is queued now (tests; shutdown). */
  flush(): Promise<void>
  close(): Promise<void>
}

const FLUSH_MS = 100
const FLUSH_ROWS = 100
/**
 * How long rows wait for a locked store: a write the store refuses because
 * another connection holds its lock (SQLITE_BUSY, past the store's short
 * busy timeout) puts its rows back in the queue for the timer's next try,
 * until the store has been locked this long; then they are dropped and
 * counted like those of any failed write. A lock held for a moment (another
 * process's write, the upkeep's sweep of old rows) costs no rows.
 */
const LOCK_GRACE_MS = 1_000

/**
 * A write failed because another connection held the store's lock: node:sqlite's
 * error carries SQLite's result code in `errcode`, SQLITE_BUSY (5) or
 * SQLITE_LOCKED (6) in its low byte (https://sqlite.org/rescode.html#busy).
 */
function isLocked(err: unknown): boolean {
  const code = (err as { errcode?: unknown } | null)?.errcode
  return typeof code === 'number' && ((code & 0xff) === 5 || (code & 0xff) === 6)
}
/** Error events waiting for symbolication at most, by default. */
const SYMBOLICATION_QUEUE = 1_000

/** A scrubbed batch waiting to become rows, with the `json` every row of it gets (a Sentry event's), if any. */
interface Pending {
  readonly batch: Batch
  readonly json: string | null
}

export function createCollector(opts: CollectorOptions): Collector {
  const { store, log, clock } = opts
  const perMinute = opts.perMinute ?? 120
  const maxQueue = opts.maxQueue ?? 10_000
  const buckets = new MemoryRateLimitStore()
  const stats: CollectorStats = { accepted: 0, refused: {}, ignored: 0, dropped: 0, stored: 0, symbolication: { events: 0, frames: 0, missing: 0, tooLarge: 0, skipped: 0 } }
  const maxSymbolication = opts.maxSymbolicationQueue ?? SYMBOLICATION_QUEUE
  /** Error events in the symbolication queue, and the queue's last job (jobs run one at a time). */
  let symbolicating = 0
  let symbolicationTail: Promise<void> = Promise.resolve()
  let lastSymbolicationError = 0
  let queue: RumRow[] = []
  Object.defineProperty(stats, 'queued', { enumerable: true, get: () => queue.length }) // rows waiting for the store, for the operator's counters (src/rum/retention.ts)
  let writing: Promise<void> | null = null
  let lastStoreError = 0
  /** The store's last write failed (locked, full): until one succeeds, only the timer writes. */
  let storeFailing = false
  /** When the store's writes began failing because it was locked (ms since the epoch); null: the last one was not. */
  let lockedSince: number | null = null

  const refuse = (why: string, status: 'EB_ERR_BAD_REQUEST' | 'EB_ERR_TOO_MANY_REQUESTS' | 'EB_ERR_FORBIDDEN' | 'EB_ERR_UNAUTHORIZED' | 'EB_ERR_UNSUPPORTED_MEDIA_TYPE', message: string, headers?: Record<string, string>): never => {
    stats.refused[why] = (stats.refused[why] ?? 0) + 1
    throw httpError(status, message, headers)
  }

  /** Writes the queue, one transaction at a time; a failing store drops what it was given (a locked one, after LOCK_GRACE_MS: until then its rows wait in the queue). */
  function flush(): Promise<void> {
    if (writing) return writing
    if (queue.length === 0) return Promise.resolve()
    const rows = queue
    queue = []
    writing = store
      .insert(rows)
      .then(
        () => {
          storeFailing = false
          lockedSince = null
          stats.stored += rows.length
          if (opts.onStored) {
            try {
              opts.onStored(rows)
            } catch (err) {
              log.warn({ err }, 'a listener of stored monitoring rows failed')
            }
          }
        },
        (err: unknown) => {
          storeFailing = true
          if (isLocked(err)) {
            lockedSince ??= clock.now()
            // a lock held briefly (another process's write, the upkeep's sweep): the rows wait for the next try, room permitting
            if (clock.now() - lockedSince < LOCK_GRACE_MS && queue.length + rows.length <= maxQueue) {
              queue = rows.concat(queue)
              return
            }
          } else lockedSince = null
          stats.dropped += rows.length
          // one line a minute at most: a locked or full disk would otherwise flood the log
          if (clock.now() - lastStoreError > 60_000) {
            lastStoreError = clock.now()
            log.warn({ why: (err as Error).message, rows: rows.length, dropped: stats.dropped }, 'monitoring rows could not be stored; dropped (each counted in dropped; this line at most once a minute)')
          }
        },
      )
      .finally(() => {
        writing = null
      })
    return writing
  }
  /**
   * After rows were queued: a write now when FLUSH_ROWS are waiting, unless
   * the store's last write failed; then only the timer tries again, every
   * FLUSH_MS. A failing write may hold the event loop for the store's busy
   * timeout (src/rum/store.ts): so a locked or full store costs it that
   * ten times a second at most, however many beacons arrive, and the
   * queue's bound drops (and counts) what does not fit meanwhile.
   */
  function writeIfFull(): void {
    if (queue.length >= FLUSH_ROWS && !storeFailing) void flush()
  }
  /** The SDK script, read once when first asked for (null: not built). */
  let sdk: { body: Buffer; etag: string } | null | undefined
  const loadSdk = () => {
    try {
      const body = readFileSync(SDK_FILE)
      return { body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` }
    } catch {
      return null
    }
  }
  const timer: Timer = clock.setInterval(() => void flush(), FLUSH_MS)
  timer.unref()

  /** A parsed beacon: scrubbed, made rows, queued (or dropped when the queue is full); symbolicated first on a site that asks for it. */
  function take(ctx: Context, parsed: ParseResult, symbolicator: Symbolicator | undefined): void {
    if (!parsed.ok) return refuse('invalid', 'EB_ERR_BAD_REQUEST', `the beacon was refused: ${parsed.error}`)
    submit(ctx, [{ batch: scrubBatch(parsed.batch), json: null }], symbolicator)
  }

  /**
   * A Sentry request's events, each a one-event batch: scrubbed and made rows
   * like a batch (the row's `json` the event's id, timestamp and contexts),
   * queued together; a bad event refuses the whole request, nothing stored.
   */
  function takeSentry(ctx: Context, parsed: EnvelopeResult, symbolicator: Symbolicator | undefined): string | undefined {
    if (!parsed.ok) return refuse('invalid', 'EB_ERR_BAD_REQUEST', `the Sentry request was refused: ${parsed.error}`)
    stats.ignored += parsed.skipped
    const batches: SentryBatch[] = []
    for (const e of parsed.events) {
      const r = eventToBatch(e)
      if (!r.ok) return refuse('invalid', 'EB_ERR_BAD_REQUEST', `the Sentry request was refused: ${r.error}`)
      if (r.value) batches.push(r.value)
      else stats.ignored++
    }
    if (batches.length === 0) return undefined
    submit(
      ctx,
      batches.map((b) => ({ batch: scrubBatch(b.batch), json: b.json })),
      symbolicator,
    )
    const id = parsed.events.length > 0 ? (parsed.events[0] as { event_id?: unknown }).event_id : undefined
    return typeof id === 'string' && /^[0-9a-f]{32}$/i.test(id) ? id : undefined
  }

  /**
   * The scrubbed batches of one request: made rows and queued now, or, when
   * some error stacks point at the site's own scripts, queued for
   * symbolication first (room permitting: else stored as sent, counted).
   * Nothing here waits on the disk.
   */
  function submit(ctx: Context, items: Pending[], symbolicator: Symbolicator | undefined): void {
    const receive: ReceiveContext = { time: clock.now(), userAgent: ctx.header('user-agent'), address: ctx.clientAddress, country: countryOf(ctx, opts.countryHeader) }
    const origin = ctx.origin
    let wanted = 0
    if (symbolicator) {
      for (const it of items) for (const e of it.batch.events) if (e.t === 'error' && e.stack !== undefined && symbolicator.wants(e.stack, origin)) wanted++
    }
    if (wanted === 0) return enqueue(items.flatMap((it) => rowsOf(it, receive)))
    if (symbolicating + wanted > maxSymbolication) {
      stats.symbolication.skipped += wanted
      return enqueue(items.flatMap((it) => rowsOf(it, receive)))
    }
    symbolicating += wanted
    const job = async () => {
      try {
        const mapped = await Promise.all(items.map((it) => symbolicateItem(it, symbolicator!, origin)))
        enqueue(mapped.flatMap((m) => rowsOf(m.item, receive, m.raw)))
      } finally {
        symbolicating -= wanted
      }
    }
    symbolicationTail = symbolicationTail.then(job, job).catch((err: unknown) => {
      if (clock.now() - lastSymbolicationError > 60_000) {
        lastSymbolicationError = clock.now()
        log.warn({ why: (err as Error).message }, 'a beacon could not be symbolicated')
      }
    })
  }

  /**
   * A batch with each error's stack mapped to its sources, and the stacks as
   * sent of the events that changed (by index). A stack whose mapping fails
   * is kept as sent (counted as skipped).
   */
  async function symbolicateItem(item: Pending, symbolicator: Symbolicator, origin: string): Promise<{ item: Pending; raw: Map<number, string> }> {
    const raw = new Map<number, string>()
    const release = item.batch.release ?? null
    const events = await Promise.all(
      item.batch.events.map(async (e, i): Promise<RumEvent> => {
        if (e.t !== 'error' || e.stack === undefined || !symbolicator.wants(e.stack, origin)) return e
        try {
          const r = await symbolicator.symbolicate(e.stack, { origin, release })
          const s = stats.symbolication
          s.frames += r.frames
          s.missing += r.missing
          s.tooLarge += r.tooLarge
          if (r.frames === 0) return e
          s.events++
          raw.set(i, e.stack)
          return { ...e, stack: r.stack }
        } catch (err) {
          stats.symbolication.skipped++
          if (clock.now() - lastSymbolicationError > 60_000) {
            lastSymbolicationError = clock.now()
            log.warn({ why: (err as Error).message }, 'an error stack could not be symbolicated; stored as sent')
          }
          return e
        }
      }),
    )
    return { item: { batch: { ...item.batch, events }, json: item.json }, raw }
  }

  /** A scrubbed batch's rows (one per event, in order), each with the batch's `json`, and `rawStack` for the events whose stack was mapped. */
  function rowsOf(item: Pending, receive: ReceiveContext, raw?: ReadonlyMap<number, string>): RumRow[] {
    return toRows(item.batch, receive).map((row, i) => {
      const rawStack = raw?.get(i)
      if (rawStack === undefined) return item.json === null ? row : { ...row, json: item.json }
      const base = item.json === null ? {} : (JSON.parse(item.json) as Record<string, unknown>)
      return { ...row, json: JSON.stringify({ ...base, rawStack }) }
    })
  }

  /** Rows of one beacon: queued, or dropped (counted) when the queue has no room for all of them. */
  function enqueue(rows: RumRow[]): void {
    if (queue.length + rows.length > maxQueue) {
      stats.dropped += rows.length
      return
    }
    stats.accepted++
    for (const r of rows) queue.push(r)
    writeIfFull()
  }

  function limit(ctx: Context): void {
    const b = buckets.take(clientNetwork(ctx.clientAddress), clock.now(), perMinute, perMinute / 60_000)
    if (!b.allowed) refuse('rate', 'EB_ERR_TOO_MANY_REQUESTS', `at most ${perMinute} beacons a minute from one client`, { 'Retry-After': String(Math.ceil(b.retryAfterMs / 1000)) })
  }

  /**
   * A Sentry project's envelope and store endpoints: CORS like the batch's
   * (a browser SDK posts `text/plain`, a simple request; a preflight is
   * answered too), the key checked before the body is read (401), the body
   * read up to 200 KiB (413), then parsed and taken.
   */
  function sentryEndpoints(sentry: SentryOptions, cors: (ctx: Context) => Record<string, string>, symbolicator: Symbolicator | undefined): Endpoint[] {
    const paths = sentryPaths(sentry.project)
    const endpoint = (path: string, parse: (body: Buffer) => EnvelopeResult): Endpoint => ({
      path,
      feature: 'rum.sentry',
      methods: ['POST', 'OPTIONS'],
      async handle(ctx) {
        const allow = cors(ctx)
        if (ctx.method === 'OPTIONS') {
          return ctx.send(204, { ...allow, 'access-control-allow-methods': 'POST', 'access-control-allow-headers': 'Content-Type, X-Sentry-Auth', 'access-control-max-age': '600', 'cache-control': 'no-store' })
        }
        const key = sentryKeyOf({ auth: ctx.header('x-sentry-auth'), authorization: ctx.header('authorization') }, ctx.query)
        if (!sentryKeyMatches(key, sentry.key)) {
          refuse('key', 'EB_ERR_UNAUTHORIZED', key === undefined ? 'no Sentry key (X-Sentry-Auth: Sentry sentry_key=..., or ?sentry_key=)' : 'the Sentry key is not this project\'s (sites[].rum.sentry.key)')
        }
        const encoding = (ctx.header('content-encoding') ?? 'identity').trim().toLowerCase()
        if (encoding !== 'identity' && encoding !== '') refuse('encoding', 'EB_ERR_UNSUPPORTED_MEDIA_TYPE', `a ${encoding}-encoded body is not taken; send it uncompressed`)
        limit(ctx)
        let body: Buffer
        try {
          body = await readSmall(ctx, opts.limits, MAX_SENTRY_BYTES)
        } catch (err) {
          stats.refused['too large'] = (stats.refused['too large'] ?? 0) + 1
          throw err
        }
        const id = takeSentry(ctx, parse(body), symbolicator)
        ctx.send(200, { ...allow, 'content-type': 'application/json', 'cache-control': 'no-store' }, JSON.stringify(id ? { id } : {}))
      },
    })
    return [endpoint(paths.envelope, parseEnvelope), endpoint(paths.store, parseStoreBody)]
  }

  return {
    stats,
    record(rows) {
      if (queue.length + rows.length > maxQueue) {
        stats.dropped += rows.length
        return false
      }
      for (const r of rows) queue.push(r)
      writeIfFull()
      return true
    },
    flush: async () => {
      await symbolicationTail
      await writing
      await flush()
    },
    async close() {
      clock.clearInterval(timer)
      await symbolicationTail
      await writing
      await flush()
      // rows put back by a write the store's lock refused: no next try now
      stats.dropped += queue.length
      queue = []
      await store.close()
    },
    endpointsFor(origins, site) {
      const symbolicator = site?.symbolicator
      /** CORS for the site's own origins (docs/security.md's origin policy): a page of another origin is refused. */
      const cors = (ctx: Context): Record<string, string> => {
        const origin = ctx.header('origin')
        if (origin === undefined || origin === ctx.origin) return {}
        if (!origins.allows(origin, ctx.client.host, ctx.scheme)) refuse('origin', 'EB_ERR_FORBIDDEN', `origin ${origin} may not report here (sites[].origins)`)
        return { 'access-control-allow-origin': origin, vary: 'Origin' }
      }
      return [
        {
          path: '/_edgebox/rum/sdk.js',
          feature: 'rum',
          methods: ['GET', 'HEAD'],
          handle(ctx) {
            sdk ??= loadSdk()
            if (sdk === null) throw httpError('EB_ERR_NOT_FOUND', 'the SDK is not built here: run npm run build:client')
            ctx.send(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'public, max-age=300', etag: sdk.etag }, sdk.body)
          },
        },
        {
          path: '/_edgebox/rum/batch',
          feature: 'rum',
          methods: ['POST', 'OPTIONS'],
          async handle(ctx) {
            const allow = cors(ctx)
            if (ctx.method === 'OPTIONS') {
              return ctx.send(204, { ...allow, 'access-control-allow-methods': 'POST', 'access-control-allow-headers': 'Content-Type', 'access-control-max-age': '600', 'cache-control': 'no-store' })
            }
            limit(ctx)
            let body: Buffer
            try {
              body = await readSmall(ctx, opts.limits, MAX_BATCH_BYTES)
            } catch (err) {
              stats.refused['too large'] = (stats.refused['too large'] ?? 0) + 1
              throw err
            }
            take(ctx, parseBatch(body.toString('utf8')), symbolicator)
            // a page's own beacon (no CORS fields) gets the one answer made once: its head is not rebuilt per beacon
            if (allow.vary === undefined) ctx.sendPrepared(NO_CONTENT)
            else ctx.send(204, { ...allow, 'cache-control': 'no-store' })
          },
        },
        ...(site?.sentry ? sentryEndpoints(site.sentry, cors, symbolicator) : []),
        {
          path: '/_edgebox/rum/beacon.gif',
          feature: 'rum',
          methods: ['GET', 'HEAD'],
          handle(ctx) {
            limit(ctx)
            take(ctx, parseGifQuery(new URLSearchParams(ctx.query).get('d') ?? ''), symbolicator)
            ctx.send(200, { 'content-type': 'image/gif', 'cache-control': 'no-store' }, TRANSPARENT_GIF)
          },
        },
      ]
    },
  }
}
