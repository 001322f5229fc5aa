import type { Context } from '../core/context.ts'
import type { AccessLog } from '../core/log.ts'

/**
 * The live access log of the admin API (`GET /api/v1/access-log`): a tap
 * on the access log that hands each answer to the streams watching, each
 * with its own filter. When nobody watches, a request costs one boolean
 * check; each answer is made into JSON once, however many streams take it.
 */

/** One answer, as the stream sends it (`event: access`). */
export interface AccessEntry {
  /** ms since the epoch. */
  readonly at: number
  /** The site's id (`sites[0]`) and the route's (`sites[0].routes[1]`); '' when none matched. */
  readonly site: string
  readonly route: string
  readonly method: string
  readonly host: string
  readonly path: string
  readonly status: number
  readonly bytes: number
  readonly ms: number
  readonly cache: string
  readonly proto: string
  readonly client: string
  readonly upstream?: string
  readonly error?: string
}

/** What a stream keeps: a site (one of its hosts, or its id), a status or class, a path prefix; each optional. */
export interface AccessFilter {
  readonly site?: string
  /** `404`, or a class as its first digit with `xx` (`4xx`). */
  readonly status?: string
  readonly path?: string
}

export interface AccessTap {
  /** The access log with the tap on it. */
  wrap(inner: AccessLog): AccessLog
  /** Hands every answer the filter keeps to `send` (as JSON text) until the returned function is called. */
  subscribe(filter: AccessFilter, send: (json: string) => void): () => void
  /** Streams open now, and streams cut because their client did not read. */
  readonly stats: { readonly open: number; cut: number }
}

/** Whether an answer passes a stream's filter. */
export function keeps(filter: AccessFilter, ctx: Context): boolean {
  if (filter.site !== undefined) {
    const site = ctx.site
    if (!site || (site.id !== filter.site && !site.hosts.includes(filter.site) && ctx.host !== filter.site)) return false
  }
  if (filter.status !== undefined) {
    const s = filter.status
    if (s.length === 3 && (s[1] === 'x' || s[1] === 'X') ? String(ctx.status)[0] !== s[0] : String(ctx.status) !== s) return false
  }
  if (filter.path !== undefined && !ctx.path.startsWith(filter.path)) return false
  return true
}

/** An answer as JSON, once. */
function entryJson(ctx: Context, ms: number): string {
  const entry: AccessEntry = {
    at: Date.now(),
    site: ctx.site?.id ?? '',
    route: ctx.route?.id ?? '',
    method: ctx.method,
    host: ctx.host,
    path: ctx.rawPath,
    status: ctx.status,
    bytes: ctx.bytes,
    ms: Math.round(ms * 1000) / 1000,
    cache: ctx.cache,
    proto: ctx.protocol,
    client: ctx.clientAddress,
    ...(ctx.upstream ? { upstream: ctx.upstream } : {}),
    ...(ctx.error ? { error: String((ctx.error as Error).message ?? ctx.error) } : {}),
  }
  return JSON.stringify(entry)
}

export function createAccessTap(): AccessTap {
  const streams = new Set<{ filter: AccessFilter; send: (json: string) => void }>()
  /** The one check a request costs when nobody watches. */
  let watched = false
  const stats = { open: 0, cut: 0 }

  function publish(ctx: Context, ms: number): void {
    let json: string | undefined
    for (const s of streams) {
      if (!keeps(s.filter, ctx)) continue
      json ??= entryJson(ctx, ms)
      s.send(json)
    }
  }

  return {
    wrap(inner) {
      return {
        write(ctx, ms) {
          inner.write(ctx, ms)
          if (watched) publish(ctx, ms)
        },
        flush: () => inner.flush(),
        close: () => inner.close(),
        reopen: () => inner.reopen(),
      }
    },
    subscribe(filter, send) {
      const s = { filter, send }
      streams.add(s)
      watched = true
      stats.open = streams.size
      return () => {
        streams.delete(s)
        watched = streams.size > 0
        stats.open = streams.size
      }
    },
    stats,
  }
}
