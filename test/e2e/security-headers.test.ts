import assert from 'node:assert/strict'
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { PROTOCOLS, request, startServer, type TestServer } from '../helpers/server.ts'

/** Security response headers (docs/security.md): defaults, presets, what an upstream sets itself. */

let root: string
let upstream: http.Server
let upstreamUrl: string
const servers: TestServer[] = []

before(async () => {
  root = mkdtempSync(path.join(tmpdir(), 'edgebox-headers-'))
  writeFileSync(path.join(root, 'index.html'), '<p>hi</p>')
  mkdirSync(path.join(root, 'dir'))
  writeFileSync(path.join(root, 'dir', 'a.txt'), 'a')
  upstream = http.createServer((_req, res) => res.writeHead(200, { 'x-frame-options': 'DENY', 'content-security-policy': "default-src 'none'", 'content-type': 'text/plain' }).end('up'))
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`
})
after(async () => {
  for (const s of servers) await s.close()
  await new Promise((r) => upstream.close(r))
  rmSync(root, { recursive: true, force: true })
})

async function server(site: Record<string, unknown>): Promise<TestServer> {
  const s = await startServer({ sites: [{ routes: [{ path: '/', static: { root, listing: true } }, { path: '/up/', proxy: { upstreams: [upstreamUrl] } }], ...site }] })
  servers.push(s)
  return s
}

for (const protocol of PROTOCOLS) {
  test(`defaults over ${protocol}: nosniff, Referrer-Policy, SAMEORIGIN with frame-ancestors 'self'; an upstream's own values win`, async () => {
    const s = await server({})
    const r = await request(protocol, s.url)
    assert.equal(r.headers['x-content-type-options'], 'nosniff')
    assert.equal(r.headers['referrer-policy'], 'strict-origin-when-cross-origin')
    assert.equal(r.headers['x-frame-options'], 'SAMEORIGIN')
    assert.equal(r.headers['content-security-policy'], "frame-ancestors 'self'")
    assert.equal(r.headers['strict-transport-security'], undefined, 'HSTS only over TLS')
    const up = await request(protocol, s.url + 'up/x')
    assert.equal(up.headers['x-frame-options'], 'DENY')
    assert.equal(up.headers['content-security-policy'], "default-src 'none'")
    const missing = await request(protocol, s.url + 'nope')
    assert.equal(missing.status, 404)
    assert.equal(missing.headers['x-content-type-options'], 'nosniff', 'error pages too')
    const notModified = await request(protocol, s.url, { headers: { 'if-none-match': String(r.headers.etag) } })
    assert.equal(notModified.status, 304)
    assert.equal(notModified.headers['x-frame-options'], undefined, 'a 304 carries only what updates the stored response (RFC 9110 §15.4.5)')
    assert.equal(notModified.headers['content-security-policy'], undefined)
  })
}

test('the strict CSP preset; a listing Edgebox renders gets a fresh nonce for its inline style and is never stored', async () => {
  const s = await server({ headers: { csp: 'strict', frameOptions: 'DENY', permissionsPolicy: 'camera=(), geolocation=()' } })
  const page = await request('http/1.1', s.url)
  assert.equal(page.headers['content-security-policy'], "default-src 'self'; base-uri 'self'; object-src 'none'; form-action 'self'; frame-ancestors 'none'; img-src 'self' data:; script-src 'self'; style-src 'self'; connect-src 'self'")
  assert.equal(page.headers['x-frame-options'], 'DENY')
  assert.equal(page.headers['permissions-policy'], 'camera=(), geolocation=()')
  const one = await request('http/1.1', s.url + 'dir/')
  const two = await request('http/1.1', s.url + 'dir/')
  const nonceOf = (csp: unknown) => /'nonce-([A-Za-z0-9+/=]+)'/.exec(String(csp))?.[1]
  const n1 = nonceOf(one.headers['content-security-policy'])
  assert.ok(n1 && n1.length >= 22, String(one.headers['content-security-policy']))
  assert.match(one.text, new RegExp(`<style nonce="${n1!.replace(/[+/=]/g, (c) => '\\' + c)}">`))
  assert.notEqual(nonceOf(two.headers['content-security-policy']), n1, 'a nonce is used once')
  assert.equal(one.headers['cache-control'], 'no-store')
  assert.equal(one.headers.etag, undefined)
})

test('each header can be turned off, and a policy of your own replaces the preset', async () => {
  const s = await server({ headers: { contentTypeOptions: false, referrerPolicy: false, frameOptions: false, csp: "default-src 'self' https://cdn.example" } })
  const r = await request('http/1.1', s.url)
  assert.equal(r.headers['x-content-type-options'], undefined)
  assert.equal(r.headers['referrer-policy'], undefined)
  assert.equal(r.headers['x-frame-options'], undefined)
  assert.equal(r.headers['content-security-policy'], "default-src 'self' https://cdn.example")
  const off = await server({ headers: { frameOptions: false } })
  assert.equal((await request('http/1.1', off.url)).headers['content-security-policy'], undefined)
})

test("a route's headers change only what they name; the site's apply everywhere else", async () => {
  const s = await startServer({
    sites: [
      {
        headers: { csp: 'strict', referrerPolicy: 'no-referrer' },
        routes: [
          { path: '/', static: { root, listing: true } },
          { path: '/dir/', static: { root: path.join(root, 'dir') }, headers: { frameOptions: false, csp: "default-src 'self'; frame-ancestors https://partner.example" } },
        ],
      },
    ],
  })
  servers.push(s)
  const site = await request('http/1.1', s.url)
  assert.equal(site.headers['x-frame-options'], 'SAMEORIGIN')
  assert.match(String(site.headers['content-security-policy']), /^default-src 'self'; base-uri 'self';.*frame-ancestors 'self'/)
  const route = await request('http/1.1', s.url + 'dir/a.txt')
  assert.equal(route.status, 200)
  assert.equal(route.headers['x-frame-options'], undefined)
  assert.equal(route.headers['content-security-policy'], "default-src 'self'; frame-ancestors https://partner.example")
  // what the route does not name comes from the site
  assert.equal(route.headers['referrer-policy'], 'no-referrer')
  assert.equal(route.headers['x-content-type-options'], 'nosniff')
  // an unknown key in a route's headers is a configuration error with its path
  await assert.rejects(startServer({ sites: [{ routes: [{ path: '/', static: { root }, headers: { frameOption: false } as never }] }] }), /sites\[0\]\.routes\[0\]\.headers/)
})

test('X-DNS-Prefetch-Control is sent when configured, and not by default', async () => {
  const on = await server({ headers: { dnsPrefetchControl: 'on' } })
  assert.equal((await request('http/1.1', on.url)).headers['x-dns-prefetch-control'], 'on')
  const off = await server({ headers: { dnsPrefetchControl: 'off' } })
  assert.equal((await request('http/1.1', off.url)).headers['x-dns-prefetch-control'], 'off')
  const unset = await server({})
  assert.equal((await request('http/1.1', unset.url)).headers['x-dns-prefetch-control'], undefined)
})

test('a header value that would split the response is refused at start', async () => {
  await assert.rejects(startServer({ sites: [{ headers: { csp: "default-src 'self'\r\nSet-Cookie: x=1" }, routes: [{ path: '/', static: { root } }] }] }), /is one line/)
})
