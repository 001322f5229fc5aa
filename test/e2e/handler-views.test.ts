import assert from 'node:assert/strict'
import http from 'node:http'
import net from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, test } from 'node:test'
import { pino } from 'pino'
import { createAccessLog } from '../../src/core/log.ts'
import { createPipeline } from '../../src/core/pipeline.ts'
import { createForwarding } from '../../src/core/forwarding.ts'
import { buildSiteTable } from '../../src/core/router.ts'
import { originPolicy } from '../../src/core/origin.ts'
import { systemClock } from '../../src/core/clock.ts'
import { WireTrace } from '../../src/core/wire-trace.ts'
import { EdgeboxError } from '../../src/core/errors.ts'
import type { Handler, HandlerModule } from '../../src/core/types.ts'
import type { CacheView, RealtimeView, UpstreamView } from '../../src/core/observe.ts'
import { proxyModule } from '../../src/modules/proxy/index.ts'
import { realtimeModule } from '../../src/modules/realtime/index.ts'
import { dnsSchema } from '../../src/dns/schema.ts'
import { buildDns } from '../../src/dns/zones.ts'
import { startDnsListener } from '../../src/server/dns-listener.ts'
import { closedPort, raw, request } from '../helpers/server.ts'
import { openSse, openWs } from '../helpers/realtime-clients.ts'
import { query, tcp, udp } from '../helpers/dns.ts'

/**
 * What the handlers show the operator (src/core/observe.ts, docs/admin.md):
 * each handler is made by its module and served by the real pipeline on a
 * loopback port, its traffic real, and its `admin` read and switched.
 */

const silent = pino({ level: 'silent' })
const cleanups: Array<() => Promise<void> | void> = []
after(async () => {
  for (const c of cleanups.reverse()) await c()
})

/** A handler of `mod` made from `input` (through its schema), served at `/` (or `prefix`) on 127.0.0.1. */
async function serve<S extends HandlerModule>(mod: S, input: unknown, prefix = '/'): Promise<{ handler: Handler; url: string; port: number }> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'edgebox-views-'))
  const handler = await mod.create(mod.schema.parse(input), {
    configPath: `test.${mod.kind}`,
    baseDir: process.cwd(),
    dataDir,
    prefix,
    log: silent,
    limits: { maxBodySize: 1 << 20, bodyIdleTimeout: 10_000, bodyMinRate: 0, bodyRateGrace: 10_000, bodyBuffer: 1 << 16, bodyTempMax: 1 << 24 },
    origins: originPolicy([]),
    clock: systemClock,
    trace: new WireTrace(),
    ownCookies: [],
  })
  const pipeline = createPipeline({
    sites: buildSiteTable([{ id: 's', hosts: [], routes: [{ prefix, handler, id: 'r', access: [], beforeHandler: [], filters: [], upgradeChecks: [] }], filters: [], endpoints: new Map() }], 0),
    filters: [],
    accessLog: createAccessLog({ enabled: false, level: 'info', format: 'json' }),
    forwarding: createForwarding({ trustedProxies: [], clientAddressHeader: 'x-forwarded-for' }),
    log: silent,
    streamIdleTimeout: 60_000,
    isShuttingDown: () => false,
  })
  const server = http.createServer((req, res) => pipeline.handle(req, res, { protocol: `http/${req.httpVersion}` }))
  const upgraded = new Set<net.Socket>()
  server.on('upgrade', (req, socket: net.Socket, head) => {
    upgraded.add(socket)
    pipeline.upgrade(req, socket, head)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as net.AddressInfo).port
  cleanups.push(async () => {
    handler.drain?.()
    for (const s of upgraded) s.destroy()
    server.closeAllConnections()
    await new Promise((r) => server.close(r))
    await handler.close?.()
    rmSync(dataDir, { recursive: true, force: true })
  })
  return { handler, url: `http://127.0.0.1:${port}`, port }
}

/** A test upstream on 127.0.0.1 that answers with `answer`; `served()` counts its requests. */
async function upstream(answer: http.RequestListener): Promise<{ url: string; server: http.Server; served(): number }> {
  let served = 0
  const server = http.createServer((req, res) => {
    served++
    answer(req, res)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  )
  return { url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`, server, served: () => served }
}

/** An upstream that says its name. */
const named = (name: string) =>
  upstream((req, res) => {
    req.resume()
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' })
    res.end(name)
  })

const upstreamsOf = (h: Handler): readonly UpstreamView[] => h.admin!.view().upstreams!
const cacheOf = (h: Handler, top?: number): CacheView => h.admin!.view(top).cache!
const realtimeOf = (h: Handler, top?: number): RealtimeView => h.admin!.view(top).realtime!

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) assert.fail(`${what}: not within ${ms} ms`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

// ---- proxy: upstreams ----

test('proxy view: attempts, failures and retries counted exactly (a refusing upstream, then one that answers)', async () => {
  const refusing = `http://127.0.0.1:${await closedPort()}`
  const good = await named('good')
  const { handler, url } = await serve(proxyModule, { upstreams: [refusing, good.url] })
  // round robin starts with the refusing one; each GET is retried on the good one
  for (let i = 0; i < 2; i++) {
    const r = await request('http/1.1', `${url}/item`)
    assert.equal(r.status, 200)
    assert.equal(r.text, 'good')
  }
  const [bad, ok] = upstreamsOf(handler)
  assert.deepEqual({ ...bad!, latencyMsSum: 0 }, { id: refusing, healthy: true, maintenance: false, reason: 'ok', attempts: 2, failures: 2, retries: 0, ejections: 0, inFlight: 0, latencyMsSum: 0, latencyCount: 0 })
  assert.deepEqual({ ...ok!, latencyMsSum: 0 }, { id: good.url, healthy: true, maintenance: false, reason: 'ok', attempts: 2, failures: 0, retries: 2, ejections: 0, inFlight: 0, latencyMsSum: 0, latencyCount: 2 })
  assert.ok(ok!.latencyMsSum > 0 && Number.isFinite(ok!.latencyMsSum), 'the response-head times are summed')
  assert.equal(good.served(), 2)
  // a route without a cache shows no cache and offers no purge
  assert.equal(handler.admin!.view().cache, undefined)
  assert.equal(handler.admin!.purge, undefined)
})

test('proxy view: a 5xx answer is a failed attempt; enough in a row eject the upstream (counted in ejections)', async () => {
  const failing = await upstream((req, res) => {
    req.resume()
    res.writeHead(503, { 'content-type': 'text/plain' })
    res.end('down')
  })
  const good = await named('good')
  const { handler, url } = await serve(proxyModule, { upstreams: [failing.url, good.url], health: { passive: { consecutiveFailures: 2, ejectFor: 60_000 } } })
  // POST is never retried: round robin gives failing, good, failing: two failures in a row on it
  const statuses = []
  for (let i = 0; i < 3; i++) statuses.push((await request('http/1.1', `${url}/x`, { method: 'POST', body: 'b' })).status)
  assert.deepEqual(statuses, [503, 200, 503])
  const [f, g] = upstreamsOf(handler)
  assert.equal(f!.attempts, 2)
  assert.equal(f!.failures, 2)
  assert.equal(f!.latencyCount, 2, 'a 5xx still has a response head')
  assert.equal(f!.ejections, 1)
  assert.equal(f!.healthy, false)
  assert.match(f!.reason, /^ejected: 2 failed attempts in a row \(last: 5xx\)/)
  assert.equal(g!.failures, 0)
  assert.equal(g!.attempts, 1)
})

test('proxy maintenance: every request goes to the other upstream, one in flight finishes, upgrades skip it; and back', async () => {
  let release: (() => void) | undefined
  const a = await upstream((req, res) => {
    req.resume()
    const answer = () => {
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.end('a')
    }
    if (req.url === '/slow') release = answer
    else answer()
  })
  const b = await named('b')
  for (const u of [a, b]) {
    const name = u === a ? 'a' : 'b'
    u.server.on('upgrade', (_req, socket: net.Socket) => {
      socket.end(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\nX-Upstream: ${name}\r\n\r\n`)
    })
  }
  const { handler, url, port } = await serve(proxyModule, { upstreams: [a.url, b.url] })
  // a request in flight to a when it goes into maintenance
  const slow = request('http/1.1', `${url}/slow`)
  await until('the slow request reached a', () => release !== undefined)
  assert.equal(upstreamsOf(handler)[0]!.inFlight, 1)
  assert.equal(handler.admin!.maintenance!(a.url, true), true)
  const [ma] = upstreamsOf(handler)
  assert.equal(ma!.maintenance, true)
  assert.equal(ma!.healthy, false)
  assert.match(ma!.reason, /^in maintenance since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
  const bodies = []
  for (let i = 0; i < 6; i++) bodies.push((await request('http/1.1', `${url}/n${i}`)).text)
  assert.deepEqual(bodies, ['b', 'b', 'b', 'b', 'b', 'b'])
  // an upgrade is a tunnel to an upstream picked the same way: never the one in maintenance
  for (let i = 0; i < 2; i++) {
    const answer = await raw(port, 'GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n', 1000)
    assert.match(answer, /^HTTP\/1\.1 101 /)
    assert.match(answer, /x-upstream: b/i)
  }
  // the request in flight finishes normally
  release!()
  const done = await slow
  assert.equal(done.status, 200)
  assert.equal(done.text, 'a')
  assert.equal(upstreamsOf(handler)[0]!.inFlight, 0)
  // back: both take requests again
  assert.equal(handler.admin!.maintenance!(a.url, false), true)
  const [back] = upstreamsOf(handler)
  assert.deepEqual([back!.maintenance, back!.healthy, back!.reason], [false, true, 'ok'])
  const again = new Set<string>()
  for (let i = 0; i < 4; i++) again.add((await request('http/1.1', `${url}/m${i}`)).text)
  assert.deepEqual([...again].sort(), ['a', 'b'])
  // an id no upstream has
  assert.equal(handler.admin!.maintenance!('http://127.0.0.1:1', true), false)
})

test('proxy maintenance: health checks go on meanwhile; out of maintenance the upstream shows what they found', async () => {
  let probes = 0
  let passing = true
  const a = await upstream((req, res) => {
    req.resume()
    if (req.url === '/health') {
      probes++
      res.writeHead(passing ? 200 : 503)
      return res.end()
    }
    res.end('a')
  })
  const b = await named('b')
  const { handler } = await serve(proxyModule, { upstreams: [a.url, b.url], health: { active: { path: '/health', interval: 50, timeout: 1000, fall: 1, rise: 1 } } })
  assert.equal(handler.admin!.maintenance!(a.url, true), true)
  passing = false
  const seen = probes
  await until('a probe after the switch', () => probes >= seen + 2)
  assert.match(upstreamsOf(handler)[0]!.reason, /^in maintenance since /)
  assert.equal(handler.admin!.maintenance!(a.url, false), true)
  const [out] = upstreamsOf(handler)
  assert.equal(out!.maintenance, false)
  assert.equal(out!.healthy, false, 'still down: its probes failed while it was in maintenance')
  assert.match(out!.reason, /^health check failed: /)
  passing = true
  await until('back up', () => upstreamsOf(handler)[0]!.healthy)
  assert.equal(upstreamsOf(handler)[0]!.reason, 'ok')
})

test('proxy maintenance of every upstream: 503, no upstream is picked', async () => {
  const a = await named('a')
  const { handler, url } = await serve(proxyModule, { upstreams: [a.url] })
  assert.equal(handler.admin!.maintenance!(a.url, true), true)
  const r = await request('http/1.1', `${url}/x`)
  assert.equal(r.status, 503)
  assert.equal(a.served(), 0)
  assert.equal(upstreamsOf(handler)[0]!.attempts, 0)
})

// ---- proxy: cache ----

/** An origin for the cache tests: each path's body, cached a minute, `/tagged` with a Surrogate-Key; /r and /s stale at once, with an ETag. */
async function origin() {
  return upstream((req, res) => {
    req.resume()
    const p = req.url ?? '/'
    if (p === '/r' || p === '/s') {
      if (req.headers['if-none-match'] === '"v1"') {
        res.writeHead(304, { etag: '"v1"', 'cache-control': p === '/r' ? 'max-age=0' : 'max-age=0, stale-while-revalidate=60' })
        return res.end()
      }
      res.writeHead(200, { etag: '"v1"', 'content-type': 'text/plain', 'cache-control': p === '/r' ? 'max-age=0' : 'max-age=0, stale-while-revalidate=60' })
      return res.end(`body of ${p}`)
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60', ...(p === '/tagged' ? { 'surrogate-key': 'bee' } : {}) })
    res.end(`body of ${p}`)
  })
}

const get = async (url: string) => {
  const r = await request('http/1.1', url)
  return String(r.headers['cache-status'])
}

test('cache view: hits, misses, objects, bytes and the most-hit keys in order; purge by url removes exactly that URL', async () => {
  const o = await origin()
  const { handler, url } = await serve(proxyModule, { upstreams: [o.url], cache: true })
  assert.match(await get(`${url}/a`), /fwd=miss/)
  for (let i = 0; i < 3; i++) assert.match(await get(`${url}/a`), /; hit/)
  assert.match(await get(`${url}/b`), /fwd=miss/)
  assert.match(await get(`${url}/b`), /; hit/)
  assert.match(await get(`${url}/c?x=1`), /fwd=miss/)
  const v = cacheOf(handler)
  assert.deepEqual(v, {
    hits: 4,
    misses: 3,
    stale: 0,
    revalidations: 0,
    purges: 0,
    objects: 3,
    bytes: 'body of /a'.length + 'body of /b'.length + 'body of /c?x=1'.length,
    shared: false,
    topKeys: [
      { key: 'http://127.0.0.1/a', hits: 3, bytes: 10 },
      { key: 'http://127.0.0.1/b', hits: 1, bytes: 10 },
    ],
  })
  assert.deepEqual(cacheOf(handler, 1).topKeys, [{ key: 'http://127.0.0.1/a', hits: 3, bytes: 10 }])
  // the admin purge needs no token; the host's port is not part of the keys
  assert.equal(handler.admin!.purge!({ url: '/a' }, '127.0.0.1:8080'), 1)
  assert.equal(handler.admin!.purge!({ url: '/a' }, '127.0.0.1'), 0, 'already gone')
  const after1 = cacheOf(handler)
  assert.equal(after1.purges, 1)
  assert.equal(after1.objects, 2)
  assert.match(await get(`${url}/a`), /fwd=miss/, 'the purged URL is a miss')
  assert.match(await get(`${url}/b`), /; hit/, 'another URL is untouched')
  assert.match(await get(`${url}/c?x=1`), /; hit/)
  // a URL with its query names only that URL
  assert.equal(handler.admin!.purge!({ url: '/c?x=2' }, '127.0.0.1'), 0)
  assert.equal(handler.admin!.purge!({ url: 'http://127.0.0.1/c?x=1' }, '127.0.0.1'), 1)
  assert.equal(cacheOf(handler).purges, 2)
})

test('cache purge by prefix and by tag, and what is refused', async () => {
  const o = await origin()
  const { handler, url } = await serve(proxyModule, { upstreams: [o.url], cache: true })
  for (const p of ['/img/1', '/img/2', '/imgx', '/tagged', '/other']) assert.match(await get(`${url}${p}`), /fwd=miss/)
  assert.equal(handler.admin!.purge!({ prefix: '/img/' }, '127.0.0.1'), 2)
  assert.equal(handler.admin!.purge!({ tag: 'bee' }, '127.0.0.1'), 1)
  assert.deepEqual(cacheOf(handler).purges, 3)
  assert.match(await get(`${url}/img/1`), /fwd=miss/)
  assert.match(await get(`${url}/imgx`), /; hit/)
  assert.match(await get(`${url}/tagged`), /fwd=miss/)
  assert.match(await get(`${url}/other`), /; hit/)
  // `/img/*` as PURGE writes it
  assert.equal(handler.admin!.purge!({ prefix: '/img/*' }, '127.0.0.1'), 1)
  const refused = (f: () => unknown, message: RegExp) =>
    assert.throws(f, (err: unknown) => err instanceof EdgeboxError && err.status === 400 && message.test(err.message))
  refused(() => handler.admin!.purge!({ url: 'page' }, '127.0.0.1'), /^url: "page" is not a path/)
  refused(() => handler.admin!.purge!({ url: '/../x' }, '127.0.0.1'), /^url: /)
  refused(() => handler.admin!.purge!({ prefix: '/a?b' }, '127.0.0.1'), /^prefix: a path prefix has no query/)
  refused(() => handler.admin!.purge!({ tag: 'a b' }, '127.0.0.1'), /^tag: /)
  refused(() => handler.admin!.purge!({ url: '/x' }, 'bad host!'), /^host: /)
  refused(() => handler.admin!.purge!({} as never, '127.0.0.1'), /url, prefix or tag/)
})

test('cache view: stale answers and revalidations are counted', async () => {
  const o = await origin()
  const { handler, url } = await serve(proxyModule, { upstreams: [o.url], cache: true })
  assert.match(await get(`${url}/r`), /fwd=miss/)
  // max-age=0: stale at once; revalidated with If-None-Match, the origin answers 304
  assert.match(await get(`${url}/r`), /fwd=stale; fwd-status=304/)
  assert.match(await get(`${url}/s`), /fwd=miss/)
  // stale-while-revalidate: served stale, revalidated in the background
  assert.match(await get(`${url}/s`), /detail=stale-while-revalidate/)
  const v = cacheOf(handler)
  assert.deepEqual([v.hits, v.misses, v.stale, v.revalidations], [0, 2, 1, 2])
  assert.deepEqual(v.topKeys, [{ key: 'http://127.0.0.1/s', hits: 1, bytes: 'body of /s'.length }], 'a stale answer is a hit of its entry')
})

// ---- realtime ----

test('realtime view: connections by transport, polls, published and delivered, channels; publish from the server reaches subscribers', async () => {
  const { handler, url } = await serve(realtimeModule, { channels: { 'chat:*': {}, feed: { publish: 'backend' } } }, '/rt/')
  const empty = realtimeOf(handler)
  assert.deepEqual(empty, { connections: { websocket: 0, sse: 0, longPoll: 0 }, shortPolls: 0, published: 0, delivered: 0, channelCount: 0, channels: [], historySize: 0 })
  const ws = await openWs(`${url.replace('http', 'ws')}/rt/ws`)
  ws.ws.send(JSON.stringify({ t: 'sub', ch: 'chat:a' }))
  const sub = await ws.next((e) => e.t === 'sub')
  const sse = openSse('http/1.1', `${url}/rt/sse?ch=chat:a`)
  await sse.wait((d) => d.some((e) => e.t === 'sub'))
  // a long poll from the current position is held; a short poll answers at once
  const long = request('http/1.1', `${url}/rt/poll?ch=chat:a@${sub.e}/0&wait=1`)
  const short = await request('http/1.1', `${url}/rt/poll?ch=chat:b`)
  assert.equal(short.status, 200)
  await until('the long poll is held', () => realtimeOf(handler).connections.longPoll === 1)
  const held = realtimeOf(handler)
  assert.deepEqual(held.connections, { websocket: 1, sse: 1, longPoll: 1 })
  assert.equal(held.shortPolls, 1)
  assert.deepEqual(held.channels, [{ name: 'chat:a', subscribers: 3, history: 0, published: 0 }])
  // the server publishes as a back end: every subscriber gets it
  await handler.admin!.publish!('chat:a', { n: 1 })
  assert.deepEqual((await ws.next((e) => e.t === 'msg')).d, { n: 1 })
  await sse.wait((d) => d.some((e) => e.t === 'msg'))
  assert.deepEqual(sse.data().find((e) => e.t === 'msg')!.d, { n: 1 })
  const polled = await long
  assert.deepEqual((JSON.parse(polled.text) as { d: unknown }[]).map((e) => e.d), [{ n: 1 }])
  // a backend-only channel takes the server's publishes
  await handler.admin!.publish!('feed', 'tick')
  await assert.rejects(handler.admin!.publish!('nope', 1), /no channel nope here/)
  await until('the long poll is released', () => realtimeOf(handler).connections.longPoll === 0)
  const v = realtimeOf(handler)
  assert.equal(v.published, 2)
  assert.equal(v.delivered, 3, 'one per subscriber: the WebSocket, the SSE stream and the long poll')
  assert.equal(v.historySize, 2)
  assert.deepEqual(v.channels, [
    { name: 'chat:a', subscribers: 2, history: 1, published: 1 },
    { name: 'feed', subscribers: 0, history: 1, published: 1 },
  ])
  // top bounds the list, not the count
  const top1 = realtimeOf(handler, 1)
  assert.deepEqual(top1.channels.map((c) => c.name), ['chat:a'])
  assert.equal(top1.channelCount, 2)
  ws.ws.close()
  sse.close()
  await until('the connections are closed', () => {
    const c = realtimeOf(handler).connections
    return c.websocket === 0 && c.sse === 0
  })
  assert.deepEqual(realtimeOf(handler).channels.map((c) => [c.name, c.subscribers]), [['chat:a', 0], ['feed', 0]])
})

// ---- DNS ----

/** The DNS of a configuration (zones, balanced names) and one listener for it on 127.0.0.1. */
async function dnsServer(input: Record<string, unknown>) {
  const cfg = dnsSchema.parse({ listen: { host: '127.0.0.1', port: 0 }, ...input })
  const state = buildDns(cfg, process.cwd(), silent, systemClock)
  const listener = await startDnsListener(cfg, cfg.listen[0]!, () => state.responderFor('127.0.0.1'), silent)
  cleanups.push(async () => {
    await listener.close()
    await state.close()
  })
  return { state, listener, port: listener.port }
}

const zone = { origin: 'views.test', records: [{ name: '@', type: 'NS', data: 'ns1' }, { name: 'ns1', type: 'A', data: '127.0.0.1' }, { name: 'www', type: 'A', data: '192.0.2.1' }] }

test('DNS: queries answered are counted by type and response code, over UDP and TCP', async () => {
  const { listener, port } = await dnsServer({ zones: [zone] })
  assert.deepEqual(listener.queries(), [])
  assert.equal((await udp(port, query('www.views.test', 'A'))).rcode, 'NOERROR')
  assert.equal((await udp(port, query('www.views.test', 'A'))).rcode, 'NOERROR')
  assert.equal((await tcp(port, query('www.views.test', 'A'))).rcode, 'NOERROR')
  assert.equal((await udp(port, query('nx.views.test', 'AAAA'))).rcode, 'NXDOMAIN')
  assert.equal((await udp(port, query('www.views.test', 'TXT'))).rcode, 'NOERROR')
  assert.equal((await udp(port, query('elsewhere.example', 'A'))).rcode, 'REFUSED')
  assert.deepEqual(listener.queries(), [
    { type: 'A', rcode: 'NOERROR', count: 3 },
    { type: 'A', rcode: 'REFUSED', count: 1 },
    { type: 'AAAA', rcode: 'NXDOMAIN', count: 1 },
    { type: 'TXT', rcode: 'NOERROR', count: 1 },
  ])
})

test('GSLB: an edge in maintenance is not answered, and comes back; edges() shows health, maintenance and answers', async () => {
  const hosts = ['127.0.0.21', '127.0.0.22']
  const servers: http.Server[] = []
  let checkPort = 0
  for (const host of hosts) {
    const s = http.createServer((_req, res) => res.end('ok'))
    await new Promise<void>((r) => s.listen(checkPort, host, r))
    checkPort = (s.address() as net.AddressInfo).port
    servers.push(s)
    cleanups.push(() => new Promise<void>((r) => s.close(() => r())))
  }
  const { state, port } = await dnsServer({
    zones: [zone],
    balance: [{ name: 'lb.views.test', answers: 1, edges: [{ name: 'one', addresses: [hosts[0]] }, { name: 'two', addresses: [hosts[1]] }], check: { kind: 'http', port: checkPort, path: '/', interval: 60_000 } }],
  })
  await state.firstRound()
  const answered = async () => (await udp(port, query('lb.views.test', 'A'))).answers.map((a) => a.data as string)
  const before = new Set<string>()
  for (let i = 0; i < 4; i++) for (const a of await answered()) before.add(a)
  assert.deepEqual([...before].sort(), hosts)
  assert.equal(state.maintenance('LB.views.test.', 'one', true), true)
  const during: string[] = []
  for (let i = 0; i < 6; i++) during.push(...(await answered()))
  assert.deepEqual(during, Array(6).fill(hosts[1]))
  const edges = state.edges()
  assert.deepEqual(
    edges.map((e) => ({ ...e, reason: e.maintenance ? e.reason.replace(/\d{4}-.*Z$/, 'T') : e.reason })),
    [
      { name: 'lb.views.test.', edge: 'one', address: hosts[0], region: 'default', healthy: false, maintenance: true, reason: 'in maintenance since T', answers: 2 },
      { name: 'lb.views.test.', edge: 'two', address: hosts[1], region: 'default', healthy: true, maintenance: false, reason: edges[1]!.reason, answers: 8 },
    ],
  )
  assert.match(edges[0]!.reason, /^in maintenance since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
  assert.equal(state.maintenance('lb.views.test', 'one', false), true)
  const back = new Set<string>()
  for (let i = 0; i < 4; i++) for (const a of await answered()) back.add(a)
  assert.deepEqual([...back].sort(), hosts)
  assert.equal(state.edges()[0]!.healthy, true)
  // unknown names and edges
  assert.equal(state.maintenance('lb.views.test', 'three', true), false)
  assert.equal(state.maintenance('other.views.test', 'one', true), false)
  assert.equal(state.maintenance('bad name..', 'one', true), false)
})
