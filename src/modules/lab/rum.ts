import type { Context } from '../../core/context.ts'
import { httpError } from '../../core/errors.ts'
import type { Handler } from '../../core/types.ts'
import { jsonObject, NAV_PHASES, openSqliteRumStore, type BrowserView, type NavPhase, type RumRow, type RumStore, type ServerView } from '../../rum/store.ts'

/**
 * `lab: { demo: 'rum' }`: what real-user monitoring stored for one page
 * view, for the monitoring lab page (lab/www/lab/monitoring.html), which
 * asks about its own page view once it has sent its report:
 *
 *   GET <prefix>page-view?pv=<id>   JSON: Edgebox's row and the browser's report of that page view, side by side
 *
 * The id is the one the page got in its own HTML answer's `Server-Timing:
 * pv;desc="<id>"` (W3C Server Timing): 72 random bits, so knowing it is what
 * lets one read the page view, as knowing a capability URL is (W3C TAG,
 * "Good Practices for Capability URLs"). The answer holds nothing of the
 * client's address or country, and is never stored by a cache
 * (`Cache-Control: no-store`).
 *
 * - 400: `pv` missing, given twice, or not 1 to 64 of `A-Z a-z 0-9 _ -`
 *   (the alphabet of every page-view id, base64url, RFC 4648 §5).
 * - 404: the site has no `rum` (nothing is collected), or no row of that
 *   page view is stored (yet: the collector writes every 100 ms).
 *
 * The RUM store (`<dataDir>/rum/rum.sqlite`) is opened on the first
 * request, a reader beside the collector's connection (SQLite's WAL lets it
 * read while the collector writes), and closed with the handler.
 */

/** The most rows of one page view read: a page view has a few dozen; more is cut (`truncated`). */
export const PAGE_VIEW_ROWS = 1_000

/** What a page-view id looks like: base64url characters, at most 64. */
const PV = /^[A-Za-z0-9_-]{1,64}$/

/** The endpoint this demo answers, under its prefix. */
const PAGE_VIEW = 'page-view'

/** One stored error of the page view: the stack as stored (mapped to the sources when Edgebox could) beside the stack as the browser sent it. */
export interface StoredError {
  /** `error`, `unhandledrejection` or `resource`. */
  readonly kind: string | null
  readonly message: string | null
  /** How many times the page saw it before reporting. */
  readonly count: number
  /** ms since the page view began. */
  readonly at: number
  /** When the collector received it, ms since the epoch. */
  readonly time: number
  readonly fingerprint: string | null
  /** The stack as stored: symbolicated (W3C/TC39 source maps, ECMA-426) when a map was found; null: none was sent. */
  readonly stack: string | null
  /** The stack as the browser sent it: the row's `rawStack` when Edgebox mapped it, else the stored stack (nothing was mapped). */
  readonly rawStack: string | null
  /** Edgebox mapped at least one frame of the stack. */
  readonly mapped: boolean
}

/** The answer of `page-view`. */
export interface PageViewReport {
  readonly pv: string
  readonly page: string
  /** Edgebox's own row of the page view (its HTML answer): status, duration, edge time, route, cache, protocol; null: not stored (another server answered the page, or it was cached). */
  readonly server: ServerView | null
  /** The browser's vitals (the latest of each) and navigation timing; null: no report yet. */
  readonly browser: BrowserView | null
  /** The navigation phases of this load (W3C Navigation Timing Level 2), each null when not reported, and the longest one. */
  readonly breakdown: { readonly phases: Readonly<Record<NavPhase, number | null>>; readonly dominant: NavPhase | null }
  readonly errors: StoredError[]
  /** Rows of the page view read (every kind). */
  readonly rows: number
  /** More than PAGE_VIEW_ROWS rows: the later ones were not read. */
  readonly truncated: boolean
}

/** The phases of a nav report, and the one that took longest (the first in NAV_PHASES order on a tie), as the store's breakdown picks it. */
export function phaseBreakdown(browser: BrowserView | null): PageViewReport['breakdown'] {
  const given = browser?.nav?.phases
  const source = given !== null && typeof given === 'object' && !Array.isArray(given) ? (given as Record<string, unknown>) : {}
  const phases = {} as Record<NavPhase, number | null>
  let dominant: NavPhase | null = null
  for (const phase of NAV_PHASES) {
    const v = source[phase]
    phases[phase] = typeof v === 'number' && Number.isFinite(v) ? v : null
    if (phases[phase] !== null && (dominant === null || phases[phase] > phases[dominant]!)) dominant = phase
  }
  return { phases, dominant }
}

/** An error row as the page shows it. */
function storedError(r: RumRow): StoredError {
  const raw = jsonObject(r.json)?.rawStack
  const mapped = typeof raw === 'string'
  return { kind: r.name, message: r.message, count: r.count, at: r.offset, time: r.time, fingerprint: r.fingerprint, stack: r.stack, rawStack: mapped ? raw : r.stack, mapped }
}

/** The site collects real-user monitoring: its `/_edgebox/` table has the collector (sites[].rum). */
function rumOn(ctx: Context): boolean {
  return ctx.site?.endpoints.get('/_edgebox/rum/batch')?.feature === 'rum'
}

/** A JSON answer that no cache keeps. */
function sendJson(ctx: Context, status: number, body: unknown): void {
  ctx.send(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }, `${JSON.stringify(body)}\n`)
}

/** The `pv` parameter, or the reason it is refused. */
function pageViewId(query: string): { pv: string } | { error: string } {
  const given = new URLSearchParams(query).getAll('pv')
  if (given.length === 0) return { error: 'pv: missing: the page-view id the page got in its Server-Timing header (pv;desc="<id>")' }
  if (given.length > 1) return { error: 'pv: given more than once' }
  const pv = given[0]!
  if (!PV.test(pv)) return { error: `pv: expected 1 to 64 letters, digits, "-" or "_", not ${JSON.stringify(pv.slice(0, 80))}` }
  return { pv }
}

export function createRumDemo(prefix: string, dataDir: string): Handler {
  let opening: Promise<RumStore> | null = null
  let closed = false

  /** The store, opened on first use; an open that failed is tried again next time. */
  function store(): Promise<RumStore> {
    if (closed) return Promise.reject(httpError('EB_ERR_SHUTTING_DOWN'))
    opening ??= openSqliteRumStore(dataDir).catch((err: unknown) => {
      opening = null
      throw err
    })
    return opening
  }

  async function pageView(ctx: Context): Promise<void> {
    if (!rumOn(ctx)) return sendJson(ctx, 404, { error: 'real-user monitoring is off on this site (sites[].rum): Edgebox collects and stores nothing to show' })
    const id = pageViewId(ctx.query)
    if ('error' in id) return sendJson(ctx, 400, { error: id.error })
    const { pv } = id
    const s = await store()
    const rows = await s.pageViewEvents(pv, PAGE_VIEW_ROWS + 1)
    if (rows.length === 0) return sendJson(ctx, 404, { error: `no row of page view ${pv} is stored: not reported yet (the collector writes every 100 ms), swept by retention, or not a page view of this Edgebox` })
    const pair = (await s.pageViews({ pv, since: 0, until: Number.MAX_SAFE_INTEGER, limit: 1 }))[0] ?? null
    const read = rows.slice(0, PAGE_VIEW_ROWS)
    const browser = pair?.browser ?? null
    const report: PageViewReport = {
      pv,
      page: pair?.page ?? read[0]!.page,
      server: pair?.server ?? null,
      browser,
      breakdown: phaseBreakdown(browser),
      errors: read.filter((r) => r.kind === 'error').map(storedError),
      rows: read.length,
      truncated: rows.length > PAGE_VIEW_ROWS,
    }
    sendJson(ctx, 200, report)
  }

  return {
    kind: 'lab',
    methods: ['GET', 'HEAD'],
    handle(ctx: Context) {
      if (ctx.path !== `${prefix}${PAGE_VIEW}`) throw httpError('EB_ERR_NOT_FOUND', `the monitoring demo has ${prefix}${PAGE_VIEW}?pv=<page-view id>`)
      return pageView(ctx)
    },
    async close() {
      closed = true
      const pending = opening
      opening = null
      if (pending) await (await pending.catch(() => null))?.close()
    },
  }
}
