import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { Page } from 'playwright-core'
import { browserSkip, launchBrowser, type LaunchedBrowser } from '../helpers/browser.ts'
import { accessLogThrough, startServer, tempDir, type AccessLogLine, type TestServer } from '../helpers/server.ts'

/**
 * CORS (src/security/cors.ts, docs/security.md) as a real browser enforces
 * it. Three origins on loopback: A and C are two listeners of one Edgebox
 * serving a blank page; B is the Edgebox under test, whose routes carry
 * different CORS policies. Pages on A (allowed) and C (not allowed) call B
 * with fetch(); each case asserts what the page could read (or that fetch
 * rejected with a TypeError) and, from B's access log, which requests and
 * how many preflights (OPTIONS) reached B. Behind B's proxy routes an echo
 * server reports what it received (method, body, Cookie) and sets an
 * X-Request-Id, so the page can tell what got through.
 *
 * All three origins are 127.0.0.1 with different ports: different origins,
 * the same site (cookies ignore ports, so a cookie B sets is also one of
 * 127.0.0.1's, and SameSite does not get in the way).
 */

const skip = browserSkip()
if (skip) process.stdout.write(`# browser tests skipped: ${skip}\n`)

const FETCH_TIMEOUT = 10_000
const LOG_TIMEOUT = 5_000
const DATA = '{"hello":"from B"}\n'

/** What the page observed: the status, the body and the named response headers it could read, or the error fetch rejected with. */
type Seen = { ok: true; status: number; body: string; headers: Record<string, string | null> } | { ok: false; name: string; message: string }

interface FetchInit {
  method?: string
  headers?: Record<string, string>
  body?: string
  credentials?: 'omit' | 'same-origin' | 'include'
  /**
   * The HTTP cache mode. The echo upstream answers `no-store`; the static
   * routes are cacheable, so their fetches say `no-store` to reach B every
   * time. Not on preflighted requests: Chromium then bypasses its preflight
   * cache as well, and preflights every time.
   */
  cache?: 'default' | 'no-store'
}

/** Runs fetch() in the page (bounded by an AbortSignal) and reports what the page could see. */
function pageFetch(page: Page, url: string, init: FetchInit = {}, read: string[] = []): Promise<Seen> {
  return page.evaluate(
    async ({ url, init, read, timeout }) => {
      try {
        const r = await fetch(url, { ...init, signal: AbortSignal.timeout(timeout) })
        const body = await r.text()
        return { ok: true as const, status: r.status, body, headers: Object.fromEntries(read.map((h) => [h, r.headers.get(h)])) }
      } catch (e) {
        return { ok: false as const, name: (e as Error).name, message: (e as Error).message }
      }
    },
    { url, init, read, timeout: FETCH_TIMEOUT },
  )
}

function assertReadable(seen: Seen, what: string): asserts seen is Extract<Seen, { ok: true }> {
  assert.ok(seen.ok, `${what}: the page should read the response, fetch rejected: ${JSON.stringify(seen)}`)
}

/** The CORS failure a page sees: fetch rejects with a TypeError (not a timeout's AbortError or TimeoutError). */
function assertBlocked(seen: Seen, what: string): void {
  assert.ok(!seen.ok, `${what}: the page should not read the response, it read ${JSON.stringify(seen)}`)
  assert.equal(seen.name, 'TypeError', `${what}: fetch rejects with a TypeError (${seen.message})`)
}

/** What the echo upstream behind B's proxy routes tells the page. */
interface Echo {
  id: string
  method: string
  path: string
  cookie: string | null
  contentType: string | null
  xToken: string | null
  body: string
}

interface Received {
  method: string
  path: string
  origin: string | undefined
}


/**
 * The response headers Chromium's network stack received (which the page
 * itself may not be allowed to read). Playwright reports no response for a
 * request that failed the CORS check, so only readable responses have one.
 */
interface Wire {
  /** The origin of the page that made the request. */
  from: string
  url: string
  method: string
  status: number
  headers: Record<string, string>
}

describe('CORS in Chromium across origins', { skip, timeout: 120_000 }, () => {
  let pages: TestServer // origins A and C
  let b: TestServer
  let echo: http.Server
  let browser: LaunchedBrowser | undefined
  let pageA: Page
  let pageC: Page
  let A: string
  let C: string
  let B: string
  let logFile: string
  const received: Received[] = []
  const wire: Wire[] = []
  const dirs: Array<{ cleanup(): void }> = []
  let markers = 0

  /** Every line B's access log holds once a request sent now is in it (the log is written in batches). */
  const bLog = () => accessLogThrough(B, `/nocors/marker-${++markers}`, logFile, LOG_TIMEOUT)
  const preflights = (lines: AccessLogLine[], p: string) => lines.filter((l) => l.method === 'OPTIONS' && l.path === p)
  const requests = (lines: AccessLogLine[], p: string, method: string) => lines.filter((l) => l.method === method && l.path === p)

  /** The wire record of the response to `method url`, waiting (bounded) for Playwright's event. */
  async function wireOf(url: string, from: string, method = 'GET'): Promise<Wire> {
    const deadline = Date.now() + LOG_TIMEOUT
    for (;;) {
      const w = wire.findLast((x) => x.url === url && x.from === from && x.method === method)
      if (w) return w
      if (Date.now() > deadline) throw new Error(`no response seen on the wire for ${method} ${url}`)
      await new Promise((r) => setTimeout(r, 20))
    }
  }

  before(async () => {
    const site = tempDir('edgebox-cors-site-')
    const data = tempDir('edgebox-cors-data-')
    const logs = tempDir('edgebox-cors-log-')
    dirs.push(site, data, logs)
    writeFileSync(path.join(site.dir, 'index.html'), '<!doctype html><html><head><meta charset="utf-8"><title>cors page</title></head><body><p>a page</p></body></html>\n')
    writeFileSync(path.join(data.dir, 'data.json'), DATA)
    logFile = path.join(logs.dir, 'access.log')

    echo = http.createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        const url = new URL(req.url ?? '/', 'http://upstream')
        received.push({ method: req.method ?? '', path: url.pathname, origin: req.headers.origin })
        const id = randomBytes(6).toString('hex')
        const reply: Echo = {
          id,
          method: req.method ?? '',
          path: url.pathname,
          cookie: req.headers.cookie ?? null,
          contentType: req.headers['content-type'] ?? null,
          xToken: (req.headers['x-token'] as string | undefined) ?? null,
          body: Buffer.concat(chunks).toString('utf8'),
        }
        const headers: Record<string, string> = { 'content-type': 'application/json', 'cache-control': 'no-store', 'x-request-id': id }
        if (url.pathname.endsWith('/login')) headers['set-cookie'] = `sid=${url.searchParams.get('sid')}; Path=/private/; HttpOnly; SameSite=Lax`
        res.writeHead(200, headers)
        res.end(JSON.stringify(reply))
      })
    })
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r))
    const upstream = `http://127.0.0.1:${(echo.address() as AddressInfo).port}`

    pages = await startServer({
      listen: [
        { host: '127.0.0.1', port: 0 },
        { host: '127.0.0.1', port: 0 },
      ],
      sites: [{ routes: [{ path: '/', static: { root: site.dir } }] }],
    })
    A = new URL(pages.box.urls[0]!).origin
    C = new URL(pages.box.urls[1]!).origin
    assert.notEqual(A, C)

    b = await startServer({
      log: { access: true, format: 'json', file: logFile },
      sites: [
        {
          routes: [
            {
              path: '/api/',
              proxy: { upstreams: [upstream] },
              cors: { origins: [A], methods: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE'], allowHeaders: ['content-type', 'x-token'], exposeHeaders: ['x-request-id'], maxAge: '10m' },
            },
            { path: '/plain/', proxy: { upstreams: [upstream] }, cors: { origins: [A] } },
            { path: '/private/', proxy: { upstreams: [upstream] }, cors: { origins: [A], credentials: true } },
            { path: '/open/', static: { root: data.dir }, cors: { origins: ['*'] } },
            { path: '/files/', static: { root: data.dir }, cors: { origins: [A], exposeHeaders: ['etag'] } },
            { path: '/nocors/', static: { root: data.dir } },
          ],
        },
      ],
    })
    B = new URL(b.url).origin
    assert.ok(B !== A && B !== C)

    browser = await launchBrowser()
    // allHeaders(), not headers(): the latter leaves out Set-Cookie.
    const record = (page: Page, from: string) =>
      page.on('response', (r) => {
        if (new URL(r.url()).origin !== B) return
        void r.allHeaders().then((headers) => wire.push({ from, url: r.url(), method: r.request().method(), status: r.status(), headers }))
      })
    pageA = await browser.context.newPage()
    pageC = await browser.context.newPage()
    record(pageA, A)
    record(pageC, C)
    await pageA.goto(A + '/', { timeout: 15_000 })
    await pageC.goto(C + '/', { timeout: 15_000 })
    assert.equal(await pageA.evaluate(() => location.origin), A)
    assert.equal(await pageC.evaluate(() => location.origin), C)
  })

  after(async () => {
    await browser?.close()
    await b?.close()
    await pages?.close()
    if (echo) {
      echo.closeAllConnections()
      await new Promise((r) => echo.close(r))
    }
    for (const d of dirs) d.cleanup()
  })

  test('1. a simple GET from an allowed origin: readable, no preflight', async () => {
    const p = '/api/simple-get'
    const seen = await pageFetch(pageA, B + p)
    assertReadable(seen, 'simple GET')
    assert.equal(seen.status, 200)
    const e = JSON.parse(seen.body) as Echo
    assert.equal(e.method, 'GET')
    assert.equal(e.path, p)
    const lines = await bLog()
    assert.equal(preflights(lines, p).length, 0, 'no preflight for a simple request')
    assert.equal(requests(lines, p, 'GET').length, 1)
    assert.equal(requests(lines, p, 'GET')[0]!.cors, undefined)
    const w = await wireOf(B + p, A)
    assert.equal(w.headers['access-control-allow-origin'], A)
    assert.match(w.headers.vary ?? '', /\bOrigin\b/)
  })

  test('2. a custom header (X-Token) is preflighted once, then the answer is cached for maxAge', async () => {
    const p = '/api/with-token'
    const first = await pageFetch(pageA, B + p, { headers: { 'X-Token': 'one' } })
    assertReadable(first, 'GET with X-Token')
    assert.equal((JSON.parse(first.body) as Echo).xToken, 'one', 'the header reached the origin')
    let lines = await bLog()
    assert.equal(preflights(lines, p).length, 1, 'exactly one preflight')
    assert.equal(preflights(lines, p)[0]!.status, 204)
    assert.equal(requests(lines, p, 'GET').length, 1)

    const second = await pageFetch(pageA, B + p, { headers: { 'X-Token': 'two' } })
    assertReadable(second, 'the same request again')
    assert.equal((JSON.parse(second.body) as Echo).xToken, 'two')
    lines = await bLog()
    assert.equal(requests(lines, p, 'GET').length, 2, 'the second GET reached B')
    assert.equal(preflights(lines, p).length, 1, 'no second preflight: Chromium reused the cached answer (Access-Control-Max-Age: 600)')
  })

  test('3. PUT with a JSON body is preflighted and allowed; PATCH (not allowed) is refused at the preflight and never sent', async () => {
    const p = '/api/put-json'
    const put = await pageFetch(pageA, B + p, { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: '{"n":1}' })
    assertReadable(put, 'PUT application/json')
    const e = JSON.parse(put.body) as Echo
    assert.deepEqual([e.method, e.contentType, e.body], ['PUT', 'application/json', '{"n":1}'])
    let lines = await bLog()
    assert.equal(preflights(lines, p).length, 1, 'PUT is preflighted')
    assert.equal(preflights(lines, p)[0]!.status, 204)
    assert.equal(requests(lines, p, 'PUT').length, 1)
    assert.deepEqual(
      received.filter((r) => r.path === p).map((r) => r.method),
      ['PUT'],
      'the preflight was answered by B, not passed to the handler',
    )

    const q = '/api/patch'
    const patch = await pageFetch(pageA, B + q, { method: 'PATCH', headers: { 'Content-Type': 'application/json' }, body: '{"n":2}' })
    assertBlocked(patch, 'PATCH')
    lines = await bLog()
    const pf = preflights(lines, q)
    assert.equal(pf.length, 1, 'the browser asked first')
    assert.equal(pf[0]!.status, 403)
    assert.equal(pf[0]!.cors, 'refused: method PATCH is not allowed')
    assert.equal(requests(lines, q, 'PATCH').length, 0, 'B never saw the PATCH')
    assert.equal(received.filter((r) => r.method === 'PATCH').length, 0, 'nor did the upstream')
  })

  test('4. POST with Content-Type: text/plain is a simple request: no preflight', async () => {
    const p = '/api/post-text'
    const seen = await pageFetch(pageA, B + p, { method: 'POST', headers: { 'Content-Type': 'text/plain;charset=UTF-8' }, body: 'hello' })
    assertReadable(seen, 'POST text/plain')
    const e = JSON.parse(seen.body) as Echo
    assert.deepEqual([e.method, e.contentType, e.body], ['POST', 'text/plain;charset=UTF-8', 'hello'])
    const lines = await bLog()
    assert.equal(preflights(lines, p).length, 0, 'text/plain is one of the three safelisted content types')
    assert.equal(requests(lines, p, 'POST').length, 1)
  })

  test('5. from a disallowed origin, a simple GET reaches B (logged as refused) but the page cannot read it', async () => {
    const p = '/api/from-c'
    const seen = await pageFetch(pageC, B + p)
    assertBlocked(seen, 'GET from origin C')
    const lines = await bLog()
    assert.equal(preflights(lines, p).length, 0)
    const got = requests(lines, p, 'GET')
    assert.equal(got.length, 1, 'the request was sent and served')
    assert.equal(got[0]!.status, 200)
    assert.equal(got[0]!.cors, `refused: origin ${C} is not allowed`)
    assert.ok(received.some((r) => r.path === p && r.origin === C), 'the upstream answered it')
  })

  test('6. a * policy: readable from any origin, but not with credentials', async () => {
    const before = requests(await bLog(), '/open/data.json', 'GET').length
    for (const [page, origin] of [
      [pageA, A],
      [pageC, C],
    ] as const) {
      const seen = await pageFetch(page, B + '/open/data.json', { cache: 'no-store' })
      assertReadable(seen, `/open/ from ${origin}`)
      assert.equal(seen.body, DATA)
      const w = await wireOf(B + '/open/data.json', origin)
      assert.equal(w.headers['access-control-allow-origin'], '*')
      assert.doesNotMatch(w.headers.vary ?? '', /\bOrigin\b/i, 'the same answer for every origin')
    }
    const withCookies = await pageFetch(pageA, B + '/open/data.json', { credentials: 'include', cache: 'no-store' })
    assertBlocked(withCookies, '/open/ with credentials: include')
    const lines = await bLog()
    assert.equal(preflights(lines, '/open/data.json').length, 0)
    assert.equal(requests(lines, '/open/data.json', 'GET').length - before, 3, 'all three were sent; the browser refused the last one to the page')
  })

  test('7. credentials: a cookie B sets is sent with credentials: include, and the page reads the exact-origin answer', async () => {
    const sid = randomBytes(8).toString('hex')
    const login = await pageFetch(pageA, `${B}/private/login?sid=${sid}`, { credentials: 'include' })
    assertReadable(login, 'login with credentials')
    const lw = await wireOf(`${B}/private/login?sid=${sid}`, A)
    assert.match(lw.headers['set-cookie'] ?? '', new RegExp(`^sid=${sid};`))

    const who = await pageFetch(pageA, `${B}/private/whoami`, { credentials: 'include' })
    assertReadable(who, 'whoami with credentials')
    assert.equal((JSON.parse(who.body) as Echo).cookie, `sid=${sid}`, 'the cookie B set came back')
    const w = await wireOf(`${B}/private/whoami`, A)
    assert.equal(w.headers['access-control-allow-origin'], A, 'the exact origin, never *')
    assert.equal(w.headers['access-control-allow-credentials'], 'true')
    assert.match(w.headers.vary ?? '', /\bOrigin\b/)

    const without = await pageFetch(pageA, `${B}/private/whoami`)
    assertReadable(without, 'whoami without credentials')
    assert.equal((JSON.parse(without.body) as Echo).cookie, null, 'the default (same-origin) sends no cookie cross-origin')

    const fromC = await pageFetch(pageC, `${B}/private/whoami`, { credentials: 'include' })
    assertBlocked(fromC, 'whoami from origin C with credentials')
    const lines = await bLog()
    assert.equal(preflights(lines, '/private/whoami').length, 0)
    const got = requests(lines, '/private/whoami', 'GET')
    assert.equal(got.length, 3)
    assert.equal(got[2]!.cors, `refused: origin ${C} is not allowed`)
  })

  test('8. a route without CORS: a cross-origin page cannot read it', async () => {
    const seen = await pageFetch(pageA, B + '/nocors/data.json', { cache: 'no-store' })
    assertBlocked(seen, '/nocors/ from A')
    const lines = await bLog()
    const got = requests(lines, '/nocors/data.json', 'GET')
    assert.equal(got.length, 1, 'served: the browser is the one that withholds it')
    assert.equal(got[0]!.status, 200)
    assert.equal(got[0]!.cors, undefined, 'no policy, nothing refused by B')
    assert.equal(preflights(lines, '/nocors/data.json').length, 0)
  })

  test('9. a response header is readable only when the policy exposes it', async () => {
    const exposed = await pageFetch(pageA, B + '/api/expose', {}, ['x-request-id', 'content-type'])
    assertReadable(exposed, '/api/ (exposes x-request-id)')
    assert.equal(exposed.headers['x-request-id'], (JSON.parse(exposed.body) as Echo).id)
    assert.equal(exposed.headers['content-type'], 'application/json', 'a safelisted response header')

    const hidden = await pageFetch(pageA, B + '/plain/expose', {}, ['x-request-id', 'content-type'])
    assertReadable(hidden, '/plain/ (exposes nothing)')
    assert.equal(hidden.headers['x-request-id'], null, 'not exposed: hidden from the page')
    assert.equal(hidden.headers['content-type'], 'application/json')
    const w = await wireOf(B + '/plain/expose', A)
    assert.equal(w.headers['x-request-id'], (JSON.parse(hidden.body) as Echo).id, 'although it was on the wire')
    assert.equal(w.headers['access-control-expose-headers'], undefined)

    // The same for a standard header that is not CORS-safelisted: ETag from the static handler.
    const etagExposed = await pageFetch(pageA, B + '/files/data.json', { cache: 'no-store' }, ['etag'])
    assertReadable(etagExposed, '/files/ (exposes etag)')
    assert.match(etagExposed.headers.etag ?? '', /^"/)
    const etagHidden = await pageFetch(pageA, B + '/open/data.json', { cache: 'no-store' }, ['etag'])
    assertReadable(etagHidden, '/open/ (exposes nothing)')
    assert.equal(etagHidden.headers.etag, null)
    assert.equal((await wireOf(B + '/open/data.json', A)).headers.etag, etagExposed.headers.etag)
  })
})
