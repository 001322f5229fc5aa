import type { Forwarding } from './forwarding.ts'
import { EDGEBOX_PREFIX, serveEndpoint } from './endpoints.ts'
import { rawAnswer } from '../http/raw-answer.ts'
import { performance } from 'node:perf_hooks'
import type { Duplex } from 'node:stream'
import { Context, type ResponseHooks } from './context.ts'
import type { Site } from './route.ts'
import { httpError, type EdgeboxError } from './errors.ts'
import { logRequestError, type AccessLog, type Logger } from './log.ts'
import type { Handler, Req, Res, ResponseFilter, RouteParts, RouteStep, UpgradeCheck } from './types.ts'
import { checkHostCount, h2Authority, parseAuthority, parseRequestTarget, TargetError, type Authority, type RequestTarget } from '../http/target.ts'
import { matchRoute, matchSite, namedSite, type SiteTable } from './router.ts'

/**
 * The request pipeline: every request, whatever its protocol, flows through
 * these phases, in this order, in this one file.
 *
 *   1. accept           a Context per request
 *   2. reject invalid   shutting down (503), HTTP version (505), Expect (417), the one parse of the
 *                       target and Host (src/http/target.ts: 400), methods (501/405), OPTIONS *
 *   3. forward proxy    (forwardProxy.enabled) an absolute-form target for a host that is not ours
 *                       goes to the forward proxy, see isForeign (docs/forward-proxy.md)
 *   4. HTTPS redirect   the listener's, if configured
 *   5. match site       by Host (exact, then wildcard, then the default site)
 *   6. Edgebox's own    /_edgebox/... endpoints of the site (health; core/endpoints.ts)
 *   7. match route      by longest path prefix
 *   8. access control   the route's steps, in ROUTE_STEPS order: rate limit (429), CORS (a preflight
 *                       is answered here), the sign-on gate (302 to a login, 401, 403), JSONP, CSRF (403);
 *                       a step that must wait returns a promise, and the rest follows when it settles
 *   9. method check     OPTIONS (Allow), 405 with Allow
 *  10. handler          after the BEFORE_HANDLER steps (103 Early Hints for a document)
 *  11. response         the route's filters, in RESPONSE_FILTERS order, as the head is written
 *                       (Context.send, stream, relay, sendFile)
 *  12. access log       once the response is handed to the socket (streamed: finished or the client gone)
 *
 * The steps and filters come from the filter modules (src/modules/registry.ts,
 * filterModules); which runs when is decided here, by name. CONNECT never
 * enters `handle`: the listener hands it to `connect` below (the forward
 * proxy when enabled, else 405).
 */

/** Phase 8: the access-control steps a route may have, in the order they run. */
export const ROUTE_STEPS = ['rateLimit', 'cors', 'auth', 'jsonp', 'csrf'] as const
/** Phase 10: steps once the method is allowed, just before the handler. */
export const BEFORE_HANDLER = ['earlyHints'] as const
/**
 * Phase 11: response filters, in the order they run on a response head.
 * JSONP first, so the others see the script it makes of a JSON answer;
 * the RUM SDK's tag (rumInject) before the security headers, so that the
 * strict CSP they add carries the nonce the tag was given; closing a
 * connection during shutdown last.
 */
export const RESPONSE_FILTERS = ['jsonp', 'serverTiming', 'rum', 'rumInject', 'cors', 'headers', 'rateLimit', 'earlyHints', 'trace', 'shutdown'] as const

/** A route's (or, for answers no route gave, a site's) steps and filters, put in the pipeline's order. */
export function routeChain(parts: ReadonlyMap<string, RouteParts>): { access: RouteStep[]; beforeHandler: RouteStep[]; filters: ResponseFilter[]; upgradeChecks: UpgradeCheck[] } {
  for (const name of parts.keys()) {
    if (![...ROUTE_STEPS, ...BEFORE_HANDLER, ...RESPONSE_FILTERS].includes(name as never)) throw new Error(`the pipeline has no place for the filter module ${name}`)
  }
  const steps = (order: readonly string[]) => order.flatMap((name) => parts.get(name)?.step ?? [])
  return {
    access: steps(ROUTE_STEPS),
    beforeHandler: steps(BEFORE_HANDLER),
    filters: RESPONSE_FILTERS.flatMap((name) => parts.get(name)?.filter ?? []),
    upgradeChecks: ROUTE_STEPS.flatMap((name) => parts.get(name)?.upgrade ?? []),
  }
}

/** Methods Edgebox implements itself; others get 501 (RFC 9110 §15.6.2) unless the route's handler takes extension methods (Handler.extensionMethods). */
export const IMPLEMENTED_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'CONNECT', 'PURGE'])

export interface PipelineOptions {
  sites: SiteTable
  /** Filters for responses outside any site (none is matched only before phase 5). */
  filters: readonly ResponseFilter[]
  accessLog: AccessLog
  log: Logger
  /** A streamed response that makes no progress for this long is cut. */
  streamIdleTimeout: number
  /** The one client-address and forwarding service (`trustedProxies`, `clientAddressHeader`). */
  forwarding: Forwarding
  /** Set by the server during graceful shutdown. */
  isShuttingDown(): boolean
  /** The handler that takes CONNECT requests (forward proxy), if one is configured. */
  connectHandler?: () => Handler | undefined
  /** The forward proxy (forwardProxy.enabled): takes absolute-form requests for hosts that are not ours. */
  forwardProxy?: Handler | undefined
  /** With ACME: the key authorization for a pending HTTP-01 token, or undefined. */
  acmeHttp01?: ((token: string) => string | undefined) | undefined
}

/** Before any origin-form target was parsed (never returned: no request target is empty). */
const NO_PATH: RequestTarget = { form: 'origin', scheme: null, authority: null, rawPath: '/', path: '/', encodedPath: '/', query: '' }

/** Where an ACME authority asks for HTTP-01 tokens (RFC 8555 §8.3). */
const ACME_CHALLENGE = '/.well-known/acme-challenge/'

/** What the listener knows about a request before the pipeline sees it. */
export interface Arrival {
  /** `http/1.1`, `http/1.0`, `h2c`, ... */
  readonly protocol: string
  /** The client sent `Expect: 100-continue` and waits for `ctx.continue()`. */
  readonly expectContinue?: boolean
  /** The client sent an Expect value this server does not know (417). */
  readonly badExpectation?: boolean
  /** The listener redirects everything to HTTPS on this port with this status. */
  readonly httpsRedirect?: { readonly port: number; readonly status: number } | undefined
}

export interface Pipeline {
  handle(req: Req, res: Res, arrival: Arrival): void
  /** Whether a request with `Upgrade` goes to an upgrade handler (else it is served as a normal request). */
  acceptsUpgrade(req: Req): boolean
  upgrade(req: Req, socket: Duplex, head: Buffer): void
  connect(req: Req, socket: Duplex, head: Buffer): void
}

export function createPipeline(opts: PipelineOptions): Pipeline {
  const { sites, filters, accessLog, log, isShuttingDown, connectHandler, forwardProxy, streamIdleTimeout, forwarding, acmeHttp01 } = opts

  const hooks: ResponseHooks = {
    filters,
    streamIdleTimeout,
    forwarding,
    finished(ctx) {
      accessLog.write(ctx, performance.now() - ctx.start)
      if (ctx.error) logRequestError(log, ctx)
    },
  }

  function handle(req: Req, res: Res, arrival: Arrival): void {
    // 1. accept
    const protocol = arrival.protocol
    const ctx = new Context(req, res, hooks, protocol, performance.now())
    ctx.expectContinue = arrival.expectContinue === true
    try {
      // 2. reject invalid
      if (isShuttingDown()) throw httpError('EB_ERR_SHUTTING_DOWN', undefined, { 'Retry-After': '5' })
      if (protocol !== 'http/1.1' && protocol !== 'http/1.0' && !protocol.startsWith('h2')) throw httpError('EB_ERR_VERSION')
      if (arrival.badExpectation) throw httpError('EB_ERR_EXPECTATION_FAILED', `Expect: ${String(req.headers.expect)} is not supported`)
      parseTarget(ctx)
      const known = checkMethod(ctx)
      if (ctx.target.form === 'asterisk') return optionsAsterisk(ctx)
      // 3. forward proxy
      if (forwardProxy && ctx.target.form === 'absolute' && isForeign(ctx)) {
        if (!known) throw notImplemented(ctx)
        const done = forwardProxy.handle(ctx)
        if (done) done.catch((err: unknown) => ctx.fail(err))
        return
      }
      // ACME HTTP-01 (RFC 8555 §8.3): the authority's request is answered before any redirect, for any host
      if (acmeHttp01 && ctx.path.startsWith(ACME_CHALLENGE) && (ctx.method === 'GET' || ctx.method === 'HEAD')) {
        const keyAuthorization = acmeHttp01(ctx.path.slice(ACME_CHALLENGE.length))
        if (keyAuthorization !== undefined) return ctx.send(200, { 'content-type': 'application/octet-stream', 'cache-control': 'no-store' }, keyAuthorization)
      }
      // 4. HTTPS redirect
      if (arrival.httpsRedirect) {
        if (!known) throw notImplemented(ctx)
        return redirectToHttps(ctx, arrival.httpsRedirect)
      }
      // 5. match site
      const site = (ctx.site = matchSite(sites, ctx.host))
      if (!site) throw known ? httpError('EB_ERR_NOT_FOUND', `no site for ${ctx.host}`) : notImplemented(ctx)
      // 6. Edgebox's own endpoints
      if (ctx.path.startsWith(EDGEBOX_PREFIX)) {
        if (!known) throw notImplemented(ctx)
        const served = serveEndpoint(ctx, site.endpoints)
        if (served) served.catch((err: unknown) => ctx.fail(err))
        return
      }
      // 7. match route
      if (!route(ctx, site)) throw known ? httpError('EB_ERR_NOT_FOUND', `no route for ${ctx.path}`) : notImplemented(ctx)
      const matched = ctx.route!
      // an extension method (WebDAV's PROPFIND, QUERY, ...) only for a handler that takes any
      if (!known && !matched.handler.extensionMethods) throw notImplemented(ctx)
      // 8. access control
      const access = matched.access
      for (let i = 0; i < access.length; i++) {
        const r = access[i]!(ctx)
        if (r === true) return
        // a step that has to wait (the sign-on gate reading a session): the rest follows when it settles
        if (r !== undefined && r !== false) return resume(ctx, r, access, i + 1, known, afterAccess)
      }
      afterAccess(ctx, known)
    } catch (err) {
      ctx.fail(err)
    }
  }

  /** Phases 9 and 10: the method check, the steps just before the handler, the handler. */
  function afterAccess(ctx: Context, known: boolean): void {
    const handler = ctx.route!.handler
    if (known && !allows(handler.methods, ctx.method)) return methodNotAllowed(ctx, handler.methods)
    const before = ctx.route!.beforeHandler
    for (let i = 0; i < before.length; i++) {
      const r = before[i]!(ctx)
      if (r === true) return
      if (r !== undefined && r !== false) return resume(ctx, r, before, i + 1, known, runHandler)
    }
    runHandler(ctx)
  }

  function runHandler(ctx: Context): void {
    const done = ctx.route!.handler.handle(ctx)
    if (done) done.catch((err: unknown) => ctx.fail(err))
  }

  /** Once a step's `pending` settles without answering: the steps from `next` on, then `then`. */
  function resume(ctx: Context, pending: Promise<boolean | void>, steps: readonly RouteStep[], next: number, known: boolean, then: (ctx: Context, known: boolean) => void): void {
    pending.then(
      (answered) => {
        if (answered) return
        try {
          for (let i = next; i < steps.length; i++) {
            const r = steps[i]!(ctx)
            if (r === true) return
            if (r !== undefined && r !== false) return resume(ctx, r, steps, i + 1, known, then)
          }
          then(ctx, known)
        } catch (err) {
          ctx.fail(err)
        }
      },
      (err: unknown) => ctx.fail(err),
    )
  }

  // Most requests carry the same Host as the one before: remember the last one parsed.
  let lastAuthorityText: string | undefined
  let lastAuthority: Authority | null = null
  // The same for the last origin-form target (`/path?query`): its parse depends on the text alone
  // and the result is read-only.
  let lastPathText: string | undefined
  let lastPathTarget: RequestTarget = NO_PATH

  /**
   * The one parse of what the client asked for (src/http/target.ts): the
   * request target, then the authority (RFC 9112 §3.2.2: an absolute-form
   * target's replaces Host; RFC 9113 §8.3.1: `:authority` and Host agree).
   */
  function parseTarget(ctx: Context): void {
    const req = ctx.req
    try {
      const url = req.url ?? ''
      let target: RequestTarget
      if (url === lastPathText && ctx.method !== 'CONNECT') target = lastPathTarget
      else {
        target = parseRequestTarget(ctx.method, url)
        if (target.form === 'origin') {
          lastPathText = url
          lastPathTarget = target
        }
      }
      ctx.target = target
      const text = hostField(ctx)
      if (target.authority !== null) ctx.hostAuthority = target.authority
      else if (text === undefined) ctx.hostAuthority = null
      else if (text === lastAuthorityText) ctx.hostAuthority = lastAuthority
      else {
        ctx.hostAuthority = parseAuthority(text)
        lastAuthorityText = text
        lastAuthority = ctx.hostAuthority
      }
    } catch (err) {
      if (err instanceof TargetError) throw httpError(err.message.includes('safe path') ? 'EB_ERR_BAD_PATH' : 'EB_ERR_BAD_REQUEST', err.message)
      throw err
    }
  }

  /**
   * The Host field's value, checked as RFC 9112 §3.2 asks (exactly one in
   * HTTP/1.1, whatever the target's form; its value is checked even when an
   * absolute-form target replaces it), or HTTP/2's `:authority`.
   */
  function hostField(ctx: Context): string | undefined {
    const req = ctx.req
    if (ctx.protocol.startsWith('h2')) {
      const host = req.headers.host
      const text = h2Authority(req.headers[':authority'] as string | undefined, Array.isArray(host) ? host[0] : host)
      if (text !== undefined && ctx.target.authority !== null) parseAuthority(text)
      return text
    }
    // Node keeps only the first of several Host fields: count them.
    const raw = req.rawHeaders
    let count = 0
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!
      if (name.length === 4 && name.toLowerCase() === 'host') count++
    }
    const verdict = checkHostCount(count, ctx.protocol === 'http/1.0' ? '1.0' : '1.1')
    if (verdict === 'duplicate') throw httpError('EB_ERR_HOST_DUPLICATE')
    if (verdict === 'missing') throw httpError('EB_ERR_HOST_MISSING')
    const text = req.headers.host
    if (text !== undefined && ctx.target.authority !== null && text !== '') {
      try {
        parseAuthority(text)
      } catch (err) {
        if (err instanceof TargetError) throw new TargetError(`invalid Host header: ${err.message}`)
        throw err
      }
    }
    return text === '' && ctx.target.authority !== null ? undefined : text
  }

  /**
   * The forward proxy's rule: an absolute-form target is for the forward
   * proxy unless it names one of our sites' hosts (exact or wildcard; the
   * default site's catch-all does not count) or this listener itself (the
   * address and port the connection arrived on, or localhost on a loopback
   * listener).
   */
  function isForeign(ctx: Context): boolean {
    const host = ctx.host
    if (namedSite(sites, host)) return false
    const socket = ctx.req.socket
    const port = ctx.hostAuthority?.port ?? (ctx.target.scheme === 'https' ? 443 : 80)
    if (port !== socket.localPort) return true
    let local = socket.localAddress ?? ''
    if (local.startsWith('::ffff:')) local = local.slice(7)
    if (host === local) return false
    return !(host === 'localhost' && (local.startsWith('127.') || local === '::1'))
  }

  /** Refuses TRACE; says whether the method is one Edgebox implements itself (an unknown one may still suit the route's handler). */
  function checkMethod(ctx: Context): boolean {
    if (ctx.method === 'TRACE') throw httpError('EB_ERR_TRACE_REFUSED', undefined, { Allow: 'GET, HEAD, OPTIONS' })
    return IMPLEMENTED_METHODS.has(ctx.method)
  }

  function notImplemented(ctx: Context): EdgeboxError {
    return httpError('EB_ERR_NOT_IMPLEMENTED', `method ${ctx.method} is not implemented`)
  }

  /** A plain-HTTP listener configured to send every request to HTTPS (same host and target). */
  function redirectToHttps(ctx: Context, to: { port: number; status: number }): void {
    const host = ctx.host.includes(':') ? `[${ctx.host}]` : ctx.host
    if (!host) throw httpError('EB_ERR_HOST_MISSING')
    const location = `https://${host}${to.port === 443 ? '' : `:${to.port}`}${ctx.encodedPath}${ctx.query}`
    ctx.send(to.status, { Location: location, 'Content-Type': 'text/plain; charset=utf-8' }, `Redirecting to ${location}\n`)
  }

  /** `OPTIONS *` asks about the server as a whole (RFC 9110 §9.3.7). */
  function optionsAsterisk(ctx: Context): void {
    ctx.send(204, { Allow: SERVER_ALLOW })
  }

  function route(ctx: Context, site: Site): boolean {
    const match = matchRoute(site, ctx.path)
    if (!match) return false
    ctx.route = match
    // the path below the prefix, from its `/`: for a prefix ending in `/` that is the prefix's own
    // last `/` (the path itself under `/`, the same string every time: no new key per request)
    const path = ctx.path
    const n = match.prefix.length
    if (path.charCodeAt(n) === 47) ctx.routePath = path.slice(n)
    else if (path.charCodeAt(n - 1) === 47) ctx.routePath = n === 1 ? path : path.slice(n - 1)
    else ctx.routePath = '/' + path.slice(n)
    return true
  }

  function allows(methods: readonly string[], method: string): boolean {
    return methods.includes(method) && method !== 'OPTIONS'
  }

  function methodNotAllowed(ctx: Context, methods: readonly string[]): void {
    const allow = methods.includes('OPTIONS') ? methods : [...methods, 'OPTIONS']
    if (ctx.method === 'OPTIONS' && !methods.includes('OPTIONS')) {
      ctx.send(204, { Allow: allow.join(', ') })
      return
    }
    if (ctx.method === 'OPTIONS') {
      // the handler answers OPTIONS itself
      const done = ctx.route!.handler.handle(ctx)
      if (done) done.catch((err: unknown) => ctx.fail(err))
      return
    }
    ctx.fail(httpError('EB_ERR_METHOD_NOT_ALLOWED', `${ctx.method} is not allowed on ${ctx.path}`, { Allow: allow.join(', ') }))
  }

  /**
   * Upgrade and CONNECT entry points. The route's handler takes the raw
   * socket; ctx.res is not usable there (there is no response object yet).
   */
  function tunnelContext(req: Req, socket: Duplex): Context | null {
    // a WebSocket over HTTP/2 (RFC 8441) arrives here in its HTTP/1.1 form, with httpVersion 2.0
    const protocol = req.httpVersion === '2.0' ? ((socket as Duplex & { encrypted?: boolean }).encrypted ? 'h2' : 'h2c') : `http/${req.httpVersion}`
    const ctx = new Context(req, socket as unknown as Res, hooks, protocol, performance.now())
    try {
      parseTarget(ctx)
      const site = (ctx.site = matchSite(sites, ctx.host))
      return site && route(ctx, site) ? ctx : null
    } catch {
      return null
    }
  }

  function acceptsUpgrade(req: Req): boolean {
    if (isShuttingDown()) return false
    const ctx = tunnelContext(req, req.socket)
    return ctx?.route?.handler.upgrade !== undefined
  }

  function upgrade(req: Req, socket: Duplex, head: Buffer): void {
    const ctx = tunnelContext(req, socket)
    const handler = ctx?.route?.handler
    if (ctx && handler?.upgrade) {
      // One access log line per upgrade, once the connection is over; the handler sets ctx.status
      // (101 for a tunnel); a client that left before any answer is a 499.
      // The client's address is asked now: once the socket is closed it has none.
      void ctx.clientAddress
      socket.once('close', () => {
        ctx.bytes = (socket as Duplex & { bytesWritten?: number }).bytesWritten ?? 0
        if (ctx.status === 0) ctx.status = 499
        // over HTTP/2 the accepted upgrade was answered 200 (RFC 8441 §5)
        if (ctx.status === 101 && ctx.protocol.startsWith('h2')) ctx.status = 200
        hooks.finished(ctx)
      })
      const checks = ctx.route!.upgradeChecks
      if (checks.length === 0) return handler.upgrade(ctx, socket, head)
      return checkUpgrade(ctx, socket, head, checks, 0)
    }
    socket.end(rawAnswer(400))
  }

  /** The route's upgrade checks from `next` on, then its handler; a refusal is a plain answer on the socket. */
  function checkUpgrade(ctx: Context, socket: Duplex, head: Buffer, checks: readonly UpgradeCheck[], next: number): void {
    const refuse = (status: number) => {
      ctx.status = status
      socket.end(rawAnswer(status))
    }
    try {
      for (let i = next; i < checks.length; i++) {
        const r = checks[i]!(ctx)
        if (typeof r !== 'number') {
          r.then(
            (status) => {
              if (socket.destroyed) return
              if (status !== 0) refuse(status)
              else checkUpgrade(ctx, socket, head, checks, i + 1)
            },
            (err: unknown) => {
              log.error({ err, route: ctx.route!.id }, 'an upgrade check failed')
              refuse(500)
            },
          )
          return
        }
        if (r !== 0) return refuse(r)
      }
    } catch (err) {
      log.error({ err, route: ctx.route!.id }, 'an upgrade check failed')
      return refuse(500)
    }
    ctx.route!.handler.upgrade!(ctx, socket, head)
  }

  function connect(req: Req, socket: Duplex, head: Buffer): void {
    // CONNECT has an authority-form target, not a path: the forward proxy
    // (when configured) takes it; otherwise 405.
    const handler = connectHandler?.()
    if (handler?.connect) {
      if (isShuttingDown()) {
        return void socket.end(rawAnswer(503, { 'Retry-After': 5 }))
      }
      const ctx = new Context(req, socket as unknown as Res, hooks, `http/${req.httpVersion}`, performance.now())
      const url = req.url ?? ''
      try {
        ctx.target = parseRequestTarget('CONNECT', url)
        ctx.hostAuthority = ctx.target.authority
      } catch (err) {
        if (!(err instanceof TargetError)) throw err
        // the handler refuses it (400), and the log shows what was sent
        ctx.target = { form: 'authority', scheme: null, authority: null, rawPath: url, path: '', encodedPath: '', query: '' }
      }
      // One access log line per CONNECT, once the tunnel (or the refusal) is over; the handler sets ctx.status.
      socket.once('close', () => {
        ctx.bytes = (socket as Duplex & { bytesWritten?: number }).bytesWritten ?? 0
        hooks.finished(ctx)
      })
      return handler.connect(ctx, socket, head)
    }
    const body = '405 Method Not Allowed: CONNECT is not enabled on this server\n'
    socket.end(rawAnswer(405, { Allow: SERVER_ALLOW }, body))
  }

  return { handle, acceptsUpgrade, upgrade, connect }
}

/** What `OPTIONS *` lists: not TRACE (refused), CONNECT or PURGE (only where configured). */
const SERVER_ALLOW = [...IMPLEMENTED_METHODS].filter((m) => m !== 'TRACE' && m !== 'CONNECT' && m !== 'PURGE').join(', ')

