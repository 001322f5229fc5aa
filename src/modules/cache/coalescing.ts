import type { Context } from '../../core/context.ts'
import { varyKey } from '../../http/freshness.ts'
import { tee } from '../proxy/exchange.ts'
import type { CacheState, Origin, OriginResponse } from './cache.ts'
import { hasAnnouncedLength, storagePlan, toEntry } from './lookup.ts'
import { relayPartial } from './partial.ts'
import { pass, relay, serve } from './serve.ts'
import type { StoredEntry } from './store.ts'

/**
 * Misses and request coalescing: concurrent misses for one key make one
 * origin request (a flight). The others wait for its response head: if it
 * will be stored they wait for the body and are served from it
 * (`collapsed`); if not, they go to the origin themselves at once, so an
 * uncacheable URL does not queue its requests behind each other. The
 * response is relayed to the client and stored once complete (RFC 9111 §3).
 */

/** An origin fetch under way for a key, as the requests waiting on it see it. */
export interface Flight {
  /** Resolves with whether the response will be stored, once its head arrived. */
  readonly head: Promise<boolean>
  /** Resolves with the stored entry (or null) once the body is complete. */
  readonly done: Promise<StoredEntry | null>
}

/** The fetching side of a flight: tells the waiting requests what they get. */
export interface Settle {
  head(willStore: boolean): void
  done(entry: StoredEntry | null): void
}

/** For a fetch no request waits on (a revalidation, a range request's own). */
export const UNWATCHED: Settle = { head() {}, done() {} }

/** Registers a flight for `key`, gone once `done` is settled. Undefined when one is already under way. */
export function startFlight(s: CacheState, key: string): Settle | undefined {
  if (s.flights.has(key)) return undefined
  let head!: (v: boolean) => void
  let done!: (v: StoredEntry | null) => void
  const flight: Flight = { head: new Promise((r) => (head = r)), done: new Promise((r) => (done = r)) }
  s.flights.set(key, flight)
  void flight.done.then(() => s.flights.delete(key))
  return { head, done }
}

/** A miss: joins the flight under way for the key, or starts one. */
export async function miss(s: CacheState, ctx: Context, key: string, origin: Origin, fwd: string): Promise<void> {
  const flight = s.flights.get(key)
  if (flight) {
    // Wait for the response head of the request already on its way. If it will be
    // stored, wait for it and serve it; if not, go upstream without waiting more.
    if (await flight.head) {
      const entry = await flight.done
      if (entry && varyKey(entry.vary, ctx.req.headers) === entry.variant) return serve(s, ctx, entry, `${fwd}; collapsed`, 'HIT')
    }
    // A range request's own answer (a 206) may still be stored as partial content.
    if (ctx.req.headers.range !== undefined) return respondAndStore(s, ctx, key, await origin({}), fwd, 'MISS', UNWATCHED)
    return pass(s, ctx, origin, fwd, 'MISS')
  }
  const settle = startFlight(s, key)!
  let res: OriginResponse
  try {
    res = await origin({})
  } catch (err) {
    settle.head(false)
    settle.done(null)
    throw err
  }
  respondAndStore(s, ctx, key, res, fwd, 'MISS', settle)
}

/** Relays an origin response to the client and, if RFC 9111 allows, stores it once complete. */
export function respondAndStore(s: CacheState, ctx: Context, key: string, res: OriginResponse, status: string, label: string, settle: Settle): void {
  if (res.status === 206) {
    // Requests waiting for this one go upstream themselves: a partial answer is not what they asked for.
    settle.head(false)
    settle.done(null)
    return relayPartial(s, ctx, key, res, status, label)
  }
  const plan = storagePlan(s, ctx, res)
  settle.head(plan.store)
  if (!plan.store) {
    settle.done(null)
    relay(s, ctx, res, `${status}; fwd-status=${res.status}; detail="${plan.reason}"`, label)
    return
  }
  const chunks: Buffer[] = []
  let total = 0
  const body = tee(res.body, {
    data: (c) => {
      total += c.length
      if (total <= s.cfg.maxObjectSize) chunks.push(c)
      else chunks.length = 0
    },
    end: (complete) => {
      // Never store a truncated body: the body must end normally with every announced byte.
      if (!complete || total > s.cfg.maxObjectSize || !hasAnnouncedLength(res.headers, total)) return settle.done(null)
      const entry = toEntry(key, ctx, res, plan.strip, Buffer.concat(chunks, total))
      s.store.put(entry)
      settle.done(entry)
    },
  })
  relay(s, ctx, { ...res, body }, `${status}; fwd-status=${res.status}; stored; ttl=${plan.ttl}`, label)
}
