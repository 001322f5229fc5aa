import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Clock } from '../core/clock.ts'
import type { Logger } from '../core/log.ts'
import { safeEqual } from '../core/secrets.ts'
import type { RumCounters } from './retention.ts'
import { PV, VITAL_NAMES } from './schema.ts'
import { GROUPINGS, type ApiCallSort, type RumGrouping, type RumMetric, type RumStore, type TimeWindow } from './store.ts'

/**
 * The query API of real-user monitoring (docs/monitoring.md): JSON over
 * HTTP on a listener of its own, on a loopback address only (the schema
 * refuses any other), never on a site's listener: it carries every page's
 * data. Every request needs `Authorization: Bearer <rum.api.token>`
 * (RFC 6750 §2.1); GET and HEAD only; every answer `Cache-Control: no-store`.
 *
 *   GET /rum/v1/percentiles?metric=LCP&by=page&since=&until=&bucket=
 *   GET /rum/v1/histogram?metric=INP&by=device&key=mobile
 *   GET /rum/v1/breakdown?page=/docs/intro
 *   GET /rum/v1/api-calls?sort=slowest|failing&limit=
 *   GET /rum/v1/errors?limit=
 *   GET /rum/v1/page-views?pv=&limit=
 *   GET /rum/v1/stats
 *
 * `since` and `until` (ms since the epoch, or an ISO 8601 date) default to
 * the last 24 hours; a bad or unknown parameter gets 400 naming it.
 */

/** Where every endpoint lives. */
export const API_PREFIX = '/rum/v1/'
/** The realm of the API's challenge (RFC 6750 §3). */
export const API_REALM = 'edgebox rum'
/** The window when `since` is not given: the last 24 hours before `until`. */
export const DEFAULT_WINDOW = 86_400_000
/** The most rows a list answers with, and its default. */
export const MAX_LIMIT = 1_000
export const DEFAULT_LIMIT = 100
/** The smallest time bucket, and the most buckets one answer may have. */
export const MIN_BUCKET = 1_000
export const MAX_BUCKETS = 10_000

/** What the API reads: the store connection and the counters of the configuration in force. */
export interface RumApiSource {
  readonly store: RumStore
  counters(): RumCounters
}

export interface RumApiOptions {
  /** A loopback address (the configuration's schema allows no other). */
  readonly host: string
  /** 0: a free port. */
  readonly port: number
  readonly token: string
  /** The store and counters now (they change with a reload); null: no site has `rum`. */
  readonly source: () => RumApiSource | null
  readonly clock: Clock
  readonly log: Logger
  /** More counters for `stats`, each under its name, read at each request (another part of Edgebox's own). */
  readonly extraStats?: Readonly<Record<string, () => unknown>> | undefined
}

export interface RumApi {
  /** `http://127.0.0.1:8089/rum/v1/`, with the port bound. */
  readonly url: string
  readonly host: string
  readonly port: number
  /** A reload's new token: the next request is checked with it. */
  setToken(token: string): void
  /** Stops listening and ends every connection. */
  close(): Promise<void>
}

/** A refusal: the status, the message, and headers of its own. */
class ApiError extends Error {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  constructor(status: number, message: string, headers: Record<string, string> = {}) {
    super(message)
    this.status = status
    this.headers = headers
  }
}

/** A bad parameter: 400 naming it. */
const badParameter = (name: string, problem: string): ApiError => new ApiError(400, `${name}: ${problem}`)

/** The parameters of one request: each at most once, none the endpoint does not know. */
class Params {
  private readonly values: Map<string, string>

  constructor(query: URLSearchParams, known: readonly string[]) {
    this.values = new Map()
    for (const [k, v] of query) {
      if (!known.includes(k)) throw badParameter(k, `unknown parameter${known.length ? ` (this endpoint takes ${known.join(', ')})` : ' (this endpoint takes none)'}`)
      if (this.values.has(k)) throw badParameter(k, 'given more than once')
      this.values.set(k, v)
    }
  }

  get(name: string): string | undefined {
    return this.values.get(name)
  }

  /** One of a list of words. */
  oneOf<T extends string>(name: string, allowed: readonly T[], fallback?: T): T {
    const v = this.values.get(name)
    if (v === undefined) {
      if (fallback !== undefined) return fallback
      throw badParameter(name, `required: one of ${allowed.join(', ')}`)
    }
    if (!(allowed as readonly string[]).includes(v)) throw badParameter(name, `expected one of ${allowed.join(', ')}, not ${JSON.stringify(v.slice(0, 64))}`)
    return v as T
  }

  /** A whole number within [min, max]. */
  integer(name: string, min: number, max: number, fallback?: number): number | undefined {
    const v = this.values.get(name)
    if (v === undefined) return fallback
    if (!/^\d{1,16}$/.test(v) || Number(v) < min || Number(v) > max) throw badParameter(name, `expected a whole number from ${min} to ${max}, not ${JSON.stringify(v.slice(0, 64))}`)
    return Number(v)
  }

  /** A time: ms since the epoch, or an ISO 8601 date (`2026-12-01`, `2026-12-01T10:00:00Z`). */
  time(name: string): number | undefined {
    const v = this.values.get(name)
    if (v === undefined) return undefined
    if (/^\d{1,16}$/.test(v)) return Number(v)
    const t = /^\d{4}-\d{2}-\d{2}(?:T[\d:.]+(?:Z|[+-]\d{2}:\d{2})?)?$/.test(v) ? Date.parse(v) : NaN
    if (Number.isNaN(t)) throw badParameter(name, `expected ms since the epoch or an ISO 8601 date, not ${JSON.stringify(v.slice(0, 64))}`)
    return t
  }

  /** The window: `until` (default now) and `since` (default 24 hours before it), since before until. */
  window(now: number): TimeWindow {
    const until = this.time('until') ?? now
    const since = this.time('since') ?? until - DEFAULT_WINDOW
    if (since >= until) throw badParameter('since', `must be before until (${since} >= ${until})`)
    return { since, until }
  }
}

/** `[::1]` for an IPv6 address in a URL. */
const hostInUrl = (host: string): string => (host.includes(':') ? `[${host}]` : host)

/** What each endpoint takes besides `since` and `until`, and how it answers. */
type Endpoint = (p: Params, source: RumApiSource, now: number) => Promise<unknown>

const WINDOW = ['since', 'until']

function endpoints(extraStats: Readonly<Record<string, () => unknown>>): Record<string, { readonly params: readonly string[]; readonly run: Endpoint }> {
  return {
    percentiles: {
      params: ['metric', 'by', 'bucket', ...WINDOW],
      async run(p, { store }, now) {
        const metric = p.oneOf<RumMetric>('metric', VITAL_NAMES)
        const by = p.oneOf<RumGrouping>('by', GROUPINGS, 'none')
        const w = p.window(now)
        const bucket = p.integer('bucket', MIN_BUCKET, Number.MAX_SAFE_INTEGER)
        if (bucket !== undefined && (w.until - w.since) / bucket > MAX_BUCKETS) throw badParameter('bucket', `too small for the window: at most ${MAX_BUCKETS} buckets (${Math.ceil((w.until - w.since) / MAX_BUCKETS)} ms or more)`)
        const rows = await store.percentiles({ ...w, metric, by, bucket })
        return { metric, by, ...w, ...(bucket === undefined ? {} : { bucket }), rows }
      },
    },
    histogram: {
      params: ['metric', 'by', 'key', ...WINDOW],
      async run(p, { store }, now) {
        const metric = p.oneOf<RumMetric>('metric', VITAL_NAMES)
        const w = p.window(now)
        // one group's rows only: by and key together (by=device&key=mobile)
        const key = p.get('key')
        const by = p.get('by') === undefined ? undefined : p.oneOf<Exclude<RumGrouping, 'none'>>('by', GROUPINGS.filter((g): g is Exclude<RumGrouping, 'none'> => g !== 'none'))
        if ((by === undefined) !== (key === undefined)) throw badParameter(key === undefined ? 'key' : 'by', 'by and key go together: by=device&key=mobile')
        if (key !== undefined && (key.length === 0 || key.length > 2048)) throw badParameter('key', 'expected 1 to 2048 characters')
        const of = by !== undefined && key !== undefined ? { by, key } : undefined
        return { ...w, ...(of ? { by: of.by, key: of.key } : {}), ...(await store.histogram({ ...w, metric, of })) }
      },
    },
    breakdown: {
      params: ['page', ...WINDOW],
      async run(p, { store }, now) {
        const page = p.get('page')
        if (page !== undefined && (page === '' || page.length > 2048)) throw badParameter('page', 'expected a page (a path or URL) of 1 to 2048 characters')
        const w = p.window(now)
        return { ...w, ...(page === undefined ? {} : { page }), pages: await store.breakdown({ ...w, page }) }
      },
    },
    'api-calls': {
      params: ['sort', 'limit', ...WINDOW],
      async run(p, { store }, now) {
        const sort = p.oneOf<ApiCallSort>('sort', ['slowest', 'failing'], 'slowest')
        const limit = p.integer('limit', 1, MAX_LIMIT, DEFAULT_LIMIT)!
        const w = p.window(now)
        return { ...w, sort, calls: await store.apiCalls({ ...w, sort, limit }) }
      },
    },
    errors: {
      params: ['limit', ...WINDOW],
      async run(p, { store }, now) {
        const limit = p.integer('limit', 1, MAX_LIMIT, DEFAULT_LIMIT)!
        const w = p.window(now)
        return { ...w, groups: await store.errorGroups({ ...w, limit }) }
      },
    },
    'page-views': {
      params: ['pv', 'limit', ...WINDOW],
      async run(p, { store }, now) {
        const pv = p.get('pv')
        if (pv !== undefined && !PV.test(pv)) throw badParameter('pv', 'expected a page-view id: 1 to 64 of [A-Za-z0-9_-]')
        const limit = p.integer('limit', 1, MAX_LIMIT, DEFAULT_LIMIT)!
        const w = p.window(now)
        return { ...w, ...(pv === undefined ? {} : { pv }), pageViews: await store.pageViews({ ...w, pv, limit }) }
      },
    },
    stats: {
      params: [],
      async run(_p, source) {
        const c = source.counters()
        const extra: Record<string, unknown> = {}
        for (const [name, read] of Object.entries(extraStats)) extra[name] = read()
        return { ...c.collector, refused: { ...c.collector.refused }, swept: c.swept, sweptByAge: c.sweptByAge, sweptBySize: c.sweptBySize, lastSweep: c.lastSweep, storeBytes: await source.store.size(), ...extra }
      },
    },
  }
}

/**
 * One query by its endpoint's name (`percentiles`) and its parameters, as
 * this API answers it, for another listener that answers the same questions
 * (the admin API's `/api/v1/rum/...`, docs/admin.md): the status and the
 * JSON body (`{ error }` for a refusal).
 */
export async function queryRum(name: string, query: URLSearchParams, source: RumApiSource, now: number, extraStats: Readonly<Record<string, () => unknown>> = {}): Promise<{ status: number; body: unknown }> {
  const table = endpoints(extraStats)
  const endpoint = Object.hasOwn(table, name) ? table[name] : undefined
  if (endpoint === undefined) return { status: 404, body: { error: `no such monitoring query: ${name.slice(0, 200)} (${Object.keys(table).join(', ')})` } }
  try {
    return { status: 200, body: await endpoint.run(new Params(query, endpoint.params), source, now) }
  } catch (err) {
    if (err instanceof ApiError) return { status: err.status, body: { error: err.message } }
    return { status: 500, body: { error: `the monitoring store failed: ${(err as Error).message}` } }
  }
}

/** Writes a JSON answer (HEAD: its fields only). */
function answer(req: http.IncomingMessage, res: http.ServerResponse, status: number, body: unknown, headers: Readonly<Record<string, string>> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...headers,
  })
  res.end(req.method === 'HEAD' ? undefined : text)
}

/** The token of `Authorization: Bearer <token>` (the scheme in any case, RFC 9110 §11.1), or undefined. */
function bearerOf(header: string | undefined): string | undefined {
  const m = header === undefined ? null : /^Bearer +(\S+) *$/i.exec(header)
  return m ? m[1] : undefined
}

/** Starts the API on its address; rejects when it cannot listen there (the port taken...). */
export async function startRumApi(opts: RumApiOptions): Promise<RumApi> {
  let token = opts.token
  const table = endpoints(opts.extraStats ?? {})
  const { log, clock } = opts

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    try {
      // RFC 6750 §3: a challenge; with a token that was given and is wrong, error="invalid_token"
      const given = bearerOf(req.headers.authorization)
      if (given === undefined || !safeEqual(given, token)) {
        const challenge = `Bearer realm="${API_REALM}"${given === undefined ? '' : ', error="invalid_token"'}`
        throw new ApiError(401, given === undefined ? 'Authorization: Bearer <rum.api.token> is required' : 'the bearer token is not rum.api.token', { 'www-authenticate': challenge })
      }
      // RFC 9110 §9.1: GET and HEAD; §15.5.6: 405 names them in Allow
      if (req.method !== 'GET' && req.method !== 'HEAD') throw new ApiError(405, `${req.method} is not allowed: the query API only reads (GET)`, { allow: 'GET, HEAD' })
      const target = req.url ?? '/'
      const q = target.indexOf('?')
      const path = q === -1 ? target : target.slice(0, q)
      const name = path.startsWith(API_PREFIX) ? path.slice(API_PREFIX.length) : ''
      const endpoint = Object.hasOwn(table, name) ? table[name] : undefined
      if (endpoint === undefined) throw new ApiError(404, `no such endpoint: ${path.slice(0, 200)} (${Object.keys(table).map((k) => API_PREFIX + k).join(', ')})`)
      let query: URLSearchParams
      try {
        query = new URLSearchParams(q === -1 ? '' : target.slice(q + 1))
      } catch {
        throw new ApiError(400, 'the query string is not valid')
      }
      const params = new Params(query, endpoint.params)
      const source = opts.source()
      if (source === null) throw new ApiError(503, 'real-user monitoring is off: no site has rum')
      let body: unknown
      try {
        body = await endpoint.run(params, source, clock.now())
      } catch (err) {
        if (err instanceof ApiError) throw err
        log.warn({ why: (err as Error).message, path }, 'a monitoring query failed')
        throw new ApiError(500, `the monitoring store failed: ${(err as Error).message}`)
      }
      answer(req, res, 200, body)
    } catch (err) {
      if (res.headersSent) return void res.destroy()
      if (err instanceof ApiError) return answer(req, res, err.status, { error: err.message }, err.headers)
      log.error({ err }, 'the monitoring query API failed')
      answer(req, res, 500, { error: 'internal error' })
    }
  }

  const server = http.createServer({ requestTimeout: 30_000, headersTimeout: 10_000, keepAliveTimeout: 5_000, maxHeaderSize: 16 * 1024 }, (req, res) => {
    void handle(req, res)
  })
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
    else socket.destroy()
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ host: opts.host, port: opts.port }, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const port = (server.address() as AddressInfo).port
  let closing: Promise<void> | undefined
  return {
    url: `http://${hostInUrl(opts.host)}:${port}${API_PREFIX}`,
    host: opts.host,
    port,
    setToken(next) {
      token = next
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
      return closing
    },
  }
}
