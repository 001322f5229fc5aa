import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import http2 from 'node:http2'
import WebSocket from 'ws'
import { raw, request, startServer, tempDir, type TestServer } from '../helpers/server.ts'

// A single-page app's fallback is for navigations: a WebSocket handshake to a
// path of a static route is not one, and gets 404 rather than index.html.

let srv: TestServer
const tmp = tempDir()

before(async () => {
  mkdirSync(path.join(tmp.dir, 'spa'))
  writeFileSync(path.join(tmp.dir, 'spa/index.html'), '<div id=app></div>')
  writeFileSync(path.join(tmp.dir, 'spa/main.js'), 'spa()')
  srv = await startServer({ sites: [{ routes: [{ path: '/', static: { root: 'spa', spa: true } }] }] }, tmp.dir)
})

after(async () => {
  await srv.close()
  tmp.cleanup()
})

const HANDSHAKE = (p: string) =>
  `GET ${p} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade, close\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`

test('a WebSocket handshake to an SPA path is a 404 naming the path, not index.html', async () => {
  const text = await raw(srv.port, HANDSHAKE('/socket'), 500)
  assert.match(text, /^HTTP\/1\.1 404 Not Found\r\n/)
  assert.match(text, /Content-Type: text\/plain; charset=utf-8\r\n/i)
  assert.match(text, /\r\n\r\n404 Not Found: no WebSocket endpoint at \/socket\n$/)
  assert.doesNotMatch(text, /<div id=app>/)
  // the next navigation still gets the app
  const nav = await request('http/1.1', srv.url + '/socket')
  assert.equal(nav.status, 200)
  assert.equal(nav.text, '<div id=app></div>')
})

test('a ws client to an SPA path fails with the 404', async () => {
  const ws = new WebSocket(srv.url.replace('http:', 'ws:') + '/live')
  const status = await new Promise<number>((resolve, reject) => {
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode!)
      res.resume()
      ws.terminate()
    })
    ws.on('open', () => reject(new Error('the handshake was accepted')))
    ws.on('error', () => {})
  })
  assert.equal(status, 404)
})

test('an existing file is still served to a request that carries Upgrade (RFC 9110 §7.8: Upgrade may be ignored)', async () => {
  const text = await raw(srv.port, HANDSHAKE('/main.js'), 500)
  assert.match(text, /^HTTP\/1\.1 200 OK\r\n/)
  assert.match(text, /\r\n\r\nspa\(\)$/)
})

test('over HTTP/2 a WebSocket (extended CONNECT, RFC 8441) to a static route is a 400', async () => {
  const session = http2.connect(srv.url)
  try {
    await new Promise<void>((resolve, reject) => {
      session.once('remoteSettings', (s) => (s.enableConnectProtocol ? resolve() : reject(new Error('no SETTINGS_ENABLE_CONNECT_PROTOCOL'))))
      session.once('error', reject)
    })
    const stream = session.request({ ':method': 'CONNECT', ':protocol': 'websocket', ':path': '/socket', ':scheme': 'http', ':authority': new URL(srv.url).host, 'sec-websocket-version': '13' })
    const status = await new Promise<number>((resolve, reject) => {
      stream.once('response', (h) => resolve(Number(h[':status'])))
      stream.once('error', reject)
    })
    stream.destroy()
    assert.equal(status, 400)
  } finally {
    session.destroy()
  }
})
