import { readFileSync } from 'node:fs'
import { withoutCookies } from '../../http/cookie.ts'
import tls from 'node:tls'
import { z } from 'zod'
import { Pool, errors as undiciErrors } from 'undici'
import { requestHasBody, type Context, type Headers as ResponseHeaders } from '../../core/context.ts'
import { ConfigError, httpError, type EdgeboxError } from '../../core/errors.ts'
import type { Handler, HandlerModule } from '../../core/types.ts'
import type { HandlerAdmin, PurgeTarget, UpstreamView } from '../../core/observe.ts'
import type { Clock } from '../../core/clock.ts'
import { duration } from '../../config/units.ts'
import { withoutHopByHop } from '../../http/freshness.ts'
import { balancers, type BalanceName } from './balancers/index.ts'
import type { Upstream } from './balancers/types.ts'
import { encodedBelow } from '../../http/target.ts'
import { TCHAR } from '../../http/token.ts'
import { openTunnel, refuseUpgrade } from './tunnel.ts'
import type { Duplex } from 'node:stream'
import { cacheOptions, cacheSchema, HttpCache, type OriginResponse } from '../cache/cache.ts'
import { MemoryStore, type CacheStore } from '../cache/store.ts'
import { DiskStore } from '../cache/disk-store.ts'
import { parseRemovals, type Removal } from '../cache/purge.ts'
import path from 'node:path'
import type { Headers } from '../../http/cache-control.ts'
import { createHealth, healthSchema, type HealthTracker } from './health.ts'
import { RetryBudget } from './retry-budget.ts'
import { Exchange, PoolQueue, QueueTimeoutError } from './exchange.ts'
import { relayInterim } from './interim.ts'
import { bufferBody, type BufferedBody } from '../../core/body-buffer.ts'
import { requestBody, type BodyLimits } from '../../core/body.ts'

/**
 * `proxy`: forwards the route's requests to a pool of upstream servers
 * (docs/proxy.md).
 *
 * One undici Pool (keep-alive connections) per upstream. Request bodies are
 * read whole before a connection is taken (requestBuffering, body-buffer.ts);
 * response bodies stream, never buffered whole. Hop-by-hop fields
 * are removed (RFC 9110 §7.6.1) and Via / Forwarded / X-Forwarded-* added.
 * A failed attempt is retried on another upstream only when that cannot
 * change the outcome: an idempotent method, no request body, nothing sent
 * to the client yet, and a retry budget left. Once response headers went
 * out, a failure cuts the connection: a response never mixes two attempts.
 */

const upstreamSchema = z.union([
  z.string(),
  z.strictObject({
    url: z.string(),
    /** Share of the traffic relative to the others (weighted and hash balancing). */
    weight: z.number().int().min(1).max(1000).default(1),
  }),
])

const schema = z.strictObject({
  /** `http://host:port` (or `https://`), optionally `{ url, weight }`. */
  upstreams: z.array(upstreamSchema).min(1),
  /** round-robin | weighted (smooth, like nginx) | least-conn | hash (consistent hashing on hashKey). */
  balance: z.enum(['round-robin', 'weighted', 'least-conn', 'hash']).default('round-robin'),
  /** For `hash`: `url` (each object lives on one upstream, and in one cache), `client`, or `header:<name>`. */
  hashKey: z.union([z.enum(['url', 'client']), z.string().regex(new RegExp(`^header:${TCHAR}+$`), 'is url, client or header:<name>')]).default('url'),
  /** Host sent upstream: the client's (`preserve`), the upstream's own (`upstream`), or a fixed name. */
  host: z.string().min(1).default('preserve'),
  /** Remove the route prefix from the path sent upstream (`/api/users` -> `/users`). */
  stripPrefix: z.boolean().default(false),
  /** Put this in front of the path sent upstream (after stripPrefix): `/v1`. */
  prefix: z.string().regex(/^\/.*[^/]$|^$/, 'starts with / and does not end with /').default(''),
  timeouts: z
    .strictObject({
      /** Establishing the TCP (and TLS) connection: 504 beyond. */
      connect: duration().default(5_000),
      /** From the request sent to the response headers: 504 beyond. */
      response: duration().default(60_000),
      /** No body bytes from the upstream for this long: the response is cut. */
      idle: duration().default(60_000),
      /** Waiting for one of the upstream's pooled connections while all `maxConnections` are busy: 503 beyond (HAProxy's `timeout queue`). Default: `connect`. */
      queue: duration().optional(),
    })
    .transform((t) => ({ ...t, queue: t.queue ?? t.connect }))
    .prefault({}),
  retries: z
    .strictObject({
      /** Further upstreams tried after a failed attempt (idempotent requests without a body only). */
      attempts: z.number().int().min(0).max(5).default(1),
      /** Retries allowed as a share of requests (plus a small burst), so a failing deploy cannot multiply the load. */
      budget: z.number().min(0).max(1).default(0.2),
    })
    .prefault({}),
  /** Moved: the one `trustedProxies` is top-level (docs/configuration.md); a route that still names it is refused. */
  trustedProxies: z
    .unknown()
    .optional()
    .superRefine((v, ctx) => {
      if (v !== undefined) ctx.addIssue({ code: 'custom', message: 'moved to the top-level trustedProxies (with clientAddressHeader)' })
    }),
  /** Connections per upstream. */
  maxConnections: z.number().int().min(1).default(256),
  /**
   * Read each request body completely (in memory up to `limits.bodyBuffer`,
   * then in a temporary file) before taking an upstream connection, so slow
   * uploads cannot hold the upstream's connections (nginx's
   * `proxy_request_buffering`). false: stream bodies upstream as they arrive.
   */
  requestBuffering: z.boolean().default(true),
  /** For https:// upstreams: a CA file to trust besides the system's (an internal or local authority), and the name to verify. */
  tls: z
    .strictObject({
      ca: z.string().min(1).optional(),
      servername: z.string().min(1).optional(),
    })
    .optional(),
  /** Active health checks (opt-in) and passive outlier ejection (health.ts). */
  health: healthSchema.prefault({}),
  /** The shared cache (RFC 9111) for GET and HEAD: true, or options (docs/cache.md). */
  cache: cacheSchema.default(false),
})

type ProxyConfig = z.output<typeof schema>

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'])
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']

interface Target extends Upstream {
  readonly url: URL
  readonly pool: Pool
  /** How many requests the pool holds, for the queue timeout. */
  readonly queue: PoolQueue
  /** What the operator's view shows (core/observe.ts UpstreamView): plain counts, added to on the hot path. */
  attempts: number
  failures: number
  retries: number
  latencyMsSum: number
  latencyCount: number
}

export const proxyModule = {
  kind: 'proxy',
  schema,
  create(cfg, deps) {
    const problems: string[] = []
    let connect: { ca?: string[]; servername?: string } | undefined
    if (cfg.tls) {
      connect = {}
      if (cfg.tls.servername) connect.servername = cfg.tls.servername
      if (cfg.tls.ca) {
        try {
          // the system's authorities stay trusted; the file adds to them
          connect.ca = [...tls.rootCertificates, readFileSync(path.resolve(deps.baseDir, cfg.tls.ca), 'utf8')]
        } catch (err) {
          problems.push(`${deps.configPath}.tls.ca: cannot read ${cfg.tls.ca} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
        }
      }
    }
    const targets: Target[] = cfg.upstreams.map((u, i) => {
      const spec = typeof u === 'string' ? { url: u, weight: 1 } : u
      let url: URL
      try {
        url = new URL(spec.url)
        if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('not http')
        if (url.pathname !== '/' || url.search) throw new Error('has a path')
      } catch (err) {
        problems.push(`${deps.configPath}.upstreams[${i}]: ${JSON.stringify(spec.url)} is not an upstream origin like http://127.0.0.1:3000 (${(err as Error).message === 'has a path' ? 'put paths in prefix' : 'http or https, host and port'})`)
        url = new URL('http://invalid.invalid')
      }
      return {
        id: url.origin,
        url,
        weight: spec.weight,
        active: 0,
        healthy: true,
        pool: new Pool(url.origin, {
          connections: cfg.maxConnections,
          connectTimeout: cfg.timeouts.connect,
          headersTimeout: cfg.timeouts.response,
          bodyTimeout: cfg.timeouts.idle,
          keepAliveTimeout: 4_000,
          ...(connect ? { connect } : {}),
        }),
        queue: new PoolQueue(cfg.maxConnections, cfg.timeouts.queue),
        attempts: 0,
        failures: 0,
        retries: 0,
        latencyMsSum: 0,
        latencyCount: 0,
      }
    })
    if (problems.length) {
      for (const t of targets) void t.pool.destroy()
      throw new ConfigError(problems)
    }
    const cacheCfg = cfg.cache === true ? cacheOptions.parse({}) : cfg.cache === false ? null : cfg.cache
    let store: CacheStore | null = null
    if (cacheCfg) {
      try {
        store = cacheCfg.disk
          ? // one store in the folder, shared by every worker of the machine (its index, index.sqlite, is in the folder too)
            new DiskStore(path.resolve(deps.baseDir, cacheCfg.disk), cacheCfg.maxBytes, { onError: (err) => deps.log.warn({ err }, 'cache disk store error') })
          : new MemoryStore(cacheCfg.maxBytes)
      } catch (err) {
        for (const t of targets) void t.pool.destroy()
        throw new ConfigError([`${deps.configPath}.cache.disk: cannot use ${cacheCfg.disk} (${(err as Error).message})`])
      }
    }
    // purges reach every process of the deployment: this route's purges go out on its own topic, and the others' come in on it
    const broadcast = deps.broadcast
    const topic = `purge:${deps.configPath}`
    const announce = broadcast
      ? (removals: readonly Removal[]) => {
          void broadcast.send(topic, removals).then((sent) => {
            if (!sent) deps.log.warn({ removals }, 'cache purge applied on this node only: it could not be sent to the others (redis unreachable)')
          })
        }
      : undefined
    const cache = cacheCfg && store ? new HttpCache(cacheCfg, store, deps.clock, announce) : null
    const stopListening =
      cache && broadcast
        ? broadcast.on(topic, (m) => {
            const removals = parseRemovals(m)
            if (removals) cache.applyPurge(removals)
          })
        : undefined
    const proxy = createProxy(cfg, targets, deps.prefix, createHealth(targets, cfg.health, deps.log, connect, deps.clock, deps.configPath, deps.redis && deps.broadcast ? { bus: deps.redis, channel: deps.broadcast } : undefined), cache, deps.limits, deps.clock, deps.ownCookies)
    if (!stopListening && !store?.close) return proxy
    const close = proxy.close
    return Object.assign(proxy, {
      async close() {
        stopListening?.()
        await close?.call(proxy)
        // the disk store's index and files (a reload opens the folder again)
        store?.close?.()
      },
    })
  },
} as const satisfies HandlerModule<typeof schema>

/** A proxy route's handler, which can also say how its upstreams are doing. */
export interface ProxyHandler extends Handler {
  upstreamStatus(): Array<{ id: string; healthy: boolean; maintenance: boolean; reason: string; ejections: number }>
  readonly admin: HandlerAdmin
}

function createProxy(cfg: ProxyConfig, targets: Target[], routePrefix: string, health: HealthTracker, cache: HttpCache | null, limits: BodyLimits, clock: Clock, ownCookies: readonly string[]): ProxyHandler {
  const balancer = balancers[cfg.balance as BalanceName](targets)
  const budget = new RetryBudget(cfg.retries.budget)
  const headerKey = cfg.hashKey.startsWith('header:') ? cfg.hashKey.slice(7).toLowerCase() : null

  function hashKey(ctx: Context): string {
    if (cfg.hashKey === 'url') return ctx.host + ctx.encodedPath + ctx.query
    if (cfg.hashKey === 'client') return ctx.clientAddress
    return ctx.header(headerKey!) ?? ''
  }

  /**
   * The path sent upstream: the one that was routed (dot segments resolved,
   * each segment in the client's own encoding), with the prefix rules applied.
   */
  function upstreamPath(ctx: Context): string {
    const path = cfg.stripPrefix ? encodedBelow(ctx.encodedPath, routePrefix) : ctx.encodedPath
    return cfg.prefix + path + ctx.query
  }

  function requestHeaders(ctx: Context, target: Target, extra?: Record<string, string | null>): Record<string, string | string[]> {
    const incoming = ctx.req.headers
    const out = withoutHopByHop(incoming) as Record<string, string | string[] | undefined>
    for (const name of Object.keys(out)) {
      const c = name.charCodeAt(0)
      if (c === 58 /* : */) delete out[name] // HTTP/2 pseudo-headers
      // identity fields are Edgebox's to set (docs/sso.md): whatever a client sends under these names never goes upstream
      else if ((c === 120 /* x */ && name.startsWith('x-auth-request-')) || name === 'edgebox-jwt-assertion') delete out[name]
    }
    // the identity for this upstream's origin (target.id), minted once per lifetime
    if (ctx.identity !== null) Object.assign(out, ctx.identity.upstreamFields(target.id))
    // Edgebox's own cookies (the sign-on session) stay here, on every route: with them an upstream could act as the user
    if (ownCookies.length > 0 && typeof out.cookie === 'string') {
      const rest = withoutCookies(out.cookie, ownCookies)
      if (rest === undefined) delete out.cookie
      else out.cookie = rest
    }
    delete out.expect // answered here (100-continue), not forwarded
    // the authority the request named, an absolute-form target's included (RFC 9112 §3.2.2)
    out.host = cfg.host === 'preserve' ? ctx.authority || target.url.host : cfg.host === 'upstream' ? target.url.host : cfg.host
    ctx.addForwardingFields(out)
    // RFC 9110 §7.6.3: this hop joins the Via chain, whoever sent the earlier ones
    const via = incoming.via
    out.via = `${via ? `${Array.isArray(via) ? via.join(', ') : via}, ` : ''}${ctx.protocol.startsWith('h2') ? '2' : ctx.protocol.slice(5)} edgebox`
    if (extra) {
      for (const name in extra) {
        const v = extra[name]
        if (v === null) delete out[name] // a field the cache does not want forwarded (Range when fetching whole objects)
        else out[name] = v
      }
    }
    return out as Record<string, string | string[]>
  }

  /**
   * Sends the request upstream (with `extra` header fields, e.g. a cache's
   * validators) and resolves once a response head arrived, retrying on
   * another upstream where that is safe. `background`: a cache refresh that
   * outlives the client's request.
   */
  async function forward(ctx: Context, extra: Record<string, string | null>, background = false): Promise<OriginResponse> {
    const req = ctx.req
    const hasBody = !background && requestHasBody(req)
    const retryable = IDEMPOTENT.has(ctx.method) && !hasBody
    const key = cfg.balance === 'hash' ? hashKey(ctx) : ''
    const tried = new Set<Upstream>()
    // The client leaving before the answer is complete abandons the attempt under way.
    let current: Exchange | null = null
    if (!background) {
      const res = ctx.res
      res.once('close', () => {
        if (!res.writableFinished) current?.abandon()
      })
    }
    budget.request()
    // Request buffering: the whole body first, then an upstream connection,
    // so a slow upload holds no pooled connection while it trickles in.
    let buffered: BufferedBody | null = null
    if (hasBody && cfg.requestBuffering) buffered = await bufferBody(ctx, limits)
    else if (hasBody) ctx.continue()
    let lastError: EdgeboxError | undefined
    for (;;) {
      const target = balancer.pick(key, tried) as Target | undefined
      if (!target) {
        throw lastError ?? httpError('EB_ERR_NO_UPSTREAM', 'no healthy upstream is available', { 'Retry-After': '5' })
      }
      tried.add(target)
      target.active++
      target.attempts++
      if (tried.size > 1) target.retries++
      ctx.upstream = target.id
      // the cache's clock: request and response times are what Age and freshness are measured from
      const requestTime = clock.now()
      const sent = requestHeaders(ctx, target, extra)
      // a buffered body has a known length, even when the client sent it chunked
      if (buffered?.length) sent['content-length'] = String(buffered.length)
      const body = buffered ? (buffered.length ? buffered.source() : null) : hasBody ? requestBody(req) : null
      // the response-head time of the view (UpstreamView.latencyMsSum): from the attempt to the status line
      const started = performance.now()
      const exchange = (current = Exchange.start(
        target.pool,
        { method: (background ? 'GET' : ctx.method) as 'GET', path: upstreamPath(ctx), headers: sent, body },
        () => target.active--,
        target.queue,
      ))
      // a cache refresh in the background has no client to tell
      if (!background) exchange.onInterim = (status, headers) => relayInterim(ctx, status, headers)
      let head
      try {
        head = await exchange.head
      } catch (err) {
        // The client is gone: not an upstream failure, nothing to retry, nobody to answer.
        if (exchange.wasAbandoned) throw httpError('EB_ERR_CLIENT_CLOSED')
        target.failures++
        lastError = upstreamError(err, target, cfg)
        // a full pool is a busy upstream, not a failing one
        if (!(err instanceof QueueTimeoutError)) health.observe(target, isTimeout(err) ? 'timeout' : 'error')
        if (retryable && tried.size <= cfg.retries.attempts && budget.take()) continue
        throw lastError
      }
      target.latencyMsSum += performance.now() - started
      target.latencyCount++
      if (head.status >= 500) target.failures++
      health.observe(target, head.status >= 500 ? '5xx' : 'ok')
      const headers = head.headers
      const via = headers.via
      headers.via = via ? `${Array.isArray(via) ? via.join(', ') : via}, 1.1 edgebox` : '1.1 edgebox'
      return { status: head.status, headers, body: head.body, requestTime, responseTime: clock.now() }
    }
  }

  async function handle(ctx: Context): Promise<void> {
    if (ctx.method === 'PURGE') return cache!.purge(ctx)
    if (cache && (ctx.method === 'GET' || ctx.method === 'HEAD')) {
      return cache.handle(ctx, (extra, background) => forward(ctx, extra, background))
    }
    const res = await forward(ctx, {})
    cache?.invalidate(ctx, res.status, res.headers)
    ctx.relay(res.status, withoutHopByHop(res.headers) as ResponseHeaders, res.body)
  }

  return {
    kind: 'proxy',
    methods: cache?.purgeable ? [...METHODS, 'PURGE'] : METHODS,
    // WebDAV, QUERY and any other method the server accepts: the upstream decides what it means
    extensionMethods: true,
    handle,
    /** Upgrade requests (WebSocket, ...): a raw tunnel to one upstream, picked like any request (tunnel.ts). */
    upgrade(ctx: Context, socket: Duplex, head: Buffer): void {
      const target = balancer.pick(cfg.balance === 'hash' ? hashKey(ctx) : '') as Target | undefined
      if (!target) {
        ctx.status = 503
        return refuseUpgrade(socket, 503, 'no healthy upstream is available')
      }
      target.active++
      target.attempts++
      ctx.upstream = target.id
      const headers = requestHeaders(ctx, target) // hop-by-hop fields gone, forwarding fields added
      headers.connection = 'upgrade'
      headers.upgrade = ctx.header('upgrade') ?? ''
      openTunnel({
        target,
        method: ctx.method,
        path: upstreamPath(ctx),
        headers,
        clientSocket: socket,
        head,
        connectTimeout: cfg.timeouts.connect,
        responseTimeout: cfg.timeouts.response,
        idleTimeout: cfg.timeouts.idle,
        onAnswer: (answer) => {
          if (answer !== 'ok') target.failures++
          health.observe(target, answer)
        },
        onStatus: (status) => (ctx.status = status),
        onDone: () => target.active--,
      })
    },
    upstreamStatus: () => health.status(),
    admin: proxyAdmin(targets, health, cache),
    async close() {
      await health.close()
      await Promise.all(targets.map((t) => t.pool.close().catch(() => t.pool.destroy())))
    },
  }
}

/**
 * The operator's side of a proxy route (core/observe.ts, docs/admin.md): its
 * upstreams' counts and health, its cache, the drain switch and purges. The
 * view reads the counts the hot path adds to; nothing here runs per request.
 */
function proxyAdmin(targets: readonly Target[], health: HealthTracker, cache: HttpCache | null): HandlerAdmin {
  return {
    view(top = 20) {
      const status = health.status()
      const upstreams: UpstreamView[] = targets.map((t, i) => ({
        id: t.id,
        healthy: t.healthy,
        maintenance: status[i]!.maintenance,
        reason: status[i]!.reason,
        attempts: t.attempts,
        failures: t.failures,
        retries: t.retries,
        ejections: status[i]!.ejections,
        inFlight: t.active,
        latencyMsSum: t.latencyMsSum,
        latencyCount: t.latencyCount,
      }))
      return cache ? { upstreams, cache: cache.view(top) } : { upstreams }
    },
    maintenance: (upstream, on) => health.maintenance(upstream, on),
    ...(cache ? { purge: (target: PurgeTarget, host: string) => cache.purgeTarget(target, host) } : {}),
  }
}

function isTimeout(err: unknown): boolean {
  return err instanceof undiciErrors.ConnectTimeoutError || err instanceof undiciErrors.HeadersTimeoutError
}

/** Says which step failed, with the status a gateway answers (RFC 9110 §15.6.3, §15.6.5). */
function upstreamError(err: unknown, target: Target, cfg: ProxyConfig): EdgeboxError {
  const e = err as NodeJS.ErrnoException
  const who = `upstream ${target.id}`
  if (e instanceof QueueTimeoutError) return httpError('EB_ERR_UPSTREAM_BUSY', `${who} had no free connection within ${e.waited} ms (all ${cfg.maxConnections} in use)`, { 'Retry-After': '1' })
  if (e instanceof undiciErrors.ConnectTimeoutError) return httpError('EB_ERR_GATEWAY_TIMEOUT', `${who} did not accept the connection within ${cfg.timeouts.connect} ms`)
  if (e instanceof undiciErrors.HeadersTimeoutError) return httpError('EB_ERR_GATEWAY_TIMEOUT', `${who} did not answer within ${cfg.timeouts.response} ms`)
  if (e.code === 'ECONNREFUSED') return httpError('EB_ERR_BAD_GATEWAY', `${who} refused the connection`)
  if (e instanceof undiciErrors.HTTPParserError) return httpError('EB_ERR_BAD_GATEWAY', `${who} sent a malformed response`)
  if (e instanceof undiciErrors.SocketError || e.code === 'ECONNRESET' || e.code === 'EPIPE') return httpError('EB_ERR_BAD_GATEWAY', `${who} closed the connection before answering`)
  return httpError('EB_ERR_BAD_GATEWAY', `${who} failed: ${e.message}`)
}
