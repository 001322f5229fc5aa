import type { X509Certificate } from 'node:crypto'
import type { EdgeboxConfig } from '../config/schema.ts'
import { redactSecrets } from '../config/redact.ts'
import { readJson, type BodyLimits } from '../core/body.ts'
import type { Context, Headers } from '../core/context.ts'
import { EdgeboxError } from '../core/errors.ts'
import type { Logger } from '../core/log.ts'
import type { EdgeView, HandlerAdmin, HandlerView, PurgeTarget } from '../core/observe.ts'
import type { BodySink, Handler } from '../core/types.ts'
import type { AccessFilter, AccessTap } from './access-tap.ts'
import type { ConfigChange } from './changes.ts'
import type { Metrics } from './metrics.ts'

/**
 * The admin API (docs/admin.md, "The admin API"): JSON under `/api/v1/`,
 * answered on the admin listener only, after its access check. The server
 * hands it what it shows (AdminSources): this module never reaches into the
 * server, the handler modules or the CLI.
 *
 * Reads are GET (and HEAD); what changes something is POST only, with a
 * JSON body of bounded size (RFC 9110 §9.3.3); a method a path does not
 * take is 405 with `Allow` (RFC 9110 §15.5.6). Every answer is JSON with
 * `Cache-Control: no-store`, every refusal `{"error": "<why>"}` with the
 * status that says what went wrong; a bad parameter is 400 naming it.
 */

/** Where the API lives on the admin listener. */
export const API_PREFIX = '/api/v1/'
/** The largest body of a switch (purge, maintenance); `load` takes `limits.maxBodySize`. */
export const SMALL_BODY = 64 * 1024
/** A live access log stream whose client has this much unread is cut: a client that stops reading never holds requests back. */
export const STREAM_BUFFER = 256 * 1024
/** The keep-alive comment of the live access log, so that idle intermediaries do not cut it (as the realtime hub's SSE). */
export const STREAM_KEEPALIVE = 15_000
/** How long the live access log gathers lines before one write (ms): a busy server makes one write per stream per batch, not one per answer. */
export const STREAM_BATCH = 100

/** A route whose handler shows something (HandlerAdmin), with its labels. */
export interface AdminRouteView {
  /** The site's id (`sites[0]`) and hosts. */
  readonly site: string
  readonly hosts: readonly string[]
  /** The route's id (`sites[0].routes[1]`) and path prefix. */
  readonly route: string
  readonly path: string
  readonly admin: HandlerAdmin
}


/** What a configuration switch ended in: applied (with what changed), or refused with its problems and nothing changed. */
export type ApplyResult = { readonly ok: true; readonly change: ConfigChange } | { readonly ok: false; readonly problems: readonly string[] }

/** A question asked of Edgebox's own DNS, and its answer as text. */
export interface DnsAnswerText {
  readonly question: { readonly name: string; readonly type: string }
  readonly rcode: string
  readonly answer: readonly string[]
  readonly authority: readonly string[]
  readonly additional: readonly string[]
  /** How the responder found the answer (zone steps, a balanced name's choice), or why it gave none. */
  readonly explain: readonly string[]
}

/** What the server hands the API. Each read is of the configuration in force now. */
export interface AdminSources {
  config(): EdgeboxConfig
  /** The last reloads and loads, newest first. */
  changes(): readonly ConfigChange[]
  /** Reads the configuration file again (or re-provisions the one in force) and switches to it. */
  reload(): Promise<ApplyResult>
  /** Validates, provisions and switches to a whole configuration given as JSON. */
  load(input: unknown): Promise<ApplyResult>
  /** The request body limits in force (`limits`). */
  limits(): BodyLimits
  readonly metrics: Pick<Metrics, 'overview' | 'series' | 'security' | 'recentErrors'>
  /** Every route whose handler shows something. */
  views(): readonly AdminRouteView[]
  /** Puts an upstream of a route in maintenance or back; kept across reloads. */
  upstreamMaintenance(route: string, upstream: string, on: boolean): 'ok' | 'no route' | 'no upstream'
  /** The balanced names' edges, or null without `dns`. */
  edges(): readonly EdgeView[] | null
  /** Puts an edge of a balanced name in maintenance or back; kept across reloads. null: no `dns`. */
  edgeMaintenance(name: string, edge: string, on: boolean): 'ok' | 'no edge' | null
  /** The certificates in force (the configuration's, the local authority's, ACME's). */
  certificates(): readonly { readonly id: string; readonly names: readonly string[]; readonly cert: X509Certificate }[]
  readonly tap: AccessTap
  /** A query of real-user monitoring (src/rum/api.ts's endpoints); null when no site has `rum`. */
  rum(endpoint: string, query: URLSearchParams): Promise<{ readonly status: number; readonly body: unknown }> | null
  /** The DNS zones, or null without `dns`. */
  zones(): readonly { readonly origin: string; readonly serial: number; readonly records: number }[] | null
  /** Asks Edgebox's own responder one question; null without `dns`; a string: the question is not valid (why). */
  dnsQuery(name: string, type: string): Promise<DnsAnswerText | string> | null
  /** Tells the dashboard's live feed of an operator's action (the admin hub's `events` channel). */
  event?(type: string, data: Readonly<Record<string, unknown>>): void
}

/** A refusal: its status, its message, more fields of the JSON answer, and headers. */
class ApiError extends Error {
  readonly status: number
  readonly extra: Readonly<Record<string, unknown>>
  readonly headers: Readonly<Record<string, string>>
  constructor(status: number, message: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) {
    super(message)
    this.status = status
    this.extra = extra
    this.headers = headers
  }
}

const badParameter = (name: string, problem: string): ApiError => new ApiError(400, `${name}: ${problem}`)
const quoted = (v: string): string => JSON.stringify(v.slice(0, 64))

/** A request's query parameters: each at most once, none the endpoint does not take. */
class Params {
  private readonly values = new Map<string, string>()

  constructor(query: string, known: readonly string[]) {
    for (const [k, v] of new URLSearchParams(query)) {
      if (!known.includes(k)) throw badParameter(k, `unknown parameter (this endpoint takes ${known.length ? known.join(', ') : 'none'})`)
      if (this.values.has(k)) throw badParameter(k, 'given more than once')
      this.values.set(k, v)
    }
  }

  get(name: string): string | undefined {
    return this.values.get(name)
  }

  integer(name: string, min: number, max: number, fallback: number): number {
    const v = this.values.get(name)
    if (v === undefined) return fallback
    if (!/^\d{1,9}$/.test(v) || Number(v) < min || Number(v) > max) throw badParameter(name, `expected a whole number from ${min} to ${max}, not ${quoted(v)}`)
    return Number(v)
  }
}

/** One endpoint: the methods it takes, its query parameters, and its answer. */
interface Endpoint {
  readonly methods: readonly string[]
  readonly params: readonly string[]
  run(ctx: Context, p: Params): unknown
}

const READ = ['GET', 'HEAD'] as const
const WRITE = ['POST'] as const

/** A JSON answer. */
function sendJson(ctx: Context, status: number, body: unknown, headers: Readonly<Record<string, string>> = {}): void {
  const text = `${JSON.stringify(body)}\n`
  ctx.send(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...headers }, text)
}

/** A body's field that must be a non-empty string (at most 2048 characters). */
function text(body: Record<string, unknown>, name: string, optional = false): string | undefined {
  const v = body[name]
  if (v === undefined && optional) return undefined
  if (typeof v !== 'string' || v.length === 0 || v.length > 2048) throw new ApiError(400, `${name}: expected a string of 1 to 2048 characters${v === undefined ? ' (it is missing)' : ''}`)
  return v
}

/** A body's boolean field. */
function flag(body: Record<string, unknown>, name: string): boolean {
  const v = body[name]
  if (typeof v !== 'boolean') throw new ApiError(400, `${name}: expected true or false${v === undefined ? ' (it is missing)' : `, not ${quoted(JSON.stringify(v) ?? String(v))}`}`)
  return v
}

/** The body of a switch: a JSON object with only the fields named. */
async function switchBody(ctx: Context, limits: BodyLimits, fields: readonly string[]): Promise<Record<string, unknown>> {
  const body = await readJson(ctx, limits, SMALL_BODY, 8)
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new ApiError(400, `the body must be a JSON object with ${fields.join(', ')}`)
  for (const k of Object.keys(body)) if (!fields.includes(k)) throw new ApiError(400, `${k}: unknown field (this endpoint takes ${fields.join(', ')})`)
  return body as Record<string, unknown>
}

/** Checks the live access log's filters; a malformed one is a 400 naming it. */
export function accessFilter(p: { get(name: string): string | undefined }): AccessFilter {
  const site = p.get('site')
  const status = p.get('status')
  const path = p.get('path')
  if (site !== undefined && !/^(?:sites\[\d{1,6}\]|[A-Za-z0-9*_.:[\]-]{1,253})$/.test(site)) throw badParameter('site', `expected a host of a site or its id (sites[0]), not ${quoted(site)}`)
  if (status !== undefined && !/^[1-5](?:\d\d|xx|XX)$/.test(status)) throw badParameter('status', `expected a status (404) or a class (4xx), not ${quoted(status)}`)
  if (path !== undefined && (!path.startsWith('/') || path.length > 2048)) throw badParameter('path', `expected a path prefix starting with / (at most 2048 characters), not ${quoted(path)}`)
  return { ...(site !== undefined ? { site } : {}), ...(status !== undefined ? { status: status.toLowerCase() } : {}), ...(path !== undefined ? { path } : {}) }
}

/** Whole days from now to `at` (negative once past). */
const daysUntil = (at: number, now: number): number => Math.floor((at - now) / 86_400_000)

export interface AdminApi extends Handler {
  /** Ends the live access log streams (Edgebox is stopping). */
  drain(): void
}

/** The admin API as a handler of the admin listener's pipeline (its route is `/api/`). */
export function createAdminApi(sources: AdminSources, log: Logger): AdminApi {
  /** The open live access log streams, ended at shutdown. */
  const streams = new Set<() => void>()

  /** The cache routes a purge is for: the one named, or every one. */
  function cacheRoutes(route: string | undefined): AdminRouteView[] {
    const all = sources.views().filter((v) => v.admin.purge !== undefined)
    if (route === undefined) {
      if (all.length === 0) throw new ApiError(404, 'no route has a cache')
      return all
    }
    const one = all.filter((v) => v.route === route)
    if (one.length === 0) throw new ApiError(404, `route: ${quoted(route)} is not a route with a cache (${all.map((v) => v.route).join(', ') || 'none has one'})`)
    return one
  }

  const table: Readonly<Record<string, Endpoint>> = {
    config: { methods: READ, params: [], run: () => ({ config: redactSecrets(sources.config()) }) },
    'config/changes': { methods: READ, params: [], run: () => ({ changes: sources.changes() }) },
    reload: {
      methods: WRITE,
      params: [],
      async run() {
        const r = await sources.reload()
        if (!r.ok) throw new ApiError(422, 'the configuration was refused; the one in force keeps serving', { problems: r.problems })
        return { ok: true, diff: r.change.diff }
      },
    },
    load: {
      methods: WRITE,
      params: [],
      async run(ctx) {
        const input = await readJson(ctx, sources.limits(), Number.MAX_SAFE_INTEGER)
        if (input === null || typeof input !== 'object' || Array.isArray(input)) throw new ApiError(400, 'the body must be a whole configuration: a JSON object ({"sites": [...]})')
        const r = await sources.load(input)
        if (!r.ok) throw new ApiError(422, 'the configuration was refused; the one in force keeps serving', { problems: r.problems })
        return { ok: true, diff: r.change.diff }
      },
    },
    overview: { methods: READ, params: [], run: () => ({ ...sources.metrics.overview(), accessLogStreams: { open: sources.tap.stats.open, cut: sources.tap.stats.cut } }) },
    series: {
      methods: READ,
      params: ['window'],
      run(_ctx, p) {
        const window = p.get('window') ?? '1h'
        if (window !== '1h' && window !== '1d') throw badParameter('window', `expected 1h or 1d, not ${quoted(window)}`)
        const { step, samples } = sources.metrics.series(window)
        const names = ['requests', 's2xx', 's3xx', 's4xx', 's5xx', 'p50', 'p95', 'p99', 'bytes', 'cacheHits', 'cacheMisses', 'connections'] as const
        const series: Record<string, number[]> = {}
        for (const n of names) series[n] = samples.map((s) => s[n])
        return { window, step, start: samples[0]?.at ?? null, series }
      },
    },
    cache: {
      methods: READ,
      params: ['top'],
      run(_ctx, p) {
        return { routes: showing('cache', p.integer('top', 1, 1000, 20)).map(({ part, ...r }) => ({ ...r, view: part })) }
      },
    },
    'cache/purge': {
      methods: WRITE,
      params: [],
      async run(ctx) {
        const body = await switchBody(ctx, sources.limits(), ['route', 'host', 'url', 'prefix', 'tag'])
        const route = text(body, 'route', true)
        const host = text(body, 'host')!.toLowerCase()
        const given = (['url', 'prefix', 'tag'] as const).filter((k) => body[k] !== undefined)
        if (given.length !== 1) throw new ApiError(400, `give exactly one of url, prefix, tag (${given.length ? `got ${given.join(', ')}` : 'none given'})`)
        const kind = given[0]!
        const value = text(body, kind)!
        if (kind !== 'tag' && !value.startsWith('/')) throw new ApiError(400, `${kind}: expected a path starting with / (the host goes in host), not ${quoted(value)}`)
        const target: PurgeTarget = kind === 'url' ? { url: value } : kind === 'prefix' ? { prefix: value } : { tag: value }
        let purged = 0
        const routes = cacheRoutes(route)
        for (const v of routes) purged += v.admin.purge!(target, host)
        sources.event?.('purge', { host, [kind]: value, purged, routes: routes.map((v) => v.route) })
        return { purged, routes: routes.map((v) => v.route) }
      },
    },
    upstreams: {
      methods: READ,
      params: [],
      run() {
        return { routes: showing('upstreams', 20).map(({ part, ...r }) => ({ ...r, upstreams: part })) }
      },
    },
    'upstreams/maintenance': {
      methods: WRITE,
      params: [],
      async run(ctx) {
        const body = await switchBody(ctx, sources.limits(), ['route', 'upstream', 'on'])
        const route = text(body, 'route')!
        const upstream = text(body, 'upstream')!
        const on = flag(body, 'on')
        const r = sources.upstreamMaintenance(route, upstream, on)
        if (r === 'no route') throw new ApiError(404, `route: ${quoted(route)} is not a route with upstreams (GET /api/v1/upstreams lists them)`)
        if (r === 'no upstream') throw new ApiError(404, `upstream: ${quoted(upstream)} is not an upstream of ${route}`)
        sources.event?.('maintenance', { route, upstream, on })
        return { route, upstream, maintenance: on }
      },
    },
    edges: {
      methods: READ,
      params: [],
      run() {
        const edges = sources.edges()
        if (edges === null) throw new ApiError(404, 'no dns section: there are no balanced names')
        return { names: groupEdges(edges) }
      },
    },
    'edges/maintenance': {
      methods: WRITE,
      params: [],
      async run(ctx) {
        const body = await switchBody(ctx, sources.limits(), ['name', 'edge', 'on'])
        const name = text(body, 'name')!
        const edge = text(body, 'edge')!
        const on = flag(body, 'on')
        const r = sources.edgeMaintenance(name, edge, on)
        if (r === null) throw new ApiError(404, 'no dns section: there are no balanced names')
        if (r === 'no edge') throw new ApiError(404, `edge: ${quoted(edge)} is not an edge of the balanced name ${quoted(name)} (GET /api/v1/edges lists them)`)
        sources.event?.('maintenance', { name, edge, on })
        return { name, edge, maintenance: on }
      },
    },
    realtime: {
      methods: READ,
      params: ['top'],
      run(_ctx, p) {
        return { routes: showing('realtime', p.integer('top', 1, 1000, 20)).map(({ part, ...r }) => ({ ...r, view: part })) }
      },
    },
    security: {
      methods: READ,
      params: ['top'],
      run: (_ctx, p) => sources.metrics.security(p.integer('top', 1, 1000, 20)),
    },
    tls: {
      methods: READ,
      params: [],
      run() {
        const now = Date.now()
        const certificates = sources.certificates().map(({ id, names, cert }) => {
          const notAfter = Date.parse(cert.validTo)
          return { id, names, subject: cert.subject, issuer: cert.issuer, notBefore: new Date(Date.parse(cert.validFrom)).toISOString(), notAfter: new Date(notAfter).toISOString(), daysLeft: daysUntil(notAfter, now) }
        })
        certificates.sort((a, b) => a.daysLeft - b.daysLeft)
        return { certificates }
      },
    },
    errors: {
      methods: READ,
      params: ['limit'],
      run: (_ctx, p) => ({ errors: sources.metrics.recentErrors(p.integer('limit', 1, 200, 50)) }),
    },
    'access-log': {
      methods: READ,
      params: ['site', 'status', 'path'],
      run(ctx, p) {
        const filter = accessFilter(p)
        liveAccessLog(ctx, filter)
        return undefined
      },
    },
    dns: {
      methods: READ,
      params: [],
      run() {
        const zones = sources.zones()
        if (zones === null) throw new ApiError(404, 'no dns section in the configuration')
        return { zones, balanced: groupEdges(sources.edges() ?? []) }
      },
    },
    'dns/zones': {
      methods: READ,
      params: [],
      run() {
        const zones = sources.zones()
        if (zones === null) throw new ApiError(404, 'no dns section in the configuration')
        return { zones }
      },
    },
    'dns/balanced': {
      methods: READ,
      params: [],
      run() {
        const edges = sources.edges()
        if (edges === null) throw new ApiError(404, 'no dns section in the configuration')
        return { names: groupEdges(edges) }
      },
    },
    'dns/query': {
      methods: READ,
      params: ['name', 'type'],
      async run(_ctx, p) {
        const name = p.get('name')
        if (name === undefined || name === '') throw badParameter('name', 'required: the name to ask about (name=www.example.com)')
        const asked = sources.dnsQuery(name, p.get('type') ?? 'A')
        if (asked === null) throw new ApiError(404, 'no dns section in the configuration')
        const r = await asked
        if (typeof r === 'string') throw new ApiError(400, r)
        return r
      },
    },
  }

  /** Every route whose handler shows `part` of its view (a cache, upstreams, a realtime hub), with that part. */
  function showing<K extends keyof HandlerView>(part: K, top: number): { route: string; site: string; path: string; part: NonNullable<HandlerView[K]> }[] {
    const out = []
    for (const v of sources.views()) {
      const got = v.admin.view(top)[part]
      if (got !== undefined) out.push({ route: v.route, site: v.site, path: v.path, part: got as NonNullable<HandlerView[K]> })
    }
    return out
  }

  /** `event: access` lines of JSON, one per answer the filter keeps, until the client leaves or stops reading. */
  function liveAccessLog(ctx: Context, filter: AccessFilter): void {
    const headers: Headers = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', 'x-accel-buffering': 'no' }
    if (ctx.isHead) return ctx.send(200, headers)
    const tap = sources.tap
    let sink: BodySink | null = null
    let stop: () => void = () => {}
    let timer: NodeJS.Timeout | undefined
    let over = false
    const end = () => {
      over = true
      stop()
      clearInterval(timer)
      clearTimeout(batch)
      streams.delete(finish)
    }
    /** Shutdown: the stream ends cleanly, and an EventSource reconnects. */
    const finish = () => {
      if (over) return
      flush()
      if (over) return
      sink?.data(Buffer.from(': server shutting down\n\n'))
      end()
      sink?.end()
    }
    /** Lines not yet handed to the socket: written together every STREAM_BATCH ms, not one write per answer. */
    let pending = ''
    let batch: NodeJS.Timeout | undefined
    const flush = () => {
      batch = undefined
      if (over || !sink || pending === '') return
      const chunk = pending
      pending = ''
      sink.data(Buffer.from(chunk))
      // whatever the socket holds unsent: past the bound, the client is not reading, and the stream is cut
      if (ctx.res.writableLength > STREAM_BUFFER) cut(ctx.res.writableLength)
    }
    const cut = (unsent: number) => {
      tap.stats.cut++
      log.warn({ client: ctx.clientAddress, unsent }, 'a live access log stream was cut: its client does not read')
      end()
      pending = ''
      sink?.error(new Error(`the live access log's client does not read: ${unsent} bytes unsent`))
    }
    const write = (chunk: string) => {
      if (over || !sink) return
      pending += chunk
      if (pending.length + ctx.res.writableLength > STREAM_BUFFER) return flush()
      batch ??= setTimeout(flush, STREAM_BATCH)
    }
    streams.add(finish)
    ctx.relay(200, headers, {
      attach(s) {
        sink = s
        write(`retry: 2000\n: the live access log${Object.keys(filter).length ? ` (${new URLSearchParams(filter as Record<string, string>).toString()})` : ''}\n\n`)
        if (over) return
        // the line ends in its newline: one more ends the event
        stop = tap.subscribe(filter, (line) => write(`event: access\ndata: ${line}\n`))
        timer = setInterval(() => write(': keep-alive\n\n'), STREAM_KEEPALIVE)
        timer.unref()
      },
      resume() {},
      destroy() {
        end()
      },
    })
  }

  /** Answers one request under /api/v1/. */
  async function serve(ctx: Context): Promise<void> {
    const path = ctx.path
    const name = path.startsWith(API_PREFIX) ? path.slice(API_PREFIX.length) : ''
    // real-user monitoring's queries, as its own API answers them
    if (name.startsWith('rum/')) return rum(ctx, name.slice(4))
    const endpoint = Object.hasOwn(table, name) ? table[name] : undefined
    if (!endpoint) throw new ApiError(404, `no ${path.slice(0, 200)} here (the admin API is under ${API_PREFIX}: ${Object.keys(table).map((k) => API_PREFIX + k).join(', ')}, ${API_PREFIX}rum/...)`)
    allowed(ctx, endpoint.methods)
    const params = new Params(ctx.query.slice(1), endpoint.params)
    const body = await endpoint.run(ctx, params)
    if (body !== undefined) sendJson(ctx, 200, body)
  }

  /** 405 with Allow for a method the path does not take; OPTIONS is answered with Allow (RFC 9110 §9.3.7). */
  function allowed(ctx: Context, methods: readonly string[]): void {
    const allow = [...methods, 'OPTIONS'].join(', ')
    if (ctx.method === 'OPTIONS') throw new ApiError(204, '', {}, { allow })
    if (!methods.includes(ctx.method)) throw new ApiError(405, `${ctx.path.slice(0, 200)} takes ${methods.join(', ')}, not ${ctx.method}${methods.includes('POST') ? ' (it changes something)' : ''}`, {}, { allow: methods.join(', ') })
  }

  async function rum(ctx: Context, endpoint: string): Promise<void> {
    allowed(ctx, READ)
    const asked = sources.rum(endpoint, new URLSearchParams(ctx.query.slice(1)))
    if (asked === null) throw new ApiError(404, 'real-user monitoring is off: no site has rum')
    const r = await asked
    sendJson(ctx, r.status, r.body)
  }

  return {
    kind: 'admin-api',
    // every method comes here: the API answers 405 itself, per path, as JSON
    methods: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'PURGE'],
    async handle(ctx) {
      try {
        await serve(ctx)
      } catch (err) {
        if (ctx.res.headersSent) return ctx.fail(err)
        if (err instanceof ApiError && err.status === 204) return ctx.send(204, { 'cache-control': 'no-store', ...err.headers })
        if (err instanceof ApiError) return sendJson(ctx, err.status, { error: err.message, ...err.extra }, err.headers)
        // the body readers' refusals (415, 413, 400) keep their status and reason
        if (err instanceof EdgeboxError && err.status < 500) return sendJson(ctx, err.status, { error: err.message }, err.headers)
        log.error({ err, path: ctx.path }, 'the admin API failed to answer')
        ctx.error = err
        sendJson(ctx, 500, { error: `the admin API failed to answer: ${(err as Error).message ?? String(err)} (see the log)` })
      }
    },
    drain() {
      for (const finish of [...streams]) finish()
    },
  }
}

/** The balanced names' edges grouped by name, in the DNS's order. */
function groupEdges(edges: readonly EdgeView[]): { name: string; edges: Omit<EdgeView, 'name'>[] }[] {
  const byName = new Map<string, Omit<EdgeView, 'name'>[]>()
  for (const { name, ...edge } of edges) {
    let list = byName.get(name)
    if (!list) byName.set(name, (list = []))
    list.push(edge)
  }
  return [...byName].map(([name, list]) => ({ name, edges: list }))
}
