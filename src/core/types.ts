import type { RedisBus } from './redis.ts'
import type { Broadcast } from './broadcast.ts'
import type { Postgres } from './postgres.ts'
import type { SharedRateLimitStore } from './rate-limit-store.ts'
import type { Engine } from '../realtime/engine.ts'
import type { HandlerAdmin } from './observe.ts'
import type { WireTrace } from './wire-trace.ts'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2'
import type { Socket } from 'node:net'
import type { Duplex, Readable } from 'node:stream'
import type { z } from 'zod'
import type { Context } from './context.ts'
import type { Logger } from './log.ts'
import type { BodyLimits } from './body.ts'
import type { OriginPolicy } from './origin.ts'
import type { Clock } from './clock.ts'
import type { EdgeboxConfig } from '../config/schema.ts'
import type { H2Fields } from '../http/h2-fields.ts'

/**
 * The request and response a handler sees: over HTTP/1.x Node's own
 * objects; over HTTP/2 Edgebox's (src/server/h2-exchange.ts), which have
 * the part of the same API that Edgebox uses, on Node's stream API.
 */
export type Req = IncomingMessage | H2Req
export type Res = ServerResponse | H2Res

/** An HTTP/2 request: one stream's header block, and its body when read. */
export interface H2Req {
  readonly stream: ServerHttp2Stream
  /** Every field, the pseudo-header fields (`:method`, `:path`, `:authority`, ...) included. */
  readonly headers: IncomingHttpHeaders
  /** The fields as received: [name, value, name, value, ...]. */
  readonly rawHeaders: string[]
  readonly method: string
  readonly url: string
  readonly httpVersion: '2.0'
  readonly httpVersionMajor: 2
  readonly httpVersionMinor: 0
  /** The connection's socket (TCP or TLS), shared by its streams. */
  readonly socket: Socket
  readonly connection: Socket
  /** The client reset the stream while its half was open. */
  readonly aborted: boolean
  /** Nothing more will arrive from the client on this stream. */
  readonly complete: boolean
  /** The request body, made on the first call; it fails when the stream is reset before the body's end. */
  body(): Readable
}

/** Response fields as handlers give them (names in any case). */
export type H2ResponseFields = H2Fields

/** An HTTP/2 response: the head and body of one stream; its events are the stream's. */
export interface H2Res {
  readonly stream: ServerHttp2Stream
  statusCode: number
  readonly headersSent: boolean
  readonly destroyed: boolean
  readonly writableEnded: boolean
  readonly writableFinished: boolean
  readonly writableLength: number
  readonly writableNeedDrain: boolean
  writeHead(status: number, headers?: H2ResponseFields): this
  write(chunk: Buffer | string, cb?: (err?: Error | null) => void): boolean
  write(chunk: Buffer | string, encoding: BufferEncoding, cb?: (err?: Error | null) => void): boolean
  end(cb?: () => void): this
  end(chunk: Buffer | string, cb?: () => void): this
  end(chunk: Buffer | string, encoding: BufferEncoding, cb?: () => void): this
  destroy(err?: Error): void
  writeContinue(): void
  writeEarlyHints(hints: Record<string, string | readonly string[]>): boolean
  on(event: string, listener: () => void): this
  once(event: string, listener: () => void): this
  prependListener(event: string, listener: () => void): this
  off(event: string, listener: () => void): this
  removeListener(event: string, listener: () => void): this
  emit(event: string, ...args: unknown[]): boolean
  listenerCount(event: string): number
}

/**
 * The one handler contract. The same object serves HTTP/1.1, h2c and
 * HTTP/2 over TLS. Handlers never set connection-specific headers
 * (Connection, Keep-Alive, Transfer-Encoding, Upgrade): the server layer owns
 * connection management, and Node's HTTP/2 layer throws on them.
 */
export interface Handler {
  readonly kind: string
  /** Methods the handler answers; others get 405 with `Allow` built from this list. */
  readonly methods: readonly string[]
  /**
   * true: the handler also takes every method Edgebox does not implement
   * itself (pipeline.ts IMPLEMENTED_METHODS), such as WebDAV's PROPFIND or
   * QUERY: the proxy forwards them. Absent: those get 501 (RFC 9110 §15.6.2).
   */
  readonly extensionMethods?: boolean
  handle(ctx: Context): void | Promise<void>
  /** Entry point for `Upgrade` requests (WebSocket, tunnels). Absent: the upgrade is refused. */
  upgrade?(ctx: Context, socket: Duplex, head: Buffer): void
  /** Entry point for `CONNECT` requests (forward proxy). Absent: 405. */
  connect?(ctx: Context, socket: Duplex, head: Buffer): void
  /**
   * Called once when the server starts to stop, before it waits for open
   * connections to finish: ends the exchanges that would otherwise never
   * finish on their own (WebSockets, event streams, held long polls) in a way
   * their clients take as "reconnect", so a shutdown is not held until
   * `limits.shutdownTimeout` cuts them. Requests still arriving get 503.
   */
  drain?(): void
  /** Releases timers, watchers and pools when the server stops, once its connections are done (or cut). */
  close?(): void | Promise<void>
  /** What the handler shows the operator (its upstreams, its cache, its channels) and the switches it offers (core/observe.ts, docs/admin.md). */
  readonly admin?: HandlerAdmin
}

/** What every module factory receives besides its own validated configuration. */
export interface ModuleDeps {
  /** Where the module's configuration sits, for error messages: `sites[0].routes[2].static`. */
  readonly configPath: string
  /** Directory relative paths in the configuration are resolved against. */
  readonly baseDir: string
  /** Edgebox's data folder (`dataDir`, resolved): where the local authority and ACME state live. */
  readonly dataDir: string
  /** The route prefix the handler is mounted at (`/files/`). */
  readonly prefix: string
  readonly log: Logger
  /** Request body limits from `limits` (a module may narrow them). */
  readonly limits: BodyLimits
  /** The site's origin policy (`sites[].origins`). */
  readonly origins: OriginPolicy
  /** Where the module reads the time and sets its timers (systemClock unless a test gives another). */
  readonly clock: Clock
  /** The DNS server of this configuration (its zones and resolver), when it has `dns`: what a DNS-over-HTTPS route answers with. */
  readonly dns?: DnsAnswerer
  /** The wire trace of this Edgebox (core/wire-trace.ts): what a lab page watches. */
  readonly trace: WireTrace
  /** Cookies that are Edgebox's own (the sign-on session and login cookies): a proxy never sends them upstream. */
  readonly ownCookies: readonly string[]
  /** The Redis the nodes share (`redis` in the configuration, core/redis.ts), when there is one. */
  readonly redis?: RedisBus
  /** Messages to every other Edgebox process of the deployment (core/broadcast.ts), when there are others to tell. */
  readonly broadcast?: Broadcast
  /** Realtime channels every process shares (the workers' primary, or Redis): a hub's engine, by its name space. Absent: one process. */
  readonly sharedEngine?: SharedEngine
  /** The PostgreSQL the nodes share (`postgres` in the configuration, core/postgres.ts), when there is one: the identity provider keeps its state there. */
  readonly postgres?: Postgres
  /** Rate-limit buckets every process shares (the workers' primary, or Redis): the identity provider's login limits take from them. */
  readonly rateLimits?: SharedRateLimitStore
}

/** Where shared realtime channels live (ModuleDeps.sharedEngine). */
export interface SharedEngine {
  readonly kind: 'redis' | 'workers'
  create(namespace: string, clock: Clock, log: Logger): Engine
}

/** Answers one DNS message from a client address (src/dns/responder.ts); `tcp` sizes it without the UDP limit. */
export interface DnsAnswerer {
  /** `trace`: also say how the answer was found (`path`). */
  answer(msg: Buffer, transport: 'udp' | 'tcp', client: string, trace?: boolean): DnsOutcome | Promise<DnsOutcome>
}

export interface DnsOutcome {
  /** null: the message was not a query to answer. */
  reply: Buffer | null
  why?: string
  /** How the answer was found (zone steps, the resolver's steps, a balanced name's choice). */
  path?: string[]
}

/**
 * A handler kind: a schema for its configuration and a factory. The factory
 * runs once at start (provision + validate: it may check the file system and
 * throw a ConfigError naming the exact configuration path); the handler it
 * returns is used as is on the hot path.
 */
export interface HandlerModule<S extends z.ZodType = z.ZodType> {
  readonly kind: string
  readonly schema: S
  create(config: z.output<S>, deps: ModuleDeps): Handler | Promise<Handler>
}

/**
 * Adds or changes response headers just before they are sent (security
 * headers, Server-Timing). `prepared` says what the filter does to a
 * response prepared once and sent many times (a static file, a stored
 * response: core/respond.ts `sendPrepared`); a route with any filter
 * without it sends those responses the per-response way.
 */
export type ResponseFilter = ((ctx: Context, headers: Record<string, string | number | string[]>) => void) & { readonly prepared?: PreparedFilter }

/** How a response filter applies to a prepared response (see ResponseFilter). */
export type PreparedFilter =
  /**
   * What it adds or changes depends only on the fields it is given, the
   * status (`ctx.status`) and whether the connection is TLS (`ctx.secure`):
   * run once per prepared response, route and TLS-ness, never per response.
   */
  | { readonly kind: 'constant' }
  /** It sets one field whose value changes per response: `value` gives that value (the filter itself sets `headers[name] = value(ctx)`). */
  | { readonly kind: 'field'; readonly name: string; value(ctx: Context): string }
  /** It reads and writes no field (closing a connection during shutdown): run per response, given no fields. */
  | { readonly kind: 'fieldless' }
  /**
   * It works per response, but only on the responses `applies` picks from
   * their status and the fields the filters before it left (an HTML page
   * whose body it transforms, `Context.transform`): those go the
   * per-response way; on the others it does nothing, and is not run.
   */
  | { readonly kind: 'selective'; applies(status: number, headers: Readonly<Record<string, string | number | string[]>>): boolean }

/**
 * A route's step before its handler (a rate limit, CORS, CSRF, the sign-on
 * gate, 103 Early Hints): it may refuse the request by throwing an
 * EdgeboxError, or answer it itself (a CORS preflight, a redirect to the
 * login) and return true. A step that must wait (a session read from a
 * store, a token refresh) returns a promise of the same; the pipeline goes on
 * when it settles. The steps that never wait return a plain value: no
 * promise on their path.
 */
export type RouteStep = (ctx: Context) => boolean | void | Promise<boolean | void>

/**
 * A route's check of an Upgrade request (a WebSocket) before its handler
 * takes the socket: 0 lets it through, any other number is the status it is
 * refused with (401, 403). Upgrades do not go through the access steps: there
 * is no response object to answer with, only the raw socket.
 */
export type UpgradeCheck = (ctx: Context) => number | Promise<number>

/** What a filter module gives one route (or, with no route, its site): a step, a response filter, an upgrade check. */
export interface RouteParts {
  readonly step?: RouteStep
  readonly filter?: ResponseFilter
  readonly upgrade?: UpgradeCheck
}

/**
 * Who a request comes from, once the sign-on gate (src/auth/) knew them:
 * what a handler reads (the realtime hub's channel rules) and what the proxy
 * sends upstream.
 */
export interface Identity {
  /** The identity provider's name, as configured. */
  readonly provider: string
  /** The provider's subject (`sub`). */
  readonly subject: string
  /** Claims about the user: email, name, groups, ... */
  readonly claims: Readonly<Record<string, unknown>>
  /** Names this sign-in for as long as it lasts (not the session id, nor usable as one): the CSRF token is bound to it. '' for a bearer token. */
  readonly binding: string
  /** The fields a proxied request carries to an upstream of this origin (`Edgebox-Jwt-Assertion`, `X-Auth-Request-*`). */
  upstreamFields(audience: string): Readonly<Record<string, string>>
}

type SiteConfig = EdgeboxConfig['sites'][number]
type RouteConfig = SiteConfig['routes'][number]

/**
 * A filter module (src/modules/security/, the Early Hints in core): one
 * request step and/or response filter per route, built from the route's
 * option of the same name and its site's settings. `start` runs once per
 * configuration and holds what its routes share (the rate limits' buckets);
 * `route` runs once per route, and once with `route` null for the responses
 * of a site that no route answered (404s, /_edgebox/ endpoints). The order
 * of the steps and filters is the pipeline's (src/core/pipeline.ts), by name.
 */
export interface FilterModule {
  /** The route option it reads (`rateLimit`, `cors`, ...), and its name in the pipeline's order. */
  readonly name: string
  start(deps: {
    readonly clock: Clock
    readonly trace: WireTrace
    readonly log: Logger
    /** Rate-limit buckets every process of the node (or deployment) takes from: the workers' primary's, or Redis's; absent: this process's memory. */
    readonly rateLimits?: SharedRateLimitStore | undefined
    /** The deployment's signing secret (core/shared-secret.ts): the same in every process of the deployment. */
    readonly secret: Buffer
  }): {
    route(route: RouteConfig | null, site: SiteConfig, deps: { readonly configPath: string; readonly origins: OriginPolicy }): RouteParts | null
  }
}

/**
 * Where a body goes: bodies pushed chunk by chunk from a producer (an
 * upstream response, src/modules/proxy/exchange.ts) to one consumer
 * (ctx.relay, a cache), without a stream object in between. `data`
 * returning false pauses the source until its `resume()`.
 */
export interface BodySink {
  data(chunk: Buffer): boolean
  end(): void
  error(err: Error): void
}

/** A response body, consumed once by one sink. */
export interface BodySource {
  /** Starts delivery to `sink`: chunks that arrived before come first. */
  attach(sink: BodySink): void
  /** After a `data` that returned false: go on. */
  resume(): void
  /** Stops the transfer; an unfinished upstream response is aborted (its connection closed). */
  destroy(err?: Error): void
}

/** A file a static route would serve (StaticFiles.resolve). */
export interface StaticFile {
  readonly fsPath: string
  readonly size: number
  readonly mtimeMs: number
  /** The route's own strong validator for the file (size and modification time). */
  readonly etag: string
}

/**
 * What a static route shows the rest of Edgebox of its files (real-user
 * monitoring's symbolication reads the scripts and source maps a site
 * serves), by the route's own rules: its root, dot names, links.
 */
export interface StaticFiles {
  /**
   * The regular file a GET of `rel` (a normalized path below the route's
   * prefix, `/assets/app.js`) would serve, or null: nothing there, a
   * directory, a hidden dot name, or a link out of the root with
   * `symlinks: 'inside'`. No index file, no SPA fallback.
   */
  resolve(rel: string): Promise<StaticFile | null>
  /** From now on, GET and HEAD of a source map (`*.map`, `*.map.br`, `*.map.gz`) answer 404: the maps stay on the server. */
  hideSourceMaps(): void
}
