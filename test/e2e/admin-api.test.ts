import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { pino } from 'pino'
import { startEdgebox, type Edgebox } from '../../src/server/app.ts'
import type { EdgeboxConfigInput } from '../../src/config/schema.ts'
import { certDir, testCa } from '../helpers/certs.ts'

/**
 * The admin API over real sockets (docs/admin.md, "The admin API"): every
 * endpoint's answer and shape, the switches (purge, maintenance, reload,
 * load) and what persists across reloads, and every refusal with its status,
 * each followed by a request that is served.
 */

const PUBLISH_KEY = 'first-publish-key-0123456789'
const NEXT_KEY = 'second-publish-key-9876543210'

let box: Edgebox
let admin: string
let adminPort: number
let site: string
let origin: http.Server
let originUrl: string
let originHits = 0
let work: string
let certs: ReturnType<typeof certDir>
let input: EdgeboxConfigInput

before(async () => {
  origin = http.createServer((req, res) => {
    originHits++
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=600' })
    res.end(`origin ${req.url}`)
  })
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r))
  originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`
  work = mkdtempSync(path.join(tmpdir(), 'edgebox-admin-api-'))
  mkdirSync(path.join(work, 'www'))
  writeFileSync(path.join(work, 'www', 'index.html'), '<!doctype html><title>site</title>')
  mkdirSync(path.join(work, 'dashboard', 'assets'), { recursive: true })
  writeFileSync(path.join(work, 'dashboard', 'index.html'), '<!doctype html><title>dashboard</title>')
  writeFileSync(path.join(work, 'dashboard', 'assets', 'app.js'), 'console.log(1)\n')
  const ca = await testCa()
  const leaf = await ca.leaf(['a.test', 'b.test', 'localhost', '127.0.0.1'], { to: 30 * 86_400_000 + 3_600_000 })
  certs = certDir({ 'cert.pem': leaf.certPem, 'key.pem': leaf.keyPem })
  input = {
    dataDir: path.join(work, 'data'),
    admin: { port: 0 },
    listen: [
      { host: '127.0.0.1', port: 0 },
      { host: '127.0.0.1', port: 0, tls: true },
    ],
    log: { access: false, level: 'silent' },
    tls: { certificates: [{ cert: certs.path('cert.pem'), key: certs.path('key.pem') }] },
    dns: {
      listen: { host: '127.0.0.1', port: 0 },
      zones: [{ origin: 'edge.test', records: [{ name: '@', type: 'NS', data: 'ns1' }, { name: 'ns1', type: 'A', data: '127.0.0.1' }] }],
      balance: [{ name: 'www.edge.test', answers: 2, edges: [{ name: 'a', addresses: ['127.0.0.1'] }, { name: 'b', addresses: ['127.0.0.3'] }], check: { kind: 'tcp', port: Number(new URL(originUrl).port), interval: 60_000, timeout: 500 } }],
    } as never,
    sites: [
      {
        hosts: ['a.test', 'localhost', '127.0.0.1'],
        rum: true,
        routes: [
          { path: '/', static: { root: path.join(work, 'www') } },
          { path: '/p/', proxy: { upstreams: [originUrl], cache: true, retries: { attempts: 0 } } },
          { path: '/rt/', realtime: { channels: { news: {} }, publishKey: PUBLISH_KEY } },
        ],
      },
    ],
  }
  box = await startEdgebox(input, { baseDir: work, log: pino({ level: 'silent' }), dashboardDir: path.join(work, 'dashboard') })
  admin = box.admin!.url
  adminPort = box.admin!.port
  site = box.urls[0]!
})

after(async () => {
  await box?.close()
  await new Promise<void>((r) => origin?.close(() => r()))
  certs?.cleanup()
  if (work) rmSync(work, { recursive: true, force: true })
})

interface Answer {
  status: number
  headers: http.IncomingHttpHeaders
  text: string
  json: Record<string, unknown>
}

/** One request to the admin listener; POSTs carry its own Origin, as the dashboard's do. */
function call(method: string, p: string, opts: { body?: string; type?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...(method === 'POST' ? { origin: `http://127.0.0.1:${adminPort}` } : {}), ...opts.headers }
    if (opts.body !== undefined) headers['content-type'] = opts.type ?? 'application/json'
    const req = http.request(`${admin}${p.replace(/^\//, '')}`, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let json: Record<string, unknown> = {}
        try {
          json = JSON.parse(text) as Record<string, unknown>
        } catch {
          // not JSON (the dashboard, /metrics)
        }
        resolve({ status: res.statusCode!, headers: res.headers, text, json })
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(opts.body)
  })
}

/** A request to the site (Host a.test). */
function get(p: string, host = 'a.test'): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(`${site}${p.replace(/^\//, '')}`, { headers: { host }, agent: false }, (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (c: string) => (text += c))
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text }))
      })
      .on('error', reject)
  })
}

/** The admin API still answers (after a refusal). */
async function stillServed(): Promise<void> {
  const r = await call('GET', '/api/v1/config')
  assert.equal(r.status, 200)
}

test('GET /api/v1/config and HEAD: the configuration in force, secrets redacted; the admin headers on every answer', async () => {
  const r = await call('GET', '/api/v1/config')
  assert.equal(r.status, 200)
  assert.equal(r.headers['content-type'], 'application/json; charset=utf-8')
  assert.equal(r.headers['cache-control'], 'no-store')
  assert.equal(r.headers['x-frame-options'], 'DENY')
  const config = r.json.config as { sites: { routes: { realtime?: { publishKey: string } }[] }[] }
  assert.equal(config.sites[0]!.routes[2]!.realtime!.publishKey, '<redacted>')
  assert.ok(!r.text.includes(PUBLISH_KEY))
})

test('unsafe endpoints take POST only: GET is 405 with Allow, OPTIONS lists it; reads refuse POST; the next request is served', async () => {
  for (const p of ['/api/v1/reload', '/api/v1/load', '/api/v1/cache/purge', '/api/v1/upstreams/maintenance', '/api/v1/edges/maintenance']) {
    const r = await call('GET', p)
    assert.equal(r.status, 405, p)
    assert.equal(r.headers.allow, 'POST', p)
    assert.match(r.json.error as string, /takes POST, not GET \(it changes something\)/)
  }
  const options = await call('OPTIONS', '/api/v1/cache/purge')
  assert.equal(options.status, 204)
  assert.equal(options.headers.allow, 'POST, OPTIONS')
  const post = await call('POST', '/api/v1/overview')
  assert.equal(post.status, 405)
  assert.equal(post.headers.allow, 'GET, HEAD')
  const missing = await call('GET', '/api/v1/nothing')
  assert.equal(missing.status, 404)
  assert.match(missing.json.error as string, /no \/api\/v1\/nothing here/)
  const badParam = await call('GET', '/api/v1/overview?x=1')
  assert.equal(badParam.status, 400)
  assert.equal(badParam.json.error, 'x: unknown parameter (this endpoint takes none)')
  await stillServed()
})

test('POST /api/v1/reload re-provisions the configuration in force; config/changes lists it, newest first', async () => {
  const r = await call('POST', '/api/v1/reload')
  assert.equal(r.status, 200, r.text)
  assert.deepEqual(r.json, { ok: true, diff: [] })
  const changes = (await call('GET', '/api/v1/config/changes')).json.changes as { at: string; source: string; diff: unknown[] }[]
  assert.equal(changes[0]!.source, 'api reload')
  assert.deepEqual(changes[0]!.diff, [])
  assert.ok(Math.abs(Date.parse(changes[0]!.at) - Date.now()) < 60_000)
})

test('a configuration diff names the secret that changed and never shows it', async () => {
  const next = structuredClone(input) as unknown as { sites: { routes: { realtime?: { publishKey: string } }[] }[] }
  next.sites[0]!.routes[2]!.realtime!.publishKey = NEXT_KEY
  await box.reload(next as never)
  input = next as never
  const r = await call('GET', '/api/v1/config/changes')
  const latest = (r.json.changes as { source: string; diff: unknown[] }[])[0]!
  assert.equal(latest.source, 'reload')
  assert.deepEqual(latest.diff, [{ path: 'sites[0].routes[2].realtime.publishKey', before: '<redacted>', after: '<redacted>' }])
  assert.ok(!r.text.includes(PUBLISH_KEY) && !r.text.includes(NEXT_KEY))
})

test('POST /api/v1/load: 415, 400, 413 and 422 change nothing and the site keeps serving; a good configuration switches and its new site answers', async () => {
  const before = JSON.stringify(box.config)
  const typed = await call('POST', '/api/v1/load', { body: '{}', type: 'text/plain' })
  assert.equal(typed.status, 415)
  assert.match(typed.json.error as string, /Content-Type: application\/json/)
  const broken = await call('POST', '/api/v1/load', { body: '{"sites": [' })
  assert.equal(broken.status, 400)
  assert.match(broken.json.error as string, /not valid JSON/)
  const notObject = await call('POST', '/api/v1/load', { body: '[1]' })
  assert.equal(notObject.status, 400)
  const huge = await call('POST', '/api/v1/load', { body: JSON.stringify({ pad: 'x'.repeat(box.config.limits.maxBodySize) }) })
  assert.equal(huge.status, 413)
  const bad = await call('POST', '/api/v1/load', { body: JSON.stringify({ ...input, sites: [{ routes: [{ path: 'nope', static: { root: '/definitely/not/here' } }] }] }) })
  assert.equal(bad.status, 422, bad.text)
  assert.equal(bad.json.error, 'the configuration was refused; the one in force keeps serving')
  assert.ok(Array.isArray(bad.json.problems) && (bad.json.problems as string[]).some((p) => p.startsWith('sites[0].routes[0]')), bad.text)
  assert.equal(JSON.stringify(box.config), before)
  assert.equal((await get('/index.html')).status, 200)
  assert.equal((await get('/index.html', 'b.test')).text, '<!doctype html><title>site</title>') // the default site, before
  // a good one: a second site
  mkdirSync(path.join(work, 'b'), { recursive: true })
  writeFileSync(path.join(work, 'b', 'index.html'), 'site b')
  const next = { ...input, sites: [...input.sites, { hosts: ['b.test'], routes: [{ path: '/', static: { root: path.join(work, 'b') } }] }] }
  const good = await call('POST', '/api/v1/load', { body: JSON.stringify(next) })
  assert.equal(good.status, 200, good.text)
  assert.equal(good.json.ok, true)
  assert.ok((good.json.diff as { path: string }[]).some((d) => d.path === 'sites[1].hosts[0]'))
  assert.equal((await get('/index.html', 'b.test')).text, 'site b')
  assert.equal((await get('/index.html')).status, 200)
  const changes = (await call('GET', '/api/v1/config/changes')).json.changes as { source: string }[]
  assert.equal(changes[0]!.source, 'api load')
  input = next
})

test('GET /api/v1/overview and series: the headline numbers and the time series, columns per name', async () => {
  await get('/index.html')
  const o = await call('GET', '/api/v1/overview')
  assert.equal(o.status, 200)
  for (const k of ['uptimeSeconds', 'requestsPerSecond', 'bytesPerSecond', 'statusMix', 'p50', 'p95', 'p99', 'cacheHitRatio', 'errorsPerSecond', 'totals', 'connections']) assert.ok(k in o.json, k)
  assert.deepEqual(o.json.accessLogStreams, { open: 0, cut: 0 })
  assert.ok((o.json.totals as { requests: number }).requests >= 1)
  const s = await call('GET', '/api/v1/series?window=1h')
  assert.equal(s.status, 200)
  assert.equal(s.json.window, '1h')
  assert.equal(s.json.step, 1)
  assert.deepEqual(Object.keys(s.json.series as object), ['requests', 's2xx', 's3xx', 's4xx', 's5xx', 'p50', 'p95', 'p99', 'bytes', 'cacheHits', 'cacheMisses', 'connections'])
  const day = await call('GET', '/api/v1/series?window=1d')
  assert.equal(day.json.step, 60)
  const bad = await call('GET', '/api/v1/series?window=2h')
  assert.equal(bad.status, 400)
  assert.equal(bad.json.error, 'window: expected 1h or 1d, not "2h"')
  await stillServed()
})

test('cache: the view per cache route; purge by url removes it (the next request is a miss); refusals name the field', async () => {
  assert.equal((await get('/p/one')).text, 'origin /p/one')
  await get('/p/one')
  const c = await call('GET', '/api/v1/cache?top=5')
  assert.equal(c.status, 200)
  const [route] = c.json.routes as { route: string; site: string; path: string; view: { hits: number; objects: number; topKeys: unknown[] } }[]
  assert.equal(route!.route, 'sites[0].routes[1]')
  assert.equal(route!.site, 'sites[0]')
  assert.equal(route!.path, '/p/')
  assert.ok(route!.view.hits >= 1 && route!.view.objects >= 1, JSON.stringify(route))
  const hits = originHits
  const bads: Array<[unknown, number, RegExp]> = [
    [{ url: '/p/one' }, 400, /^host: expected a string/],
    [{ host: 'a.test', url: '/p/one', prefix: '/p/' }, 400, /exactly one of url, prefix, tag/],
    [{ host: 'a.test', url: 'p/one' }, 400, /^url: expected a path starting with \//],
    [{ host: 'a.test', url: '/p/one', route: 'sites[9].routes[0]' }, 404, /is not a route with a cache/],
    [{ host: 'a.test', url: '/p/one', extra: 1 }, 400, /^extra: unknown field/],
  ]
  for (const [body, status, why] of bads) {
    const r = await call('POST', '/api/v1/cache/purge', { body: JSON.stringify(body) })
    assert.equal(r.status, status, JSON.stringify(body))
    assert.match(r.json.error as string, why)
  }
  const p = await call('POST', '/api/v1/cache/purge', { body: JSON.stringify({ host: 'a.test', url: '/p/one' }) })
  assert.equal(p.status, 200, p.text)
  assert.deepEqual(p.json, { purged: 1, routes: ['sites[0].routes[1]'] })
  await get('/p/one')
  assert.equal(originHits, hits + 1)
  const top = await call('GET', '/api/v1/cache?top=0')
  assert.equal(top.status, 400)
  assert.equal(top.json.error, 'top: expected a whole number from 1 to 1000, not "0"')
})

test('upstreams: the view, the drain switch, and the switch holds across a reload', async () => {
  const u = await call('GET', '/api/v1/upstreams')
  const [route] = u.json.routes as { route: string; upstreams: { id: string; maintenance: boolean; healthy: boolean }[] }[]
  assert.equal(route!.route, 'sites[0].routes[1]')
  assert.equal(route!.upstreams[0]!.id, originUrl)
  assert.equal(route!.upstreams[0]!.maintenance, false)
  const bads: Array<[unknown, number, RegExp]> = [
    [{ route: 'sites[0].routes[1]', upstream: originUrl, on: 'yes' }, 400, /^on: expected true or false/],
    [{ route: 'sites[0].routes[1]', upstream: 'http://127.0.0.1:1', on: true }, 404, /^upstream: "http:\/\/127.0.0.1:1" is not an upstream/],
    [{ route: 'sites[0].routes[0]', upstream: originUrl, on: true }, 404, /^route: "sites\[0\].routes\[0\]" is not a route with upstreams/],
  ]
  for (const [body, status, why] of bads) {
    const r = await call('POST', '/api/v1/upstreams/maintenance', { body: JSON.stringify(body) })
    assert.equal(r.status, status, JSON.stringify(body))
    assert.match(r.json.error as string, why)
  }
  const on = await call('POST', '/api/v1/upstreams/maintenance', { body: JSON.stringify({ route: 'sites[0].routes[1]', upstream: originUrl, on: true }) })
  assert.deepEqual(on.json, { route: 'sites[0].routes[1]', upstream: originUrl, maintenance: true })
  assert.equal((await get('/p/drained')).status, 503)
  await box.reload(input)
  const after = (await call('GET', '/api/v1/upstreams')).json.routes as { upstreams: { maintenance: boolean }[] }[]
  assert.equal(after[0]!.upstreams[0]!.maintenance, true)
  assert.equal((await get('/p/drained-again')).status, 503)
  await call('POST', '/api/v1/upstreams/maintenance', { body: JSON.stringify({ route: 'sites[0].routes[1]', upstream: originUrl, on: false }) })
  assert.equal((await get('/p/back')).status, 200)
})

test('edges and dns: balanced names with health and reason, the maintenance switch across reloads, zones, and a question asked of Edgebox itself', async () => {
  const e = await call('GET', '/api/v1/edges')
  assert.equal(e.status, 200)
  const [name] = e.json.names as { name: string; edges: { edge: string; healthy: boolean; maintenance: boolean; reason: string }[] }[]
  assert.equal(name!.name, 'www.edge.test.')
  assert.deepEqual(name!.edges.map((x) => [x.edge, x.healthy, x.maintenance]), [['a', true, false], ['b', false, false]])
  assert.equal(typeof name!.edges[1]!.reason, 'string')
  const bad = await call('POST', '/api/v1/edges/maintenance', { body: JSON.stringify({ name: 'www.edge.test', edge: 'zz', on: true }) })
  assert.equal(bad.status, 404)
  assert.match(bad.json.error as string, /^edge: "zz" is not an edge/)
  const on = await call('POST', '/api/v1/edges/maintenance', { body: JSON.stringify({ name: 'www.edge.test', edge: 'a', on: true }) })
  assert.deepEqual(on.json, { name: 'www.edge.test', edge: 'a', maintenance: true })
  await box.reload(input)
  const held = (await call('GET', '/api/v1/dns/balanced')).json.names as { edges: { edge: string; maintenance: boolean }[] }[]
  assert.deepEqual(held[0]!.edges.map((x) => [x.edge, x.maintenance]), [['a', true], ['b', false]])
  await call('POST', '/api/v1/edges/maintenance', { body: JSON.stringify({ name: 'www.edge.test', edge: 'a', on: false }) })
  const dns = await call('GET', '/api/v1/dns')
  assert.deepEqual((dns.json.zones as { origin: string }[]).map((z) => z.origin), ['edge.test.'])
  assert.equal((dns.json.zones as { records: number }[])[0]!.records, 3)
  const q = await call('GET', '/api/v1/dns/query?name=ns1.edge.test&type=A')
  assert.equal(q.status, 200, q.text)
  assert.deepEqual(q.json.question, { name: 'ns1.edge.test.', type: 'A' })
  assert.equal(q.json.rcode, 'NOERROR')
  assert.deepEqual((q.json.answer as string[]).map((l) => l.split('\t').filter((_, i) => i !== 1).join(' ')), ['ns1.edge.test. IN A 127.0.0.1'])
  assert.ok((q.json.explain as string[]).length > 0, q.text)
  const balanced = await call('GET', '/api/v1/dns/query?name=www.edge.test')
  assert.deepEqual((balanced.json.answer as string[]).map((l) => l.split('\t').at(-1)), ['127.0.0.1'])
  const noName = await call('GET', '/api/v1/dns/query?type=A')
  assert.equal(noName.status, 400)
  assert.match(noName.json.error as string, /^name: required/)
  const badType = await call('GET', '/api/v1/dns/query?name=ns1.edge.test&type=BOGUS')
  assert.equal(badType.status, 400)
  assert.match(badType.json.error as string, /^type is a record type/)
  await stillServed()
})

test('realtime, security, errors and tls: each endpoint and its shape', async () => {
  const rt = await call('GET', '/api/v1/realtime?top=3')
  assert.equal(rt.status, 200)
  const [route] = rt.json.routes as { route: string; site: string; view: { connections: object; published: number } }[]
  assert.equal(route!.route, 'sites[0].routes[2]')
  assert.deepEqual(Object.keys(route!.view.connections).sort(), ['longPoll', 'sse', 'websocket'])
  const sec = await call('GET', '/api/v1/security?top=5')
  assert.equal(sec.status, 200)
  assert.deepEqual(Object.keys(sec.json).sort(), ['rateLimited', 'refusals'])
  const errors = await call('GET', '/api/v1/errors?limit=10')
  assert.equal(errors.status, 200)
  assert.ok(Array.isArray(errors.json.errors))
  assert.equal((await call('GET', '/api/v1/errors?limit=201')).status, 400)
  const tls = await call('GET', '/api/v1/tls')
  assert.equal(tls.status, 200)
  const [cert] = tls.json.certificates as { id: string; names: string[]; issuer: string; notAfter: string; daysLeft: number }[]
  assert.equal(cert!.id, 'tls.certificates[0]')
  assert.deepEqual([...cert!.names].sort(), ['127.0.0.1', 'a.test', 'b.test', 'localhost'])
  assert.equal(typeof cert!.issuer, 'string')
  assert.equal(cert!.daysLeft, 30)
  assert.ok(Date.parse(cert!.notAfter) > Date.now())
})

test('rum: the query API\'s endpoints under /api/v1/rum/, with its refusals', async () => {
  const stats = await call('GET', '/api/v1/rum/stats')
  assert.equal(stats.status, 200, stats.text)
  assert.equal(typeof stats.json.accepted, 'number')
  const bad = await call('GET', '/api/v1/rum/percentiles?metric=BOGUS')
  assert.equal(bad.status, 400)
  assert.match(bad.json.error as string, /^metric: expected one of/)
  const none = await call('GET', '/api/v1/rum/nothing')
  assert.equal(none.status, 404)
  const post = await call('POST', '/api/v1/rum/stats')
  assert.equal(post.status, 405)
  await stillServed()
})

test('/metrics: Prometheus text format with the request counters', async () => {
  await get('/index.html')
  const r = await call('GET', '/metrics')
  assert.equal(r.status, 200)
  assert.match(r.headers['content-type']!, /^text\/plain/)
  assert.match(r.text, /^edgebox_http_requests_total\{/m)
  assert.match(r.text, /^edgebox_config_reloads_total\{result="ok"\} [1-9]/m)
})

test('/live/: the admin hub publishes the one-second samples on series', async () => {
  const text = await new Promise<string>((resolve, reject) => {
    const req = http.get(`${admin}live/sse?ch=series`, { agent: false }, (res) => {
      assert.equal(res.statusCode, 200)
      assert.match(res.headers['content-type']!, /^text\/event-stream/)
      let got = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => {
        got += c
        if (/"requests":/.test(got)) {
          req.destroy()
          resolve(got)
        }
      })
    })
    req.on('error', reject)
    setTimeout(() => reject(new Error('no sample within 10 s')), 10_000).unref()
  })
  assert.match(text, /"ch":"series"/)
  // the live feed is the server's: a client cannot publish on it
  const pub = await call('POST', '/live/publish', { body: JSON.stringify({ ch: 'series', d: 1 }) })
  assert.equal(pub.status, 403, pub.text)
})

test('the dashboard at / with the SPA fallback: a route of the app gets index.html, an asset itself', async () => {
  const root = await call('GET', '/')
  assert.equal(root.status, 200)
  assert.equal(root.text, '<!doctype html><title>dashboard</title>')
  assert.equal(root.headers['x-frame-options'], 'DENY')
  assert.equal((await call('GET', '/upstreams')).text, '<!doctype html><title>dashboard</title>')
  assert.equal((await call('GET', '/assets/app.js')).text, 'console.log(1)\n')
})

test('never on a site listener: /api/v1/ and /metrics are the site\'s own paths there', async () => {
  assert.equal((await get('/api/v1/config')).status, 404)
  assert.equal((await get('/metrics')).status, 404)
})
