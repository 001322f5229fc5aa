import type { Context } from '../../core/context.ts'
import { httpError } from '../../core/errors.ts'
import { safeEqual } from '../../core/secrets.ts'
import type { Headers } from '../../http/cache-control.ts'
import { invalidatedKeys } from '../../http/cache-key.ts'
import type { CacheState } from './cache.ts'
import { primaryKey } from './lookup.ts'

/**
 * Removing stored responses before they expire: the authenticated PURGE
 * method (by URL, prefix or tag), and invalidation after unsafe methods
 * (RFC 9111 §4.4).
 */

/** The safe methods (RFC 9110 §9.2.1); any other, one whose safety the cache cannot know included, is unsafe (RFC 9111 §4.4). */
const SAFE = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE'])

/**
 * PURGE (authenticated): `PURGE /path?q` removes that URL (every variant),
 * `PURGE /prefix/*` every URL below the prefix, and a request with
 * `Edgebox-Purge-Tag: a b` every response tagged a or b (Surrogate-Key /
 * Cache-Tag). Answers 200 with how many entries went.
 */
export function purgeRequest(s: CacheState, ctx: Context): void {
  const token = s.cfg.purge?.token
  const given = /^Bearer\s+(\S+)\s*$/i.exec(ctx.header('authorization') ?? '')?.[1]
  if (!token || !given || !safeEqual(given, token)) {
    throw httpError('EB_ERR_UNAUTHORIZED', given ? 'the purge token is not valid' : 'PURGE needs Authorization: Bearer <token>', { 'WWW-Authenticate': 'Bearer realm="edgebox purge"' })
  }
  const tags = ctx.header('edgebox-purge-tag')
  let purged = 0
  let what: string
  if (tags) {
    for (const tag of tags.split(/[\s,]+/).filter(Boolean)) purged += s.store.deleteTag(tag)
    what = `tag ${tags}`
  } else if (ctx.encodedPath.endsWith('/*')) {
    const prefix = `http://${ctx.host}${ctx.encodedPath.slice(0, -1)}`
    purged = s.store.deletePrefix(prefix)
    what = `prefix ${ctx.encodedPath.slice(0, -1)}`
  } else {
    purged = s.store.delete(primaryKey(s, ctx))
    what = `url ${ctx.encodedPath}${ctx.query}`
  }
  ctx.send(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }, JSON.stringify({ purged, what }) + '\n')
}

/**
 * Unsafe methods (PROPFIND, REPORT and other extension methods too) invalidate
 * the target and its Location / Content-Location on the same host after a
 * non-error answer (RFC 9111 §4.4).
 */
export function invalidateAfter(s: CacheState, ctx: Context, status: number, headers: Headers): void {
  if (SAFE.has(ctx.method) || status >= 400) return
  const key = primaryKey(s, ctx)
  s.store.delete(key)
  for (const related of invalidatedKeys(key, ctx.host, headers)) s.store.delete(related)
}
