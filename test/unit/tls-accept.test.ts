import assert from 'node:assert/strict'
import https from 'node:https'
import net, { type AddressInfo, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { after, before, test } from 'node:test'
import { testCa } from '../helpers/certs.ts'
import { refusePlainHttp, routeByAlpn } from '../../src/server/tls-accept.ts'
import type { ListenConfig, TlsRuntime } from '../../src/server/listener.ts'

/**
 * The TLS listener's accept path (src/server/tls-accept.ts) on a bare HTTPS
 * server: what it does with each connection before the TLS server sees it.
 */

const FIRST_BYTE_TIMEOUT = 400
let server: https.Server
let port: number
const accepted = new Set<Duplex>()
/** The server's sockets, in the order they were accepted. */
const sockets: Socket[] = []

before(async () => {
  const ca = await testCa()
  const leaf = await ca.leaf(['localhost', '127.0.0.1'])
  server = https.createServer({ cert: leaf.certPem, key: leaf.keyPem, ALPNProtocols: ['http/1.1'] }, (_req, res) => res.end('over TLS\n'))
  routeByAlpn(server, undefined, true)
  refusePlainHttp(server, FIRST_BYTE_TIMEOUT, { host: '127.0.0.1', port: 0 } as ListenConfig, accepted, {} as TlsRuntime)
  server.on('connection', (s: Socket) => sockets.push(s))
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  port = (server.address() as AddressInfo).port
})

after(async () => {
  server.closeAllConnections()
  await new Promise((r) => server.close(r))
})

/** A raw TCP connection, once the server has accepted it: the client's socket and the server's. */
async function connect(): Promise<{ client: net.Socket; serverSide: Socket }> {
  const n = sockets.length
  const client = net.connect(port, '127.0.0.1')
  await new Promise((r) => client.once('connect', r))
  while (sockets.length === n) await new Promise((r) => setImmediate(r))
  return { client, serverSide: sockets[n]! }
}

function closed(s: net.Socket, ms: number): Promise<number> {
  const t0 = Date.now()
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`still open after ${ms} ms`)), ms)
    s.resume()
    s.on('error', () => {})
    s.once('close', () => {
      clearTimeout(timer)
      resolve(Date.now() - t0)
    })
  })
}

function get(): Promise<string> {
  return new Promise((resolve, reject) => {
    https.get({ host: '127.0.0.1', port, path: '/', rejectUnauthorized: false, agent: false }, (res) => {
      let body = ''
      res.on('data', (c: Buffer) => (body += c))
      res.on('end', () => resolve(`${res.statusCode} ${body}`))
    }).on('error', reject)
  })
}

test('the first-byte handlers are made once per server: every connection gets the same functions, no closures of its own', async () => {
  const a = await connect()
  const b = await connect()
  for (const event of ['data', 'end', 'timeout', 'close']) {
    const fa = a.serverSide.listeners(event)
    const fb = b.serverSide.listeners(event)
    assert.ok(fa.length > 0, `a listener for '${event}'`)
    assert.deepEqual(fa, fb, `the same '${event}' listeners on both connections`)
  }
  a.client.destroy()
  b.client.destroy()
})

test('a TLS client is served, and nothing of the first-byte check stays on its socket', async () => {
  const pending = await connect()
  // the pending socket's listeners but those every net.Socket has of its own
  const plain = new net.Socket()
  const ours = (event: string) => pending.serverSide.listeners(event).filter((f) => !plain.listeners(event).includes(f))
  assert.equal(await get(), '200 over TLS\n')
  const raw = sockets.at(-1)!
  assert.notEqual(raw, pending.serverSide)
  for (const event of ['data', 'end', 'timeout']) {
    assert.ok(ours(event).length > 0, `a first-byte '${event}' listener while pending`)
    for (const f of ours(event)) assert.equal(raw.listeners(event).includes(f), false, `the first-byte '${event}' listener is gone`)
  }
  assert.equal(raw.timeout, 0)
  pending.client.destroy()
})

test('plain HTTP gets the 400 naming the https URL with the Host it gave', async () => {
  const { client } = await connect()
  client.write('GET / HTTP/1.1\r\nHost: example.test\r\n\r\n')
  let text = ''
  client.on('data', (d: Buffer) => (text += d.toString('latin1')))
  await closed(client, 2000)
  assert.match(text, /^HTTP\/1\.1 400 Bad Request\r\n/)
  assert.ok(text.endsWith(`This port speaks HTTPS, and the request was plain HTTP: use https://example.test:${port}/\n`), text)
})

test('a connection that sends nothing is closed after the first-byte timeout; one that closes first is let go at once', async () => {
  const silent = await connect()
  const ms = await closed(silent.client, 5000)
  assert.ok(ms >= FIRST_BYTE_TIMEOUT - 50, `closed after ${ms} ms`)
  const quitter = await connect()
  const t0 = Date.now()
  quitter.client.end()
  await closed(quitter.client, 5000)
  assert.ok(Date.now() - t0 < FIRST_BYTE_TIMEOUT, 'closed before the first-byte timeout')
})

test('every accepted socket is tracked until it closes (shutdown destroys what is left)', async () => {
  const { client, serverSide } = await connect()
  assert.ok(accepted.has(serverSide))
  client.destroy()
  await new Promise((r) => serverSide.once('close', r))
  assert.equal(accepted.has(serverSide), false)
  // the TLS client of the earlier tests, and the rest: all gone once closed
  await new Promise((r) => setTimeout(r, 100))
  assert.equal(accepted.size, 0)
})

