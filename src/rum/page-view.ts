import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import type { Clock } from '../core/clock.ts'
import type { Context } from '../core/context.ts'
import type { AccessLog } from '../core/log.ts'
import type { FilterModule, ResponseFilter } from '../core/types.ts'
import type { Collector } from './collector.ts'
import { classifyBrowser, classifyDevice, NO_EVENT_COLUMNS, type RumRow } from './store.ts'
import { truncateAddress } from './scrub.ts'

/**
 * The page-view id (docs/monitoring.md): every HTML answer of a site with
 * `rum` gets a new id, sent as `Server-Timing: pv;desc="<id>"` (W3C Server
 * Timing: a metric with a description, which the page reads from its
 * navigation entry's `serverTiming`) and written in the access log line
 * (`"pv"`), so the browser's report of a page load and the server's line
 * for the same load can be joined.
 *
 * When such an answer is done, Edgebox keeps its own view of the page view
 * as one row of kind `server` (`recordPageViews`): the status, the time from
 * the request's start to the response's end (the access log's `ms`), the
 * route, the cache's verdict, the protocol and the `edge` time to the
 * headers, beside what the browser reports for the same id.
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

/** The `edge` time of each answer that got an id (ms to the headers), until its server row is made. */
const edgeTimes = new WeakMap<Context, number>()

/** `edge;dur=0.21...`: the duration the Server-Timing filter wrote, else NaN. */
function edgeOf(field: string | number | string[] | undefined): number {
  if (typeof field !== 'string' || !field.startsWith('edge;dur=')) return NaN
  return Number.parseFloat(field.slice(9))
}

/** Gives an HTML answer (2xx, not a HEAD's 304) its page-view id. */
const pageView = function pageView(ctx: Context, headers: Record<string, string | number | string[]>): void {
  if (ctx.status < 200 || ctx.status >= 300 || !isHtml(headers)) return
  const id = (ctx.pageView = newPageViewId())
  const metric = `pv;desc="${id}"`
  // after the Server-Timing filter: its field gets the metric added, or, with serverTiming off, the metric alone
  const current = headers['Server-Timing'] ?? headers['server-timing']
  // the server row's `edge`: the figure the field carries, or (serverTiming off) the same measure taken now
  const edge = edgeOf(current)
  edgeTimes.set(ctx, Number.isNaN(edge) ? Math.round((performance.now() - ctx.start) * 100) / 100 : edge)
  if (current === undefined) headers['server-timing'] = metric
  else if (headers['Server-Timing'] !== undefined) headers['Server-Timing'] = `${String(current)}, ${metric}`
  else headers['server-timing'] = `${String(current)}, ${metric}`
}

/**
 * The filter, with what a prepared response (a static file, a stored
 * response, a constant answer such as the collector's 204) needs to know:
 * it touches only 2xx HTML, so every other prepared response keeps its
 * head made once, without running it (respond.ts, `selective`).
 */
const pageViewFilter: ResponseFilter = Object.assign(pageView, {
  prepared: { kind: 'selective' as const, applies: (status: number, headers: Readonly<Record<string, string | number | string[]>>) => status >= 200 && status < 300 && isHtml(headers) },
})

/** `sites[].rum`: the page-view id on the site's HTML answers. */
export const pageViewModule: FilterModule = {
  name: 'rum',
  start: () => ({
    route(_route, site) {
      return site.rum ? { filter: pageViewFilter } : null
    },
  }),
}

/**
 * Edgebox's row for a page view whose answer is done: kind `server`, the
 * request's path (never its query) as the page, the status (499: the client
 * left first), the duration in ms as the access log has it, and in `json`
 * the method, the route (`sites[0].routes[1]`) and its handler kind, the
 * cache's verdict when a cache gave one, `h1` or `h2`, and `edge`.
 */
export function serverRow(ctx: Context, durationMs: number, time: number): RumRow {
  const route = ctx.route
  const json: Record<string, unknown> = { method: ctx.method }
  if (route) {
    json.route = route.id
    json.handler = route.handler.kind
  }
  if (ctx.cache) json.cache = ctx.cache
  json.protocol = ctx.protocol.startsWith('h2') ? 'h2' : 'h1'
  const edge = edgeTimes.get(ctx)
  if (edge !== undefined) json.edge = edge
  const ua = ctx.header('user-agent')
  const address = ctx.clientAddress
  return {
    time,
    offset: 0,
    pv: ctx.pageView,
    page: ctx.rawPath,
    release: null,
    env: null,
    cached: false,
    deviceClass: classifyDevice({}, ua),
    browser: classifyBrowser(ua),
    country: null,
    address: address ? truncateAddress(address) : null,
    conn: null,
    ...NO_EVENT_COLUMNS,
    kind: 'server',
    status: ctx.status,
    duration: Math.round(durationMs * 1000) / 1000,
    json: JSON.stringify(json),
  }
}

/**
 * The access log of a configuration whose sites have `rum`: every line is
 * written as before, and an answer that got a page-view id also queues its
 * `server` row (`collector.record`), with the same duration the line has.
 * A full queue drops the row and counts it; the answer is never held.
 */
export function recordPageViews(log: AccessLog, collector: Pick<Collector, 'record'>, clock: Pick<Clock, 'now'>): AccessLog {
  return {
    write(ctx, durationMs) {
      log.write(ctx, durationMs)
      if (ctx.pageView) collector.record([serverRow(ctx, durationMs, clock.now())])
    },
    flush: () => log.flush(),
    close: () => log.close(),
    reopen: () => log.reopen(),
  }
}
