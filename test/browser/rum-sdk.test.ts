import assert from 'node:assert/strict'
import { parseBatch } from '../../src/rum/schema.ts'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { buildRumScript } from '../../client/build.ts'
import { browserSkip, launchBrowser, type LaunchedBrowser } from '../helpers/browser.ts'

/**
 * The RUM SDK's plain script (built in memory from client/rum.ts) in
 * Chromium, on a page served by a bare node:http server that plays the
 * collector: the page throws, rejects, fetches a 500, loads a slow image,
 * shifts its layout and changes route; leaving the page sends the batches.
 */

const skip = browserSkip()
if (skip) process.stdout.write(`# browser tests skipped: ${skip}\n`)

const PAGE = `<!doctype html><meta charset="utf-8"><title>rum</title>
<script src="/edgebox-rum.js" data-release="r-test" data-env="test" data-endpoint="/_edgebox/rum/"></script>
<h1 id="title">RUM test page</h1>
<p>Some text for a first contentful paint.</p>
<img class="slow" src="/slow.jpg?v=1" width="40" height="40" alt="">
<p id="below">below the fold of the shift</p>
<script src="/page.js"></script>`

// Two throws from one place (one error with count 2), a rejection, a failing
// fetch (query values must go), a layout shift, then a soft navigation and a
// fetch in the new page view.
const PAGE_JS = `
function boom() { throw new Error('boom from page') }
setTimeout(boom, 10)
setTimeout(boom, 20)
Promise.reject(new Error('nope, rejected'))
fetch('/api/items?id=42&q=secret%20stuff').then(function (r) { window.apiStatus = r.status })
setTimeout(function () {
  var d = document.createElement('div')
  d.textContent = 'inserted'
  d.className = 'shifter'
  d.setAttribute('data-h', '1')
  d.appendChild(document.createElement('br'))
  d.appendChild(document.createElement('br'))
  d.appendChild(document.createElement('br'))
  document.body.insertBefore(d, document.getElementById('title'))
}, 300)
setTimeout(function () {
  history.pushState({}, '', '/next')
  fetch('/api/after?x=1').then(function () { window.routed = true })
}, 600)
`

/** data-manual: the page inits itself, with a consent function that says no. */
const CONSENT_JS = `
EdgeboxRum.init({ release: 'r-consent', consent: function () { return Promise.resolve(false) } })
setTimeout(function () { throw new Error('not collected') }, 10)
fetch('/api/items?id=1')
`
const VARIANTS: Record<string, string> = {
  '/consent.html': '<!doctype html><meta charset="utf-8"><title>consent</title><script src="/edgebox-rum.js" data-manual></script><h1>consent</h1><script src="/consent.js"></script>',
  '/fallback.html': '<!doctype html><meta charset="utf-8"><title>fallback</title><script src="/edgebox-rum.js" data-release="r-fallback"></script><h1>fallback</h1><script src="/page.js"></script>',
}

const GIF = Buffer.from('R0lGODlhAQABAAAAACH5BAEKAAEALAAAAAABAAEAAAICTAEAOw==', 'base64')

interface Batch {
  v: number
  pv: string
  cached: boolean
  page: string
  release?: string
  env?: string
  device: Record<string, unknown>
  events: Array<Record<string, any>>
}

describe('RUM SDK in Chromium', { skip, timeout: 60_000 }, () => {
  let browser: LaunchedBrowser | undefined
  let server: Server
  let base = ''
  const batches: Batch[] = []
  const gifs: string[] = []
  const script = skip ? '' : buildRumScript()

  before(async () => {
    server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x')
      if (req.method === 'POST' && url.pathname === '/_edgebox/rum/batch') {
        const chunks: Buffer[] = []
        req.on('data', (c: Buffer) => chunks.push(c))
        req.on('end', () => {
          try {
            batches.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Batch)
          } catch {
            // asserted below: nothing unparsable expected
            batches.push({ v: -1 } as Batch)
          }
          res.writeHead(204).end()
        })
        return
      }
      if (url.pathname === '/_edgebox/rum/beacon.gif') {
        gifs.push(url.searchParams.get('d') ?? '')
        batches.push(JSON.parse(Buffer.from(url.searchParams.get('d') ?? '', 'base64url').toString('utf8')) as Batch)
        res.writeHead(200, { 'content-type': 'image/gif' }).end(GIF)
        return
      }
      switch (url.pathname) {
        case '/page.html':
          res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'server-timing': 'pv;desc="testpv123"', 'cache-control': 'no-store' }).end(PAGE)
          return
        case '/consent.html':
        case '/fallback.html':
          res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(VARIANTS[url.pathname]!)
          return
        case '/consent.js':
          res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(CONSENT_JS)
          return
        case '/bye.html':
          res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<!doctype html><title>bye</title>')
          return
        case '/edgebox-rum.js':
          res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(script)
          return
        case '/page.js':
          res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(PAGE_JS)
          return
        case '/slow.jpg':
          setTimeout(() => res.writeHead(200, { 'content-type': 'image/gif' }).end(GIF), 1200)
          return
        case '/api/items':
          res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":"boom"}')
          return
        case '/api/after':
          res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
          return
        default:
          res.writeHead(404).end()
      }
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    browser = await launchBrowser()
  })
  after(async () => {
    await browser?.close()
    server?.closeAllConnections()
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()))
  })

  test('a page view reports nav, vitals, errors, api calls, a slow resource and a soft navigation', async () => {
    const page = await browser!.context.newPage()
    const pageErrors: string[] = []
    page.on('pageerror', (e) => pageErrors.push(e.message))
    await page.goto(`${base}/page.html`, { waitUntil: 'load' })
    assert.equal(await page.evaluate(() => typeof (window as unknown as { EdgeboxRum?: { init?: unknown } }).EdgeboxRum?.init), 'function')
    await page.waitForFunction(() => (window as unknown as { routed?: boolean }).routed === true, undefined, { timeout: 10_000 })
    // an interaction for INP/LCP finalisation, then leave the page: visibilitychange (hidden) and pagehide flush
    await page.mouse.click(5, 5)
    await page.waitForTimeout(200)
    await page.goto(`${base}/bye.html`)

    // the final batch carries CLS (reported by web-vitals when the page is hidden)
    const deadline = Date.now() + 5000
    while (Date.now() < deadline && !batches.some((b) => b.events.some((e) => e.t === 'vital' && e.name === 'CLS'))) await new Promise((r) => setTimeout(r, 50))
    await page.close()

    assert.ok(batches.length > 0, 'no batch received')
    assert.ok(batches.every((b) => b.v === 1), 'every batch is version 1')
    // what the SDK sends is what the collector takes: each batch passes its schema
    for (const b of batches) {
      const parsed = parseBatch(JSON.stringify(b))
      assert.ok(parsed.ok, parsed.ok ? '' : `${parsed.error}: ${JSON.stringify(b).slice(0, 400)}`)
    }
    const first = batches.filter((b) => b.pv === 'testpv123')
    assert.ok(first.length > 0, `a batch for pv testpv123: ${JSON.stringify(batches.map((b) => b.pv))}`)
    for (const b of first) {
      assert.equal(b.cached, false)
      assert.equal(b.page, '/page.html')
      assert.equal(b.release, 'r-test')
      assert.equal(b.env, 'test')
      assert.equal(typeof b.device.w, 'number')
    }
    const ev = first.flatMap((b) => b.events)
    const dump = JSON.stringify(batches, null, 1)

    const nav = ev.find((e) => e.t === 'nav')
    assert.ok(nav, `a nav event: ${dump}`)
    assert.equal(nav.at, 0)
    assert.equal(nav.type, 'navigate')
    assert.deepEqual(Object.keys(nav.phases).sort(), ['dns', 'dom', 'load', 'redirect', 'tcp', 'tls', 'transfer', 'ttfb'])
    assert.ok(Object.values(nav.phases).every((v) => typeof v === 'number' && v >= 0))

    const err = ev.find((e) => e.t === 'error' && e.kind === 'error')
    assert.ok(err, `an error event: ${dump}`)
    assert.equal(err.message, 'boom from page')
    assert.match(err.stack, /boom/)
    assert.equal(err.count, 2, 'the same error twice counts up')
    assert.equal(ev.filter((e) => e.t === 'error' && e.kind === 'error').length, 1)

    const rej = ev.find((e) => e.t === 'error' && e.kind === 'unhandledrejection')
    assert.ok(rej, `an unhandled rejection: ${dump}`)
    assert.match(rej.message, /nope, rejected/)
    assert.equal(rej.count, 1)

    const apiEv = ev.find((e) => e.t === 'api' && e.status === 500)
    assert.ok(apiEv, `an api event with status 500: ${dump}`)
    assert.equal(apiEv.url, '/api/items?id=&q=')
    assert.equal(apiEv.method, 'GET')
    assert.equal(apiEv.outcome, 'error')
    assert.ok(apiEv.duration >= 0)
    assert.ok(!dump.includes('secret'), 'no query value anywhere')
    assert.ok(!dump.includes('_edgebox/rum'), 'the beacon never reports itself')

    const slow = ev.find((e) => e.t === 'resource' && e.url === '/slow.jpg?v=')
    assert.ok(slow, `the slow image: ${dump}`)
    assert.equal(slow.initiator, 'img')
    assert.ok(slow.duration > 1000, `slow duration ${slow.duration}`)
    assert.equal(slow.failed, false)

    const route = ev.find((e) => e.t === 'route')
    assert.ok(route, `a route event: ${dump}`)
    assert.equal(route.from, '/page.html')
    assert.equal(route.to, '/next')
    assert.equal(typeof route.pv, 'string')
    assert.notEqual(route.pv, 'testpv123')
    const next = batches.filter((b) => b.pv === route.pv)
    assert.ok(next.length > 0, 'a batch for the new page view')
    assert.equal(next[0]!.page, '/next')
    assert.ok(next.flatMap((b) => b.events).some((e) => e.t === 'api' && e.url === '/api/after?x=' && e.outcome === 'ok'))

    const vitals = new Map(ev.filter((e) => e.t === 'vital').map((e) => [e.name as string, e]))
    for (const name of ['FCP', 'TTFB']) {
      const v = vitals.get(name)
      assert.ok(v, `${name} reported: ${[...vitals.keys()].join(',')}`)
      assert.ok(typeof v.value === 'number' && v.value >= 0)
      assert.ok(['good', 'needs-improvement', 'poor'].includes(v.rating))
      assert.equal(typeof v.attr, 'object')
    }
    process.stdout.write(`# vitals reported: ${[...vitals.keys()].sort().join(', ')}\n`)

    // the SDK's own code never threw into the page: only the page's own error (twice) and rejection
    assert.deepEqual(pageErrors.filter((m) => !/boom from page|nope, rejected/.test(m)), [])
  })

  /** Opens `path` (after `initScript`), waits `ms`, leaves it, and returns the batches with `release` that came in. */
  async function visit(path: string, release: string, ms: number, initScript?: () => void): Promise<Batch[]> {
    const page = await browser!.context.newPage()
    try {
      if (initScript) await page.addInitScript(initScript)
      await page.goto(`${base}${path}`, { waitUntil: 'load' })
      await page.waitForTimeout(ms)
      await page.goto(`${base}/bye.html`)
      await page.waitForTimeout(500)
      return batches.filter((b) => b.release === release)
    } finally {
      await page.close()
    }
  }

  test('without consent nothing is collected or sent', async () => {
    const got = await visit('/consent.html', 'r-consent', 300)
    assert.deepEqual(got, [])
  })

  test('without sendBeacon it falls back to fetch with keepalive', async () => {
    const got = await visit('/fallback.html', 'r-fallback', 900, () => {
      Object.defineProperty(Navigator.prototype, 'sendBeacon', { value: undefined, configurable: true })
    })
    const ev = got.flatMap((b) => b.events)
    assert.ok(ev.some((e) => e.t === 'error' && e.count === 2), JSON.stringify(got))
    assert.ok(ev.some((e) => e.t === 'route'))
    assert.ok(ev.some((e) => e.t === 'nav'))
  })

  test('without sendBeacon and fetch it sends base64url JSON in GIF requests of at most 8 KiB', async () => {
    const before = batches.length
    const got = await visit('/fallback.html', 'r-fallback', 900, () => {
      Object.defineProperty(Navigator.prototype, 'sendBeacon', { value: undefined, configurable: true })
      ;(window as unknown as { fetch?: unknown }).fetch = undefined
    })
    const fresh = got.filter((b) => batches.indexOf(b) >= before)
    const ev = fresh.flatMap((b) => b.events)
    assert.ok(ev.some((e) => e.t === 'error' && e.kind === 'unhandledrejection'), JSON.stringify(fresh))
    // (page.js stops at its own fetch() call here, so no route change)
    assert.ok(ev.some((e) => e.t === 'nav'))
    assert.ok(gifs.length > 0 && gifs.every((d) => d.length <= 8192), `gif d= lengths ${gifs.map((d) => d.length).join(',')}`)
  })
})
