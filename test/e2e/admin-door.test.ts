import assert from 'node:assert/strict'
import http from 'node:http'
import net from 'node:net'
import { networkInterfaces, tmpdir } from 'node:os'
import { mkdtempSync, rmSync } from 'node:fs'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { pino } from 'pino'
import { startEdgebox, type Edgebox } from '../../src/server/app.ts'

/**
 * The admin listener's door with a token, bound to every address: other
 * machines get in only with the token, a request naming another host is
 * refused, a WebSocket from a page of another origin is refused; and `/`
 * says how to build the dashboard when it is not built. After every
 * refusal the next request is served.
 */

const TOKEN = 'b'.repeat(48)
let box: Edgebox
let port: number
let data: string

before(async () => {
  data = mkdtempSync(path.join(tmpdir(), 'edgebox-admin-door-'))
  box = await startEdgebox(
    { dataDir: data, admin: { host: '0.0.0.0', port: 0, token: TOKEN }, listen: [{ host: '127.0.0.1', port: 0 }], log: { access: false, level: 'silent' }, sites: [{ routes: [{ path: '/', redirect: { to: 'https://example.test/' } }] }] },
    { log: pino({ level: 'silent' }), dashboardDir: path.join(data, 'not-built') },
  )
  port = box.admin!.port
})

after(async () => {
  await box?.close()
  if (data) rmSync(data, { recursive: true, force: true })
})

function call(host: string, p: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host, port, path: p, headers, agent: false }, (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (c: string) => (text += c))
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text }))
      })
      .on('error', reject)
  })
}

const served = async () => assert.equal((await call('127.0.0.1', '/api/v1/config')).status, 200)

test('/ without a built dashboard: a page saying how to build it', async () => {
  const r = await call('127.0.0.1', '/')
  assert.equal(r.status, 503)
  assert.equal(r.headers['content-type'], 'text/html; charset=utf-8')
  assert.match(r.text, /The dashboard is not built/)
  assert.match(r.text, /npm run build:dashboard/)
  assert.equal((await call('127.0.0.1', '/some/page')).status, 503)
})

test('with a token: a wrong Host, a wrong token, a proxy in between are 401 with the challenge; the token opens it', async () => {
  const wrongHost = await call('127.0.0.1', '/api/v1/config', { host: `rebound.example:${port}` })
  assert.equal(wrongHost.status, 401)
  assert.equal(wrongHost.headers['www-authenticate'], 'Bearer realm="edgebox admin"')
  assert.match(JSON.parse(wrongHost.text).error as string, /Host must be localhost/)
  await served()
  const wrongToken = await call('127.0.0.1', '/api/v1/config', { authorization: `Bearer ${'c'.repeat(48)}` })
  assert.equal(wrongToken.status, 401)
  assert.equal(wrongToken.headers['www-authenticate'], 'Bearer realm="edgebox admin", error="invalid_token"')
  await served()
  const proxied = await call('127.0.0.1', '/metrics', { 'x-forwarded-for': '198.51.100.7' })
  assert.equal(proxied.status, 401)
  await served()
  const withToken = await call('127.0.0.1', '/api/v1/config', { host: `rebound.example:${port}`, authorization: `Bearer ${TOKEN}` })
  assert.equal(withToken.status, 200)
  assert.equal(JSON.parse(withToken.text).config.admin.token, '<redacted>')
})

test('from another machine (a non-loopback address of this one): 401 without the token, served with it', async (t) => {
  const address = Object.values(networkInterfaces())
    .flat()
    .find((i) => i && i.family === 'IPv4' && !i.internal)?.address
  if (!address) return t.skip('this machine has no non-loopback IPv4 address to connect from')
  const refused = await call(address, '/api/v1/config')
  assert.equal(refused.status, 401)
  assert.equal(refused.headers['www-authenticate'], 'Bearer realm="edgebox admin"')
  assert.match(JSON.parse(refused.text).error as string, /answers other machines only with its token/)
  const dashboard = await call(address, '/')
  assert.equal(dashboard.status, 401)
  const ok = await call(address, '/api/v1/config', { authorization: `Bearer ${TOKEN}` })
  assert.equal(ok.status, 200)
})

/** An upgrade to a WebSocket on the live feed; resolves with the status line. */
function upgrade(origin: string | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1', () => {
      sock.write(
        `GET /live/ws?ch=series HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${origin ? `Origin: ${origin}\r\n` : ''}\r\n`,
      )
    })
    sock.once('data', (c: Buffer) => {
      resolve(c.toString('latin1').split('\r\n')[0]!)
      sock.destroy()
    })
    sock.on('error', reject)
  })
}

test('a WebSocket to the live feed from a page of another origin is refused; from the listener\'s own pages it opens', async () => {
  assert.equal(await upgrade('https://attacker.example'), 'HTTP/1.1 403 Forbidden')
  assert.equal(await upgrade(`http://127.0.0.1:${port}`), 'HTTP/1.1 101 Switching Protocols')
  await served()
})
