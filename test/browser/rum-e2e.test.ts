import assert from 'node:assert/strict'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { build } from 'esbuild'
import { writeRumAssets } from '../../client/build.ts'
import type { ApiCallGroup, ErrorGroup, PageViewPair, PercentileRow, PhaseBreakdown, RumRow } from '../../src/rum/store.ts'
import { openSqliteRumStore } from '../../src/rum/store.ts'
import { browserSkip, launchBrowser, type LaunchedBrowser } from '../helpers/browser.ts'
import { request, startServer, tempDir, type TestServer } from '../helpers/server.ts'

/**
 * Real-user monitoring end to end: Chromium loads a page that a real
 * Edgebox serves from a static route, with the SDK injected by
 * `sites[].rum.inject` (the page has no script tag of its own for it), a
 * slow image and API calls proxied to an upstream, and a minified bundle
 * with its source map. Clicks throw a TypeError inside the bundle, reject a
 * promise, fetch a 500 and make a soft navigation; leaving the page sends
 * the batches; the query API (its own loopback listener, a bearer token)
 * then answers with what was stored: the mapped error, the API calls with
 * query values removed, the page view joined with Edgebox's own row, the
 * percentiles and the breakdown, and the counters.
 */

const skip = browserSkip()
if (skip) process.stdout.write(`# browser tests skipped: ${skip}\n`)

const ROOT = path.resolve(import.meta.dirname, '..', '..')
const TOKEN = 'e2e-token-0123456789abcdef0123456789abcd'
const TAG = '<script src="/_edgebox/rum/sdk.js" defer data-release="e2e-1" data-env="test"></script>'
/** How long the upstream holds the image: above the SDK's default `slowResourceMs` (1000), which an injected tag cannot change. */
const SLOW_IMAGE_MS = 1500
const GIF = Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==', 'base64')

/** The app's source (bundled and minified by esbuild): each button's handler. */
const APP = `function parseLine(line: string): number {
  const price = Number(line.split(':')[1])
  if (Number.isNaN(price)) throw new TypeError('line has no price: ' + line)
  return price
}
function computeTotal(lines: string[]): number {
  let total = 0
  for (const line of lines) total += parseLine(line)
  return total
}
function on(id: string, handler: () => void): void {
  document.getElementById(id)!.addEventListener('click', handler)
}
on('total', () => {
  setTimeout(() => {
    document.getElementById('out')!.textContent = String(computeTotal(['tea:2', 'cake']))
  }, 0)
})
on('reject', () => {
  void Promise.reject(new Error('the cart could not be saved'))
})
on('items', () => {
  void fetch('/api/items?secret=1')
})
on('next', () => {
  // a soft navigation as the browser sees one (Soft Navigations API): a click, a new URL, new content painted
  history.pushState({}, '', '/next')
  const h = document.createElement('h2')
  h.textContent = 'The next page'
  document.body.append(h)
  void fetch('/api/ok')
})
`
/** The line and column (1-based) in APP where `text` starts: where V8's frame points for a construction (`new`) or a call. */
const sourceAt = (text: string): string => {
  const lines = APP.split('\n')
  const i = lines.findIndex((l) => l.includes(text))
  return `${i + 1}:${lines[i]!.indexOf(text) + 1}`
}

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>shop</title></head>
<body>
<h1>A shop</h1>
<p id="out">The total appears here.</p>
<img id="slow" src="/slow.jpg" width="40" height="40" alt="">
<button id="total">total</button>
<button id="reject">save</button>
<button id="items">items</button>
<button id="next">next</button>
<script src="/app.min.js"></script>
</body></html>
`

/** The upstream behind the proxied routes. */
function upstreamAnswer(req: http.IncomingMessage, res: http.ServerResponse): void {
  const json = { 'content-type': 'application/json' }
  switch (new URL(req.url ?? '/', 'http://upstream').pathname) {
    case '/slow.jpg': {
      const t = setTimeout(() => res.writeHead(200, { 'content-type': 'image/gif', 'cache-control': 'no-store' }).end(GIF), SLOW_IMAGE_MS)
      res.on('close', () => clearTimeout(t))
      return
    }
    case '/api/items':
      return void res.writeHead(500, json).end('{"error":"the items are not available"}')
    case '/api/ok':
      return void res.writeHead(200, json).end('{"ok":true}')
    default:
      return void res.writeHead(404, json).end('{"error":"not found"}')
  }
}

describe('real-user monitoring end to end: Chromium, an Edgebox with injection and proxied calls, the query API', { skip, timeout: 60_000 }, () => {
  let browser: LaunchedBrowser | undefined
  let box: TestServer | undefined
  let upstream: http.Server | undefined
  let dataDir = ''
  let cleanup: () => void = () => {}

  before(async () => {
    // the SDK's script build that /_edgebox/rum/sdk.js serves (gitignored, made by `node client/build.ts`)
    if (!existsSync(path.join(ROOT, 'lab', 'www', 'assets', 'edgebox-rum.js'))) writeRumAssets()
    let root: string
    ;({ dir: root, cleanup } = tempDir())
    dataDir = path.join(root, 'data')
    const www = path.join(root, 'www')
    mkdirSync(path.join(root, 'src'))
    writeFileSync(path.join(root, 'src', 'app.ts'), APP)
    await build({ entryPoints: [path.join(root, 'src', 'app.ts')], outfile: path.join(www, 'app.min.js'), bundle: true, minify: true, sourcemap: true, format: 'iife', target: 'es2020', logLevel: 'silent' })
    writeFileSync(path.join(www, 'index.html'), PAGE)
    upstream = http.createServer(upstreamAnswer)
    await new Promise<void>((resolve) => upstream!.listen(0, '127.0.0.1', resolve))
    const up = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`
    box = await startServer({
      dataDir,
      rum: { api: { port: 0, token: TOKEN } },
      sites: [
        {
          rum: { inject: { release: 'e2e-1', env: 'test' } },
          routes: [
            { path: '/api/', proxy: { upstreams: [up] } },
            { path: '/slow.jpg', proxy: { upstreams: [up] } },
            { path: '/', static: { root: www } },
          ],
        },
      ],
    })
    browser = await launchBrowser()
  })

  after(async () => {
    await browser?.close()
    await box?.close()
    upstream?.closeAllConnections()
    await new Promise<void>((resolve) => (upstream ? upstream.close(() => resolve()) : resolve()))
    cleanup()
  })

  /** One question to the query API, with the token; its JSON (the status must be 200). */
  async function ask<T>(endpoint: string): Promise<T> {
    const r = await request('http/1.1', new URL(endpoint, box!.box.rumApi!.url).href, { headers: { authorization: `Bearer ${TOKEN}` } })
    assert.equal(r.status, 200, `${endpoint}: ${r.text}`)
    return JSON.parse(r.text) as T
  }

  /** Asks `endpoint` every 100 ms until `ready` holds of the answer (the collector writes every 100 ms, after mapping stacks), for at most 10 s; returns the last answer. */
  async function poll<T>(endpoint: string, ready: (answer: T) => boolean): Promise<T> {
    const deadline = Date.now() + 10_000
    let answer = await ask<T>(endpoint)
    while (!ready(answer) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100))
      answer = await ask<T>(endpoint)
    }
    return answer
  }

  test('a page view with an error from the bundle, a rejection, a failing call and a soft navigation is stored and answered by the query API', async () => {
    // 1. the HTML as Edgebox sends it: the tag right before </head>, and no Content-Length (the body changed length)
    const html = await request('http/1.1', box!.url)
    assert.equal(html.status, 200)
    assert.equal(html.text, PAGE.replace('</head>', `${TAG}</head>`))
    assert.equal(html.headers['content-length'], undefined)
    assert.equal(html.headers['transfer-encoding'], 'chunked')
    // the map stays on the server (rum.serveMaps is off)
    assert.equal((await request('http/1.1', `${box!.url}app.min.js.map`)).status, 404)

    const page = await browser!.context.newPage()
    const thrown: string[] = []
    page.on('pageerror', (e) => thrown.push(e.message))
    let pv: string | undefined
    let softPv: string | undefined
    try {
      // `load` waits for the slow image
      const res = await page.goto(box!.url, { waitUntil: 'load' })
      pv = /pv;desc="([A-Za-z0-9_-]+)"/.exec((await res!.allHeaders())['server-timing'] ?? '')?.[1]
      assert.ok(pv, 'the HTML answer carries a page-view id')
      assert.equal(await page.$eval('#slow', (img) => (img as HTMLImageElement).complete && (img as HTMLImageElement).naturalWidth), 1)
      // the injected SDK runs (defer) and took the page view's id from Server-Timing
      await page.waitForFunction(() => typeof (window as unknown as { EdgeboxRum?: unknown }).EdgeboxRum === 'object')
      const sdk = () => page.evaluate(() => (window as unknown as { EdgeboxRum: { init(): { pv: string | undefined } } }).EdgeboxRum.init().pv)
      assert.equal(await sdk(), pv)
      // each click is an interaction (INP); the soft navigation comes last so everything before it is the first page view's
      for (const id of ['total', 'reject', 'items']) {
        await page.click(`#${id}`)
        await page.waitForTimeout(150)
      }
      await page.click('#next')
      await page.waitForFunction(() => location.pathname === '/next')
      await page.waitForTimeout(300)
      softPv = await sdk()
      assert.ok(softPv && softPv !== pv, `the soft navigation is a new page view: ${softPv}`)
      assert.deepEqual(thrown.sort(), ['line has no price: cake', 'the cart could not be saved'])
      // leaving the page makes it hidden (visibilitychange), then pagehide: the SDK sends its batches with sendBeacon
      await page.goto('about:blank')
    } finally {
      await page.close()
    }

    // 2. the errors: the TypeError mapped back to parseLine in /src/app.ts, and the rejection
    const errors = await poll<{ groups: ErrorGroup[] }>('errors', (a) => a.groups.length >= 2)
    const dump = JSON.stringify(errors.groups)
    const typeError = errors.groups.find((g) => g.message === 'line has no price: cake')
    assert.ok(typeError, dump)
    assert.equal(typeError.topFrame, `at parseLine (/src/app.ts:${sourceAt('new TypeError')})`)
    assert.deepEqual(typeError.releases, ['e2e-1'])
    assert.equal(typeError.count, 1)
    assert.equal(typeError.pageViews, 1)
    const rejection = errors.groups.find((g) => g.message === 'the cart could not be saved')
    assert.ok(rejection, dump)
    assert.deepEqual(rejection.releases, ['e2e-1'])
    assert.match(rejection.topFrame ?? '', /^at \S+ \(\/src\/app\.ts:\d+:\d+\)$/)
    assert.equal(errors.groups.length, 2, dump)

    // 3. the API calls: the failing one with its query value removed (the SDK keeps the names only), and the one after the soft navigation
    const failing = await poll<{ calls: ApiCallGroup[] }>('api-calls?sort=failing', (a) => a.calls.length >= 1)
    assert.deepEqual(failing.calls.map(({ method, url, count, failures }) => ({ method, url, count, failures })), [{ method: 'GET', url: '/api/items?secret=', count: 1, failures: 1 }])
    const all = await poll<{ calls: ApiCallGroup[] }>('api-calls', (a) => a.calls.length >= 2)
    assert.deepEqual(
      all.calls.map(({ method, url, count, failures }) => ({ method, url, count, failures })).sort((a, b) => a.url.localeCompare(b.url)),
      [
        { method: 'GET', url: '/api/items?secret=', count: 1, failures: 1 },
        { method: 'GET', url: '/api/ok', count: 1, failures: 0 },
      ],
    )

    // 4. the first load seen from both sides, joined on its id
    // (INP and CLS come when the page is hidden: wait for them too, so the percentiles below see every vital)
    const first = await poll<{ pageViews: PageViewPair[] }>(`page-views?pv=${pv}`, (a) => {
      const b = a.pageViews[0]?.browser
      return b != null && b.nav !== null && b.TTFB !== null && b.FCP !== null && b.LCP !== null && b.INP !== null && b.CLS !== null
    })
    assert.equal(first.pageViews.length, 1)
    const pair = first.pageViews[0]!
    assert.equal(pair.pv, pv)
    assert.equal(pair.page, '/')
    assert.ok(pair.server, JSON.stringify(pair))
    assert.equal(pair.server.status, 200)
    assert.equal(pair.server.method, 'GET')
    assert.equal(pair.server.handler, 'static')
    assert.equal(pair.server.route, 'sites[0].routes[2]')
    assert.equal(pair.server.protocol, 'h1')
    assert.ok(pair.browser, JSON.stringify(pair))
    for (const vital of ['TTFB', 'FCP', 'LCP', 'INP', 'CLS'] as const) assert.equal(typeof pair.browser[vital], 'number', `${vital}: ${JSON.stringify(pair.browser)}`)
    const nav = pair.browser.nav as { type: string; phases: Record<string, number> }
    assert.equal(nav.type, 'navigate')
    assert.deepEqual(Object.keys(nav.phases).sort(), ['dns', 'dom', 'load', 'redirect', 'tcp', 'tls', 'transfer', 'ttfb'])
    // (the soft navigation's page view, /next, has no server, nav or vital row for page-views to join: read from the store below)

    // 5. TTFB by page, the breakdown, and the interactions' INP
    const ttfb = await ask<{ rows: PercentileRow[] }>('percentiles?metric=TTFB&by=page')
    const home = ttfb.rows.find((r) => r.key === '/')
    assert.ok(home && home.n >= 1, JSON.stringify(ttfb.rows))
    const breakdown = await ask<{ pages: PhaseBreakdown[] }>('breakdown?page=/')
    assert.equal(breakdown.pages.length, 1, JSON.stringify(breakdown))
    // the page's load waits for the image the upstream holds for 1.5 s: between the response's end and domComplete
    assert.equal(breakdown.pages[0]!.dominant, 'dom', JSON.stringify(breakdown))
    // headless Chromium reports INP once the page is hidden after real input (Playwright's clicks go through CDP's Input domain, as trusted events)
    // (on a loaded machine a view's INP may go out in two batches, the first before the page was hidden: one or two rows)
    const inp = await ask<{ rows: PercentileRow[] }>('percentiles?metric=INP&by=page')
    assert.deepEqual(inp.rows.map((r) => r.key), ['/'])
    assert.ok(inp.rows[0]!.n >= 1 && inp.rows[0]!.n <= 2, JSON.stringify(inp.rows))

    // 7. the counters: the page was injected, the stacks mapped, nothing refused
    const stats = await ask<{ inject: { injected: number }; symbolication: { events: number }; refused: Record<string, number> }>('stats')
    assert.ok(stats.inject.injected >= 2, JSON.stringify(stats.inject))
    assert.ok(stats.symbolication.events >= 1, JSON.stringify(stats.symbolication))
    assert.deepEqual(stats.refused, {})

    // 6. the slow image, read from the store once Edgebox has stopped (no endpoint lists resources or a page view's other rows)
    await box!.close()
    box = undefined
    const store = await openSqliteRumStore(dataDir)
    let rows: RumRow[]
    let softRows: RumRow[]
    try {
      rows = await store.pageViewEvents(pv, 1000)
      softRows = await store.pageViewEvents(softPv, 1000)
    } finally {
      await store.close()
    }
    const slow = rows.filter((r) => r.kind === 'resource' && r.url === '/slow.jpg')
    assert.equal(slow.length, 1, JSON.stringify(rows.filter((r) => r.kind === 'resource')))
    assert.equal(slow[0]!.status, 200)
    assert.ok(slow[0]!.duration! > 1000, `the image took ${slow[0]!.duration} ms`)
    assert.equal(slow[0]!.page, '/')
    const detail = JSON.parse(slow[0]!.json!) as { initiator: string; size: number; failed: boolean }
    assert.deepEqual({ initiator: detail.initiator, failed: detail.failed }, { initiator: 'img', failed: false })
    assert.equal(typeof detail.size, 'number')
    // the stored stack, mapped: the original function names (a minified name becomes the one its caller's source uses)
    const thrownRow = rows.find((r) => r.kind === 'error' && r.message === 'line has no price: cake')
    assert.ok(thrownRow, JSON.stringify(rows.map((r) => r.kind)))
    assert.deepEqual(thrownRow.stack!.split('\n').slice(0, 3), [
      'TypeError: line has no price: cake',
      `    at parseLine (/src/app.ts:${sourceAt('new TypeError')})`,
      `    at computeTotal (/src/app.ts:${sourceAt('parseLine(line)')})`,
    ])
    assert.match((JSON.parse(thrownRow.json!) as { rawStack: string }).rawStack.split('\n')[1]!, /^ {4}at \w+ \(http:\/\/127\.0\.0\.1:\d+\/app\.min\.js:1:\d+\)$/)
    // 4 (continued). the soft navigation: the route row stays with the page view it left and names the new one,
    // whose rows are /next's: the call made after it
    const route = rows.filter((r) => r.kind === 'route')
    assert.equal(route.length, 1, JSON.stringify(rows.map((r) => r.kind)))
    assert.equal(route[0]!.url, '/next')
    assert.deepEqual(JSON.parse(route[0]!.json!), { pv: softPv, from: '/' })
    assert.deepEqual(
      softRows.filter((r) => r.kind !== 'vital').map((r) => ({ pv: r.pv, page: r.page, kind: r.kind, url: r.url, status: r.status, outcome: r.outcome, release: r.release, env: r.env })),
      [{ pv: softPv, page: '/next', kind: 'api', url: '/api/ok', status: 200, outcome: 'ok', release: 'e2e-1', env: 'test' }],
    )
    // Chromium has the Soft Navigations API: the soft navigation's own paint is reported as its own vitals, on its page view
    const softVitals = new Set(softRows.filter((r) => r.kind === 'vital').map((r) => r.name))
    assert.ok(softVitals.has('FCP') && softVitals.has('LCP'), `the soft navigation's own FCP and LCP: ${[...softVitals].join(',')}`)
  })
})
