import { randomBytes } from 'node:crypto'
import type { Context } from '../core/context.ts'
import type { FilterModule, ResponseFilter } from '../core/types.ts'

/**
 * The page-view id (docs/monitoring.md): every HTML answer of a site with
 * `rum` gets a new id, sent as `Server-Timing: pv;desc="<id>"` (W3C Server
 * Timing: a metric with a description, which the page reads from its
 * navigation entry's `serverTiming`) and written in the access log line
 * (`"pv"`), so the browser's report of a page load and the server's line
 * for the same load can be joined.
 */

/** 9 random bytes: 12 base64url characters. */
export function newPageViewId(): string {
  return randomBytes(9).toString('base64url')
}

function isHtml(headers: Record<string, string | number | string[]>): boolean {
  for (const k in headers) {
    if (k.length === 12 && k.toLowerCase() === 'content-type') return String(headers[k]).toLowerCase().startsWith('text/html')
  }
  return false
}

/** Gives an HTML answer (2xx, not a HEAD's 304) its page-view id. */
const pageViewFilter: ResponseFilter = function pageView(ctx: Context, headers) {
  if (ctx.status < 200 || ctx.status >= 300 || !isHtml(headers)) return
  const id = (ctx.pageView = newPageViewId())
  const metric = `pv;desc="${id}"`
  // after the Server-Timing filter: its field gets the metric added, or, with serverTiming off, the metric alone
  const current = headers['Server-Timing'] ?? headers['server-timing']
  if (current === undefined) headers['server-timing'] = metric
  else if (headers['Server-Timing'] !== undefined) headers['Server-Timing'] = `${String(current)}, ${metric}`
  else headers['server-timing'] = `${String(current)}, ${metric}`
}

/** `sites[].rum`: the page-view id on the site's HTML answers. */
export const pageViewModule: FilterModule = {
  name: 'rum',
  start: () => ({
    route(_route, site) {
      return site.rum ? { filter: pageViewFilter } : null
    },
  }),
}
