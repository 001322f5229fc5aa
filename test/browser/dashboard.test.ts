import assert from 'node:assert/strict'
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { ConsoleMessage, Page } from 'playwright-core'
import { buildDashboard, DASHBOARD_OUT } from '../../dashboard/build.ts'
import { assertCspFriendly, browserSkip, launchBrowser, type LaunchedBrowser } from '../helpers/browser.ts'
import { certDir, testCa } from '../helpers/certs.ts'
import { request, startServer, tempDir, type TestServer } from '../helpers/server.ts'

const skip = browserSkip()
const ROOT = path.resolve(import.meta.dirname, '..', '..')
const IMAGES = path.join(ROOT, 'docs', 'images')

/** The policy the admin listener sends with the dashboard (docs/admin.md): nothing inline, nothing from elsewhere. */
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

const PAGES = ['overview', 'traffic', 'cache', 'upstreams', 'realtime', 'security', 'tls', 'config', 'dns', 'rum'] as const
type PageName = (typeof PAGES)[number]
const pathOf = (p: PageName) => (p === 'overview' ? '/' : `/${p}`)

/** Builds dist/dashboard when it is missing or older than a file of dashboard/ (`prepare` builds it too). */
async function ensureBuilt(): Promise<void> {
  const index = path.join(DASHBOARD_OUT, 'index.html')
  const newest = (dir: string): number =>
    Math.max(0, ...readdirSync(dir, { withFileTypes: true }).map((e) => (e.isDirectory() ? newest(path.join(dir, e.name)) : statSync(path.join(dir, e.name)).mtimeMs)))
  if (!existsSync(index) || statSync(index).mtimeMs < newest(path.join(ROOT, 'dashboard'))) await buildDashboard()
}

/** The sum of a metric's samples whose labels include `labels`, from Prometheus's text format. */
function metricSum(text: string, name: string, labels: Readonly<Record<string, string>> = {}): number {
  let sum = 0
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line)
    if (!m || m[1] !== name) continue
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1]!, l[2]!]))
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3])
  }
  return sum
}

/** Retries `check` until it passes or `ms` go by (the pages poll the API every 2 to 3 s). */
async function eventually(check: () => Promise<void>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  for (;;) {
    try {
      return await check()
    } catch (err) {
      if (Date.now() > end) throw err
      await new Promise((r) => setTimeout(r, 250))
    }
  }
}

/**
 * The dashboard in Chromium, served by a real Edgebox's admin listener
 * with a site of static files, a proxy with a cache, a rate-limited route
 * and a realtime hub, after real traffic: every page renders under the
 * strict CSP without a console error or warning, shows the same numbers as
 * the admin API and /metrics, acts through the API (purge, drain), follows
 * the live access log with its filters, says plainly what is not
 * configured, and fits a phone's screen. Screenshots go to docs/images.
 */
describe('the dashboard (admin listener) in Chromium', { skip, timeout: 240_000 }, () => {
  let server: TestServer | undefined
  let origin: http.Server | undefined
  let browser: LaunchedBrowser | undefined
  let dir: { dir: string; cleanup(): void } | undefined
  let admin = ''
  let site = ''
  let originUrl = ''
  const subscribers: http.ClientRequest[] = []

  const api = async <T>(p: string): Promise<T> => {
    const r = await request('http/1.1', new URL(p, admin).href)
    assert.equal(r.status, 200, `${p}: ${r.text}`)
    return JSON.parse(r.text) as T
  }
  const metrics = async (): Promise<string> => {
    const r = await request('http/1.1', new URL('/metrics', admin).href)
    assert.equal(r.status, 200, r.text)
    return r.text
  }
  const get = (p: string) => request('http/1.1', new URL(p, site).href)
  /** The one list an API answer carries (its only array field, or the answer itself). */
  const listOf = <T>(body: unknown): T[] => (Array.isArray(body) ? body : (Object.values(body as object).find(Array.isArray) ?? [])) as T[]

  before(async () => {
    await ensureBuilt()
    dir = tempDir()
    writeFileSync(path.join(dir.dir, 'index.html'), '<!doctype html><title>shop</title><p>hello</p>\n')
    // the origin behind the proxy: a cacheable list, and an answer that fails
    origin = http.createServer((req, res) => {
      if (req.url === '/api/items') {
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=300' })
        return res.end('[{"id":1}]')
      }
      res.writeHead(500, { 'content-type': 'text/plain' })
      res.end('the origin failed on purpose')
    })
    await new Promise<void>((r) => origin!.listen(0, '127.0.0.1', r))
    originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`
    server = await startServer({
      admin: { port: 0 },
      sites: [
        {
          routes: [
            { path: '/live/', realtime: { channels: { 'news:*': {} } } },
            { path: '/api/', proxy: { upstreams: [originUrl], cache: true } },
            { path: '/limited/', static: { root: dir.dir }, rateLimit: { requests: 1, per: '1m' } },
            { path: '/', static: { root: dir.dir } },
          ],
        },
      ],
    })
    admin = server.box.admin!.url
    site = server.url
    // traffic: pages and misses, a miss then hits in the cache, a 5xx from the origin, two rate-limit refusals
    for (let i = 0; i < 5; i++) assert.equal((await get('/')).status, 200)
    for (let i = 0; i < 3; i++) assert.equal((await get(`/no-such-page-${i}`)).status, 404)
    for (let i = 0; i < 4; i++) assert.equal((await get('/api/items')).status, 200)
    assert.equal((await get('/api/fail')).status, 500)
    assert.deepEqual([(await get('/limited/')).status, (await get('/limited/')).status, (await get('/limited/')).status], [200, 429, 429])
    // a realtime subscriber (SSE) and messages for it
    await new Promise<void>((resolve, reject) => {
      const req = http.get(new URL('/live/sse?ch=news:today', site), (res) => {
        assert.equal(res.statusCode, 200)
        res.once('data', () => resolve())
      })
      req.on('error', reject)
      subscribers.push(req)
    })
    for (let i = 0; i < 3; i++) {
      const r = await request('http/1.1', new URL('/live/publish', site).href, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ch: 'news:today', d: { n: i } }) })
      assert.equal(r.status, 200, r.text)
    }
    browser = await launchBrowser()
    mkdirSync(IMAGES, { recursive: true })
  })

  after(async () => {
    for (const s of subscribers) s.destroy()
    await browser?.close()
    await server?.close()
    await new Promise<void>((r) => (origin ? origin.close(() => r()) : r()))
    dir?.cleanup()
  })

  /** A page that records every console error and warning, uncaught exception and CSP violation. */
  async function open(viewport = { width: 1200, height: 900 }): Promise<{ page: Page; problems: string[] }> {
    const page = await browser!.context.newPage()
    await page.setViewportSize(viewport)
    const problems: string[] = []
    page.on('console', (m: ConsoleMessage) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`)
    })
    page.on('pageerror', (e) => problems.push(`uncaught: ${e.message}`))
    return { page, problems }
  }

  /** Opens a page by its path and waits until it has its data: no "Loading", and no API error shown. */
  async function visit(page: Page, name: PageName): Promise<void> {
    const res = await page.goto(new URL(pathOf(name), admin).href)
    assert.equal(res!.status(), 200, name)
    await page.waitForSelector('main h1')
    await page.waitForFunction(() => !document.querySelector('[data-state="loading"]'), undefined, { timeout: 10_000 })
    const shown = await page.$$eval('[data-state="error"]', (els) => els.map((e) => e.textContent))
    assert.deepEqual(shown, [], `${name}: the page shows an API error`)
  }

  const text = (page: Page, selector: string) => page.$eval(selector, (e) => (e.textContent ?? '').trim())

  test('the app is served under the strict CSP, with history routing, and every page renders without a console error or warning', async () => {
    const index = await request('http/1.1', admin)
    assert.equal(index.status, 200)
    assert.match(String(index.headers['content-type']), /^text\/html/)
    assertCspFriendly(index.text, 'dist/dashboard/index.html')
    const script = /<script type="module" crossorigin src="(\/assets\/index-[\w-]+\.js)"><\/script>/.exec(index.text)?.[1]
    assert.ok(script, index.text)
    const js = await request('http/1.1', new URL(script, admin).href)
    assert.equal(js.status, 200)
    assert.match(String(js.headers['content-type']), /^text\/javascript/)
    // a page's own path is the app too (the SPA fallback), so a reload or a shared link opens that page
    const deep = await request('http/1.1', new URL('/upstreams', admin).href)
    assert.equal(deep.status, 200)
    assert.equal(deep.text, index.text)

    const { page, problems } = await open()
    try {
      for (const name of PAGES) {
        await visit(page, name)
        assert.equal(await page.getAttribute(`nav a[data-page="${name}"]`, 'aria-current'), 'page', name)
        await page.waitForTimeout(name === 'overview' || name === 'traffic' ? 2500 : 600)
        await page.screenshot({ path: path.join(IMAGES, `dashboard-${name}.png`), fullPage: true })
      }
      // moving between pages in the app (no reload) keeps working
      await page.click('nav a[data-page="cache"]')
      await page.waitForURL(new URL('/cache', admin).href)
      await page.waitForSelector('h1:text("Cache")')
      await page.goto(new URL('/no-such-page', admin).href)
      await page.waitForSelector('[data-state="not-found"]')
      assert.deepEqual(problems, [])
      // all of it under the policy the admin listener sends with the app
      assert.equal(index.headers['content-security-policy'], CSP)
      assert.equal(deep.headers['content-security-policy'], CSP)
    } finally {
      await page.close()
    }
  })

  test('the overview shows the API figures, live charts over the hour, and the recent server errors', async () => {
    const { page, problems } = await open()
    try {
      const before = await api<{ totals: { requests: number; errors: number } }>('/api/v1/overview')
      await visit(page, 'overview')
      await page.waitForSelector('[data-stat="requestsPerSecond"] .value')
      const shown = Number(/^(\d+) since start$/.exec(await text(page, '[data-stat="requestsPerSecond"] .sub'))?.[1])
      const afterwards = await api<{ totals: { requests: number; errors: number } }>('/api/v1/overview')
      assert.ok(shown >= before.totals.requests && shown <= afterwards.totals.requests, `${shown} between ${before.totals.requests} and ${afterwards.totals.requests}`)
      // one answer was a 5xx: the origin's 500
      assert.equal(afterwards.totals.errors, 1)
      assert.equal(await text(page, '[data-stat="totalErrors"]'), '1 since start')
      const m = await metrics()
      assert.equal(metricSum(m, 'edgebox_http_requests_total', { code: '5xx' }), 1)
      const errors = await page.$$eval('table[data-table="errors"] tbody tr', (trs) => trs.map((tr) => tr.textContent ?? ''))
      assert.equal(errors.length, 1)
      assert.match(errors[0]!, /500/)
      assert.match(errors[0]!, /\/api\/fail/)
      // six charts, fed by the live feed (the admin hub's `series` channel)
      assert.deepEqual(await page.$$eval('[data-chart]', (els) => els.map((e) => (e as HTMLElement).dataset.chart)), ['requests', 'status', 'latency', 'bandwidth', 'hit-ratio', 'errors'])
      await page.waitForSelector('.live[data-live="connected"]', { timeout: 10_000 })
      assert.equal(await page.$$eval('[data-chart] canvas', (c) => c.length), 6)
      assert.deepEqual(problems, [])
    } finally {
      await page.close()
    }
  })

  test('the cache page shows each cache route as the API and /metrics count it, and purges through the API', async () => {
    const { page, problems } = await open()
    try {
      await visit(page, 'cache')
      const [route] = listOf<{ route: string; view: { hits: number; misses: number; topKeys: { key: string }[] } }>(await api('/api/v1/cache?top=20'))
      assert.ok(route, 'one cache route')
      // /api/items: a miss, then three hits; /api/fail: a miss (a 500 is not stored)
      assert.deepEqual([route.view.hits, route.view.misses], [3, 2])
      const m = await metrics()
      assert.equal(metricSum(m, 'edgebox_cache_requests_total', { route: route.route, outcome: 'hit' }), 3)
      assert.equal(metricSum(m, 'edgebox_cache_requests_total', { route: route.route, outcome: 'miss' }), 2)
      const row = `table[data-table="caches"] tr[data-route="${route.route}"]`
      await eventually(async () => {
        assert.equal(await text(page, `${row} [data-field="hits"]`), '3')
        assert.equal(await text(page, `${row} [data-field="misses"]`), '2')
        assert.equal(await text(page, `${row} [data-field="ratio"]`), '60.0 %')
      })
      assert.ok(await page.$(`[data-keys="${route.route}"] td:text("/api/items")`), 'the stored key is listed')
      // purge the stored URL: its entry goes, and the next request is a miss
      const key = route.view.topKeys[0]!.key
      const host = /^https?:\/\/([^/]+)/.exec(key)?.[1] ?? new URL(site).host
      await page.fill('form[data-form="purge"] input[name="host"]', host)
      await page.selectOption('form[data-form="purge"] select[name="kind"]', 'url')
      await page.fill('form[data-form="purge"] input[name="value"]', '/api/items')
      await page.click('form[data-form="purge"] button[type="submit"]')
      assert.equal(await (await page.waitForSelector('[data-purge="result"]')).textContent(), 'Purged 1 entry.')
      const again = await get('/api/items')
      assert.match(String(again.headers['cache-status']), /fwd=miss/)
      // a bad purge is refused by the form itself, in the page
      await page.fill('form[data-form="purge"] input[name="value"]', 'no-slash')
      await page.click('form[data-form="purge"] button[type="submit"]')
      assert.match(await text(page, '[data-state="error"]'), /path starting with \//)
      assert.deepEqual(problems, [])
    } finally {
      await page.close()
    }
  })

  test('the upstreams page shows health and attempts as the API does, and drains an upstream and puts it back', async () => {
    const { page, problems } = await open()
    try {
      await visit(page, 'upstreams')
      const routes = listOf<{ route: string; upstreams: { id: string; attempts: number; failures: number; maintenance: boolean }[] }>(await api('/api/v1/upstreams'))
      const route = routes.find((r) => r.upstreams.some((u) => u.id === originUrl))
      assert.ok(route, JSON.stringify(routes))
      const up = route.upstreams.find((u) => u.id === originUrl)!
      const row = `[data-route="${route.route}"] tr[data-upstream="${originUrl}"]`
      await eventually(async () => {
        assert.equal(await text(page, `${row} [data-field="attempts"]`), String(up.attempts))
        assert.equal(await text(page, `${row} [data-field="health"]`), 'healthy')
      })
      assert.equal(metricSum(await metrics(), 'edgebox_upstream_attempts_total', { upstream: originUrl }), up.attempts)
      await page.click(`${row} button[data-action="maintenance"]`)
      await page.waitForSelector(`${row} button[aria-pressed="true"]`)
      const drained = listOf<{ route: string; upstreams: { id: string; maintenance: boolean }[] }>(await api('/api/v1/upstreams'))
      assert.equal(drained.find((r) => r.route === route.route)!.upstreams.find((u) => u.id === originUrl)!.maintenance, true)
      assert.equal(await text(page, `${row} [data-field="health"]`), 'drained')
      await page.click(`${row} button[data-action="maintenance"]`)
      await page.waitForSelector(`${row} button[aria-pressed="false"]`)
      const back = listOf<{ route: string; upstreams: { id: string; maintenance: boolean }[] }>(await api('/api/v1/upstreams'))
      assert.equal(back.find((r) => r.route === route.route)!.upstreams.find((u) => u.id === originUrl)!.maintenance, false)
      assert.equal((await get('/api/items')).status, 200)
      // no balanced name: the edges part says so
      assert.match(await text(page, '[data-state="empty"]'), /No balanced name/)
      assert.deepEqual(problems, [])
    } finally {
      await page.close()
    }
  })

  test('the realtime, security, TLS, configuration, DNS and RUM pages show what the API answers', async () => {
    const { page, problems } = await open()
    try {
      // realtime: the one SSE subscriber and its channel
      await visit(page, 'realtime')
      const hubs = listOf<{ route: string; view: { connections: { sse: number }; published: number; channels: { name: string }[] } }>(await api('/api/v1/realtime?top=20'))
      const hub = hubs.find((h) => h.view.channels.some((c) => c.name === 'news:today'))
      assert.ok(hub, JSON.stringify(hubs))
      assert.equal(hub.view.connections.sse, 1)
      await eventually(async () => {
        assert.equal(await text(page, `[data-route="${hub.route}"] [data-stat="sse"] .value`), '1')
        assert.equal(await text(page, `[data-route="${hub.route}"] [data-stat="published"] .value`), String(hub.view.published))
      })
      assert.ok(await page.$(`[data-route="${hub.route}"] tr[data-channel="news:today"]`), 'the channel is listed')
      assert.equal(metricSum(await metrics(), 'edgebox_realtime_connections', { transport: 'sse' }), 1)

      // security: two rate-limit refusals of this machine
      await visit(page, 'security')
      const sec = await api<{ refusals: { rateLimit: number; csrf: number; cors: number }; rateLimited: { client: string; count: number }[] }>('/api/v1/security')
      assert.equal(sec.refusals.rateLimit, 2)
      assert.equal(await text(page, '[data-stat="rateLimit"] .value'), '2')
      assert.equal(await text(page, '[data-stat="csrf"] .value'), String(sec.refusals.csrf))
      assert.equal(metricSum(await metrics(), 'edgebox_refusals_total', { kind: 'rate_limit' }), 2)
      assert.equal(await text(page, `tr[data-client="${sec.rateLimited[0]!.client}"] td.num`), '2')

      // TLS: plain HTTP only, so no certificate, and the page says so
      await visit(page, 'tls')
      assert.equal(listOf(await api('/api/v1/tls')).length, 0)
      assert.match(await text(page, '[data-state="empty"]'), /No certificate/)

      // configuration: the JSON in force, as the API gives it
      await visit(page, 'config')
      const { config } = await api<{ config: unknown }>('/api/v1/config')
      assert.deepEqual(JSON.parse(await text(page, 'pre[data-config="json"]')), config)
      const changes = listOf(await api('/api/v1/config/changes'))
      assert.equal(await page.$$eval('article[data-change]', (a) => a.length), changes.length)
      // a reload made elsewhere (here: the API from a script) reaches the open page through the admin hub's `events`
      // channel: the page fetches its changes at once, long before its own 10 s pace would
      const adminOrigin = new URL(admin).origin
      const reloaded = await request('http/1.1', new URL('/api/v1/reload', admin).href, { method: 'POST', headers: { origin: adminOrigin } })
      assert.equal(reloaded.status, 200, reloaded.text)
      await page.waitForFunction((n) => document.querySelectorAll('article[data-change]').length === n, changes.length + 1, { timeout: 5000 })

      // DNS and RUM: not configured, said plainly, and nothing asked of their endpoints
      await visit(page, 'dns')
      assert.match(await text(page, '[data-dns="off"]'), /^DNS is not configured\./)
      await visit(page, 'rum')
      assert.match(await text(page, '[data-rum="off"]'), /^No site has rum\./)
      assert.deepEqual(problems, [])
    } finally {
      await page.close()
    }
  })

  test('the traffic page follows the live access log, and its filters are the API\'s', async () => {
    const { page, problems } = await open()
    try {
      await visit(page, 'traffic')
      await page.waitForSelector('[data-stream="state"][data-state="open"]')
      assert.equal((await get('/live-log-probe')).status, 404)
      assert.equal((await get('/')).status, 200)
      await page.waitForSelector('table[data-table="access"] tr[data-path="/live-log-probe"][data-status="404"]')
      await page.waitForSelector('table[data-table="access"] tr[data-path="/"][data-status="200"]')
      // only 404s under /filtered/
      await page.fill('input[name="status"]', '404')
      await page.fill('input[name="path"]', '/filtered/')
      await page.click('button[type="submit"]')
      await page.waitForSelector('[data-stream="state"][data-state="open"]')
      assert.equal((await get('/')).status, 200)
      assert.equal((await get('/elsewhere')).status, 404)
      assert.equal((await get('/filtered/a')).status, 404)
      await page.waitForSelector('table[data-table="access"] tr[data-path="/filtered/a"]')
      await page.waitForTimeout(500)
      assert.deepEqual(await page.$$eval('table[data-table="access"] tbody tr', (trs) => trs.map((tr) => `${(tr as HTMLElement).dataset.status} ${(tr as HTMLElement).dataset.path}`)), ['404 /filtered/a'])
      // a filter the API would refuse is named in the page, and the log goes on
      await page.fill('input[name="status"]', 'teapot')
      await page.click('button[type="submit"]')
      assert.match(await text(page, '[data-state="error"]'), /Status is a code/)
      assert.deepEqual(problems, [])
    } finally {
      await page.close()
    }
  })

  test('on a phone (375x667) the menu collapses, tables scroll inside the page, and the charts fit', async () => {
    const { page, problems } = await open({ width: 375, height: 667 })
    try {
      for (const name of PAGES) {
        await visit(page, name)
        await page.waitForTimeout(name === 'overview' ? 1500 : 300)
        // the page itself never scrolls sideways: wide tables scroll in their own box
        assert.ok((await page.evaluate(() => document.documentElement.scrollWidth)) <= 375, `${name}: wider than the screen`)
      }
      await visit(page, 'overview')
      await page.waitForTimeout(1500)
      const widths = await page.$$eval('[data-chart] canvas', (cs) => cs.map((c) => c.getBoundingClientRect().width))
      assert.equal(widths.length, 6)
      for (const w of widths) assert.ok(w > 200 && w <= 375, `a chart ${w}px wide`)
      await page.screenshot({ path: path.join(IMAGES, 'dashboard-phone.png') })
      // the navigation is behind the menu button
      assert.equal(await page.isVisible('nav a[data-page="cache"]'), false)
      await page.click('button.menu')
      assert.equal(await page.getAttribute('button.menu', 'aria-expanded'), 'true')
      await page.screenshot({ path: path.join(IMAGES, 'dashboard-phone-menu.png') })
      await page.click('nav a[data-page="cache"]')
      await page.waitForURL(new URL('/cache', admin).href)
      assert.equal(await page.isVisible('nav a[data-page="cache"]'), false, 'the menu closes on navigation')
      // rotated to a wider screen, the charts follow their boxes
      await visit(page, 'overview')
      await page.setViewportSize({ width: 1000, height: 700 })
      await page.waitForFunction(() => [...document.querySelectorAll('[data-chart] canvas')].every((c) => c.getBoundingClientRect().width > 380))
      assert.deepEqual(problems, [])
    } finally {
      await page.close()
    }
  })
})

/**
 * The pages of what is off above, on: a TLS certificate with its days
 * left, DNS zones and a balanced name with its edges and a question asked
 * of Edgebox's own DNS, and real-user monitoring's vitals and error groups
 * from a stored beacon.
 */
describe('the dashboard with TLS, DNS and RUM configured', { skip, timeout: 180_000 }, () => {
  let server: TestServer | undefined
  let browser: LaunchedBrowser | undefined
  let dir: { dir: string; cleanup(): void } | undefined
  let certs: ReturnType<typeof certDir> | undefined
  let admin = ''

  before(async () => {
    await ensureBuilt()
    dir = tempDir()
    writeFileSync(path.join(dir.dir, 'index.html'), '<!doctype html><title>docs</title>\n')
    const ca = await testCa()
    const leaf = await ca.leaf(['docs.test', 'localhost', '127.0.0.1'], { to: 30 * 86_400_000 + 3_600_000 })
    certs = certDir({ 'cert.pem': leaf.certPem, 'key.pem': leaf.keyPem })
    server = await startServer({
      listen: [{ host: '127.0.0.1', port: 0 }, { host: '127.0.0.1', port: 0, tls: true }],
      admin: { port: 0 },
      dataDir: path.join(dir.dir, 'data'),
      tls: { certificates: [{ cert: certs.path('cert.pem'), key: certs.path('key.pem') }] },
      dns: {
        listen: { host: '127.0.0.1', port: 0 },
        zones: [{ origin: 'edge.test', records: [{ name: '@', type: 'NS', data: 'ns1' }, { name: 'ns1', type: 'A', data: '127.0.0.1' }, { name: 'docs', type: 'A', data: '192.0.2.7' }] }],
        balance: [{ name: 'www.edge.test', answers: 1, edges: [{ name: 'a', addresses: ['127.0.0.1'] }, { name: 'b', addresses: ['127.0.0.3'] }], check: { kind: 'tcp', port: 9, interval: 60_000, timeout: 500 } }],
      } as never,
      sites: [{ rum: true, routes: [{ path: '/', static: { root: dir.dir } }] }],
    })
    admin = server.box.admin!.url
    const beacon = {
      v: 1,
      pv: 'dashboardPv1',
      page: '/docs/intro',
      release: '2026.12.1',
      events: [
        { t: 'vital', at: 1840, name: 'LCP', value: 1840.5, rating: 'good' },
        { t: 'vital', at: 90, name: 'TTFB', value: 80, rating: 'good' },
        { t: 'error', at: 2100, kind: 'error', message: 'x is not a function', stack: 'TypeError: x is not a function\n    at f (https://docs.test/app.min.js:1:2345)', count: 1 },
      ],
    }
    const r = await request('http/1.1', new URL('/_edgebox/rum/batch', server.url).href, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(beacon) })
    assert.equal(r.status, 204, r.text)
    browser = await launchBrowser()
  })

  after(async () => {
    await browser?.close()
    await server?.close()
    certs?.cleanup()
    dir?.cleanup()
  })

  test('TLS shows the certificate and its days left, DNS its zones, edges and answers, RUM the vitals and error groups', async () => {
    const page = await browser!.context.newPage()
    const problems: string[] = []
    page.on('console', (m) => (m.type() === 'error' || m.type() === 'warning') && problems.push(`${m.type()}: ${m.text()}`))
    page.on('pageerror', (e) => problems.push(`uncaught: ${e.message}`))
    const go = async (p: string) => {
      assert.equal((await page.goto(new URL(p, admin).href))!.status(), 200)
      await page.waitForFunction(() => !document.querySelector('[data-state="loading"]'), undefined, { timeout: 10_000 })
    }
    try {
      await go('/tls')
      const { certificates } = JSON.parse((await request('http/1.1', new URL('/api/v1/tls', admin).href)).text) as { certificates: { names: string[]; daysLeft: number }[] }
      const mine = certificates.find((c) => c.names.includes('docs.test'))
      assert.ok(mine, JSON.stringify(certificates))
      assert.equal(mine.daysLeft, 30)
      assert.equal(await page.$eval(`tr[data-names="${mine.names.join(' ')}"] [data-field="daysLeft"]`, (e) => e.textContent), '30')
      await page.screenshot({ path: path.join(IMAGES, 'dashboard-tls.png'), fullPage: true })

      await go('/dns')
      await page.waitForSelector('tr[data-zone="edge.test."]')
      await page.waitForSelector('[data-name="www.edge.test."] tr[data-edge="a"]')
      await page.fill('form[data-form="dns"] input[name="name"]', 'docs.edge.test')
      await page.click('form[data-form="dns"] button[type="submit"]')
      await page.waitForSelector('[data-dns="answer"]')
      assert.equal(await page.$eval('[data-dns="answer"] [data-field="rcode"]', (e) => e.textContent), 'NOERROR')
      assert.match(await page.$eval('[data-dns="answer"] pre[data-section="answer"]', (e) => e.textContent ?? ''), /192\.0\.2\.7/)
      await page.screenshot({ path: path.join(IMAGES, 'dashboard-dns.png'), fullPage: true })

      // the beacon's rows are written by the collector's queue: the page shows them once stored
      await eventually(async () => {
        await go('/rum')
        await page.waitForSelector('tr[data-page="/docs/intro"]', { timeout: 2000 })
      }, 20_000)
      assert.equal(await page.$eval('tr[data-page="/docs/intro"] [data-vital="LCP"]', (e) => e.textContent), '1.84 s')
      assert.equal(await page.$eval('tr[data-page="/docs/intro"] [data-vital="TTFB"]', (e) => e.textContent), '80.0 ms')
      const groups = await page.$$eval('table[data-table="errors"] tbody tr', (trs) => trs.map((tr) => tr.textContent ?? ''))
      assert.equal(groups.length, 1)
      assert.match(groups[0]!, /x is not a function/)
      assert.match(groups[0]!, /app\.min\.js:1:2345/)
      await page.screenshot({ path: path.join(IMAGES, 'dashboard-rum.png'), fullPage: true })
      assert.deepEqual(problems, [])
    } finally {
      await page.close()
    }
  })
})
