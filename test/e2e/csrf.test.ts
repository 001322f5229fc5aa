import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, test } from 'node:test'
import { request, startServer, type TestServer } from '../helpers/server.ts'

/** CSRF protection for unsafe methods (docs/security.md): what a forged cross-site request gets, and what reaches the app. */

let srv: TestServer
let app: http.Server
const reached: string[] = []

before(async () => {
  app = http.createServer((req, res) => {
    reached.push(`${req.method} ${req.url}`)
    req.resume()
    res.writeHead(200, { 'content-type': 'text/plain', 'set-cookie': 'session=abc; HttpOnly' }).end('done')
  })
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r))
  const upstream = `http://127.0.0.1:${(app.address() as AddressInfo).port}`
  srv = await startServer({
    sites: [
      {
        origins: ['https://partner.example'],
        routes: [
          { path: '/account/', proxy: { upstreams: [upstream] }, csrf: true },
          { path: '/strict/', proxy: { upstreams: [upstream] }, csrf: { token: true, secret: 'a-secret-of-at-least-thirty-two-chars!' } },
        ],
      },
    ],
  })
})
after(async () => {
  await srv.close()
  await new Promise((r) => app.close(r))
})

const own = () => srv.url.replace(/\/$/, '')
const post = (path: string, headers: Record<string, string>) => request('http/1.1', srv.url + path.slice(1), { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: 'amount=100&to=mallory' })

test('a forged cross-site form is refused with 403 and never reaches the app; same-origin and listed origins pass', async () => {
  const before = reached.length
  const forged = await post('/account/transfer', { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' })
  assert.equal(forged.status, 403)
  assert.match(forged.text, /cross-site request refused: cross-site request from https:\/\/evil.example/)
  const noFetchMetadata = await post('/account/transfer', { origin: 'https://evil.example' })
  assert.equal(noFetchMetadata.status, 403, 'older browsers: Origin alone decides')
  const byReferer = await post('/account/transfer', { referer: 'https://evil.example/page.html' })
  assert.equal(byReferer.status, 403, 'no Origin: the Referer decides')
  assert.equal((await post('/account/transfer', { origin: 'null' })).status, 403, 'sandboxed or file: pages')
  assert.equal(reached.length, before, 'the app saw none of them')

  assert.equal((await post('/account/transfer', { origin: own(), 'sec-fetch-site': 'same-origin' })).status, 200)
  assert.equal((await post('/account/transfer', { origin: 'https://partner.example', 'sec-fetch-site': 'cross-site' })).status, 200, 'a listed origin')
  assert.equal((await post('/account/transfer', {})).status, 200, 'no browser involved (curl, a back end)')
  assert.equal((await request('http/1.1', srv.url + 'account/page', { headers: { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' } })).status, 200, 'safe methods are not checked')
})

test('the double-submit token: issued as a SameSite=Lax cookie, required and checked on unsafe requests', async () => {
  const page = await request('http/1.1', srv.url + 'strict/form')
  const cookies = ([] as string[]).concat(page.headers['set-cookie'] ?? [])
  assert.ok(cookies.includes('session=abc; HttpOnly'), "the app's own cookie is kept")
  const csrf = cookies.find((c) => c.startsWith('edgebox_csrf='))!
  assert.match(csrf, /^edgebox_csrf=[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+; Path=\/; SameSite=Lax$/, 'no Secure over cleartext; readable by the page, which sends it back')
  const token = csrf.split(';')[0]!.slice('edgebox_csrf='.length)
  const cookie = `edgebox_csrf=${token}`
  const same = { origin: own(), 'sec-fetch-site': 'same-origin' }
  assert.equal((await post('/strict/transfer', { ...same, cookie })).status, 403, 'a cookie alone is not enough')
  assert.equal((await post('/strict/transfer', { ...same, cookie, 'x-csrf-token': token })).status, 200)
  assert.equal((await post(`/strict/transfer?_csrf=${encodeURIComponent(token)}`, { ...same, cookie })).status, 200, 'or in the form action URL')
  const planted = 'edgebox_csrf=abc.def'
  assert.equal((await post('/strict/transfer', { ...same, cookie: planted, 'x-csrf-token': 'abc.def' })).status, 403, 'an unsigned cookie someone planted')
  assert.equal((await request('http/1.1', srv.url + 'strict/form', { headers: { cookie } })).headers['set-cookie']?.toString().includes('edgebox_csrf'), false, 'not issued again while present')
})
