import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { z } from 'zod'
import { readJson, type BodyLimits } from '../../core/body.ts'
import type { OriginPolicy } from '../../core/origin.ts'
import type { Context, Headers } from '../../core/context.ts'
import { ConfigError, httpError } from '../../core/errors.ts'
import { safeEqual } from '../../core/secrets.ts'
import type { Handler, HandlerModule } from '../../core/types.ts'
import { MAX_JSON_DEPTH } from '../../http/json-limits.ts'
import { rawAnswer } from '../../http/raw-answer.ts'
import { duration, size } from '../../config/units.ts'
import type { Position } from '../../realtime/engine.ts'
import { Hub, HubError, parseChannelPosition, parsePositions, type ChannelRule, type Envelope, type Grant } from '../../realtime/hub.ts'
import { MemoryEngine } from '../../realtime/memory-engine.ts'
import { servePoll } from '../../realtime/transports/poll.ts'
import { serveSse } from '../../realtime/transports/sse.ts'
import { anonymous, WebSocketTransport } from '../../realtime/transports/websocket.ts'
import { createVerifier, type Verifier } from '../../realtime/auth.ts'
import { compileRules, conditionSchema } from '../../auth/rules.ts'

/**
 * `realtime`: the hub's transports under one prefix (docs/realtime.md):
 * `ws` (WebSocket), `sse`, `poll` (short, or long with `wait=1`), `publish`
 * (client publishing over HTTP) and `api/publish` (back ends, with the
 * publish key). Every transport shares the hub, its channels and history.
 */

const channelSchema = z.strictObject({
  /** Who may publish: `clients` (anyone who may subscribe), `token` holders, `signedIn` users (the route's `auth`), or `backend` (the publish API only). */
  publish: z.enum(['clients', 'token', 'signedIn', 'backend']).default('clients'),
  /** Who may subscribe: `anyone`, `token` holders, or `signedIn` users (a single sign-on session: the route's `auth`, docs/sso.md). */
  subscribe: z.enum(['anyone', 'token', 'signedIn']).default('anyone'),
  /** For `signedIn`: the users let in, by their claims (`{ group: 'staff' }`, `{ emailDomain: 'example.com' }`, any condition of docs/sso.md's rules). */
  who: conditionSchema.optional(),
  history: z
    .strictObject({
      /** Messages kept per channel for resuming (0: none). */
      size: z.number().int().min(0).max(100_000).default(100),
      /** The oldest a kept message may be. */
      age: duration().default(10 * 60_000),
    })
    .prefault({}),
  /** Announce who joins and leaves (join/leave envelopes). */
  presence: z.boolean().default(false),
})

const schema = z.strictObject({
  /** Channel name patterns (`*` matches any run of characters) and their rules. Other names are unknown. */
  channels: z
    .record(z.string().regex(/^[A-Za-z0-9:_.*-]{1,128}$/, 'is a channel pattern: A-Z a-z 0-9 : _ - . and *'), channelSchema)
    .refine((c) => Object.keys(c).length > 0, 'at least one channel pattern'),
  /**
   * Tokens (JWT): a shared `secret` (HS256/384/512, at least 32 characters)
   * or a `jwksUrl`, optionally with the `issuer` and `audience` they must
   * name. Absent: only anonymous clients (channels with subscribe 'anyone').
   */
  auth: z
    .strictObject({
      secret: z.string().min(32, 'secrets are at least 32 characters').optional(),
      jwksUrl: z.url({ protocol: /^https?$/ }).optional(),
      issuer: z.string().optional(),
      audience: z.string().optional(),
    })
    .refine((a) => (a.secret === undefined) !== (a.jwksUrl === undefined), 'give either secret or jwksUrl')
    .optional(),
  /** `Authorization: Bearer <publishKey>` for back ends on `api/publish`; absent: the API is off. */
  publishKey: z.string().min(16, 'publish keys are at least 16 characters').optional(),
  /** The largest message (its data as JSON). */
  maxMessageSize: size().default(64 * 1024),
  /** WebSocket ping interval; a connection that misses one is dropped. */
  heartbeat: duration().default(25_000),
  /** SSE comment keep-alive interval. */
  keepAlive: duration().default(15_000),
  /** The reconnection delay SSE clients are told (`retry:`). */
  retry: duration().default(2_000),
  /** How long a long poll is held without news. */
  pollTimeout: duration().default(25_000),
  /** Long polls held at once per client id (more: 429). */
  maxPollsPerClient: z.number().int().min(1).max(100).default(2),
  /** Unsent bytes allowed per WebSocket or SSE client before it is dropped as a slow consumer. */
  maxBuffered: size().default(1024 * 1024),
  /** Where channels live: `memory` (this process only), or `redis` (every node; the default with a top-level `redis`). Default: shared by every process there is (the workers, the nodes). */
  engine: z.enum(['memory', 'redis']).optional(),
  /** The channels' name space in Redis (default: the route's place, `sites[0].routes[1]`); nodes with the same one share channels. */
  namespace: z.string().regex(/^[A-Za-z0-9:_.\[\]/-]{1,128}$/, 'is 1-128 of A-Z a-z 0-9 : _ . [ ] / -').optional(),
})

type RealtimeConfig = z.output<typeof schema>

export const realtimeModule = {
  kind: 'realtime',
  schema,
  create(cfg, deps) {
    const rules: ChannelRule[] = Object.entries(cfg.channels).map(([pattern, c]) => {
      const decide = c.who === undefined ? undefined : compileRules([{ allow: c.who }])
      return { pattern, publish: c.publish, subscribe: c.subscribe, who: decide && ((claims) => decide(claims).allow), history: c.history, presence: c.presence }
    })
    // the engine: shared by every process when there are several (Redis for many nodes, the primary for workers, docs/scale.md), unless the route keeps its channels in this process
    const shared = deps.sharedEngine
    if (cfg.engine === 'redis' && shared?.kind !== 'redis') throw new ConfigError([`${deps.configPath}.engine: the redis engine needs the top-level redis (redis: 'redis://host:port')`])
    const engine = cfg.engine === 'memory' || !shared ? new MemoryEngine({ clock: deps.clock }) : shared.create(cfg.namespace ?? deps.configPath.replace(/\.realtime$/, ''), deps.clock, deps.log)
    const hub = new Hub(rules, engine, { maxMessageSize: cfg.maxMessageSize, clock: deps.clock })
    const ws = new WebSocketTransport(hub, { heartbeat: cfg.heartbeat, maxBuffered: cfg.maxBuffered, maxMessageSize: cfg.maxMessageSize })
    return createRealtime(cfg, hub, ws, createVerifier(cfg.auth ?? {}), deps.prefix, deps.origins, deps.limits)
  },
} as const satisfies HandlerModule<typeof schema>

function createRealtime(cfg: RealtimeConfig, hub: Hub, ws: WebSocketTransport, verify: Verifier | undefined, prefix: string, origins: OriginPolicy, limits: BodyLimits): Handler {
  const held = new Map<string, number>() // long polls held per client id

  /** CORS for the HTTP transports, from the site's origin policy: a page from another origin must be listed. */
  function crossOrigin(ctx: Context): Headers {
    const origin = ctx.header('origin')
    if (origin === undefined) return {}
    if (!origins.allows(origin, ctx.client.host, ctx.scheme)) throw httpError('EB_ERR_FORBIDDEN', `origin ${origin} is not allowed here (sites[].origins)`)
    return { 'access-control-allow-origin': origin, vary: 'Origin' }
  }

  /**
   * What the request's token allows: `?token=` (EventSource and WebSocket
   * cannot send headers) or `Authorization: Bearer`. No token: anonymous.
   * A token that does not verify is refused (401), never taken as anonymous.
   */
  async function grantOf(ctx: Context, params: URLSearchParams, headerToken: boolean): Promise<(Grant & { expires: number | undefined }) | undefined> {
    // a user the route's sign-on gate knows (its session, or a bearer token of its providers) is signed in
    const identity = ctx.identity
    if (identity !== null) return { user: identity.subject, claims: identity.claims, subscribe: [], publish: [], expires: undefined }
    const token = params.get('token') ?? (headerToken ? /^Bearer (.+)$/i.exec(ctx.header('authorization') ?? '')?.[1] : undefined)
    if (token === undefined || token === null) return undefined
    if (!verify) throw httpError('EB_ERR_UNAUTHORIZED', 'this hub takes no tokens (no auth configured on the route)', { 'WWW-Authenticate': 'Bearer realm="edgebox realtime"' })
    try {
      return await verify(token)
    } catch (err) {
      throw httpError('EB_ERR_UNAUTHORIZED', (err as Error).message, { 'WWW-Authenticate': 'Bearer realm="edgebox realtime", error="invalid_token"' })
    }
  }

  /** The channels a request names (`ch` parameters), with positions; Last-Event-ID positions win for SSE. */
  function subscriptions(ctx: Context, grant: Grant | undefined, lastEventId?: string): Array<{ ch: string; after: Position | undefined; rule: ChannelRule }> {
    const params = new URLSearchParams(ctx.query)
    const list = params.getAll('ch')
    if (list.length === 0) throw httpError('EB_ERR_BAD_REQUEST', 'name at least one channel: ?ch=<name> or ?ch=<name>@<epoch>/<offset>')
    if (list.length > 64) throw httpError('EB_ERR_BAD_REQUEST', 'at most 64 channels per connection')
    const resumed = lastEventId ? parsePositions(lastEventId) : new Map<string, Position>()
    const seen = new Set<string>()
    const out = []
    for (const v of list) {
      const { ch, after } = parseChannelPosition(v)
      if (seen.has(ch)) continue
      seen.add(ch)
      out.push({ ch, after: resumed.get(ch) ?? after, rule: hub.checkSubscribe(ch, grant) })
    }
    return out
  }

  async function publishHttp(ctx: Context, from: 'client' | 'backend'): Promise<void> {
    const cors = from === 'client' ? crossOrigin(ctx) : {}
    if (from === 'backend') {
      if (!cfg.publishKey) throw httpError('EB_ERR_NOT_FOUND', 'the publish API is off: set publishKey on this route')
      const given = /^Bearer (.+)$/i.exec(ctx.header('authorization') ?? '')?.[1] ?? ''
      if (!safeEqual(given, cfg.publishKey)) throw httpError('EB_ERR_UNAUTHORIZED', given ? 'the publish key is not valid' : 'the publish API needs Authorization: Bearer <publishKey>', { 'WWW-Authenticate': 'Bearer realm="edgebox realtime"' })
    }
    const grant = from === 'client' ? await grantOf(ctx, new URLSearchParams(ctx.query), true) : undefined
    // The depth is checked before parsing: a deep body would overflow the stack when its data is measured and stored.
    const body = await readJson(ctx, limits, Math.max(cfg.maxMessageSize * 4, 256 * 1024), MAX_JSON_DEPTH)
    const batch = Array.isArray(body) ? body : [body]
    if (batch.length === 0 || batch.length > 1000) throw httpError('EB_ERR_BAD_REQUEST', 'publish 1 to 1000 messages per request')
    const answers: Envelope[] = []
    for (const item of batch) {
      const env = item as { t?: unknown; ch?: unknown; d?: unknown; id?: unknown }
      const ref = typeof env?.id === 'string' ? env.id : undefined
      try {
        if (typeof env !== 'object' || env === null || typeof env.ch !== 'string') throw new HubError('bad-request', 'each message is {"ch": <channel>, "d": <data>, "id"?: <publish id>}')
        if (from === 'client' && env.t !== undefined && env.t !== 'pub') throw new HubError('bad-request', 'only "pub" envelopes are published', env.ch)
        const m = await hub.publish(env.ch, env.d, ref, grant, from)
        answers.push(ref === undefined ? { t: 'ack', ref: '', ch: m.ch, e: m.e, o: m.o } : { t: 'ack', ref, ch: m.ch, e: m.e, o: m.o })
      } catch (err) {
        if (!(err instanceof HubError)) throw err
        answers.push(err.envelope(ref))
      }
    }
    for (const a of answers) if (a.t === 'ack' && a.ref === '') delete (a as { ref?: string }).ref
    const failed = answers.every((a) => a.t === 'err')
    // One message: its status says how it went; a batch: 200 with one answer per message.
    const status = !Array.isArray(body) && failed ? statusOf((answers[0] as { code: string }).code) : 200
    ctx.send(status, { ...cors, 'content-type': 'application/json', 'cache-control': 'no-store' }, JSON.stringify(Array.isArray(body) ? answers : answers[0]))
  }

  async function handle(ctx: Context): Promise<void> {
    const rest = ctx.path.slice(prefix.length)
    try {
      if (ctx.method === 'OPTIONS' && ['sse', 'poll', 'publish'].includes(rest)) return preflight(ctx)
      if (rest === 'sse' || rest === 'poll') {
        if (ctx.method !== 'GET' && ctx.method !== 'HEAD') throw httpError('EB_ERR_METHOD_NOT_ALLOWED', undefined, { Allow: 'GET, HEAD, OPTIONS' })
        const cors = crossOrigin(ctx)
        const params = new URLSearchParams(ctx.query)
        const grant = await grantOf(ctx, params, true)
        if (rest === 'sse') return serveSse(ctx, hub, subscriptions(ctx, grant, ctx.header('last-event-id')), cors, { keepAlive: cfg.keepAlive, retry: cfg.retry, maxBuffered: cfg.maxBuffered, until: grant?.expires, who: grant?.user ?? anonymous() })
        const wait = params.get('wait') === '1'
        const subs = subscriptions(ctx, grant)
        if (!wait) return await servePoll(ctx, hub, subs, cors, { wait: false, timeout: 0 })
        const client = `${ctx.clientAddress}|${params.get('client') ?? ''}`
        const n = held.get(client) ?? 0
        if (n >= cfg.maxPollsPerClient) throw httpError('EB_ERR_TOO_MANY_REQUESTS', `at most ${cfg.maxPollsPerClient} long polls at once per client`, { 'Retry-After': '1' })
        held.set(client, n + 1)
        ctx.res.once('close', () => {
          const left = (held.get(client) ?? 1) - 1
          if (left > 0) held.set(client, left)
          else held.delete(client)
        })
        return await servePoll(ctx, hub, subs, cors, { wait: true, timeout: cfg.pollTimeout })
      }
      if (rest === 'presence') {
        if (ctx.method !== 'GET' && ctx.method !== 'HEAD') throw httpError('EB_ERR_METHOD_NOT_ALLOWED', undefined, { Allow: 'GET, HEAD' })
        const cors = crossOrigin(ctx)
        const params = new URLSearchParams(ctx.query)
        const grant = await grantOf(ctx, params, true)
        const ch = params.get('ch')
        if (!ch) throw httpError('EB_ERR_BAD_REQUEST', 'name the channel: ?ch=<name>')
        return ctx.send(200, { ...cors, 'content-type': 'application/json', 'cache-control': 'no-store' }, JSON.stringify({ t: 'presence', ch, members: await hub.members(ch, grant) }))
      }
      if (rest === 'publish' || rest === 'api/publish') {
        if (ctx.method !== 'POST') throw httpError('EB_ERR_METHOD_NOT_ALLOWED', undefined, { Allow: rest === 'publish' ? 'POST, OPTIONS' : 'POST' })
        return await publishHttp(ctx, rest === 'publish' ? 'client' : 'backend')
      }
      if (rest === 'ws') throw httpError('EB_ERR_BAD_REQUEST', 'this is the WebSocket endpoint: connect with a WebSocket handshake (Upgrade: websocket)')
      throw httpError('EB_ERR_NOT_FOUND', `no realtime endpoint ${rest || '(none)'}: ws, sse, poll, publish, presence, api/publish`)
    } catch (err) {
      if (err instanceof HubError) throw httpError(errorCode(err.code), err.message)
      throw err
    }
  }

  function preflight(ctx: Context): void {
    const cors = crossOrigin(ctx)
    if (!cors['access-control-allow-origin']) throw httpError('EB_ERR_BAD_REQUEST', 'a preflight needs Origin')
    ctx.send(204, { ...cors, 'access-control-allow-methods': 'GET, POST', 'access-control-allow-headers': 'Content-Type, Last-Event-ID', 'access-control-max-age': '600', vary: 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers' })
  }

  return {
    kind: 'realtime',
    methods: ['GET', 'HEAD', 'POST', 'OPTIONS'],
    handle,
    upgrade(ctx: Context, socket: Duplex, head: Buffer): void {
      const refuse = (status: number, reason: string, message: string, fields: Record<string, string> = {}) => {
        ctx.status = status
        socket.end(rawAnswer(status, fields, `${status} ${reason}: ${message}\n`))
      }
      if (ctx.path.slice(prefix.length) !== 'ws') return refuse(404, 'Not Found', 'the WebSocket endpoint is ws')
      if ((ctx.header('upgrade') ?? '').toLowerCase() !== 'websocket') return refuse(400, 'Bad Request', 'only WebSocket upgrades are taken here')
      // RFC 6455 §4.4: a version the server does not speak gets 426 and the versions it does.
      if (ctx.header('sec-websocket-version') !== '13') return refuse(426, 'Upgrade Required', 'WebSocket version 13 only', { 'Sec-WebSocket-Version': '13' })
      const origin = ctx.header('origin')
      if (origin !== undefined && !origins.allows(origin, ctx.client.host, ctx.scheme)) return refuse(403, 'Forbidden', `origin ${origin} is not allowed here (sites[].origins)`)
      grantOf(ctx, new URLSearchParams(ctx.query), true).then(
        (grant) => {
          if (socket.destroyed) return
          ctx.status = 101
          ws.accept(ctx.req as IncomingMessage, socket, head, grant)
        },
        (err: Error & { status?: number }) => refuse(401, 'Unauthorized', err.message, { 'WWW-Authenticate': 'Bearer realm="edgebox realtime", error="invalid_token"' }),
      )
    },
    /**
     * The operator's side (core/observe.ts): connections by transport, the
     * counts and the busiest channels; and publishing from the server itself,
     * as a back end would (a channel whose `publish` is `backend` takes it).
     */
    admin: {
      view: (top = 20) => ({ realtime: hub.view(top, ws.connections) }),
      async publish(channel: string, data: unknown): Promise<void> {
        await hub.publish(channel, data, undefined, undefined, 'backend')
      },
    },
    drain() {
      // WebSockets get 1001, SSE streams end, held long polls are answered: none waits for the shutdown timeout
      hub.drain()
    },
    close() {
      ws.close()
      return hub.engine.close()
    },
  }
}

function errorCode(code: HubError['code']) {
  return code === 'unknown-channel' ? 'EB_ERR_NOT_FOUND' : code === 'forbidden' ? 'EB_ERR_FORBIDDEN' : code === 'too-large' ? 'EB_ERR_BODY_TOO_LARGE' : code === 'rate' ? 'EB_ERR_TOO_MANY_REQUESTS' : 'EB_ERR_BAD_REQUEST'
}

function statusOf(code: string): number {
  return code === 'unknown-channel' ? 404 : code === 'forbidden' ? 403 : code === 'too-large' ? 413 : code === 'rate' ? 429 : 400
}
