import assert from 'node:assert/strict'
import http from 'node:http'
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { validateConfig } from '../../src/config/load.ts'
import { ConfigError } from '../../src/core/errors.ts'
import { startEdgebox, type Edgebox } from '../../src/server/app.ts'
import { UPKEEP_EVERY } from '../../src/rum/retention.ts'
import { ManualClock } from '../helpers/clock.ts'
import { captureLog, request, tempDir, type CapturedLog } from '../helpers/server.ts'

/**
 * The query API of real-user monitoring over real sockets: its own loopback
 * listener with a bearer token; a page served by Edgebox and the browser's
 * batch for it, joined on the page-view id; every other endpoint on the
 * same rows; refusals (401, 400, 404, 405); not on the site's listener;
 * retention and the operator's counters driven by a manual clock; reloads.
 */

const TOKEN = 'a'.repeat(16) + '0123456789abcdef0123'
const HOUR = 3_600_000

let box: Edgebox
let site: string
let api: string
let root: string
let cleanup: () => void
let clock: ManualClock
let log: CapturedLog

const config = (rum: Record<string, unknown>) => ({
  listen: [{ host: '127.0.0.1', port: 0 }],
  log: { access: false, level: 'silent' as const },
  dataDir: path.join(root, 'data'),
  rum,
  sites: [{ rum: true, routes: [{ path: '/', static: { root: path.join(root, 'www') } }] }],
})

before(async () => {
  ;({ dir: root, cleanup } = tempDir())
  mkdirSync(path.join(root, 'www'))
  writeFileSync(path.join(root, 'www', 'index.html'), '<!doctype html><title>t</title>')
  clock = new ManualClock()
  log = captureLog('info')
  box = await startEdgebox(config({ api: { port: 0, token: TOKEN }, retention: { maxAge: '1h' } }), { baseDir: root, log: log.logger, clock })
  site = box.urls[0]!
  api = box.rumApi!.url
})

after(async () => {
  await box?.close()
  cleanup?.()
})

interface Answer {
  status: number
  headers: http.IncomingHttpHeaders
  text: string
  json: Record<string, unknown>
}

/** One request to the query API (a fresh connection). */
function call(pathAndQuery: string, opts: { token?: string | null; method?: string; authorization?: string; base?: string } = {}): Promise<Answer> {
  const headers: Record<string, string> = {}
  if (opts.authorization !== undefined) headers.authorization = opts.authorization
  else if (opts.token !== null) headers.authorization = `Bearer ${opts.token ?? TOKEN}`
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(pathAndQuery, opts.base ?? api), { method: opts.method ?? 'GET', headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        resolve({ status: res.statusCode!, headers: res.headers, text, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} })
      })
    })
    req.on('error', reject)
    req.end()
  })
}

/** Moves the manual clock a little (the collector writes every 100 ms) until `check` passes; bounded. */
async function until<T>(read: () => Promise<T>, check: (v: T) => boolean, what: string): Promise<T> {
  for (let i = 0; i < 100; i++) {
    clock.advance(100)
    await new Promise((r) => setTimeout(r, 10))
    const v = await read()
    if (check(v)) return v
  }
  throw new Error(`timed out waiting for ${what}`)
}

const PHASES = { redirect: 0, dns: 12, tcp: 20, tls: 25, ttfb: 80, transfer: 15, dom: 220, load: 30 }
let pv = ''
/** When the browser's batch was received (the manual clock's time). */
let received = 0

test('a page served and the browser\'s batch for it: page-views shows both views joined on the page-view id', async () => {
  const page = await request('http/1.1', `${site}index.html?utm=x`)
  assert.equal(page.status, 200)
  pv = /pv;desc="([A-Za-z0-9_-]{12})"/.exec(String(page.headers['server-timing']))![1]!
  const batch = {
    v: 1,
    pv,
    page: '/index.html',
    release: 'r1',
    device: { conn: '4g', mobile: false },
    events: [
      { t: 'nav', at: 0, type: 'navigate', protocol: 'http/1.1', phases: PHASES },
      { t: 'vital', at: 100, name: 'TTFB', value: 42, rating: 'good' },
      { t: 'vital', at: 1300, name: 'LCP', value: 1234.5, rating: 'good' },
      { t: 'api', at: 1400, method: 'GET', url: '/api/items', status: 503, duration: 88, outcome: 'error' },
      { t: 'error', at: 1500, kind: 'error', message: 'x is not a function', stack: 'TypeError: x\n    at f (https://example.com/app.js:1:20)', count: 1 },
    ],
  }
  const posted = await request('http/1.1', `${site}_edgebox/rum/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(batch) })
  assert.equal(posted.status, 204)

  const joined = await until(() => call(`page-views?pv=${pv}`), (a) => {
    const views = a.json.pageViews as Array<{ server: unknown; browser: unknown }> | undefined
    return views?.length === 1 && views[0]!.server !== null && views[0]!.browser !== null
  }, 'both views of the page view')
  assert.equal(joined.status, 200)
  assert.equal(joined.headers['content-type'], 'application/json')
  assert.equal(joined.headers['cache-control'], 'no-store')
  const view = (joined.json.pageViews as Array<Record<string, Record<string, unknown>>>)[0]!
  assert.equal(view.pv as unknown, pv)
  // Edgebox's page is the path it served, without the query
  assert.equal(view.page as unknown, '/index.html')
  const server = view.server!
  assert.deepEqual(Object.keys(server).sort(), ['cache', 'duration', 'edge', 'handler', 'method', 'protocol', 'route', 'status', 'time'])
  // the static handler's file cache said MISS: the file was read for this answer
  assert.deepEqual([server.status, server.method, server.route, server.handler, server.protocol, server.cache], [200, 'GET', 'sites[0].routes[0]', 'static', 'h1', 'MISS'])
  assert.equal(typeof server.duration, 'number')
  assert.equal(typeof server.edge, 'number')
  received = view.browser!.time as number
  assert.ok(received >= (server.time as number))
  assert.deepEqual(view.browser, { time: received, TTFB: 42, FCP: null, LCP: 1234.5, INP: null, CLS: null, nav: { type: 'navigate', protocol: 'http/1.1', phases: PHASES } })
  // in the window's list too
  const list = await call('page-views')
  assert.deepEqual((list.json.pageViews as Array<{ pv: string }>).map((v) => v.pv), [pv])
})

test('every endpoint answers on the same rows, with the window it used', async () => {
  const now = clock.now()
  const lcp = await call('percentiles?metric=LCP&by=conn')
  assert.equal(lcp.status, 200)
  assert.deepEqual(lcp.json, { metric: 'LCP', by: 'conn', since: now - 24 * HOUR, until: now, rows: [{ key: '4g', n: 1, p50: 1234.5, p75: 1234.5, p95: 1234.5 }] })
  const bucketed = await call(`percentiles?metric=TTFB&bucket=${HOUR}&since=${now - HOUR}&until=${now + 1}`)
  assert.deepEqual(bucketed.json.rows, [{ bucket: Math.floor(received / HOUR) * HOUR, key: 'all', n: 1, p50: 42, p75: 42, p95: 42 }])
  const hist = await call('histogram?metric=LCP')
  assert.equal(hist.json.n, 1)
  assert.deepEqual((hist.json.bins as Array<{ count: number }>)[2], { from: 1000, to: 1500, count: 1 })
  // one group's histogram: the batch's connection was 4g
  const of4g = await call('histogram?metric=LCP&by=conn&key=4g')
  assert.equal(of4g.status, 200)
  assert.equal(of4g.json.by, 'conn')
  assert.equal(of4g.json.key, '4g')
  assert.equal(of4g.json.n, 1)
  assert.equal((await call('histogram?metric=LCP&by=conn&key=3g')).json.n, 0)
  const breakdown = await call('breakdown?page=/index.html')
  assert.deepEqual(breakdown.json.pages, [{ page: '/index.html', n: 1, medians: PHASES, dominant: 'dom' }])
  const calls = await call('api-calls?sort=failing')
  assert.deepEqual(calls.json.calls, [{ method: 'GET', url: '/api/items', count: 1, failures: 1, p75: 88 }])
  const errors = await call('errors')
  const groups = errors.json.groups as Array<Record<string, unknown>>
  assert.equal(groups.length, 1)
  assert.deepEqual([groups[0]!.message, groups[0]!.count, groups[0]!.pageViews, groups[0]!.topFrame, groups[0]!.releases], ['x is not a function', 1, 1, 'at f (https://example.com/app.js:1:20)', ['r1']])
  // an ISO 8601 window
  const iso = await call(`errors?since=${new Date(now + HOUR).toISOString()}&until=${new Date(now + 2 * HOUR).toISOString()}`)
  assert.deepEqual(iso.json, { since: now + HOUR, until: now + 2 * HOUR, groups: [] })
  // HEAD: the fields, no body
  const head = await call('stats', { method: 'HEAD' })
  assert.equal(head.status, 200)
  assert.equal(head.text, '')
  assert.equal(head.headers['cache-control'], 'no-store')
})

test('stats: the collector\'s counters (accepted, refused by reason, dropped, stored, the queue) and the sweeps\'', async () => {
  const bad = await request('http/1.1', `${site}_edgebox/rum/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"v":1,"pv":"a","page":"/","events":[{"t":"server","at":1}]}' })
  assert.equal(bad.status, 400)
  const stats = (await call('stats')).json
  assert.equal(stats.accepted, 1)
  assert.deepEqual(stats.refused, { invalid: 1 })
  assert.equal(stats.dropped, 0)
  // the batch's 5 rows and Edgebox's row of the page view
  assert.equal(stats.stored, 6)
  assert.equal(stats.queued, 0)
  assert.deepEqual([stats.swept, stats.sweptByAge, stats.sweptBySize, stats.lastSweep], [0, 0, 0, null])
  // the pages the store's rows take now
  assert.equal(typeof stats.storeBytes, 'number')
  assert.ok((stats.storeBytes as number) > 0)
})

test('401 without a token, with a wrong one, or another scheme: a Bearer challenge, nothing else said', async () => {
  for (const [what, opts] of [
    ['no token', { token: null }],
    ['a wrong token', { token: TOKEN.slice(0, -1) + 'x' }],
    ['a longer token', { token: TOKEN + 'x' }],
    ['Basic', { authorization: `Basic ${Buffer.from(`u:${TOKEN}`).toString('base64')}` }],
  ] as const) {
    const r = await call('stats', opts)
    assert.equal(r.status, 401, what)
    assert.match(String(r.headers['www-authenticate']), /^Bearer realm="edgebox rum"/, what)
    assert.equal(r.headers['cache-control'], 'no-store')
    assert.doesNotMatch(r.text, /accepted/)
  }
  assert.equal((await call('stats', { token: TOKEN.slice(0, -1) + 'x' })).headers['www-authenticate'], 'Bearer realm="edgebox rum", error="invalid_token"')
  assert.equal((await call('stats', { token: null })).headers['www-authenticate'], 'Bearer realm="edgebox rum"')
  // even for a path that does not exist, or a POST: the token comes first
  assert.equal((await call('nothing', { token: null })).status, 401)
  assert.equal((await call('stats', { token: null, method: 'POST' })).status, 401)
  // the scheme is case-insensitive (RFC 9110 §11.1)
  assert.equal((await call('stats', { authorization: `bearer ${TOKEN}` })).status, 200)
})

test('400 naming the parameter; 404 for another path; 405 with Allow for POST', async () => {
  const cases: Array<[string, RegExp]> = [
    ['percentiles?metric=XYZ', /^metric: expected one of LCP, INP, CLS, FCP, TTFB/],
    ['percentiles', /^metric: required/],
    ['histogram?metric=lcp', /^metric: /],
    ['histogram?metric=LCP&by=device', /^key: by and key go together/],
    ['histogram?metric=LCP&key=mobile', /^by: by and key go together/],
    ['histogram?metric=LCP&by=none&key=all', /^by: expected one of page, device, browser, country, network, conn,/],
    ['percentiles?metric=LCP&by=city', /^by: expected one of page, device, browser, country, network, conn, none/],
    ['percentiles?metric=LCP&bucket=10', /^bucket: expected a whole number from 1000/],
    ['percentiles?metric=LCP&bucket=1000', /^bucket: too small for the window: at most 10000 buckets/],
    ['errors?since=yesterday', /^since: expected ms since the epoch or an ISO 8601 date/],
    ['errors?since=20&until=10', /^since: must be before until/],
    ['errors?limit=0', /^limit: expected a whole number from 1 to 1000/],
    ['api-calls?sort=fastest', /^sort: expected one of slowest, failing/],
    ['page-views?pv=a%20b', /^pv: expected a page-view id/],
    ['errors?metric=LCP', /^metric: unknown parameter \(this endpoint takes limit, since, until\)/],
    ['stats?x=1', /^x: unknown parameter \(this endpoint takes none\)/],
    ['errors?limit=1&limit=2', /^limit: given more than once/],
  ]
  for (const [q, why] of cases) {
    const r = await call(q)
    assert.equal(r.status, 400, q)
    assert.match(String(r.json.error), why, q)
    assert.equal(r.headers['cache-control'], 'no-store')
  }
  const missing = await call('nothing')
  assert.equal(missing.status, 404)
  assert.match(String(missing.json.error), /no such endpoint: \/rum\/v1\/nothing/)
  assert.equal((await call('/rum/v2/stats')).status, 404)
  const post = await call('stats', { method: 'POST' })
  assert.equal(post.status, 405)
  assert.equal(post.headers.allow, 'GET, HEAD')
  assert.equal((await call('stats', { method: 'DELETE' })).status, 405)
})

test('the API is not on the site\'s listener, and the site is not on the API\'s', async () => {
  for (const protocol of ['http/1.1', 'h2c'] as const) {
    const r = await request(protocol, `${site}rum/v1/stats`, { headers: { authorization: `Bearer ${TOKEN}` } })
    assert.equal(r.status, 404, protocol)
    assert.doesNotMatch(r.text, /accepted/)
  }
  assert.notEqual(new URL(api).port, new URL(site).port)
  assert.equal((await call('/index.html')).status, 404)
})

test('the schema refuses a query API on a non-loopback address, and a short token', () => {
  const refused = (api: Record<string, unknown>): readonly string[] => {
    try {
      validateConfig({ rum: { api }, sites: [{ rum: true, routes: [{ path: '/', static: { root: '.' } }] }] })
    } catch (err) {
      assert.ok(err instanceof ConfigError)
      return err.issues
    }
    return []
  }
  assert.match(refused({ host: '0.0.0.0', token: TOKEN }).join('\n'), /rum\.api\.host.*loopback/)
  assert.match(refused({ host: '192.0.2.1', token: TOKEN }).join('\n'), /rum\.api\.host.*loopback/)
  assert.match(refused({ token: 'short' }).join('\n'), /rum\.api\.token.*32 characters/)
  assert.match(refused({ host: '127.0.0.1' }).join('\n'), /rum\.api\.token/)
  assert.deepEqual(refused({ host: '::1', token: TOKEN }), [])
  assert.deepEqual(refused({ host: '127.0.0.2', token: TOKEN, port: 0 }), [])
})

test('retention: every minute on the clock, rows older than maxAge are deleted and counted; one log line of counters when they moved', async () => {
  const before = (await call('stats')).json
  const reports = () => log.lines.filter((l) => String(l.msg).startsWith('monitoring since the last report'))
  const n = reports().length
  // past maxAge (1 h): the minute timer's sweeps on the way find nothing old enough; the one after deletes every row
  clock.advance(HOUR)
  await until(() => call('stats'), (a) => typeof a.json.lastSweep === 'number', 'the first sweeps')
  assert.equal((await call('stats')).json.swept, 0)
  clock.advance(UPKEEP_EVERY)
  const stats = (await until(() => call('stats'), (a) => typeof a.json.lastSweep === 'number' && a.json.swept === before.stored, 'a sweep')).json
  assert.equal(stats.sweptByAge, 6)
  assert.equal(stats.sweptBySize, 0)
  assert.equal(typeof stats.storeBytes, 'number')
  assert.deepEqual((await call(`page-views?pv=${pv}`)).json.pageViews, [])
  assert.deepEqual((await call(`errors?since=0`)).json.groups, [])
  // the counters' line: the totals, and what moved in the message
  await until(async () => reports().length, (k) => k > n, 'the counters line')
  const line = reports().at(-1)!
  assert.equal(line.level, 30)
  assert.deepEqual([line.accepted, line.refused, line.dropped, line.stored, line.swept, line.queued], [1, 1, 0, 6, 6, 0])
  assert.deepEqual(line.refusedBy, { invalid: 1 })
  // nothing moved since: no new line on the next minutes
  const k = reports().length
  clock.advance(3 * UPKEEP_EVERY)
  await new Promise((r) => setTimeout(r, 50))
  assert.equal(reports().length, k)
})

test('reloads: a new token at once on the same listener; a new port a new listener; no rum.api, no listener', async () => {
  const other = 'b'.repeat(40)
  await box.reload(config({ api: { port: 0, token: other }, retention: { maxAge: '1h' } }))
  assert.equal(box.rumApi!.url, api)
  assert.equal((await call('stats')).status, 401)
  assert.equal((await call('stats', { token: other })).status, 200)
  // a fixed port: a new listener there, the old one closed
  const port = await freePort()
  await box.reload(config({ api: { port, token: other } }))
  const moved = box.rumApi!.url
  assert.equal(moved, `http://127.0.0.1:${port}/rum/v1/`)
  assert.equal((await call('stats', { token: other, base: moved })).status, 200)
  await assert.rejects(call('stats', { token: other }), { code: 'ECONNREFUSED' })
  // the port taken: the reload is refused and the API stays
  await assert.rejects(box.reload(config({ api: { port: new URL(site).port === '' ? 80 : Number(new URL(site).port), token: other } })), (err: Error) => err instanceof ConfigError && /rum\.api: cannot listen on 127\.0\.0\.1:\d+ \(EADDRINUSE\)/.test(err.issues.join()))
  assert.equal((await call('stats', { token: other, base: moved })).status, 200)
  // no API any more
  await box.reload(config({}))
  assert.equal(box.rumApi, null)
  await assert.rejects(call('stats', { token: other, base: moved }), { code: 'ECONNREFUSED' })
})

/** A port free now on 127.0.0.1. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = http.createServer()
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
    s.on('error', reject)
  })
}
