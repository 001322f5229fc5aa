import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import type { Context } from '../core/context.ts'
import { endpointTable, type Endpoint } from '../core/endpoints.ts'
import { EdgeboxError } from '../core/errors.ts'
import { createForwarding } from '../core/forwarding.ts'
import type { AccessLog, Logger } from '../core/log.ts'
import { createPipeline, routeChain, type Arrival, type Pipeline } from '../core/pipeline.ts'
import type { Route, Site } from '../core/route.ts'
import { buildSiteTable, sortRoutes } from '../core/router.ts'
import type { Handler, ResponseFilter, RouteParts, RouteStep } from '../core/types.ts'
import { rawAnswer } from '../http/raw-answer.ts'
import { adminAccess, type AdminVerdict } from './access.ts'
import { createAdminApi, type AdminSources } from './api.ts'

/**
 * The admin listener (docs/admin.md): an HTTP server of its own, on a
 * loopback address unless a token or the sign-on gate is set, never one of the sites'
 * listeners. Every request passes `adminAccess` first; then an Edgebox
 * pipeline of its own (src/core/pipeline.ts) answers it, with one site
 * whose routes are:
 *
 *   /api/      the admin API (src/admin/api.ts)
 *   /metrics   Prometheus's text format
 *   /live/     the dashboard's live feed: a realtime hub of its own (channels `series` and `events`, published by the server only)
 *   /          the dashboard, a single-page app served with the SPA fallback (or a page saying how to build it)
 *
 * The server hands it the handlers of `/live/` and `/` (made by the handler
 * modules) and what the API shows; this module never imports the server,
 * the handler modules or the CLI. HTTP/1.1 only.
 *
 * With the single sign-on gate (`admin.auth`), a request the door sends on
 * to the gate is answered by a second pipeline over the same handlers, whose
 * routes have the gate as their access step and whose site serves the
 * sign-on endpoints (/_edgebox/auth/...): both are the configuration in
 * force's (`signOn`), so that pipeline is made again when a reload makes a
 * new gate. A request with the token takes the first one, without the gate.
 */

export interface AdminOptions {
  readonly host: string
  readonly port: number
  readonly token?: string | undefined
  /** What the admin API reads and switches. */
  readonly sources: AdminSources
  /** Prometheus's text format, rendered at each scrape. */
  readonly metrics: { render(): Promise<{ readonly contentType: string; readonly body: string }> }
  /** The live feed's realtime handler, mounted at `/live/`. */
  readonly live: Handler
  /** The dashboard's static handler (`spa: true`) mounted at `/`; null: the dashboard is not built. */
  readonly dashboard: Handler | null
  readonly log: Logger
  /** A streamed answer that makes no progress for this long is cut (default 60 s). */
  readonly idleTimeout?: number
  /** The sign-on gate (`admin.auth`) of the configuration in force, asked at each request; absent: no gate (the loopback rules). */
  readonly signOn?: (() => AdminSignOn) | undefined
}

/** The single sign-on gate as the admin listener uses it: made by the server for each configuration (src/auth/). */
export interface AdminSignOn {
  /** The gate of one of the admin listener's routes (by its id, `admin.api`): its access step and upgrade check. */
  gate(route: string): RouteParts
  /** The sign-on endpoints (/_edgebox/auth/callback, login, logout...), served on the admin listener's own origin. */
  readonly endpoints: readonly Endpoint[]
}

export interface AdminListener {
  /** `http://127.0.0.1:8082/`, with the port bound. */
  readonly url: string
  readonly port: number
  close(): Promise<void>
}

/**
 * The dashboard's Content-Security-Policy: the strict preset's rules (same-origin scripts, styles, connections and
 * images; data: images for the charts' exports), with no base URL of its own and never framed. The built app has
 * nothing inline (dashboard/build.ts checks), so it needs no nonce.
 */
export const ADMIN_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

/** What the admin listener's answers get: the CSP above, not framed by another page (its buttons purge and drain), no referrer, no sniffing. */
const guard: ResponseFilter = Object.assign(
  function adminHeaders(ctx: Context, headers: Record<string, string | number | string[]>) {
    headers['X-Frame-Options'] = 'DENY'
    // the sign-on pages carry their style inline, under this response's nonce (src/http/page.ts)
    if (headers['content-security-policy'] === undefined) headers['Content-Security-Policy'] ??= ctx.cspNonce ? ADMIN_CSP.replace("style-src 'self'", `style-src 'self' 'nonce-${ctx.cspNonce}'`) : ADMIN_CSP
    headers['Referrer-Policy'] = 'no-referrer'
    headers['X-Content-Type-Options'] = 'nosniff'
  },
  { prepared: { kind: 'constant' } as const },
)

/** A JSON answer of the door itself (the pipeline has not seen the request). */
function refuse(res: http.ServerResponse, method: string, verdict: Extract<AdminVerdict, { ok: false }>): void {
  const text = `${JSON.stringify({ error: verdict.message })}\n`
  res.writeHead(verdict.status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...verdict.headers })
  res.end(method === 'HEAD' ? undefined : text)
}

/** `/metrics`: Prometheus's text format (GET and HEAD). */
function metricsHandler(metrics: AdminOptions['metrics']): Handler {
  return {
    kind: 'admin-metrics',
    methods: ['GET', 'HEAD'],
    async handle(ctx) {
      const { contentType, body } = await metrics.render()
      ctx.send(200, { 'content-type': contentType, 'cache-control': 'no-store' }, body)
    },
  }
}

/** `/` when the dashboard was not built: a page saying how to build it. */
export const NOT_BUILT_PAGE =
  '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Edgebox admin</title></head>\n<body><h1>The dashboard is not built</h1>\n' +
  '<p>The admin API (<a href="/api/v1/overview">/api/v1/overview</a>) and the metrics (<a href="/metrics">/metrics</a>) answer; the dashboard needs building once: run <code>npm run build:dashboard</code> in the Edgebox folder (it writes <code>dist/dashboard</code>), then open this page again.</p>\n</body></html>\n'

function notBuiltHandler(): Handler {
  return {
    kind: 'admin-dashboard-missing',
    methods: ['GET', 'HEAD'],
    handle(ctx) {
      ctx.send(503, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'content-security-policy': "default-src 'none'; frame-ancestors 'none'" }, NOT_BUILT_PAGE)
    },
  }
}

/** The admin site: its routes as core Route objects, longest prefix first; with a sign-on gate, each route behind it and the sign-on endpoints. */
function adminSite(routes: ReadonlyArray<readonly [prefix: string, id: string, handler: Handler]>, signOn: AdminSignOn | null): Site {
  const built: Route[] = routes.map(([prefix, id, handler]) => {
    const gate = signOn ? routeChain(new Map([['auth', signOn.gate(id)]])) : null
    return { prefix, handler, id, access: gate ? gate.access.map(jsonRefusals) : [], beforeHandler: [], filters: [guard], upgradeChecks: gate ? gate.upgradeChecks : [] }
  })
  return { id: 'admin', hosts: [], routes: sortRoutes(built), filters: [guard], endpoints: endpointTable(signOn ? signOn.endpoints : []) }
}

/**
 * The gate's refusals (401 without a session, a refused bearer token) as the
 * admin listener's other refusals are: JSON, `{"error": "<why>"}`, with the
 * gate's own status and `WWW-Authenticate`. A redirect to sign in and the
 * 403 page of a signed-in user the rules refuse are the gate's own answers.
 */
function jsonRefusals(step: RouteStep): RouteStep {
  const answer = (ctx: Context, err: unknown): true => {
    if (!(err instanceof EdgeboxError) || err.status >= 500) throw err
    ctx.send(err.status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...err.headers }, `${JSON.stringify({ error: err.message })}\n`)
    return true
  }
  return (ctx) => {
    try {
      const r = step(ctx)
      return r instanceof Promise ? r.catch((err: unknown) => answer(ctx, err)) : r
    } catch (err) {
      return answer(ctx, err)
    }
  }
}

/** The admin listener writes no access log: its own requests are not the sites' traffic (nor their metrics). */
const NO_ACCESS_LOG: AccessLog = { write() {}, flush() {}, close: async () => {}, reopen() {} }

export async function startAdmin(opts: AdminOptions): Promise<AdminListener> {
  let port = opts.port
  let closing = false
  const api = createAdminApi(opts.sources, opts.log)
  const routes = [
    ['/api/', 'admin.api', api],
    ['/metrics', 'admin.metrics', metricsHandler(opts.metrics)],
    ['/live/', 'admin.live', opts.live],
    ['/', 'admin.dashboard', opts.dashboard ?? notBuiltHandler()],
  ] as const
  const pipelineOf = (site: Site): Pipeline =>
    createPipeline({
      sites: buildSiteTable([site], 0),
      filters: [guard],
      accessLog: NO_ACCESS_LOG,
      log: opts.log,
      streamIdleTimeout: opts.idleTimeout ?? 60_000,
      forwarding: createForwarding({ trustedProxies: [], clientAddressHeader: 'x-forwarded-for' }),
      isShuttingDown: () => closing,
    })
  const pipeline = pipelineOf(adminSite(routes, null))
  /** The pipeline behind the sign-on gate of the configuration in force: made again when a reload brings a new gate. */
  let gated: { readonly signOn: AdminSignOn; readonly pipeline: Pipeline } | null = null
  const gatedPipeline = (): Pipeline => {
    const signOn = opts.signOn!()
    if (gated?.signOn !== signOn) gated = { signOn, pipeline: pipelineOf(adminSite(routes, signOn)) }
    return gated.pipeline
  }
  const pipelineFor = (verdict: AdminVerdict): Pipeline => (verdict.ok && verdict.signOn ? gatedPipeline() : pipeline)
  /** The one door: every request and every upgrade passes it before the pipeline sees it. */
  const check = (req: http.IncomingMessage): AdminVerdict =>
    adminAccess({ method: req.method ?? 'GET', headers: req.headers, peer: req.socket.remoteAddress ?? '', url: req.url }, { port, token: opts.token, signOn: opts.signOn !== undefined })
  const arrival = (req: http.IncomingMessage, expectContinue = false): Arrival => ({ protocol: `http/${req.httpVersion}`, expectContinue })
  const serve = (req: http.IncomingMessage, res: http.ServerResponse, expectContinue = false) => {
    const method = req.method ?? 'GET'
    try {
      const verdict = check(req)
      if (!verdict.ok) return refuse(res, method, verdict)
      pipelineFor(verdict).handle(req, res, arrival(req, expectContinue))
    } catch (err) {
      opts.log.error({ err }, 'the admin listener failed to answer')
      if (!res.headersSent) refuse(res, method, { ok: false, status: 500 as 401, message: 'the admin listener failed to answer (see the log)', headers: {} })
      else res.destroy()
    }
  }
  const server = http.createServer({ requireHostHeader: false, shouldUpgradeCallback: (req) => pipeline.acceptsUpgrade(req) }, (req, res) => serve(req, res))
  server.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => serve(req, res, true))
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const verdict = check(req)
    if (!verdict.ok) return void socket.end(rawAnswer(verdict.status, { ...verdict.headers, 'Content-Type': 'application/json; charset=utf-8' }, `${JSON.stringify({ error: verdict.message })}\n`))
    // a WebSocket is opened by pages of any origin, with a GET: only the admin listener's own pages may (RFC 6455 §10.2)
    const origin = req.headers.origin
    if (origin !== undefined && origin !== `http://${req.headers.host ?? ''}`) return void socket.end(rawAnswer(403, { 'Content-Type': 'application/json; charset=utf-8' }, `${JSON.stringify({ error: `a WebSocket needs Origin: http://${req.headers.host ?? ''} (it has ${JSON.stringify(origin.slice(0, 80))})` })}\n`))
    pipelineFor(verdict).upgrade(req, socket, head)
  })
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
    else socket.destroy()
  })
  server.keepAliveTimeout = 5_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  port = (server.address() as AddressInfo).port
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host
  let closed: Promise<void> | undefined
  return {
    url: `http://${host}:${port}/`,
    port,
    close() {
      closed ??= new Promise<void>((resolve) => {
        closing = true
        // long-lived answers end cleanly first (the live feed, the live access log), then the connections
        api.drain()
        opts.live.drain?.()
        const cut = setTimeout(() => server.closeAllConnections(), 1_000)
        server.close(() => {
          clearTimeout(cut)
          resolve()
        })
        server.closeIdleConnections()
      })
      return closed
    },
  }
}
