import type { Context } from '../core/context.ts'
import { accessLine, type AccessLog } from '../core/log.ts'

/**
 * The live access log of the admin API (`GET /api/v1/access-log`): a tap
 * on the access log that hands each answer to the streams watching, each
 * with its own filter. When nobody watches, a request costs one boolean
 * check; each answer is made into JSON once, however many streams take it:
 * the access log's own line (`accessLine`, the format of `log.format: json`), not made again when the access log
 * has just written it.
 */

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
  /** Hands every answer the filter keeps to `send` (one line of JSON, ending in a newline) until the returned function is called. */
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

export function createAccessTap(): AccessTap {
  const streams = new Set<{ filter: AccessFilter; send: (json: string) => void }>()
  /** The one check a request costs when nobody watches. */
  let watched = false
  const stats = { open: 0, cut: 0 }

  function publish(ctx: Context, ms: number): void {
    let json: string | undefined
    for (const s of streams) {
      if (!keeps(s.filter, ctx)) continue
      // the access log's own JSON line (core/log.ts: the one it just wrote, when it writes JSON), with its newline
      json ??= accessLine(ctx, ms)
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
