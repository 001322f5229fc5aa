import { z } from 'zod'
import type { Context } from '../../core/context.ts'
import { httpError } from '../../core/errors.ts'
import type { BodySource } from '../../core/types.ts'
import { systemClock, type Clock } from '../../core/clock.ts'
import { duration, size } from '../../config/units.ts'
import type { CacheDirectives, Headers } from '../../http/cache-control.ts'
import { compileGlob } from '../../http/glob.ts'
import type { CacheStore, StoredEntry } from './store.ts'
import { miss, type Flight } from './coalescing.ts'
import { match, NO_DIRECTIVES, primaryKey, requestDirectives, reuse } from './lookup.ts'
import { currentAgeMs } from '../../http/freshness.ts'
import { fillPartial, servePartial, wholeForRange } from './partial.ts'
import { applyRemovals, invalidateAfter, purgeRequest, purgeTarget, type Removal } from './purge.ts'
import type { CacheView, PurgeTarget } from '../../core/observe.ts'
import { refresh, revalidate } from './revalidation.ts'
import { pass, serve, servedHead, serveHit } from './serve.ts'

/**
 * A shared HTTP cache (RFC 9111) in front of an origin, one per proxy route
 * with `cache`. docs/cache.md describes it. `HttpCache` decides which way a
 * GET or HEAD goes (RFC 9111 §4); the ways are in this folder:
 *
 * - lookup.ts: key, Vary, the stored response a request selects, whether a
 *   response may be stored and how (§2-§4.1);
 * - serve.ts: answers from a stored response (Age, the client's conditionals
 *   and ranges) or relayed from the origin, with Cache-Status (RFC 9211);
 * - coalescing.ts: misses, one origin request for concurrent ones;
 * - revalidation.ts: conditional requests, stale-while-revalidate and
 *   stale-if-error (§4.3, RFC 5861);
 * - partial.ts: partial content stored, combined and served (§3.3-3.4);
 * - purge.ts: PURGE, and invalidation by unsafe methods (§4.4).
 *
 * The origin is a function that sends the request upstream with some extra
 * header fields and resolves once the response head has arrived; the proxy
 * provides it (with its balancing, retries and timeouts).
 */

export const cacheOptions = z.strictObject({
  /** This cache's name in Cache-Status (RFC 9211): name the tiers of a hierarchy (`edge`, `parent`). */
  name: z.string().regex(/^[A-Za-z][A-Za-z0-9_.:-]*$/, 'is a token such as edge or parent').default('edgebox'),
  /** Budget of the store (bodies and headers), LRU beyond it. */
  maxBytes: size().default(256 * 1024 * 1024),
  /** Keep stored responses in this directory (they survive restarts) instead of in memory only. */
  disk: z.string().min(1).optional(),
  /** Larger responses are passed through, not stored. */
  maxObjectSize: size().default(8 * 1024 * 1024),
  /** Ignore the client's Cache-Control / Pragma (reload, hard reload), as CDNs do: clients cannot force origin fetches. */
  ignoreRequestDirectives: z.boolean().default(false),
  /** Targeted cache-control fields (RFC 9213), first present wins over Cache-Control for this cache. */
  targetedFields: z.array(z.string().min(1).toLowerCase()).default(['edgebox-cache-control', 'cdn-cache-control']),
  /** Query parameters left out of the cache key: names or globs such as `utm_*`. */
  ignoreQuery: z.array(z.string().min(1)).default([]),
  /** Upper bound of heuristic freshness (RFC 9111 §4.2.2). */
  maxHeuristic: duration().default(24 * 60 * 60 * 1000),
  /**
   * A Range request on a miss: `forward` sends it upstream as a range (a
   * 206 answer with a strong ETag is stored as a partial entry and combined
   * with later ones, RFC 9111 §3.3-3.4); `whole` fetches the whole object
   * without Range, stores it, and serves the range from it, as CDNs do.
   */
  rangeMiss: z.enum(['forward', 'whole']).default('forward'),
  /**
   * A disconnected cache (RFC 9111 §4.2.4): while the origin cannot be reached
   * at all (refused, connect or answer timeout, no healthy upstream), serve a
   * stale stored response up to this long past its freshness. Off: the error.
   */
  staleIfUnreachable: z.union([z.literal(false), duration()]).default(false),
  /** The PURGE method on this route, with `Authorization: Bearer <token>`. Absent: PURGE is not allowed. */
  purge: z.strictObject({ token: z.string().min(16, 'tokens must be at least 16 characters') }).optional(),
})
export const cacheSchema = z.union([z.boolean(), cacheOptions])
export type CacheOptions = z.output<typeof cacheOptions>

export interface OriginResponse {
  status: number
  headers: Headers
  body: BodySource
  requestTime: number
  responseTime: number
}
/** Sends the request upstream with extra fields; `background`: a refresh no client waits for. */
export type Origin = (extraHeaders: Record<string, string | null>, background?: boolean) => Promise<OriginResponse>

/** What the parts of one route's cache share. */
export interface CacheState {
  readonly cfg: CacheOptions
  readonly store: CacheStore
  /** Where ages and freshness are measured (Age, ttl, stale windows). */
  readonly clock: Clock
  /** cfg.ignoreQuery, compiled once. */
  readonly ignoredQuery: readonly ((name: string) => boolean)[]
  /** Origin requests under way, by key, that concurrent misses wait for (coalescing.ts). */
  readonly flights: Map<string, Flight>
  /** What the operator's view counts (core/observe.ts CacheView): plain numbers the answers add to. */
  readonly counts: CacheCounts
  /** Tells the deployment's other processes of a purge made here, so they apply it too (absent: nobody else to tell). */
  readonly announce?: ((removals: readonly Removal[]) => void) | undefined
}

/** Answers by cache outcome, conditional requests sent, and entries purged, since the cache was made. */
export interface CacheCounts {
  /** Served from a stored response without the origin (`hit` in Cache-Status, `HIT` in the access log). */
  hits: number
  /** Answered from the origin: nothing usable stored (`MISS`), or a stored response replaced (`EXPIRED`). */
  misses: number
  /** Stale responses served (stale-while-revalidate, stale-if-error, stale-if-unreachable). */
  stale: number
  /** Conditional requests sent to revalidate a stored response, in the foreground or the background. */
  revalidations: number
  /** Entries removed by PURGE requests and the admin API. */
  purges: number
}

export class HttpCache {
  readonly store: CacheStore
  private readonly state: CacheState

  constructor(cfg: CacheOptions, store: CacheStore, clock: Clock = systemClock, announce?: (removals: readonly Removal[]) => void) {
    this.store = store
    this.state = { cfg, store, clock, ignoredQuery: cfg.ignoreQuery.map(compileGlob), flights: new Map(), counts: { hits: 0, misses: 0, stale: 0, revalidations: 0, purges: 0 }, announce }
  }

  /** A purge another process of the deployment made (CacheState.announce there): applied here, counted as purges. */
  applyPurge(removals: readonly Removal[]): number {
    const purged = applyRemovals(this.state, removals)
    this.state.counts.purges += purged
    return purged
  }

  /** The operator's view (core/observe.ts CacheView): the counts, what is stored, and the `top` most-hit entries. */
  view(top = 20): CacheView {
    const c = this.state.counts
    const { objects, bytes, topKeys } = storeSummary(this.store, top)
    return { hits: c.hits, misses: c.misses, stale: c.stale, revalidations: c.revalidations, purges: c.purges, objects, bytes, shared: this.store.shared === true, topKeys }
  }

  /** Removes stored responses as PURGE would, without its token (the admin API is the authority): returns how many entries went. */
  purgeTarget(target: PurgeTarget, host: string): number {
    return purgeTarget(this.state, target, host)
  }

  /** RFC 9111 §2: the primary key is the target URI (method GET and HEAD share it). */
  key(ctx: Context): string {
    return primaryKey(this.state, ctx)
  }

  /**
   * Answers a GET or HEAD through the cache: from a stored response, after
   * revalidating it, or from the origin (RFC 9111 §4). A fresh hit is
   * answered at once and returns nothing; any other way returns a promise
   * (which carries its errors, as does a hit's: a 412 or a 416).
   */
  handle(ctx: Context, origin: Origin): void | Promise<void> {
    const s = this.state
    let key: string, req: CacheDirectives, stored: StoredEntry | undefined
    try {
      key = primaryKey(s, ctx)
      req = requestDirectives(s, ctx)
      stored = req.noStore ? undefined : match(s, key, ctx)
      // RFC 9111 §4.2: with no request directives and no unqualified no-cache, fresh while the lifetime exceeds the current age (usability's first checks, without its objects)
      if (stored !== undefined && stored.partial === undefined && req === NO_DIRECTIVES) {
        const head = servedHead(s, stored)
        if (head.dirs.noCache !== true) {
          const ageMs = currentAgeMs(stored, s.clock.now())
          if (head.lifetime > ageMs) {
            const age = Math.floor(ageMs / 1000)
            return serveHit(s, ctx, stored, Math.floor(head.lifetime / 1000) - age, age)
          }
        }
      }
    } catch (err) {
      return Promise.reject(err)
    }
    return this.answer(ctx, origin, key, req, stored)
  }

  /** Every way but a fresh hit without request directives (handle). */
  private async answer(ctx: Context, origin: Origin, key: string, req: CacheDirectives, stored: StoredEntry | undefined): Promise<void> {
    const s = this.state
    if (req.noStore) return pass(s, ctx, origin, 'fwd=bypass; detail="request no-store"', 'BYPASS')
    // A partial entry (RFC 9111 §3.3) answers a range wholly within it while fresh; anything else is forwarded.
    if (stored?.partial !== undefined && servePartial(s, ctx, stored, req)) return
    const fwd = stored?.partial !== undefined ? 'fwd=partial' : 'fwd=miss'
    if (stored && stored.partial === undefined) {
      const dirs = servedHead(s, stored).dirs
      const u = reuse(s, stored, dirs, req)
      if (u.use === 'fresh') return serve(s, ctx, stored, `hit; ttl=${u.ttl}`, 'HIT')
      if (u.use === 'stale-while-revalidate') {
        refresh(s, ctx, key, stored, origin)
        return serve(s, ctx, stored, `hit; ttl=${u.ttl}; detail=stale-while-revalidate`, 'STALE')
      }
      // RFC 9111 §5.2.1.7: a stored response that cannot be used without the origin is no answer to only-if-cached.
      if (req.onlyIfCached) throw httpError('EB_ERR_GATEWAY_TIMEOUT', 'only-if-cached: the stored response needs validation')
      return revalidate(s, ctx, key, stored, dirs, req, origin, u.ttl)
    }
    if (req.onlyIfCached) throw httpError('EB_ERR_GATEWAY_TIMEOUT', 'only-if-cached: nothing is stored for this request') // RFC 9111 §5.2.1.7
    if (ctx.method === 'HEAD') return pass(s, ctx, origin, fwd, 'MISS')
    // A range a fresh partial entry holds part of: only the missing bytes are fetched (RFC 9111 §3.4).
    if (stored?.partial !== undefined && (await fillPartial(s, ctx, key, stored, req, origin))) return
    if (s.cfg.rangeMiss === 'whole' && ctx.req.headers.range !== undefined) return wholeForRange(s, ctx, key, origin, fwd)
    return miss(s, ctx, key, origin, fwd)
  }

  /** Whether this cache takes PURGE requests (a token is configured). */
  get purgeable(): boolean {
    return this.state.cfg.purge !== undefined
  }

  /** PURGE by URL, prefix or tag (purge.ts). */
  purge(ctx: Context): void {
    purgeRequest(this.state, ctx)
  }

  /** Unsafe methods invalidate the target and its Location / Content-Location on the same host (RFC 9111 §4.4). */
  invalidate(ctx: Context, status: number, headers: Headers): void {
    invalidateAfter(this.state, ctx, status, headers)
  }
}

/**
 * What a store holds now: entries, body bytes, and the `top` entries with
 * the most hits (most first; ties by key, so the list is stable), kept in a
 * small sorted list while the store is walked once.
 */
export function storeSummary(store: CacheStore, top: number): { objects: number; bytes: number; topKeys: { key: string; hits: number; bytes: number }[] } {
  let objects = 0
  let bytes = 0
  const best: { key: string; hits: number; bytes: number }[] = []
  const limit = Math.max(0, Math.floor(top))
  const before = (a: { key: string; hits: number }, hits: number, key: string) => a.hits > hits || (a.hits === hits && a.key < key)
  store.scan((key, hits, size) => {
    objects++
    bytes += size
    if (limit === 0 || hits === 0) return
    if (best.length === limit && before(best[limit - 1]!, hits, key)) return
    let i = best.length
    while (i > 0 && !before(best[i - 1]!, hits, key)) i--
    best.splice(i, 0, { key, hits, bytes: size })
    if (best.length > limit) best.pop()
  })
  return { objects, bytes, topKeys: best }
}
