import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { randomBytes } from 'node:crypto'
import { z } from 'zod'
import type { Context } from '../../core/context.ts'
import { ConfigError, httpError } from '../../core/errors.ts'
import type { HandlerModule } from '../../core/types.ts'
import { proxyModule } from '../proxy/index.ts'
import { createAccountDemo } from './account.ts'
import { createConnectionDemo } from './connection.ts'
import { createDnsDemo } from './dns.ts'
import { createJourneyDemo, journeySchema } from './journey.ts'
import { createRumDemo } from './rum.ts'
import { createTraceDemo } from './trace.ts'

/**
 * `lab`: demos for the lab pages. The default, `demo: 'cdn'`, is a CDN in a box, for the cache lab page (lab/www/lab/cdn.html) and
 * for trying the proxy and cache with curl. It starts small demo origins on
 * loopback ports of their own and mounts, under `<prefix>cdn/`, a real proxy
 * route in front of them (round robin, health checks, the shared cache with
 * purge). Everything on the wire is the real thing; only the origins are toys.
 *
 *   GET  <prefix>cdn/obj/<name>?cc=<Cache-Control>  through the cache to an origin
 *   GET  <prefix>cdn/nostore                        never stored: shows the balancing
 *   GET  <prefix>state                              origins, upstream health, purge token
 *   POST <prefix>origins/<name>/stop | start        kill or restart a demo origin
 *   POST <prefix>objects/<name>/change              publish a new version of an object
 *
 * The origins answer only on 127.0.0.1 and serve nothing but demo objects;
 * the purge token guards only this route's demo cache.
 */

const schema = z.strictObject({
  /** Which demo: 'cdn' (the CDN in a box, above), 'account' (the attacker page's victim, ./account.ts), 'connection' (what this request's connection negotiated, ./connection.ts), 'dns' (the DNS lab's demo edges and traces, ./dns.ts), 'trace' (the wire trace as server-sent events, ./trace.ts), 'rum' (what real-user monitoring stored for one page view, ./rum.ts) or 'journey' (a URL's journey measured against this Edgebox, ./journey.ts). */
  demo: z.enum(['cdn', 'account', 'connection', 'dns', 'trace', 'rum', 'journey']).default('cdn'),
  /** The journey demo: Edgebox's own DNS server its DNS comparison asks (absent: that comparison answers 503). */
  journey: journeySchema,
  /** The trace demo: whether the sign-on demo's sites (id, app1, app2 under .localhost) run, for the lab page. */
  sso: z.boolean().default(false),
  /** How many demo origins (upstreams) to start. */
  origins: z.number().int().min(2).max(4).default(2),
  /** The DNS demo: its edges (names, loopback addresses, one port) and the lab hierarchy's root. */
  dns: z
    .strictObject({
      edges: z.strictObject({
        names: z.array(z.string().regex(/^[a-z0-9-]{1,32}$/)).default(['edge-a', 'edge-b']),
        addresses: z.array(z.string().regex(/^127\.\d+\.\d+\.\d+$/, 'is a loopback address (127.x.y.z)')).min(1).default(['127.0.0.2', '127.0.0.3']),
        port: z.number().int().min(1).max(65535).default(8082),
      }).prefault({}),
      root: z.strictObject({ address: z.string().default('127.0.0.2'), port: z.number().int().min(1).max(65535).default(8053) }).prefault({}),
    })
    .prefault({}),
})

const NAMES = ['a', 'b', 'c', 'd']
const OBJECT = /^\/obj\/([a-z0-9-]{1,32})$/
/** What the demo origins accept as a Cache-Control value: directives, numbers, commas. */
const CACHE_CONTROL = /^[a-z0-9=, -]{0,200}$/i

interface DemoOrigin {
  readonly name: string
  readonly server: http.Server
  port: number
  up: boolean
  requests: number
}

export const labModule = {
  kind: 'lab',
  schema,
  async create(cfg, deps) {
    if (cfg.demo === 'account') return createAccountDemo(deps.prefix, deps.limits)
    if (cfg.demo === 'connection') return createConnectionDemo(deps.prefix, deps.dataDir)
    if (cfg.demo === 'trace') return createTraceDemo(deps.prefix, deps.trace, cfg.sso)
    if (cfg.demo === 'rum') return createRumDemo(deps.prefix, deps.dataDir)
    if (cfg.demo === 'journey') return createJourneyDemo(deps, cfg.journey)
    if (cfg.demo === 'dns') {
      try {
        return await createDnsDemo(deps.prefix, cfg.dns)
      } catch (err) {
        throw new ConfigError([`${deps.configPath}.dns.edges.port: ${(err as Error).message}`])
      }
    }
    const versions = new Map<string, { version: number; modified: string }>()
    const objectVersion = (name: string) => {
      let v = versions.get(name)
      if (!v) versions.set(name, (v = { version: 1, modified: new Date(Math.floor(Date.now() / 1000) * 1000).toUTCString() }))
      return v
    }
    const origins: DemoOrigin[] = []
    for (let i = 0; i < cfg.origins; i++) {
      const origin: DemoOrigin = { name: NAMES[i]!, server: http.createServer((req, res) => answer(origin, req, res)), port: 0, up: false, requests: 0 }
      origin.server.keepAliveTimeout = 5_000
      await listen(origin)
      origins.push(origin)
    }

    function answer(origin: DemoOrigin, req: http.IncomingMessage, res: http.ServerResponse): void {
      const url = new URL(req.url ?? '/', 'http://origin')
      const common = { 'X-Origin': origin.name }
      if (url.pathname === '/health') return void res.writeHead(200, common).end('ok')
      origin.requests++
      if (url.pathname === '/nostore') {
        res.writeHead(200, { ...common, 'Content-Type': 'application/json', 'Cache-Control': 'no-store' })
        return void res.end(JSON.stringify({ origin: origin.name, originRequests: origin.requests, servedAt: new Date().toISOString() }))
      }
      const m = OBJECT.exec(url.pathname)
      if (!m || (req.method !== 'GET' && req.method !== 'HEAD')) return void res.writeHead(404, { ...common, 'Content-Type': 'text/plain' }).end('no such demo object\n')
      const cc = url.searchParams.get('cc') ?? 'public, max-age=10'
      if (!CACHE_CONTROL.test(cc)) return void res.writeHead(400, { ...common, 'Content-Type': 'text/plain' }).end('cc: letters, digits, =, commas and spaces only\n')
      const name = m[1]!
      const v = objectVersion(name)
      const etag = `"${name}-v${v.version}"`
      const headers = { ...common, 'Cache-Control': cc, ETag: etag, 'Last-Modified': v.modified, 'Cache-Tag': `lab, obj-${name}` }
      if (req.headers['if-none-match'] === etag) return void res.writeHead(304, headers).end()
      const body = JSON.stringify({ object: name, version: v.version, origin: origin.name, originRequests: origin.requests, servedAt: new Date().toISOString() })
      res.writeHead(200, { ...headers, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) })
      res.end(req.method === 'HEAD' ? undefined : body)
    }

    function listen(origin: DemoOrigin): Promise<void> {
      return new Promise((resolve, reject) => {
        origin.server.once('error', reject)
        origin.server.listen(origin.port, '127.0.0.1', () => {
          origin.server.off('error', reject)
          origin.port = (origin.server.address() as AddressInfo).port
          origin.up = true
          resolve()
        })
      })
    }

    function stop(origin: DemoOrigin): Promise<void> {
      origin.up = false
      return new Promise((resolve) => {
        origin.server.close(() => resolve())
        origin.server.closeAllConnections()
      })
    }

    const token = randomBytes(18).toString('base64url')
    const cdnPrefix = `${deps.prefix}cdn/`
    const proxyConfig = proxyModule.schema.parse({
      upstreams: origins.map((o) => `http://127.0.0.1:${o.port}`),
      stripPrefix: true,
      timeouts: { connect: '1s', response: '5s', idle: '5s' },
      health: {
        active: { path: '/health', interval: '1s', timeout: '500ms', rise: 1, fall: 1 },
        passive: { consecutiveFailures: 1, ejectFor: '5s' },
      },
      cache: { name: 'edgebox-lab', maxBytes: '4m', ignoreRequestDirectives: true, purge: { token } },
    })
    const proxy = await proxyModule.create(proxyConfig, { ...deps, prefix: cdnPrefix, configPath: `${deps.configPath}(demo proxy)` })

    function state(ctx: Context): void {
      const health = proxy.upstreamStatus()
      const body = {
        cdn: cdnPrefix,
        purgeToken: token,
        origins: origins.map((o, i) => ({ name: o.name, url: `http://127.0.0.1:${o.port}`, up: o.up, requests: o.requests, healthy: health[i]?.healthy ?? false, reason: health[i]?.reason ?? '' })),
      }
      ctx.send(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }, JSON.stringify(body))
    }

    async function control(ctx: Context, rest: string): Promise<void> {
      const o = /^origins\/([a-d])\/(stop|start)$/.exec(rest)
      if (o) {
        const origin = origins.find((x) => x.name === o[1])
        if (!origin) throw httpError('EB_ERR_NOT_FOUND', `no demo origin ${o[1]}`)
        if (o[2] === 'stop' && origin.up) await stop(origin)
        if (o[2] === 'start' && !origin.up) await listen(origin)
        return state(ctx)
      }
      const c = /^objects\/([a-z0-9-]{1,32})\/change$/.exec(rest)
      if (c) {
        const v = objectVersion(c[1]!)
        v.version++
        v.modified = new Date(Math.floor(Date.now() / 1000) * 1000).toUTCString()
        return ctx.send(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }, JSON.stringify({ object: c[1], version: v.version }))
      }
      throw httpError('EB_ERR_NOT_FOUND', `no lab action ${rest}`)
    }

    return {
      kind: 'lab',
      methods: ['GET', 'HEAD', 'POST', 'PURGE'],
      handle(ctx: Context) {
        if (ctx.path.startsWith(cdnPrefix)) return proxy.handle(ctx)
        const rest = ctx.path.slice(deps.prefix.length)
        if (rest === 'state' && (ctx.method === 'GET' || ctx.method === 'HEAD')) return state(ctx)
        if (ctx.method === 'POST') return control(ctx, rest)
        if (rest === 'state' || /^(origins|objects)\//.test(rest)) throw httpError('EB_ERR_METHOD_NOT_ALLOWED', undefined, { Allow: rest === 'state' ? 'GET, HEAD' : 'POST' })
        throw httpError('EB_ERR_NOT_FOUND', `no lab endpoint ${ctx.path}`)
      },
      async close() {
        await proxy.close?.()
        await Promise.all(origins.filter((o) => o.up).map(stop))
      },
    }
  },
} as const satisfies HandlerModule<typeof schema>
