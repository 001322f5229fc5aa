import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, test } from 'node:test'
import { raw, startServer, statuses, type TestServer } from '../helpers/server.ts'

/**
 * 1xx interim responses (RFC 9110 §15.2) through the forward proxy
 * (docs/forward-proxy.md): an origin's 103 Early Hints, with its Link field,
 * and 102 Processing reach an HTTP/1.1 client before the final response, as
 * through a proxy route; an HTTP/1.0 client gets none. Read as raw bytes.
 */

const LINK = '</a.css>; rel=preload; as=style'
const origin = http.createServer((req, res) => {
  req.resume()
  res.writeEarlyHints({ link: LINK })
  if (req.url === '/processing') res.writeProcessing()
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '5' })
  res.end('final')
})

let srv: TestServer | undefined
let port = 0
before(async () => {
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r))
  port = (origin.address() as AddressInfo).port
  srv = await startServer({
    sites: [{ hosts: ['site.test'], routes: [{ path: '/', redirect: { to: 'https://example.org/', status: 302 } }] }],
    forwardProxy: { enabled: true, clients: ['127.0.0.0/8'] },
  })
})
after(async () => {
  await srv?.close()
  origin.closeAllConnections()
  await new Promise((r) => origin.close(r))
})

const absolute = (path: string, version = '1.1') => `GET http://127.0.0.1:${port}${path} HTTP/${version}\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`

test('an origin 103 Early Hints reaches the client with its Link field, before the 200', async () => {
  const text = await raw(srv!.port, absolute('/hints'), 5000)
  assert.deepEqual(statuses(text), [103, 200])
  assert.match(text, /^HTTP\/1\.1 103 Early Hints\r\n/)
  const interim = text.slice(0, text.indexOf('\r\n\r\n'))
  assert.match(interim, new RegExp(`\\r\\nlink: ${LINK.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`, 'i'))
  assert.ok(text.endsWith('\r\n\r\nfinal'), 'the final response follows with its body')
})

test('102 Processing goes through too, after the 103', async () => {
  const text = await raw(srv!.port, absolute('/processing'), 5000)
  assert.deepEqual(statuses(text), [103, 102, 200])
})

test('an HTTP/1.0 client gets no interim response (RFC 9110 §15.2)', async () => {
  const text = await raw(srv!.port, absolute('/hints', '1.0'), 5000)
  assert.match(text, /^HTTP\/1\.[01] 200 /)
  assert.doesNotMatch(text, / 103 /)
})
