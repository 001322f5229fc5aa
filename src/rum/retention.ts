import type { Clock, Timer } from '../core/clock.ts'
import type { Logger } from '../core/log.ts'
import type { CollectorStats } from './collector.ts'
import type { RetentionLimits, RumStore, SweepResult } from './store.ts'

/**
 * The upkeep of the real-user-monitoring store (docs/monitoring.md): every
 * minute, rows older than `rum.retention.maxAge` are deleted, then, while
 * the store is larger than `rum.retention.maxSize`, its oldest rows
 * (`RumStore.sweep`); and, when any counter moved since the last one, one
 * info line with the counters, so an operator reading the journal sees
 * refused beacons and dropped rows without asking the query API.
 *
 * The upkeep has its own connection to the store (the one the query API
 * reads with), so the collector's writes are never queued behind a query.
 */

/** How often the store is swept and the counters logged. */
export const UPKEEP_EVERY = 60_000

/** What the operator sees: the collector's counters and the sweeps'. */
export interface RumCounters {
  /** The collector's: accepted, refused by reason, ignored, dropped, stored, the queue's length, and what other parts of it count. */
  readonly collector: Readonly<CollectorStats> & { readonly queued?: number }
  /** Rows deleted by sweeps since start, by age and by size. */
  readonly swept: number
  readonly sweptByAge: number
  readonly sweptBySize: number
  /** When the last sweep ended (ms since the epoch); null: none yet. */
  readonly lastSweep: number | null
  /** The store's size after the last sweep, in bytes; null: none yet. */
  readonly storeBytes: number | null
}

export interface RumUpkeepOptions {
  /** The upkeep's own connection to the store; closed by close(). */
  readonly store: RumStore
  /** The collector's counters (a live object). */
  readonly stats: Readonly<CollectorStats>
  readonly clock: Clock
  readonly log: Logger
  readonly retention: RetentionLimits
}

export interface RumUpkeep {
  /** The connection to the store queries go through. */
  readonly store: RumStore
  /** The counters now. */
  counters(): RumCounters
  /** Sweeps now, unless a sweep is running (null then); what the timer does every minute. */
  sweep(): Promise<SweepResult | null>
  /** Stops the timer, waits for a running sweep, and closes the store connection. */
  close(): Promise<void>
}

/** The counters a log line compares and reports. */
interface Snapshot {
  readonly accepted: number
  readonly refused: number
  readonly ignored: number
  readonly dropped: number
  readonly stored: number
  readonly swept: number
}

/** The sum of the refused counts by reason. */
function refusedTotal(refused: Readonly<Record<string, number>>): number {
  let n = 0
  for (const k in refused) n += refused[k]!
  return n
}

/** Starts the minute timer (unref'd: it never holds the process open). */
export function startRumUpkeep(opts: RumUpkeepOptions): RumUpkeep {
  const { store, stats, clock, log, retention } = opts
  let sweptByAge = 0
  let sweptBySize = 0
  let lastSweep: number | null = null
  let storeBytes: number | null = null
  let running: Promise<SweepResult | null> | null = null
  let closed = false
  let logged: Snapshot = { accepted: 0, refused: 0, ignored: 0, dropped: 0, stored: 0, swept: 0 }

  const snapshot = (): Snapshot => ({
    accepted: stats.accepted,
    refused: refusedTotal(stats.refused),
    ignored: stats.ignored,
    dropped: stats.dropped,
    stored: stats.stored,
    swept: sweptByAge + sweptBySize,
  })

  /** One line when anything moved since the last one: the totals, and in the message what changed. */
  function logCounters(): void {
    const now = snapshot()
    const moved = (Object.keys(now) as Array<keyof Snapshot>).filter((k) => now[k] !== logged[k])
    if (moved.length === 0) return
    const delta = (k: keyof Snapshot) => now[k] - logged[k]
    const queued = (stats as { queued?: number }).queued
    log.info(
      { ...now, refusedBy: { ...stats.refused }, ...(queued === undefined ? {} : { queued }), ...(storeBytes === null ? {} : { storeBytes }) },
      `monitoring since the last report: ${delta('accepted')} beacons accepted, ${delta('refused')} refused, ${delta('dropped')} rows dropped, ${delta('stored')} stored, ${delta('swept')} swept`,
    )
    logged = now
  }

  async function sweepOnce(): Promise<SweepResult | null> {
    try {
      const r = await store.sweep(clock.now(), retention)
      sweptByAge += r.byAge
      sweptBySize += r.bySize
      storeBytes = await store.size()
      lastSweep = clock.now()
      if (r.bySize > 0) log.info({ rows: r.bySize, maxSize: retention.maxSize, bytes: storeBytes }, 'monitoring store over rum.retention.maxSize: its oldest rows were deleted')
      return r
    } catch (err) {
      if (!closed) log.warn({ why: (err as Error).message }, 'the monitoring store could not be swept; trying again in a minute')
      return null
    }
  }

  function sweep(): Promise<SweepResult | null> {
    if (running || closed) return Promise.resolve(null)
    running = sweepOnce().finally(() => {
      running = null
    })
    return running
  }

  const timer: Timer = clock.setInterval(() => {
    void sweep().then(() => {
      if (!closed) logCounters()
    })
  }, UPKEEP_EVERY)
  timer.unref()

  return {
    store,
    counters: () => ({ collector: stats, swept: sweptByAge + sweptBySize, sweptByAge, sweptBySize, lastSweep, storeBytes }),
    sweep,
    async close() {
      if (closed) return
      closed = true
      clock.clearInterval(timer)
      await running
      await store.close()
    },
  }
}
