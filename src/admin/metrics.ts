import type { Broadcast } from '../core/broadcast.ts'
import { Registry, collectDefaultMetrics, type Metric } from 'prom-client'
import type { Context } from '../core/context.ts'
import type { AccessLog } from '../core/log.ts'
import type { CacheView, HandlerView, RealtimeView, UpstreamView } from '../core/observe.ts'
import type { Route, Site } from '../core/route.ts'
import { TimeSeries } from './series.ts'
import type { RecentError, Sample } from './samples.ts'
export type { RecentError, Sample } from './samples.ts'

/**
 * Edgebox's metrics (docs/admin.md, "The metrics"): what the Prometheus
 * endpoint renders, what the dashboard's time series sample each second,
 * and the overview, security and recent-error views of the admin API.
 */

/** What the listeners report: connections by protocol, TLS handshakes. Plain increments. */
export interface ConnectionStats {
  /** A connection's protocol is known (after ALPN or the h2c preface): it is open. */
  opened(protocol: 'http/1.1' | 'h2'): void
  /** That connection closed. */
  closed(protocol: 'http/1.1' | 'h2'): void
  /** A TLS handshake completed; `resumed`: with a session ticket or a cached session. */
  tlsHandshake(resumed: boolean): void
}

/** What the server hands the metrics to read at a scrape (each may be absent). */
export interface MetricSources {
  /** DNS queries answered so far, by query type and response code (`A`, `NOERROR`). */
  dnsQueries?(): readonly { readonly type: string; readonly rcode: string; readonly count: number }[]
  /** Balanced names' edges and their health. */
  gslbEdges?(): readonly { readonly name: string; readonly edge: string; readonly healthy: boolean }[]
  /** Real-user monitoring's collector counters (rum/collector.ts CollectorStats), when a site has `rum`. */
  rum?(): { readonly accepted: number; readonly stored: number; readonly dropped: number; readonly ignored: number; readonly refused: Readonly<Record<string, number>> } | null
}

export interface Overview {
  readonly uptimeSeconds: number
  /** Over the last 60 seconds. */
  readonly requestsPerSecond: number
  readonly bytesPerSecond: number
  /** Answers per second by status class, over the last 60 seconds. */
  readonly statusMix: { readonly '1xx': number; readonly '2xx': number; readonly '3xx': number; readonly '4xx': number; readonly '5xx': number }
  readonly p50: number
  readonly p95: number
  readonly p99: number
  /** hits / (hits + misses) over the last 60 seconds; null without cache lookups. */
  readonly cacheHitRatio: number | null
  readonly errorsPerSecond: number
  readonly totals: { readonly requests: number; readonly bytes: number; readonly errors: number }
  readonly connections: { readonly 'http/1.1': number; readonly h2: number; readonly websocket: number; readonly sse: number }
}

export interface Metrics {
  /** Handed to every listener. */
  readonly connections: ConnectionStats
  /** The access log with every answer counted on its way (per-route slots; see `prepare`). */
  wrapAccessLog(inner: AccessLog): AccessLog
  /**
   * A configuration was provisioned: resolves each route's slot (its label
   * values, its counters) once, before its pipeline serves. Routes keep their
   * counters across reloads by id and site.
   */
  prepare(sites: readonly Site[], views: () => readonly RouteViewSource[]): void
  /** Prometheus's text format 0.0.4, with its content type. */
  render(): Promise<{ readonly contentType: string; readonly body: string }>
  /** The same figures as prom-client's JSON (with each metric's aggregator), for the cluster primary to add up the workers' (server/cluster.ts). */
  json(): Promise<unknown[]>
  /** The in-memory history: an hour at one second, or a day at one minute, oldest first; `step` in seconds (1 or 60). */
  series(window: '1h' | '1d'): { readonly step: number; readonly samples: readonly Sample[] }
  /** Told of each one-second sample as it is taken (the admin hub publishes it). */
  onSample(listener: (s: Sample) => void): () => void
  /** The headline figures now: the last minute's rates and percentiles, totals since start, open connections. */
  overview(): Overview
  /** Refusals by kind since start, and the clients refused most by rate limits (at most `top`). */
  security(top: number): { readonly refusals: { readonly rateLimit: number; readonly csrf: number; readonly cors: number }; readonly rateLimited: readonly { readonly client: string; readonly count: number; readonly last: number }[] }
  /** The most recent answers with a 5xx status, newest first (a bounded ring of 200). */
  recentErrors(limit: number): readonly RecentError[]
  /** The reload counter. */
  reloaded(ok: boolean): void
  close(): void
}

/** A route whose handler has something to show (HandlerAdmin), with its labels. */
export interface RouteViewSource {
  readonly site: string
  readonly route: string
  readonly admin: import('../core/observe.ts').HandlerAdmin
}

export interface MetricsOptions {
  readonly sources: MetricSources
  /** The time the series are stamped with (tests pass a manual clock). */
  readonly now?: () => number
  /** false: no one-second timer; the owner takes each sample with `tick()` (tests with a manual clock). Default true. */
  readonly timer?: boolean
  /**
   * With workers (docs/scale.md): worker 1 (`lead`), which runs the admin
   * listener, shows the node in its series, overview and recent errors; each
   * other worker sends it its second's figures as it closes them.
   */
  readonly peers?: { readonly lead: boolean; readonly worker: number; readonly channel: Broadcast }
}

/** What a worker sends worker 1 each second: its answers, open connections and new server errors. */
interface PeerSecond {
  readonly w: number
  /** Answers by status class, 1xx..5xx. */
  readonly classes: readonly number[]
  readonly hist: readonly number[]
  readonly bytes: number
  readonly hits: number
  readonly misses: number
  /** Open connections: HTTP/1.1, HTTP/2, WebSocket, SSE. */
  readonly open: readonly number[]
  readonly errors: readonly RecentError[]
}

/** The broadcast topic of the workers' seconds. */
const PEER_SECOND = 'dashboard:second'
/** A worker not heard from for this long no longer counts in the open connections (it died, or is restarting). */
const PEER_STALE_MS = 5_000
/** Server errors a worker sends in one second, at most (the ring keeps 200 in all). */
const PEER_ERRORS = 50


// ---------------------------------------------------------------------------
// The per-route slots: what one answer adds to (docs/admin.md, "The contract between the parts").

/** The `method` label's values; anything else is `other`. */
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'other'] as const
const CODES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const
/** The `outcome` label's values, in the slots' order. */
const OUTCOMES = ['hit', 'miss', 'stale', 'revalidated', 'bypass'] as const
const REFUSALS = ['rate_limit', 'csrf', 'cors'] as const

/** Upper bounds (ms) of `edgebox_http_request_duration_seconds`'s buckets: prom-client's defaults, 5 ms to 10 s. */
const DURATION_BOUNDS_MS = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000]
/** Their `le` labels, in seconds (Prometheus's base unit), and +Inf. */
const DURATION_LE = [...DURATION_BOUNDS_MS.map((ms) => String(ms / 1000)), '+Inf']

/** The method's index in METHODS: a switch on constants, no lookup by string per request. */
function methodIndex(method: string): number {
  switch (method) {
    case 'GET':
      return 0
    case 'HEAD':
      return 1
    case 'POST':
      return 2
    case 'PUT':
      return 3
    case 'PATCH':
      return 4
    case 'DELETE':
      return 5
    case 'OPTIONS':
      return 6
    default:
      return 7
  }
}

/** The status class's index (0: 1xx .. 4: 5xx); anything outside 100..599 goes to the nearest. */
function statusClass(status: number): number {
  return status < 200 ? 0 : status >= 500 ? 4 : ((status / 100) | 0) - 1
}

/**
 * The access log's cache outcome (`ctx.cache`, as the cache and static
 * handlers set it) as an index in OUTCOMES; -1: no cache took part. EXPIRED
 * (a stored response too old, fetched again in full) is a miss.
 */
function cacheOutcome(label: string): number {
  switch (label) {
    case 'HIT':
      return 0
    case 'MISS':
    case 'EXPIRED':
      return 1
    case 'STALE':
      return 2
    case 'REVALIDATED':
      return 3
    case 'BYPASS':
      return 4
    default:
      return -1
  }
}

/** The counters of one route (or of the answers no route gave): typed arrays and numbers, resolved when a configuration loads. */
class Slot {
  readonly site: string
  readonly route: string
  /** Answers by method and status class: `[methodIndex * 5 + statusClass]`. */
  readonly requests = new Float64Array(METHODS.length * CODES.length)
  /** Answers per duration bucket (not cumulative; the last is +Inf). */
  readonly buckets = new Float64Array(DURATION_BOUNDS_MS.length + 1)
  count = 0
  durationMs = 0
  bytes = 0
  readonly cache = new Float64Array(OUTCOMES.length)
  readonly refusals = new Float64Array(REFUSALS.length)
  /**
   * Whether the route's cache outcomes count: an HTTP cache's (a proxy's `cache`), not a static route's in-memory
   * copies of its files, whose HIT and MISS in the access log say only whether the bytes came from memory.
   */
  httpCache = true

  constructor(site: string, route: string) {
    this.site = site
    this.route = route
  }
}

/**
 * The `site` label of a site: its first host (`example.com`), or its place in
 * the configuration (`sites[1]`) when it names none. The `route` label is the
 * route's id (`sites[0].routes[2]`). The server labels its view sources the same way.
 */
export function siteLabel(site: Site): string {
  return site.hosts[0] ?? site.id
}

// ---------------------------------------------------------------------------
// Rendering: custom prom-client metrics whose values are read at scrape time.

type Labels = Record<string, string>
interface Value {
  readonly labels: Labels
  readonly value: number
  readonly metricName?: string
}
type MetricKind = 'counter' | 'gauge' | 'histogram'
/**
 * How the workers' values of a metric make the node's (prom-client's
 * aggregators, src/server/cluster.ts): counts add up (`sum`); a state every
 * worker holds alike (an upstream's health, a reload count) is one value
 * (`max`).
 */
type Aggregator = 'sum' | 'max'

/**
 * A metric prom-client renders like its own (Registry.metrics calls `get()`),
 * whose values `values()` reads from the slots and views at scrape time:
 * nothing is kept between scrapes.
 */
function custom(name: string, help: string, type: MetricKind, values: () => Value[], aggregator: Aggregator = 'sum'): Metric {
  const m = {
    name,
    help,
    type,
    aggregator,
    get: async () => ({ name, help, type, aggregator, values: values() }),
    reset() {},
    collect() {},
  }
  return m as unknown as Metric
}

/**
 * prom-client's process and Node.js metrics, made once per process (they
 * watch GC and the event loop) and shared by every registry. Its gauges
 * named `_total` (`nodejs_active_handles_total`: the sum of
 * `nodejs_active_handles` over its types) are left out: a `_total` suffix
 * says counter (Prometheus's naming conventions; `promtool check metrics`).
 */
let defaults: Metric[] | null = null
function defaultMetrics(): Metric[] {
  if (!defaults) {
    const registry = new Registry()
    collectDefaultMetrics({ register: registry })
    const all = registry.getMetricsAsArray() as unknown as { readonly name: string; readonly type: string }[]
    defaults = all.filter((m) => !(m.name.endsWith('_total') && m.type !== 'counter')) as unknown as Metric[]
  }
  return defaults
}

/** What a scrape reads of the handlers: each view taken once per scrape. */
interface ScrapedView {
  readonly site: string
  readonly route: string
  readonly view: HandlerView
}

/** How many channels a scrape's view of a realtime hub lists (the admin API's lists; the channel gauge counts them all). */
const SCRAPE_TOP = 1000
/** The ring of recent server errors, and the most clients the rate-limit tally keeps. */
const RECENT_ERRORS = 200
const RATE_LIMITED_CLIENTS = 1000

/**
 * Edgebox's metrics. The access log wrapper adds each answer to its route's
 * slot and to the current second of the time series; `render()` reads the
 * slots, the connection counters and the handlers' views into Prometheus's
 * text format; a one-second timer (unref'd) closes the series' seconds.
 */
export function createMetrics(opts: MetricsOptions): Metrics & { tick(): Sample } {
  const now = opts.now ?? Date.now
  const sources = opts.sources
  const started = now()
  const series = new TimeSeries({ now })

  // slots: by Route and Site object for the hot path, by label pair for carrying counters over a reload
  const routeSlots = new WeakMap<Route, Slot>()
  const siteSlots = new WeakMap<Site, Slot>()
  let slots = new Map<string, Slot>()
  const noSite = new Slot('none', 'none')
  slots.set('none\nnone', noSite)
  let views: () => readonly RouteViewSource[] = () => []

  const totals = { requests: 0, bytes: 0, errors: 0 }
  const refusals = new Float64Array(REFUSALS.length)
  const rateLimited = new Map<string, { count: number; last: number }>()
  const errors: (RecentError | undefined)[] = new Array(RECENT_ERRORS)
  let errorsNext = 0
  let errorsSize = 0

  // connections: [http/1.1, h2]
  const open = new Float64Array(2)
  const opened = new Float64Array(2)
  const handshakes = new Float64Array(2) // [resumed=false, resumed=true]
  const reloads = new Float64Array(2) // [ok, refused]
  const connections: ConnectionStats = {
    opened(protocol) {
      const i = protocol === 'h2' ? 1 : 0
      open[i]!++
      opened[i]!++
    },
    closed(protocol) {
      open[protocol === 'h2' ? 1 : 0]!--
    },
    tlsHandshake(resumed) {
      handshakes[resumed ? 1 : 0]!++
    },
  }

  /** A refusal by a rate limit: the client's tally (bounded; the client refused least recently goes first). */
  const tallyRateLimited = (client: string) => {
    let e = rateLimited.get(client)
    if (e) rateLimited.delete(client)
    else e = { count: 0, last: 0 }
    e.count++
    e.last = now()
    rateLimited.set(client, e)
    if (rateLimited.size > RATE_LIMITED_CLIENTS) rateLimited.delete(rateLimited.keys().next().value!)
  }

  /** A 5xx answer into the ring of recent errors (an object per server error, none per answer). */
  const keepError = (ctx: Context, slot: Slot, ms: number) => {
    const err = ctx.error
    errors[errorsNext] = {
      at: now(),
      site: slot.site,
      route: slot.route,
      method: ctx.method,
      host: ctx.host,
      path: ctx.rawPath,
      status: ctx.status,
      ms: Math.round(ms * 1000) / 1000,
      error: err === undefined || err === null ? '' : String((err as { message?: unknown }).message ?? err),
      upstream: ctx.upstream,
    }
    errorsNext = (errorsNext + 1) % RECENT_ERRORS
    if (errorsSize < RECENT_ERRORS) errorsSize++
    if (unsent !== null && unsent.length < PEER_ERRORS) unsent.push(errors[(errorsNext - 1 + RECENT_ERRORS) % RECENT_ERRORS]!)
  }

  /** One answer: plain increments on its slot and on the series' current second. */
  const count = (ctx: Context, ms: number) => {
    const route = ctx.route
    let slot = route === null ? undefined : routeSlots.get(route)
    if (slot === undefined) {
      const site = ctx.site
      slot = (site === null ? undefined : siteSlots.get(site)) ?? noSite
    }
    const ci = statusClass(ctx.status)
    const bytes = ctx.bytes
    slot.requests[methodIndex(ctx.method) * 5 + ci]!++
    let b = 0
    while (b < DURATION_BOUNDS_MS.length && ms > DURATION_BOUNDS_MS[b]!) b++
    slot.buckets[b]!++
    slot.count++
    slot.durationMs += ms
    slot.bytes += bytes
    const acc = series.current
    acc.add(ci, ms, bytes)
    totals.requests++
    totals.bytes += bytes
    if (ctx.cache !== '' && slot.httpCache) {
      const k = cacheOutcome(ctx.cache)
      if (k >= 0) {
        slot.cache[k]!++
        // served from storage (fresh, stale, or revalidated with a 304) or fetched in full
        if (k === 1) acc.cacheMisses++
        else if (k !== 4) acc.cacheHits++
      }
    }
    if (ctx.rateLimited) {
      slot.refusals[0]!++
      refusals[0]!++
      tallyRateLimited(ctx.clientAddress)
    }
    if (ctx.csrfRefused !== '') {
      slot.refusals[1]!++
      refusals[1]!++
    }
    if (ctx.corsRefused !== '') {
      slot.refusals[2]!++
      refusals[2]!++
    }
    if (ci === 4) {
      totals.errors++
      keepError(ctx, slot, ms)
    }
  }

  /** Every handler's view now (a view that throws is left out: a scrape never fails for one handler). */
  const takeViews = (top: number): ScrapedView[] => {
    const out: ScrapedView[] = []
    for (const s of views()) {
      try {
        out.push({ site: s.site, route: s.route, view: s.admin.view(top) })
      } catch {
        // the handler could not show itself now
      }
    }
    return out
  }

  /** Open WebSocket and SSE connections, over every realtime route. */
  const realtimeOpen = (scraped: readonly ScrapedView[]) => {
    let websocket = 0
    let sse = 0
    for (const s of scraped) {
      const c = s.view.realtime?.connections
      if (c) {
        websocket += c.websocket
        sse += c.sse
      }
    }
    return { websocket, sse }
  }

  let scraped: ScrapedView[] = []
  const registry = new Registry()
  for (const m of defaultMetrics()) registry.registerMetric(m)
  for (const m of edgeboxMetrics({
    lead: opts.peers?.lead ?? true,
    slots: () => slots.values(),
    scraped: () => scraped,
    realtimeOpen: () => realtimeOpen(scraped),
    open,
    opened,
    handshakes,
    reloads,
    sources,
  }))
    registry.registerMetric(m)

  // workers: the others' seconds, added to worker 1's (see MetricsOptions.peers)
  const peers = opts.peers
  /** A worker other than 1: the server errors not yet sent to worker 1. */
  const unsent: RecentError[] | null = peers && !peers.lead ? [] : null
  /** Worker 1: each other worker's open connections, as it last said, and when. */
  const peerOpen = new Map<number, { open: readonly number[]; at: number }>()
  const peerOpenNow = (i: number): number => {
    let n = 0
    const fresh = now() - PEER_STALE_MS
    for (const p of peerOpen.values()) if (p.at >= fresh) n += p.open[i] ?? 0
    return n
  }
  const sendSecond = () => {
    const acc = series.current
    const rt = realtimeOpen(takeViews(0))
    const second: PeerSecond = { w: peers!.worker, classes: [...acc.classes], hist: [...acc.hist], bytes: acc.bytes, hits: acc.cacheHits, misses: acc.cacheMisses, open: [open[0]!, open[1]!, rt.websocket, rt.sse], errors: unsent!.splice(0) }
    void peers!.channel.send(PEER_SECOND, second).catch(() => false)
  }
  const stopPeers =
    peers && peers.lead
      ? peers.channel.on(PEER_SECOND, (m) => {
          const x = m as PeerSecond
          if (!Array.isArray(x?.classes) || x.classes.length !== 5 || !Array.isArray(x.hist) || x.hist.length !== series.current.hist.length) return
          const acc = series.current
          for (let i = 0; i < 5; i++) acc.classes[i]! += x.classes[i]!
          for (let i = 0; i < x.hist.length; i++) acc.hist[i]! += x.hist[i]!
          acc.bytes += x.bytes
          acc.cacheHits += x.hits
          acc.cacheMisses += x.misses
          totals.requests += x.classes[0]! + x.classes[1]! + x.classes[2]! + x.classes[3]! + x.classes[4]!
          totals.bytes += x.bytes
          totals.errors += x.classes[4]!
          peerOpen.set(x.w, { open: x.open, at: now() })
          for (const e of x.errors ?? []) {
            errors[errorsNext] = e
            errorsNext = (errorsNext + 1) % RECENT_ERRORS
            if (errorsSize < RECENT_ERRORS) errorsSize++
          }
        })
      : undefined

  const listeners = new Set<(s: Sample) => void>()
  const tick = () => {
    if (unsent !== null) sendSecond()
    const s = series.tick(open[0]! + open[1]! + peerOpenNow(0) + peerOpenNow(1))
    for (const l of listeners) {
      try {
        l(s)
      } catch {
        // a listener's failure is its own
      }
    }
    return s
  }
  const timer = opts.timer === false ? null : setInterval(tick, 1000).unref()

  return {
    connections,
    tick,
    wrapAccessLog(inner) {
      return {
        write(ctx, durationMs) {
          count(ctx, durationMs)
          inner.write(ctx, durationMs)
        },
        flush: () => inner.flush(),
        close: () => inner.close(),
        reopen: () => inner.reopen(),
      }
    },
    prepare(sites, viewsOf) {
      const next = new Map<string, Slot>()
      const keep = (site: string, route: string): Slot => {
        const key = `${site}\n${route}`
        const slot = next.get(key) ?? slots.get(key) ?? new Slot(site, route)
        next.set(key, slot)
        return slot
      }
      for (const site of sites) {
        const label = siteLabel(site)
        siteSlots.set(site, keep(label, 'none'))
        for (const route of site.routes) {
          const slot = keep(label, route.id)
          slot.httpCache = route.handler.kind !== 'static'
          routeSlots.set(route, slot)
        }
      }
      next.set('none\nnone', noSite)
      slots = next
      views = viewsOf
    },
    async render() {
      // the views are read once here; every metric's get() runs within registry.metrics()'s first step
      scraped = takeViews(SCRAPE_TOP)
      const body = await registry.metrics()
      return { contentType: registry.contentType, body }
    },
    async json() {
      scraped = takeViews(SCRAPE_TOP)
      return (await registry.getMetricsAsJSON()) as unknown[]
    },
    series(window) {
      return series.window(window)
    },
    onSample(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    overview() {
      const r = series.last(60)
      const per = (n: number) => (r.seconds > 0 ? n / r.seconds : 0)
      const rt = realtimeOpen(takeViews(0))
      return {
        uptimeSeconds: Math.max(0, (now() - started) / 1000),
        requestsPerSecond: per(r.requests),
        bytesPerSecond: per(r.bytes),
        statusMix: { '1xx': per(r.classes[0]!), '2xx': per(r.classes[1]!), '3xx': per(r.classes[2]!), '4xx': per(r.classes[3]!), '5xx': per(r.classes[4]!) },
        p50: r.p50,
        p95: r.p95,
        p99: r.p99,
        cacheHitRatio: r.cacheHits + r.cacheMisses > 0 ? r.cacheHits / (r.cacheHits + r.cacheMisses) : null,
        errorsPerSecond: per(r.classes[4]!),
        totals: { ...totals },
        connections: { 'http/1.1': open[0]! + peerOpenNow(0), h2: open[1]! + peerOpenNow(1), websocket: rt.websocket + peerOpenNow(2), sse: rt.sse + peerOpenNow(3) },
      }
    },
    security(top) {
      const n = Math.max(0, Math.floor(top))
      const clients = [...rateLimited].map(([client, e]) => ({ client, count: e.count, last: e.last }))
      clients.sort((a, b) => b.count - a.count || b.last - a.last)
      return { refusals: { rateLimit: refusals[0]!, csrf: refusals[1]!, cors: refusals[2]! }, rateLimited: clients.slice(0, n) }
    },
    recentErrors(limit) {
      const n = Math.min(errorsSize, Math.max(0, Math.floor(limit)))
      const out: RecentError[] = []
      for (let k = 1; k <= n; k++) out.push(errors[(errorsNext - k + RECENT_ERRORS) % RECENT_ERRORS]!)
      return out
    },
    reloaded(ok) {
      reloads[ok ? 0 : 1]!++
    },
    close() {
      if (timer) clearInterval(timer)
      stopPeers?.()
      listeners.clear()
    },
  }
}

interface MetricState {
  /** The only process, or worker 1 (see MetricsOptions.peers). */
  readonly lead: boolean
  slots(): Iterable<Slot>
  scraped(): readonly ScrapedView[]
  realtimeOpen(): { websocket: number; sse: number }
  readonly open: Float64Array
  readonly opened: Float64Array
  readonly handshakes: Float64Array
  readonly reloads: Float64Array
  readonly sources: MetricSources
}

/** The values of every slot that has answered: one per slot and cell with a count. */
function perSlot(st: MetricState, each: (slot: Slot, out: Value[]) => void): () => Value[] {
  return () => {
    const out: Value[] = []
    for (const slot of st.slots()) if (slot.count > 0) each(slot, out)
    return out
  }
}

/** The values of every scraped view that has a part: one or more per view. */
function perView(st: MetricState, each: (s: ScrapedView, out: Value[]) => void): () => Value[] {
  return () => {
    const out: Value[] = []
    for (const s of st.scraped()) each(s, out)
    return out
  }
}

/** Edgebox's own metrics (docs/admin.md, "The metrics"), each read from the slots, counters, views and sources at scrape time. */
function edgeboxMetrics(st: MetricState): Metric[] {
  const D = 'edgebox_http_request_duration_seconds'
  const upstream = (name: string, help: string, type: MetricKind, value: (u: UpstreamView) => number) =>
    custom(
      name,
      help,
      type,
      perView(st, (s, out) => {
        for (const u of s.view.upstreams ?? []) out.push({ labels: { route: s.route, upstream: u.id }, value: value(u) })
      }),
      type === 'gauge' ? 'max' : 'sum',
    )
  const cache = (name: string, help: string, type: MetricKind, value: (c: CacheView) => number, whole = false) =>
    custom(name, help, type, perView(st, (s, out) => {
      // a store the workers share holds the node's figures in every worker: worker 1 alone reports them, and the sum is the node's
      if (s.view.cache && !(whole && s.view.cache.shared && !st.lead)) out.push({ labels: { route: s.route }, value: value(s.view.cache) })
    }))
  // channels and their history live in one engine the workers share: a gauge of them is the largest any worker sees
  const realtime = (name: string, help: string, type: MetricKind, value: (r: RealtimeView) => number) =>
    custom(
      name,
      help,
      type,
      perView(st, (s, out) => {
        if (s.view.realtime) out.push({ labels: { route: s.route }, value: value(s.view.realtime) })
      }),
      type === 'gauge' ? 'max' : 'sum',
    )
  return [
    custom('edgebox_http_requests_total', 'HTTP answers by site, route, method and status class.', 'counter', perSlot(st, (slot, out) => {
      for (let m = 0; m < METHODS.length; m++) {
        for (let c = 0; c < CODES.length; c++) {
          const v = slot.requests[m * 5 + c]!
          if (v > 0) out.push({ labels: { site: slot.site, route: slot.route, method: METHODS[m]!, code: CODES[c]! }, value: v })
        }
      }
    })),
    custom(D, 'Time from the request to the end of its answer, by site and route.', 'histogram', perSlot(st, (slot, out) => {
      const labels = { site: slot.site, route: slot.route }
      let cumulative = 0
      for (let b = 0; b < DURATION_LE.length; b++) {
        cumulative += slot.buckets[b]!
        out.push({ metricName: `${D}_bucket`, labels: { ...labels, le: DURATION_LE[b]! }, value: cumulative })
      }
      out.push({ metricName: `${D}_sum`, labels, value: slot.durationMs / 1000 })
      out.push({ metricName: `${D}_count`, labels, value: slot.count })
    })),
    custom('edgebox_http_response_bytes_total', 'Response body bytes sent, by site and route.', 'counter', perSlot(st, (slot, out) => {
      out.push({ labels: { site: slot.site, route: slot.route }, value: slot.bytes })
    })),
    custom('edgebox_open_connections', 'Connections open now: HTTP/1.1 and HTTP/2 connections, and the realtime routes\' WebSocket and SSE connections.', 'gauge', () => {
      const rt = st.realtimeOpen()
      return [
        { labels: { protocol: 'http/1.1' }, value: st.open[0]! },
        { labels: { protocol: 'h2' }, value: st.open[1]! },
        { labels: { protocol: 'websocket' }, value: rt.websocket },
        { labels: { protocol: 'sse' }, value: rt.sse },
      ]
    }),
    custom('edgebox_connections_total', 'Connections accepted, by protocol (HTTP/2: over TLS by ALPN, or cleartext h2c).', 'counter', () => [
      { labels: { protocol: 'http/1.1' }, value: st.opened[0]! },
      { labels: { protocol: 'h2' }, value: st.opened[1]! },
    ]),
    custom('edgebox_tls_handshakes_total', 'TLS handshakes completed, by whether they resumed a session.', 'counter', () => [
      { labels: { resumed: 'false' }, value: st.handshakes[0]! },
      { labels: { resumed: 'true' }, value: st.handshakes[1]! },
    ]),
    custom('edgebox_cache_requests_total', 'Answers a cache took part in, by site, route and outcome.', 'counter', perSlot(st, (slot, out) => {
      for (let k = 0; k < OUTCOMES.length; k++) {
        const v = slot.cache[k]!
        if (v > 0) out.push({ labels: { site: slot.site, route: slot.route, outcome: OUTCOMES[k]! }, value: v })
      }
    })),
    cache('edgebox_cache_objects', 'Responses stored now, by route.', 'gauge', (c) => c.objects, true),
    cache('edgebox_cache_bytes', 'Bytes stored now, by route.', 'gauge', (c) => c.bytes, true),
    cache('edgebox_cache_purged_total', 'Stored responses removed by purges, by route.', 'counter', (c) => c.purges),
    upstream('edgebox_upstream_attempts_total', 'Requests sent to an upstream (each attempt, retries included).', 'counter', (u) => u.attempts),
    upstream('edgebox_upstream_failures_total', 'Attempts to an upstream that failed (connection error, timeout, a failing status).', 'counter', (u) => u.failures),
    upstream('edgebox_upstream_retries_total', 'Attempts to an upstream that retried an earlier failed attempt.', 'counter', (u) => u.retries),
    upstream('edgebox_upstream_healthy', 'Whether the balancer takes the upstream now (1) or not (0).', 'gauge', (u) => (u.healthy ? 1 : 0)),
    upstream('edgebox_upstream_maintenance', 'Whether the operator put the upstream in maintenance (1) or not (0).', 'gauge', (u) => (u.maintenance ? 1 : 0)),
    custom('edgebox_realtime_connections', 'Realtime connections open now, by route and transport.', 'gauge', perView(st, (s, out) => {
      const c = s.view.realtime?.connections
      if (!c) return
      out.push({ labels: { route: s.route, transport: 'websocket' }, value: c.websocket })
      out.push({ labels: { route: s.route, transport: 'sse' }, value: c.sse })
      out.push({ labels: { route: s.route, transport: 'long_poll' }, value: c.longPoll })
    })),
    realtime('edgebox_realtime_channels', 'Channels with subscribers or history now, by route.', 'gauge', (r) => r.channelCount),
    realtime('edgebox_realtime_history_messages', 'Messages kept in history over every channel, by route.', 'gauge', (r) => r.historySize),
    realtime('edgebox_realtime_published_total', 'Messages published, by route.', 'counter', (r) => r.published),
    realtime('edgebox_realtime_delivered_total', 'Messages delivered to subscribers (one per subscriber), by route.', 'counter', (r) => r.delivered),
    custom('edgebox_refusals_total', 'Requests refused by a rate limit, a CSRF check or a CORS policy, by site and route.', 'counter', perSlot(st, (slot, out) => {
      for (let k = 0; k < REFUSALS.length; k++) {
        const v = slot.refusals[k]!
        if (v > 0) out.push({ labels: { site: slot.site, route: slot.route, kind: REFUSALS[k]! }, value: v })
      }
    })),
    custom('edgebox_dns_queries_total', 'DNS queries answered, by query type and response code.', 'counter', () => (st.sources.dnsQueries?.() ?? []).map((q) => ({ labels: { type: q.type, rcode: q.rcode }, value: q.count }))),
    custom('edgebox_gslb_edge_healthy', 'Whether a balanced name\'s edge is healthy (1) or not (0).', 'gauge', () => (st.sources.gslbEdges?.() ?? []).map((e) => ({ labels: { name: e.name, edge: e.edge }, value: e.healthy ? 1 : 0 })), 'max'),
    custom('edgebox_rum_events_total', 'Real-user monitoring: beacons accepted, rows stored, and Sentry items ignored.', 'counter', () => {
      const r = st.sources.rum?.()
      if (!r) return []
      return [
        { labels: { kind: 'accepted' }, value: r.accepted },
        { labels: { kind: 'stored' }, value: r.stored },
        { labels: { kind: 'ignored' }, value: r.ignored },
      ]
    }),
    custom('edgebox_rum_dropped_total', 'Real-user monitoring: beacons refused, by reason, and rows dropped (reason "queue": the queue was full or the store failed).', 'counter', () => {
      const r = st.sources.rum?.()
      if (!r) return []
      const out: Value[] = [{ labels: { reason: 'queue' }, value: r.dropped }]
      for (const [reason, n] of Object.entries(r.refused)) out.push({ labels: { reason: reason.replace(/\W+/g, '_') }, value: n })
      return out
    }),
    // every worker reloads: the node's count is one worker's
    custom(
      'edgebox_config_reloads_total',
      'Configuration reloads and loads, by result.',
      'counter',
      () => [
        { labels: { result: 'ok' }, value: st.reloads[0]! },
        { labels: { result: 'refused' }, value: st.reloads[1]! },
      ],
      'max',
    ),
  ]
}
