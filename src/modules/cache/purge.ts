import type { Context } from '../../core/context.ts'
import { httpError } from '../../core/errors.ts'
import { safeEqual } from '../../core/secrets.ts'
import type { Headers } from '../../http/cache-control.ts'
import { cacheKey, invalidatedKeys } from '../../http/cache-key.ts'
import { parseAuthority, parseRequestTarget } from '../../http/target.ts'
import type { PurgeTarget } from '../../core/observe.ts'
import type { CacheState } from './cache.ts'
import { primaryKey } from './lookup.ts'

/**
 * Removing stored responses before they expire: the authenticated PURGE
 * method (by URL, prefix or tag), and invalidation after unsafe methods
 * (RFC 9111 §4.4).
 */

/** One removal a purge makes: a primary key (every variant), every key under a prefix, or every entry with a tag. */
export type Removal = { readonly key: string } | { readonly prefix: string } | { readonly tag: string }

/** Applies removals to a store; returns how many entries went. */
export function applyRemovals(s: CacheState, removals: readonly Removal[]): number {
  let purged = 0
  for (const r of removals) {
    if ('key' in r) purged += s.store.delete(r.key)
    else if ('prefix' in r) purged += s.store.deletePrefix(r.prefix)
    else purged += s.store.deleteTag(r.tag)
  }
  return purged
}

/** Removals as another process sent them (core/broadcast.ts); null for anything else. */
export function parseRemovals(m: unknown): Removal[] | null {
  if (!Array.isArray(m) || m.length > 1000) return null
  const out: Removal[] = []
  for (const r of m as unknown[]) {
    if (typeof r !== 'object' || r === null) return null
    const o = r as Record<string, unknown>
    if (typeof o.key === 'string') out.push({ key: o.key })
    else if (typeof o.prefix === 'string') out.push({ prefix: o.prefix })
    else if (typeof o.tag === 'string') out.push({ tag: o.tag })
    else return null
  }
  return out
}

/** Applies a purge here and tells the other processes of the deployment (CacheState.announce), which apply it too. */
function purge(s: CacheState, removals: readonly Removal[]): number {
  const purged = applyRemovals(s, removals)
  s.counts.purges += purged
  s.announce?.(removals)
  return purged
}

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
  let removals: Removal[]
  let what: string
  if (tags) {
    removals = tags
      .split(/[\s,]+/)
      .filter(Boolean)
      .map((tag) => ({ tag }))
    what = `tag ${tags}`
  } else if (ctx.encodedPath.endsWith('/*')) {
    removals = [{ prefix: `http://${ctx.host}${ctx.encodedPath.slice(0, -1)}` }]
    what = `prefix ${ctx.encodedPath.slice(0, -1)}`
  } else {
    removals = [{ key: primaryKey(s, ctx) }]
    what = `url ${ctx.encodedPath}${ctx.query}`
  }
  const purged = purge(s, removals)
  ctx.send(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }, JSON.stringify({ purged, what }) + '\n')
}

/**
 * The admin API's purge (docs/admin.md), the same removal as PURGE without
 * its token: `url` is a path with its query (`/page?x=1`, or an absolute
 * `http://host/page?x=1` whose path and query are taken) and removes every
 * variant of that URL; `prefix` (`/assets/`, with or without a trailing
 * `*`) every URL whose path starts with it; `tag` every entry tagged so
 * (Surrogate-Key / Cache-Tag). `host` is the site's host the keys belong to
 * (a port is ignored, as in the keys). Returns how many entries went; a
 * target or host that is not one throws a 400 EdgeboxError naming it.
 */
export function purgeTarget(s: CacheState, target: PurgeTarget, host: string): number {
  let name: string
  try {
    name = parseAuthority(host).host
  } catch (err) {
    throw httpError('EB_ERR_BAD_REQUEST', `host: ${(err as Error).message}`)
  }
  let removal: Removal
  if ('tag' in target) {
    const tag = target.tag
    if (typeof tag !== 'string' || !/^\S+$/.test(tag)) throw httpError('EB_ERR_BAD_REQUEST', 'tag: one tag, without spaces')
    removal = { tag }
  } else if ('prefix' in target) {
    const given = typeof target.prefix === 'string' && target.prefix.endsWith('*') ? target.prefix.slice(0, -1) : target.prefix
    const t = pathOf(given, 'prefix')
    if (t.query !== '') throw httpError('EB_ERR_BAD_REQUEST', 'prefix: a path prefix has no query')
    removal = { prefix: `http://${name}${t.encodedPath}` }
  } else if ('url' in target) {
    const t = pathOf(target.url, 'url')
    removal = { key: cacheKey(name, t.encodedPath, t.query, s.ignoredQuery) }
  } else throw httpError('EB_ERR_BAD_REQUEST', 'name what to purge: url, prefix or tag')
  return purge(s, [removal])
}

/** A purge target's path and query, encoded and normalised as a request's target is (so its key is the one its requests stored). */
function pathOf(value: unknown, field: string): { encodedPath: string; query: string } {
  if (typeof value !== 'string' || value === '') throw httpError('EB_ERR_BAD_REQUEST', `${field}: a path such as /page or /assets/`)
  try {
    const t = parseRequestTarget('GET', value)
    if (t.form !== 'origin' && t.form !== 'absolute') throw new Error('not a path')
    return { encodedPath: t.encodedPath, query: t.query }
  } catch (err) {
    throw httpError('EB_ERR_BAD_REQUEST', `${field}: ${JSON.stringify(value)} is not a path such as /page (${(err as Error).message})`)
  }
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
