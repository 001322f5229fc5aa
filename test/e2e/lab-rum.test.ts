import assert from 'node:assert/strict'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { pathToFileURL } from 'node:url'
import { writeLabShop } from '../../client/build.ts'
import { PROTOCOLS, request, startServer, tempDir, type Reply, type TestServer } from '../helpers/server.ts'

/**
 * The monitoring lab's endpoint (`lab: { demo: 'rum' }`) on real sockets:
 * `GET <prefix>page-view?pv=<id>` answers what the store holds for that page
 * view: Edgebox's own row beside the browser's report, the load's phases
 * with the longest marked, and its errors, each stack as stored (mapped
 * back to the sources with the site's source map) beside the stack as the
 * browser sent it. A bad id is a 400, an unknown one a 404, a site without
 * `rum` a 404 saying so; never cached.
 */

const PREFIX = '/lab/demo/rum/'
const ROOT = path.resolve(import.meta.dirname, '..', '..')
const BAD_PRICE = 'cannot read the price "about 20 EUR"'

let box: TestServer
let root: string
let cleanup: () => void
/** The stack V8 gives the minified shop's TypeError, its frames at the lab's URL of the bundle. */
let minifiedStack: string
/** The source lines (1-based) in client/lab/shop.ts that throw, and that call applyCoupon (in checkout). */
let throwLine: number
let checkoutLine: number

before(async () => {
  ;({ dir: root, cleanup } = tempDir())
  const www = path.join(root, 'www')
  mkdirSync(path.join(www, 'lab'), { recursive: true })
  writeFileSync(path.join(www, 'lab', 'index.html'), '<!doctype html><title>shop</title><script type="module" src="/lab/shop.min.js"></script>')
  const shop = writeLabShop(path.join(www, 'lab'))
  box = await startServer({
    dataDir: path.join(root, 'data'),
    sites: [
      { rum: true, routes: [{ path: '/', static: { root: www } }, { path: PREFIX, lab: { demo: 'rum' } }] },
      { hosts: ['norum.localhost'], routes: [{ path: PREFIX, lab: { demo: 'rum' } }] },
    ],
  })
  // the bundle run for real: its TypeError's stack, as a browser at this server would report it
  const { checkout } = (await import(pathToFileURL(shop.script).href)) as { checkout: (lines: unknown[], coupon: string) => number }
  let stack = ''
  try {
    checkout([{ sku: 'mug', price: '12.50 EUR', quantity: 1 }, { sku: 'tee', price: 'about 20 EUR', quantity: 2 }], 'LAB10')
  } catch (err) {
    stack = (err as Error).stack ?? ''
  }
  // up to the bundle's last frame (checkout): the frames below it are this test's
  const lines = stack.split('\n')
  const last = lines.findLastIndex((l) => l.includes('shop.min.js'))
  minifiedStack = lines.slice(0, last + 1).join('\n').replaceAll(pathToFileURL(shop.script).href, `${box.url}lab/shop.min.js`)
  const source = readFileSync(path.join(ROOT, 'client', 'lab', 'shop.ts'), 'utf8').split('\n')
  throwLine = source.findIndex((l) => l.includes('throw new TypeError')) + 1
  checkoutLine = source.findIndex((l) => l.includes('return applyCoupon(lines, coupon)')) + 1
})

after(async () => {
  await box?.close()
  cleanup?.()
})

const get = (query: string, headers: Record<string, string> = {}, protocol: (typeof PROTOCOLS)[number] = 'http/1.1', method = 'GET') =>
  request(protocol, `${box.url}${PREFIX.slice(1)}page-view${query}`, { headers, method })

/** A JSON answer no cache keeps, and its body. */
function json(r: Reply, status: number): Record<string, any> {
  assert.equal(r.status, status, r.text)
  assert.equal(r.headers['content-type'], 'application/json')
  assert.equal(r.headers['cache-control'], 'no-store')
  return JSON.parse(r.text) as Record<string, any>
}

/** Polls the endpoint until `done` holds for its 200 answer (the collector writes every 100 ms); at most 5 s. */
async function poll(pv: string, done: (body: Record<string, any>) => boolean): Promise<Record<string, any>> {
  const deadline = Date.now() + 5_000
  let last: Reply | undefined
  while (Date.now() < deadline) {
    last = await get(`?pv=${pv}`)
    if (last.status === 200 && done(JSON.parse(last.text))) return json(last, 200)
    await new Promise((r) => setTimeout(r, 50))
  }
  assert.fail(`page view ${pv} never complete: ${last?.status} ${last?.text}`)
}

describe('refusals', () => {
  for (const protocol of PROTOCOLS) {
    test(`${protocol}: 400 for a missing, repeated or malformed pv, naming the problem`, async () => {
      const cases: Array<[string, RegExp]> = [
        ['', /^pv: missing: the page-view id the page got in its Server-Timing header/],
        ['?other=1', /^pv: missing/],
        ['?pv=', /^pv: expected 1 to 64 letters, digits, "-" or "_", not ""$/],
        ['?pv=a%20b', /^pv: expected 1 to 64 letters, digits, "-" or "_", not "a b"$/],
        ['?pv=..%2Fetc', /^pv: expected .* not "\.\.\/etc"$/],
        [`?pv=${'a'.repeat(65)}`, /^pv: expected 1 to 64 /],
        ['?pv=abc&pv=abc', /^pv: given more than once$/],
      ]
      for (const [query, message] of cases) {
        const body = json(await get(query, {}, protocol), 400)
        assert.match(body.error, message, query)
        assert.deepEqual(Object.keys(body), ['error'])
      }
    })
  }

  test('64 characters is still an id: an unknown one is a 404 with a JSON message', async () => {
    const long = 'a'.repeat(64)
    assert.match(json(await get(`?pv=${long}`), 404).error, new RegExp(`^no row of page view ${long} is stored`))
    assert.match(json(await get('?pv=AAAAAAAAAAAA'), 404).error, /^no row of page view AAAAAAAAAAAA is stored: not reported yet/)
  })

  test('a site without rum: 404 saying monitoring is off, whatever the id', async () => {
    for (const query of ['?pv=AAAAAAAAAAAA', '?pv=a%20b', '']) {
      const body = json(await get(query, { host: 'norum.localhost' }), 404)
      assert.equal(body.error, 'real-user monitoring is off on this site (sites[].rum): Edgebox collects and stores nothing to show')
    }
  })

  test('other paths under the prefix are 404; methods other than GET and HEAD are 405', async () => {
    const other = await request('http/1.1', `${box.url}${PREFIX.slice(1)}page-views?pv=AAAAAAAAAAAA`)
    assert.equal(other.status, 404)
    assert.match(other.text, /the monitoring demo has \/lab\/demo\/rum\/page-view\?pv=<page-view id>/)
    const post = await get('?pv=AAAAAAAAAAAA', {}, 'http/1.1', 'POST')
    assert.equal(post.status, 405)
    assert.equal(post.headers.allow, 'GET, HEAD, OPTIONS')
  })
})

describe('a page view that was reported', () => {
  test('the server row and the browser report side by side, the dominant phase, each error mapped and as sent', async () => {
    // the page: its HTML answer names its page-view id
    const page = await request('http/1.1', `${box.url}lab/index.html?utm=x`)
    assert.equal(page.status, 200)
    const pv = /pv;desc="([A-Za-z0-9_-]{12})"/.exec(String(page.headers['server-timing']))![1]!
    const edge = Number(/^edge;dur=([\d.]+)/.exec(String(page.headers['server-timing']))![1])
    const rejection = 'Error: the lab rejected this on purpose\n    at https://cdn.example/vendor.js:1:10'
    const phases = { redirect: 0, dns: 1.5, tcp: 2, tls: 0, ttfb: 40, transfer: 3, dom: 90, load: 90 }
    const batch = {
      v: 1,
      pv,
      page: '/lab/index.html',
      release: 'lab',
      events: [
        { t: 'vital', at: 45, name: 'TTFB', value: 41.5, rating: 'good' },
        { t: 'nav', at: 300, type: 'navigate', protocol: 'http/1.1', phases },
        { t: 'error', at: 900, kind: 'error', message: BAD_PRICE, stack: minifiedStack, count: 1 },
        { t: 'error', at: 950, kind: 'unhandledrejection', message: 'the lab rejected this on purpose', stack: rejection, count: 2 },
        { t: 'vital', at: 1200, name: 'LCP', value: 1180.5, rating: 'good' },
      ],
    }
    // another page view's error, in the same store
    const other = { v: 1, pv: 'OTHERpageview', page: '/lab/index.html', events: [{ t: 'error', at: 5, kind: 'error', message: 'not mine', count: 1 }] }
    for (const b of [batch, other]) {
      const r = await request('http/1.1', `${box.url}_edgebox/rum/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(b) })
      assert.equal(r.status, 204, r.text)
    }
    const body = await poll(pv, (b) => b.server !== null && b.errors.length === 2 && b.browser?.LCP !== null)
    assert.deepEqual(Object.keys(body), ['pv', 'page', 'server', 'browser', 'breakdown', 'errors', 'rows', 'truncated'])
    assert.equal(body.pv, pv)
    assert.equal(body.page, '/lab/index.html')
    // Edgebox's row: the HTML answer's status, duration and edge time
    assert.equal(body.server.status, 200)
    assert.equal(body.server.handler, 'static')
    assert.equal(body.server.route, 'sites[0].routes[0]')
    assert.equal(body.server.method, 'GET')
    assert.equal(body.server.protocol, 'h1')
    assert.equal(body.server.edge, edge)
    assert.equal(typeof body.server.duration, 'number')
    // the browser's report
    assert.deepEqual({ ...body.browser, time: 0 }, { time: 0, TTFB: 41.5, FCP: null, LCP: 1180.5, INP: null, CLS: null, nav: { type: 'navigate', protocol: 'http/1.1', phases } })
    // dom and load tie: the first in the load's order is the dominant one
    assert.deepEqual(body.breakdown, { phases, dominant: 'dom' })
    // the errors, in the order reported: the shop's mapped back to its source, the rejection (another origin's script) as sent
    const [shop, rejected] = body.errors
    assert.deepEqual(Object.keys(shop), ['kind', 'message', 'count', 'at', 'time', 'fingerprint', 'stack', 'rawStack', 'mapped'])
    assert.equal(shop.kind, 'error')
    assert.equal(shop.message, BAD_PRICE)
    assert.equal(shop.count, 1)
    assert.equal(shop.at, 900)
    assert.match(shop.fingerprint, /^[0-9a-f]{16}$/)
    assert.equal(shop.mapped, true)
    assert.equal(shop.rawStack, minifiedStack)
    assert.match(minifiedStack.split('\n')[1]!, /^ {4}at \w+ \(http:\/\/127\.0\.0\.1:\d+\/lab\/shop\.min\.js:1:\d+\)$/)
    const mapped = shop.stack.split('\n') as string[]
    assert.equal(mapped[0], `TypeError: ${BAD_PRICE}`)
    assert.match(mapped[1]!, new RegExp(`^ {4}at parsePrice \\(/lab/src/shop\\.ts:${throwLine}:\\d+\\)$`))
    // each function as its caller's source calls it; the outermost (checkout, called from outside the bundle) keeps the name the engine gave it
    assert.ok(mapped.some((l) => /^ {4}at applyCoupon \(\/lab\/src\/shop\.ts:\d+:\d+\)$/.test(l)), shop.stack)
    assert.match(mapped.at(-1)!, new RegExp(`^ {4}at \\w+ \\(/lab/src/shop\\.ts:${checkoutLine}:\\d+\\)$`))
    assert.ok(!shop.stack.includes('shop.min.js'), shop.stack)
    assert.deepEqual({ ...rejected, time: 0, fingerprint: '' }, { kind: 'unhandledrejection', message: 'the lab rejected this on purpose', count: 2, at: 950, time: 0, fingerprint: '', stack: rejection, rawStack: rejection, mapped: false })
    // the server row and the five events; the other page view's error is not here
    assert.equal(body.rows, 6)
    assert.equal(body.truncated, false)
    assert.doesNotMatch(JSON.stringify(body), /not mine|address|country|127\.0\.0\.0/)

    // HEAD: the same status and headers, no body
    const head = await get(`?pv=${pv}`, {}, 'http/1.1', 'HEAD')
    assert.equal(head.status, 200)
    assert.equal(head.headers['cache-control'], 'no-store')
    assert.equal(head.body.length, 0)
    // over HTTP/2 too
    assert.equal(json(await get(`?pv=${pv}`, {}, 'h2c'), 200).pv, pv)
  })

  test('a page view only the server saw: its row, no browser report, no errors', async () => {
    const page = await request('h2c', `${box.url}lab/index.html`)
    const pv = /pv;desc="([A-Za-z0-9_-]{12})"/.exec(String(page.headers['server-timing']))![1]!
    const body = await poll(pv, (b) => b.server !== null)
    assert.equal(body.server.protocol, 'h2')
    assert.equal(body.browser, null)
    assert.deepEqual(body.breakdown, { phases: { redirect: null, dns: null, tcp: null, tls: null, ttfb: null, transfer: null, dom: null, load: null }, dominant: null })
    assert.deepEqual(body.errors, [])
    assert.equal(body.rows, 1)
  })
})
