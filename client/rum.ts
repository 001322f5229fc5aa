/**
 * Edgebox real-user monitoring: the browser SDK (see docs/monitoring.md for
 * the design and the wire format, version 1).
 *
 *   import { init } from 'edgebox/rum'
 *   init({ release: '2026.12.1', env: 'production' })
 *
 * or, with no build step, <script src="/assets/edgebox-rum.js" data-release="..."
 * data-env="..."></script> (auto-initialised; window.EdgeboxRum).
 *
 * It reports web-vitals (attribution build), the navigation timing
 * breakdown, slow or failed resources, errors, fetch and XHR calls and soft
 * navigations, in batches sent when the page is hidden (sendBeacon, else
 * fetch with keepalive, else a GIF request). It never throws into the page:
 * every handler and every wrapper is guarded.
 *
 * Browser code: DOM and ES libraries only. Built by client/build.ts.
 */
import { onCLS, onFCP, onINP, onLCP, onTTFB } from 'web-vitals/attribution'
import type { MetricWithAttribution } from 'web-vitals/attribution'

export interface RumOptions {
  /** The collector's base path; `batch` and `beacon.gif` are under it. Default '/_edgebox/rum/'. */
  endpoint?: string
  release?: string
  env?: string
  /** The share of page views reported, 0..1, decided once per page view. Default 1. */
  sampleRate?: number
  /** Nothing is collected or sent until this answers true (when given); false: nothing at all. */
  consent?: () => boolean | Promise<boolean>
  /** Resources slower than this (ms) are reported. Default 1000. */
  slowResourceMs?: number
  /** Called for each event before it is sent: return it (changed or not) to send it, null or false to drop it. */
  beforeSend?: (event: RumEvent) => RumEvent | null | undefined | false
}

export type Rating = 'good' | 'needs-improvement' | 'poor'

export interface VitalEvent { t: 'vital'; at: number; name: string; value: number; rating: Rating; attr: Record<string, string | number | undefined> }
export interface NavEvent {
  t: 'nav'; at: 0; type: string; protocol: string
  phases: { redirect: number; dns: number; tcp: number; tls: number; ttfb: number; transfer: number; dom: number; load: number }
}
export interface ResourceEvent { t: 'resource'; at: number; url: string; initiator: string; duration?: number; status?: number; size?: number; failed: boolean }
export interface RumErrorEvent { t: 'error'; at: number; kind: 'error' | 'unhandledrejection'; message: string; stack?: string; count: number }
export interface ApiEvent { t: 'api'; at: number; method: string; url: string; status: number; duration: number; outcome: 'ok' | 'error' | 'abort' | 'network' }
export interface RouteEvent { t: 'route'; at: number; pv: string; from: string; to: string }
export type RumEvent = VitalEvent | NavEvent | ResourceEvent | RumErrorEvent | ApiEvent | RouteEvent

export interface RumBatch {
  v: 1
  pv: string
  cached: boolean
  page: string
  release?: string
  env?: string
  device: { w: number; dpr: number; conn?: string; saveData?: boolean; mobile?: boolean }
  events: RumEvent[]
}

export interface RumHandle {
  /** The current page view's id (undefined until consent, or when not collecting). */
  readonly pv: string | undefined
  /** Sends what is buffered now. */
  flush(): void
}

interface View {
  pv: string
  cached: boolean
  /** performance.now() at the view's start (0 for the document's navigation). */
  start: number
  page: string
  sampled: boolean
  events: RumEvent[]
  size: number
  errors: Map<string, RumErrorEvent>
  failed: Set<string>
}

const MAX_EVENTS = 100
const MAX_BYTES = 60 * 1024
const MAX_STRING = 2048
const MAX_STACK = 16 * 1024
const MAX_GIF = 8 * 1024
const MAX_ERRORS = 50

let handle: RumHandle | undefined

const r1 = (n: number): number => Math.round(n * 10) / 10
const cut = (s: unknown, max = MAX_STRING): string => String(s).slice(0, max)
const now = (): number => performance.now()

/** Runs fn, swallowing whatever it throws: the SDK must never break the page. */
function guard<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void {
  return (...args: A) => {
    try {
      fn(...args)
    } catch {
      // never into the page
    }
  }
}

function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(9))
  return b64url(bytes)
}

function b64url(bytes: Uint8Array): string {
  let bin = ''
  for (const b of bytes) bin += String.fromCharCode(b)
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

/**
 * A URL as reported: a same-origin path, or an absolute URL for another
 * origin; no credentials, no fragment, query keys kept with their values
 * removed (`/api/items?id=&q=`). data: and blob: URLs are only their scheme.
 */
export function cleanUrl(raw: string): string {
  try {
    const u = new URL(raw, location.href)
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return u.protocol
    const keys: string[] = []
    u.searchParams.forEach((_v, k) => keys.push(encodeURIComponent(k) + '='))
    const tail = u.pathname + (keys.length > 0 ? '?' + keys.join('&') : '')
    return cut(u.origin === location.origin ? tail : u.origin + tail)
  } catch {
    return ''
  }
}

/** Starts the SDK (once; later calls return the same handle). */
/** Where a page's running SDK is found by a second build of it (Symbol.for: shared by every script of the page). */
const ONE_PER_PAGE = Symbol.for('edgebox.rum')

export function init(options: RumOptions = {}): RumHandle {
  if (handle) return handle
  // one SDK per page, whichever build started first (the page's module, or the script Edgebox injected): the other gets its handle
  const page = globalThis as { [ONE_PER_PAGE]?: RumHandle }
  if (page[ONE_PER_PAGE]) return (handle = page[ONE_PER_PAGE])
  let state: ReturnType<typeof start> | undefined
  handle = page[ONE_PER_PAGE] = {
    get pv() {
      return state?.current().pv
    },
    flush: guard(() => state?.flush()),
  }
  try {
    const go = guard(() => {
      state = start(options)
    })
    if (options.consent) {
      Promise.resolve()
        .then(options.consent)
        .then((ok) => {
          if (ok === true) go()
        }, () => {})
    } else {
      go()
    }
  } catch {
    // never into the page
  }
  return handle
}

/**
 * The script build's auto-init: reads the options from the <script>
 * element's data attributes (data-endpoint, data-release, data-env,
 * data-sample-rate, data-slow-resource-ms); `data-manual` skips it (call
 * EdgeboxRum.init yourself, say with a consent function).
 */
export function initFromScript(script: Element | null): RumHandle | undefined {
  if (!(script instanceof HTMLElement) || script.dataset.manual !== undefined) return undefined
  const d = script.dataset
  const num = (s: string | undefined): number | undefined => (s === undefined || s === '' || Number.isNaN(Number(s)) ? undefined : Number(s))
  return init({ endpoint: d.endpoint, release: d.release, env: d.env, sampleRate: num(d.sampleRate), slowResourceMs: num(d.slowResourceMs) })
}

function start(options: RumOptions) {
  let endpoint = options.endpoint || '/_edgebox/rum/'
  if (!endpoint.endsWith('/')) endpoint += '/'
  const endpointAbs = new URL(endpoint, location.href).href
  const sampleRate = options.sampleRate ?? 1
  const slowMs = options.slowResourceMs ?? 1000
  const origFetch = typeof fetch === 'function' ? fetch.bind(globalThis) : undefined
  const isOwn = (url: string): boolean => {
    try {
      return new URL(url, location.href).href.startsWith(endpointAbs)
    } catch {
      return false
    }
  }

  const pending = new Set<View>()
  const newView = (pv: string, cached: boolean, startAt: number): View => ({
    pv, cached, start: startAt, page: cut(location.pathname), sampled: Math.random() < sampleRate,
    events: [], size: 0, errors: new Map(), failed: new Set(),
  })

  const navEntry = performance.getEntriesByType?.('navigation')[0] as PerformanceNavigationTiming | undefined
  const serverPv = navEntry?.serverTiming?.find((e) => e.name === 'pv')?.description
  let current = newView(serverPv || randomId(), !serverPv, 0)
  /** The latest views, oldest first: a resource belongs to the view it started in. */
  const recent: View[] = [current]
  /** The view the document's vitals belong to (a soft navigation's own go to its view: softView below). */
  let docView = current
  let flushTimer: ReturnType<typeof setTimeout> | undefined

  const at = (view: View, time = now()): number => Math.max(0, Math.round(time - view.start))

  function record(view: View, ev: RumEvent): void {
    if (!view.sampled) return
    // a vital reported again before the last report went (a page view's INP or CLS as it grows): only the latest is sent
    const again = ev.t === 'vital' ? view.events.findIndex((e) => e.t === 'vital' && e.name === ev.name) : -1
    if (again !== -1) {
      view.size -= JSON.stringify(view.events[again]).length
      view.events.splice(again, 1)
    }
    view.events.push(ev)
    view.size += JSON.stringify(ev).length
    pending.add(view)
    if ((view.events.length >= MAX_EVENTS || view.size >= MAX_BYTES) && flushTimer === undefined) {
      flushTimer = setTimeout(guard(() => {
        flushTimer = undefined
        flush()
      }), 0)
    }
  }

  // ---- sending ----

  function device(): RumBatch['device'] {
    const nav = navigator as Navigator & { connection?: { effectiveType?: string; saveData?: boolean }; userAgentData?: { mobile?: boolean } }
    return { w: innerWidth, dpr: devicePixelRatio, conn: nav.connection?.effectiveType, saveData: nav.connection?.saveData, mobile: nav.userAgentData?.mobile }
  }

  function flush(): void {
    emitNav()
    for (const view of [...pending]) {
      pending.delete(view)
      const events = view.events
      view.events = []
      view.size = 0
      let batch: RumEvent[] = []
      let bytes = 0
      for (const raw of events) {
        let ev: RumEvent | null | undefined | false = raw
        if (options.beforeSend) {
          try {
            ev = options.beforeSend(raw)
          } catch {
            ev = null
          }
        }
        if (!ev) continue
        const len = JSON.stringify(ev).length
        if (batch.length > 0 && (batch.length >= MAX_EVENTS || bytes + len > MAX_BYTES)) {
          send(view, batch)
          batch = []
          bytes = 0
        }
        batch.push(ev)
        bytes += len
      }
      if (batch.length > 0) send(view, batch)
    }
  }

  function send(view: View, events: RumEvent[]): void {
    const batch: RumBatch = { v: 1, pv: view.pv, cached: view.cached, page: view.page, release: options.release, env: options.env, device: device(), events }
    const body = JSON.stringify(batch)
    try {
      if (navigator.sendBeacon?.(endpoint + 'batch', new Blob([body], { type: 'application/json' }))) return
    } catch {
      // fall through
    }
    try {
      if (origFetch) {
        origFetch(endpoint + 'batch', { method: 'POST', body, keepalive: true, headers: { 'content-type': 'application/json' } }).catch(() => {})
        return
      }
    } catch {
      // fall through
    }
    sendGif(batch)
  }

  function sendGif(batch: RumBatch): void {
    const d = b64url(new TextEncoder().encode(JSON.stringify(batch)))
    if (d.length <= MAX_GIF) {
      new Image().src = endpoint + 'beacon.gif?d=' + d
    } else if (batch.events.length > 1) {
      const half = Math.ceil(batch.events.length / 2)
      sendGif({ ...batch, events: batch.events.slice(0, half) })
      sendGif({ ...batch, events: batch.events.slice(half) })
    }
  }

  const onHidden = guard(() => {
    if (document.visibilityState === 'hidden') flush()
  })

  // ---- web-vitals ----

  /**
   * The soft navigations' own vitals (web-vitals' reportSoftNavs, where the
   * browser has the Soft Navigations API: PerformanceSoftNavigation): the
   * browser numbers each soft navigation (navigationId), the SDK starts a
   * page view for each route change; the first metric of a new id goes to the
   * earliest route-change view not yet matched, and its later metrics with it.
   */
  const softViews: View[] = []
  const byNavigationId = new Map<number, View>()
  const softView = (id: number): View => {
    let view = byNavigationId.get(id)
    if (!view) {
      view = softViews.shift() ?? current
      byNavigationId.set(id, view)
      if (byNavigationId.size > 10) byNavigationId.delete(byNavigationId.keys().next().value!)
    }
    return view
  }

  /** The document's own navigation id, where entries carry one: its metrics stay the document's whatever their navigationType says. */
  const docNavigationId = (navEntry as { navigationId?: unknown } | undefined)?.navigationId
  const vital = guard((m: MetricWithAttribution) => {
    const soft = m.navigationType === 'soft-navigation' && (docNavigationId === undefined || (m.navigationId as unknown) !== docNavigationId)
    const view = m.navigationType === 'back-forward-cache' ? current : soft ? softView(m.navigationId) : docView
    let attr: VitalEvent['attr'] = {}
    const a = m.attribution as unknown as Record<string, unknown>
    if (m.name === 'LCP') attr = { element: a.target as string | undefined, url: a.url ? cleanUrl(a.url as string) : undefined }
    else if (m.name === 'INP') attr = { target: a.interactionTarget as string | undefined, type: a.interactionType as string | undefined }
    else if (m.name === 'CLS') attr = { target: a.largestShiftTarget as string | undefined }
    for (const k in attr) if (typeof attr[k] === 'string') attr[k] = cut(attr[k])
    const when = m.name === 'CLS' || m.name === 'INP' ? now() : view.start + m.value
    const value = m.name === 'CLS' ? Math.round(m.value * 1e4) / 1e4 : r1(m.value)
    record(view, { t: 'vital', at: at(view, when), name: m.name, value, rating: m.rating, attr })
  })
  for (const on of [onLCP, onINP, onCLS, onFCP, onTTFB]) {
    try {
      on(vital, { reportSoftNavs: true })
    } catch {
      // an older browser: that metric is not reported
    }
  }

  // ---- navigation timing ----

  let navDone = false
  function emitNav(): void {
    if (navDone || !navEntry) return
    navDone = true
    const n = navEntry
    const d = (a: number, b: number): number => (a > 0 && b >= a ? r1(b - a) : 0)
    const secure = n.secureConnectionStart > 0 ? n.secureConnectionStart : 0
    record(docView, {
      t: 'nav', at: 0, type: n.type, protocol: n.nextHopProtocol,
      phases: {
        redirect: d(n.redirectStart, n.redirectEnd),
        dns: d(n.domainLookupStart, n.domainLookupEnd),
        tcp: d(n.connectStart, secure || n.connectEnd),
        tls: secure ? d(secure, n.connectEnd) : 0,
        ttfb: d(n.requestStart, n.responseStart),
        transfer: d(n.responseStart, n.responseEnd),
        dom: d(n.responseEnd, n.domComplete),
        load: d(n.loadEventStart, n.loadEventEnd),
      },
    })
  }
  const navWhenLoaded = guard(() => {
    if (navEntry && navEntry.loadEventEnd > 0) emitNav()
    else setTimeout(navWhenLoaded, 50)
  })
  if (document.readyState === 'complete') setTimeout(navWhenLoaded, 0)
  else addEventListener('load', () => setTimeout(navWhenLoaded, 0), { once: true })

  // ---- resources ----

  function failedResource(view: View, ev: ResourceEvent): void {
    if (view.failed.has(ev.url)) return
    if (ev.failed) view.failed.add(ev.url)
    record(view, ev)
  }
  try {
    new PerformanceObserver(guard((list: PerformanceObserverEntryList) => {
      for (const e of list.getEntries() as PerformanceResourceTiming[]) {
        if (e.initiatorType === 'fetch' || e.initiatorType === 'xmlhttprequest' || e.initiatorType === 'beacon' || isOwn(e.name)) continue
        const status = e.responseStatus || undefined
        const failed = status !== undefined && status >= 400
        if (!failed && e.duration <= slowMs) continue
        let view = current
        for (const v of recent) if (v.start <= e.startTime) view = v
        failedResource(view, {
          t: 'resource', at: at(view, e.startTime), url: cleanUrl(e.name), initiator: e.initiatorType,
          duration: r1(e.duration), status, size: e.transferSize || e.encodedBodySize || undefined, failed,
        })
      }
    })).observe({ type: 'resource', buffered: true })
  } catch {
    // no resource timing
  }

  // ---- errors ----

  function error(kind: RumErrorEvent['kind'], message: string, stack: string | undefined): void {
    const view = current
    const lines = (stack || '').split('\n')
    const key = kind + '\n' + message + '\n' + (lines.find((l) => /:\d+/.test(l)) || lines[0])
    const seen = view.errors.get(key)
    if (seen) {
      seen.count++
      if (!view.events.includes(seen)) record(view, seen)
      return
    }
    if (view.errors.size >= MAX_ERRORS) return
    const ev: RumErrorEvent = { t: 'error', at: at(view), kind, message: cut(message), stack: stack ? cut(stack, MAX_STACK) : undefined, count: 1 }
    view.errors.set(key, ev)
    record(view, ev)
  }
  addEventListener('error', guard((e: Event) => {
    const target = e.target
    if (target instanceof HTMLElement) {
      const url = (target as HTMLImageElement).currentSrc || (target as HTMLImageElement).src || (target as HTMLLinkElement).href
      if (!url || isOwn(url)) return
      // an element's load error has no timing: status 0 as Resource Timing gives for a failed fetch, no duration, no size
      failedResource(current, { t: 'resource', at: at(current), url: cleanUrl(url), initiator: target.tagName.toLowerCase(), duration: 0, status: 0, size: 0, failed: true })
      return
    }
    const ee = e as ErrorEvent
    const err = ee.error as { stack?: unknown; message?: unknown } | null | undefined
    const message = typeof err?.message === 'string' ? err.message : String(ee.message || 'error').replace(/^Uncaught /, '')
    error('error', message, typeof err?.stack === 'string' ? err.stack : undefined)
  }), true)
  addEventListener('unhandledrejection', guard((e: PromiseRejectionEvent) => {
    const r = e.reason as { stack?: unknown; message?: unknown } | undefined
    const isErr = r instanceof Error || (typeof r === 'object' && r !== null && 'message' in r)
    error('unhandledrejection', isErr ? String(r.message) : safeString(r), isErr && typeof r.stack === 'string' ? r.stack : undefined)
  }))

  // ---- fetch and XHR ----

  function api(view: View, method: string, url: string, t0: number, status: number, outcome: ApiEvent['outcome']): void {
    record(view, { t: 'api', at: at(view, t0), method: cut(method.toUpperCase(), 16), url: cleanUrl(url), status, duration: r1(now() - t0), outcome })
  }
  if (origFetch) {
    const wrapped = function (this: unknown, input: RequestInfo | URL, initArg?: RequestInit): Promise<Response> {
      // eslint-disable-next-line prefer-rest-params
      const p = origFetch.apply(this, arguments as unknown as [RequestInfo | URL, RequestInit?])
      try {
        const isReq = typeof Request === 'function' && input instanceof Request
        const url = isReq ? (input as Request).url : String(input)
        if (!isOwn(url)) {
          const method = initArg?.method || (isReq ? (input as Request).method : 'GET')
          const view = current
          const t0 = now()
          p.then(
            guard((res: Response) => api(view, method, url, t0, res.status, res.status >= 400 ? 'error' : 'ok')),
            guard((err: unknown) => api(view, method, url, t0, 0, (err as { name?: string } | null)?.name === 'AbortError' ? 'abort' : 'network')),
          )
        }
      } catch {
        // never into the page
      }
      return p
    }
    try {
      globalThis.fetch = wrapped as typeof fetch
    } catch {
      // read-only fetch: not instrumented
    }
  }
  if (typeof XMLHttpRequest === 'function') {
    const proto = XMLHttpRequest.prototype
    const xhrs = new WeakMap<XMLHttpRequest, { method: string; url: string }>()
    const open = proto.open
    const sendX = proto.send
    proto.open = function (this: XMLHttpRequest, ...args: unknown[]) {
      try {
        xhrs.set(this, { method: String(args[0]), url: String(args[1]) })
      } catch {
        // never into the page
      }
      return (open as (...a: unknown[]) => void).apply(this, args)
    } as typeof proto.open
    proto.send = function (this: XMLHttpRequest, body?: Document | XMLHttpRequestBodyInit | null) {
      try {
        const info = xhrs.get(this)
        if (info && !isOwn(info.url)) {
          const view = current
          const t0 = now()
          let outcome: ApiEvent['outcome'] | undefined
          const xhr = this
          xhr.addEventListener('abort', () => (outcome = 'abort'))
          xhr.addEventListener('error', () => (outcome = 'network'))
          xhr.addEventListener('timeout', () => (outcome = 'network'))
          xhr.addEventListener('loadend', guard(() => {
            const s = xhr.status
            api(view, info.method, info.url, t0, s, outcome ?? (s === 0 ? 'network' : s >= 400 ? 'error' : 'ok'))
          }))
        }
      } catch {
        // never into the page
      }
      return sendX.call(this, body)
    }
  }

  // ---- soft navigations ----

  const route = guard(() => {
    const to = cut(location.pathname)
    if (to === current.page) return
    const from = current
    const next = newView(randomId(), false, now())
    next.page = to
    record(from, { t: 'route', at: at(from), pv: next.pv, from: from.page, to })
    current = next
    if (softViews.push(next) > 10) softViews.shift()
    if (recent.push(next) > 10) recent.shift()
  })
  for (const name of ['pushState', 'replaceState'] as const) {
    const orig = history[name]
    try {
      history[name] = function (this: History, ...args: Parameters<History['pushState']>) {
        const out = orig.apply(this, args)
        route()
        return out
      }
    } catch {
      // not instrumented
    }
  }
  addEventListener('popstate', route)
  // A page restored from the back/forward cache is a new page view, from the cache.
  addEventListener('pageshow', guard((e: PageTransitionEvent) => {
    if (!e.persisted) return
    current = docView = newView(randomId(), true, now())
    recent.splice(0, recent.length, current)
  }))

  // After web-vitals' own listeners (capture, on window), so its final values are in the batch.
  document.addEventListener('visibilitychange', onHidden)
  addEventListener('pagehide', guard(flush))

  return { flush, current: () => current }
}

function safeString(v: unknown): string {
  try {
    return typeof v === 'string' ? v : JSON.stringify(v) ?? String(v)
  } catch {
    return String(v)
  }
}
