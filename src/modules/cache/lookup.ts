import type { Context } from '../../core/context.ts'
import { parseCacheControl, targetedCacheControl, type CacheDirectives, type Headers } from '../../http/cache-control.ts'
import { cacheKey, varyOf } from '../../http/cache-key.ts'
import { moreRecent, storability, usability, varyKey, withoutHopByHop, type StoredResponse } from '../../http/freshness.ts'
import type { CacheState, OriginResponse } from './cache.ts'
import type { StoredEntry } from './store.ts'

/**
 * Lookup and storage decisions of the shared cache: the primary key and the
 * request's directives, the stored response a request selects (Vary, RFC
 * 9111 §4.1), whether it may be reused (§4), whether an origin response may
 * be stored (§3), and the entry it is stored as. Nothing here answers or
 * fetches: serve.ts answers, coalescing.ts, revalidation.ts and partial.ts
 * fetch and store.
 */

/** RFC 9111 §2: the primary key is the target URI (GET and HEAD share it), without the ignored query parameters. */
export function primaryKey(s: CacheState, ctx: Context): string {
  return cacheKey(ctx.host, ctx.encodedPath, ctx.query, s.ignoredQuery)
}

/** The directives this cache obeys: a targeted field if present (RFC 9213), else Cache-Control. */
export function directives(s: CacheState, headers: Headers): CacheDirectives {
  return targetedCacheControl(headers, s.cfg.targetedFields) ?? parseCacheControl(headers['cache-control'])
}

/** A request without directives (the common case): one shared, frozen object. */
export const NO_DIRECTIVES: CacheDirectives = Object.freeze({})

/** Request directives (RFC 9111 §5.2.1); `Pragma: no-cache` counts only without Cache-Control (§5.4). */
export function requestDirectives(s: CacheState, ctx: Context): CacheDirectives {
  if (s.cfg.ignoreRequestDirectives) return NO_DIRECTIVES
  const h = ctx.req.headers
  if (h['cache-control'] === undefined) return h.pragma !== undefined && /(^|,)\s*no-cache\s*(,|$)/i.test(String(h.pragma)) ? { noCache: true } : NO_DIRECTIVES
  return parseCacheControl(h['cache-control'])
}

/**
 * The stored response for this request (§4.1): of the complete ones whose
 * Vary fields match, the most recent (§4); but when some of them omit Vary,
 * the most recent one with a valid Vary ("SHOULD choose the most recent ...
 * stored response with a valid Vary field value"). Without a complete one, a
 * partial one.
 */
export function match(s: CacheState, key: string, ctx: Context): StoredEntry | undefined {
  let complete: StoredEntry | undefined
  let partial: StoredEntry | undefined
  const list = s.store.variants(key)
  for (let i = 0; i < list.length; i++) {
    const e = list[i]!
    // without Vary the variant is '' and there is nothing to compare
    if (e.vary === undefined ? e.variant !== '' : varyKey(e.vary, ctx.req.headers) !== e.variant) continue
    if (e.partial !== undefined) partial ??= e
    else if (complete === undefined || better(e, complete)) complete = e
  }
  return complete ?? partial
}

/** Whether a response names request fields in Vary (`Vary: *` is never stored). */
const varies = (e: StoredEntry): boolean => e.vary !== undefined && e.vary !== ''

/** §4.1: one with a valid Vary before one without, then the more recent (§4). */
function better(a: StoredEntry, b: StoredEntry): boolean {
  return varies(a) !== varies(b) ? varies(a) : moreRecent(a, b)
}

/** §4.3.4: the complete stored responses this request could have chosen, freshness aside (the initial set a 304 updates). */
export function candidates(s: CacheState, key: string, ctx: Context): StoredEntry[] {
  return s.store.variants(key).filter((e) => e.partial === undefined && varyKey(e.vary, ctx.req.headers) === e.variant)
}

/** The stored entry a response to this request would replace: same key, Vary and variant. */
export function sameVariant(s: CacheState, key: string, ctx: Context, headers: Headers): StoredEntry | undefined {
  const vary = varyOf(headers)
  const variant = varyKey(vary, ctx.req.headers) ?? ''
  return s.store.variants(key).find((e) => e.variant === variant && e.vary === vary)
}

/** RFC 9111 §4, §4.2: whether a stored response may answer a request with these directives now, and its ttl. */
export function reuse(s: CacheState, stored: StoredResponse, dirs: CacheDirectives, req: CacheDirectives): ReturnType<typeof usability> {
  return usability(stored, dirs, req, s.clock.now(), { ignoreRequestDirectives: s.cfg.ignoreRequestDirectives, maxHeuristic: s.cfg.maxHeuristic })
}

/** A response's remaining freshness at `now` in seconds, whatever a request asks (the ttl of Cache-Status). */
export function ttlAt(s: CacheState, response: StoredResponse, dirs: CacheDirectives, now: number): number {
  return usability(response, dirs, {}, now, { ignoreRequestDirectives: true, maxHeuristic: s.cfg.maxHeuristic }).ttl
}

/** Whether an origin response may be stored, and if so the fields to leave out and its ttl when it arrived. */
export type StoragePlan = { store: false; reason: string } | { store: true; strip: string[]; ttl: number }

/** RFC 9111 §3 for a complete response, and this cache's maxObjectSize when Content-Length announces more. */
export function storagePlan(s: CacheState, ctx: Context, res: OriginResponse): StoragePlan {
  const dirs = directives(s, res.headers)
  const st = storability({ method: ctx.method, headers: ctx.req.headers }, { status: res.status, headers: res.headers }, dirs)
  if (!st.storable) return { store: false, reason: st.reason ?? 'not storable' }
  const declared = Number(res.headers['content-length'] ?? 0)
  if (declared > s.cfg.maxObjectSize) return { store: false, reason: 'larger than maxObjectSize' }
  return { store: true, strip: st.stripFields, ttl: ttlAt(s, res, dirs, res.responseTime) }
}

/** Whether `length` bytes are what Content-Length announced, if it did: a body with fewer or more is never stored. */
export function hasAnnouncedLength(headers: Headers, length: number): boolean {
  const declared = headers['content-length']
  return declared === undefined || Number(declared) === length
}

/** The entry a complete response is stored as: without hop-by-hop fields and the fields the plan strips. */
export function toEntry(key: string, ctx: Context, res: OriginResponse, strip: readonly string[], body: Buffer): StoredEntry {
  const headers = withoutHopByHop(res.headers)
  for (const f of strip) delete headers[f]
  const vary = varyOf(res.headers)
  return { key, variant: varyKey(vary, ctx.req.headers) ?? '', vary, status: res.status, headers, body, requestTime: res.requestTime, responseTime: res.responseTime, tags: tagsOf(res.headers), hits: 0 }
}

/** Surrogate-Key / Cache-Tag values, for purging by tag. */
export function tagsOf(headers: Headers): string[] {
  const tagField = headers['surrogate-key'] ?? headers['cache-tag']
  return (Array.isArray(tagField) ? tagField.join(' ') : (tagField ?? '')).split(/[\s,]+/).filter(Boolean)
}
