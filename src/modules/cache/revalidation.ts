import type { Context } from '../../core/context.ts'
import type { CacheDirectives, Headers } from '../../http/cache-control.ts'
import { varyOf } from '../../http/cache-key.ts'
import { moreRecent, selectForUpdate, staleIfErrorAllowed, updateStoredHeaders } from '../../http/freshness.ts'
import { EdgeboxError, httpError } from '../../core/errors.ts'
import { collect, DISCARD } from '../proxy/exchange.ts'
import type { CacheState, Origin, OriginResponse } from './cache.ts'
import { respondAndStore, startFlight, UNWATCHED } from './coalescing.ts'
import { candidates, directives, hasAnnouncedLength, storagePlan, toEntry, ttlAt } from './lookup.ts'
import { relay, serve } from './serve.ts'
import type { StoredEntry } from './store.ts'

/**
 * Revalidation (RFC 9111 §4.3): a stale stored response is checked with a
 * conditional request to the origin, in the foreground or, within
 * stale-while-revalidate (RFC 5861 §3), in the background; a 304 freshens it
 * (§4.3.4), so does a matching 200 to HEAD (§4.3.5); a failing origin lets
 * stale-if-error serve it (RFC 5861 §4).
 */

/** RFC 9111 §4.3: a conditional request with the stored validators; 304 refreshes the stored headers. */
export async function revalidate(s: CacheState, ctx: Context, key: string, stored: StoredEntry, dirs: CacheDirectives, req: CacheDirectives, origin: Origin, ttl: number): Promise<void> {
  let res: OriginResponse
  s.counts.revalidations++
  try {
    res = await origin(validators(stored))
  } catch (err) {
    if (staleIfErrorAllowed(stored, dirs, s.cfg.ignoreRequestDirectives ? {} : req, s.clock.now())) {
      return serve(s, ctx, stored, `hit; ttl=${ttl}; detail=stale-if-error`, 'STALE')
    }
    if (unreachableAllowed(s, err, dirs, ttl)) return serve(s, ctx, stored, `hit; ttl=${ttl}; detail=stale-if-unreachable`, 'STALE')
    throw err
  }
  if (res.status === 304) {
    res.body.attach(DISCARD)
    // RFC 9111 §4.3.4: the 304's validators select the stored responses it updates.
    const updated = selectForUpdate(candidates(s, key, ctx), res.headers)
    if (updated.length > 0) {
      for (const e of updated) freshen(s, e, res)
      const used = updated.includes(stored) ? stored : updated.reduce((a, b) => (moreRecent(b, a) ? b : a))
      return serve(s, ctx, used, `fwd=stale; fwd-status=304; ttl=${freshTtl(s, used)}`, 'REVALIDATED')
    }
    // It validates none of them ("MUST NOT use the new response to update any stored responses"):
    // nothing is updated or served, and the request is made again without conditionals.
    res = await origin(UNCONDITIONAL)
    if (res.status === 304) {
      res.body.attach(DISCARD)
      throw httpError('EB_ERR_BAD_GATEWAY', 'the upstream answered 304 to an unconditional request')
    }
    return answer(s, ctx, key, stored, res)
  }
  if (res.status >= 500 && staleIfErrorAllowed(stored, dirs, s.cfg.ignoreRequestDirectives ? {} : req, s.clock.now())) {
    res.body.attach(DISCARD)
    return serve(s, ctx, stored, `hit; ttl=${ttl}; fwd=stale; fwd-status=${res.status}; detail=stale-if-error`, 'STALE')
  }
  answer(s, ctx, key, stored, res)
}

/** The validation fields a request made again unconditionally leaves out (the client's own included). */
const UNCONDITIONAL = { 'if-none-match': null, 'if-modified-since': null }

/** A full response (not 304) to the validation of `stored`: it answers the request, and is stored if it may be (§4.3.3). */
function answer(s: CacheState, ctx: Context, key: string, stored: StoredEntry, res: OriginResponse): void {
  if (ctx.method === 'HEAD' && res.status === 200) {
    // RFC 9111 §4.3.5: a 200 to HEAD freshens the stored GET response when the validators it
    // carries (and its Content-Length) match the stored ones; otherwise the stored response
    // describes another representation and is dropped.
    if (headMatches(stored, res.headers)) {
      res.body.attach(DISCARD)
      freshen(s, stored, res)
      return serve(s, ctx, stored, `fwd=stale; fwd-status=200; ttl=${freshTtl(s, stored)}; detail="freshened by HEAD"`, 'REVALIDATED')
    }
    s.store.delete(key)
    return relay(s, ctx, res, 'fwd=stale; fwd-status=200; detail="HEAD shows another representation; stored response dropped"', 'EXPIRED')
  }
  // §4.1 prefers stored responses with Vary: when the origin stops sending Vary, the ones
  // with Vary go, or they would be chosen (and revalidated) again instead of the new one.
  if (res.status === 200 && stored.vary && !varyOf(res.headers)) s.store.delete(key)
  respondAndStore(s, ctx, key, res, 'fwd=stale', 'EXPIRED', UNWATCHED)
}

/**
 * stale-while-revalidate (RFC 5861 §3): one background conditional request
 * per key; its result replaces or refreshes the entry. Misses meanwhile do
 * not wait for it: they go to the origin themselves.
 */
export function refresh(s: CacheState, ctx: Context, key: string, stored: StoredEntry, origin: Origin): void {
  const settle = startFlight(s, key)
  if (!settle) return
  settle.head(false)
  s.counts.revalidations++
  origin(validators(stored), true).then(
    (res) => {
      if (res.status === 304) {
        res.body.attach(DISCARD)
        // RFC 9111 §4.3.4: only the stored responses the 304's validators select are updated.
        const updated = selectForUpdate(candidates(s, key, ctx), res.headers)
        for (const e of updated) freshen(s, e, res)
        return settle.done(updated.includes(stored) ? stored : null)
      }
      const plan = storagePlan(s, ctx, res)
      if (!plan.store) {
        res.body.attach(DISCARD)
        return settle.done(null)
      }
      collect(res.body, s.cfg.maxObjectSize).then(
        (got) => {
          if (!got.body || !hasAnnouncedLength(res.headers, got.body.length)) {
            got.rest?.destroy()
            return settle.done(null)
          }
          const entry = toEntry(key, ctx, res, plan.strip, got.body)
          s.store.put(entry)
          settle.done(entry)
        },
        () => settle.done(null),
      )
    },
    () => settle.done(null),
  )
}

/** The proxy's errors that mean no answer came from the origin (not an origin's own 5xx, which stale-if-error covers). */
const UNREACHABLE = new Set(['EB_ERR_BAD_GATEWAY', 'EB_ERR_NO_UPSTREAM', 'EB_ERR_GATEWAY_TIMEOUT'])

/**
 * RFC 9111 §4.2.4: a disconnected cache may serve stale, here within
 * cfg.staleIfUnreachable; never when the response forbids stale use
 * (no-cache, must-revalidate, proxy-revalidate, s-maxage: §5.2.2).
 */
function unreachableAllowed(s: CacheState, err: unknown, dirs: CacheDirectives, ttl: number): boolean {
  const window = s.cfg.staleIfUnreachable
  if (window === false || !(err instanceof EdgeboxError) || !UNREACHABLE.has(err.code)) return false
  if (dirs.noCache === true || dirs.mustRevalidate || dirs.proxyRevalidate || dirs.sMaxage !== undefined) return false
  return -ttl * 1000 <= window
}

/** RFC 9111 §4.3.4: a 304 (or a matching 200 to HEAD) updates the stored headers and restarts the stored response's age. */
function freshen(s: CacheState, stored: StoredEntry, res: OriginResponse): void {
  stored.headers = updateStoredHeaders(stored.headers, res.headers)
  stored.requestTime = res.requestTime
  stored.responseTime = res.responseTime
  s.store.put(stored)
}

/** The ttl of a just freshened stored response, for Cache-Status. */
function freshTtl(s: CacheState, stored: StoredEntry): number {
  return ttlAt(s, stored, directives(s, stored.headers), s.clock.now())
}

/** RFC 9111 §4.3.1: the conditional request fields made from the stored validators. */
function validators(e: StoredEntry): Record<string, string> {
  const v: Record<string, string> = {}
  if (typeof e.headers.etag === 'string') v['if-none-match'] = e.headers.etag
  if (typeof e.headers['last-modified'] === 'string') v['if-modified-since'] = e.headers['last-modified']
  return v
}

/**
 * RFC 9111 §4.3.5: whether a 200 answer to HEAD describes the stored GET
 * response: every validator it carries (ETag, Last-Modified) equals the
 * stored one, and so does its Content-Length if it has one. An answer with
 * none of these proves nothing and does not match.
 */
function headMatches(stored: StoredEntry, head: Headers): boolean {
  let compared = 0
  for (const field of ['etag', 'last-modified'] as const) {
    const v = head[field]
    if (v === undefined) continue
    compared++
    if (String(v) !== String(stored.headers[field] ?? '')) return false
  }
  const length = head['content-length']
  if (length !== undefined) {
    compared++
    if (Number(length) !== stored.body.length) return false
  }
  return compared > 0
}
