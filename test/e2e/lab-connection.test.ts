import assert from 'node:assert/strict'
import { X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import http2 from 'node:http2'
import https from 'node:https'
import type tls from 'node:tls'
import { after, before, describe, test } from 'node:test'
import { issueLocalCertificate, type LocalCertificate } from '../../src/tls/local-ca.ts'
import { PROTOCOLS, request, startServer, tempDir, type TestServer } from '../helpers/server.ts'

/**
 * The connection lab's endpoint (`lab: { demo: 'connection' }`) on real
 * sockets: over TLS with HTTP/2 and HTTP/1.1 it reports what the handshake
 * negotiated, a resumed session as resumed, the certificate the server
 * presented (and its issuer, the local authority); on cleartext, no TLS.
 */

const TIMEOUT = 5_000
const PATH = '/lab/connection/'

interface Connection {
  protocol: string
  streamId?: number
  tls: null | {
    version: string
    cipher: { name: string; standardName: string; version: string }
    alpn: string | null
    resumed: boolean
    servername: string | null
    ephemeralKey: unknown
    ephemeralKeyNote: string
    certificate: Array<{ subject: string; issuer: string; subjectAltName: string | null; validFrom: string; validTo: string; serialNumber: string; fingerprint256: string; ca: boolean; key: string; source: string }>
    chainNote: string
  }
}

const routes = [{ path: PATH, lab: { demo: 'connection' as const } }]

let home: ReturnType<typeof tempDir>
let savedHome: string | undefined
let cert: LocalCertificate
let caPem: string
let server: TestServer

before(async () => {
  home = tempDir('edgebox-home-')
  // the handler looks for the local authority (the leaf's issuer) in EDGEBOX_HOME
  savedHome = process.env.EDGEBOX_HOME
  process.env.EDGEBOX_HOME = home.dir
  cert = await issueLocalCertificate(home.dir, ['localhost'])
  caPem = readFileSync(`${home.dir}/ca/ca.crt`, 'utf8')
  server = await startServer({
    listen: [{ host: '127.0.0.1', port: 0, tls: true }],
    tls: { certificates: [{ cert: cert.certPath, key: cert.keyPath }] },
    sites: [{ routes }],
  })
})

after(async () => {
  await server?.close()
  if (savedHome === undefined) delete process.env.EDGEBOX_HOME
  else process.env.EDGEBOX_HOME = savedHome
  home?.cleanup()
})

/** GET over HTTP/2 with TLS on a new connection; `session` resumes an earlier one. Returns the body, the client's view of the socket and the session for next time. */
function h2get(opts: { session?: Buffer; method?: string } = {}): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string; client: tls.TLSSocket; ticket: Promise<Buffer | undefined> }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://127.0.0.1:${server.port}`, { ca: caPem, servername: 'localhost', ...(opts.session ? { session: opts.session } : {}) })
    const client = session.socket as tls.TLSSocket
    // a TLS 1.3 ticket arrives after the handshake
    const ticket = new Promise<Buffer | undefined>((r) => {
      client.once('session', (s: Buffer) => r(s))
      setTimeout(() => r(undefined), TIMEOUT).unref()
    })
    session.on('error', reject)
    const stream = session.request({ ':method': opts.method ?? 'GET', ':path': PATH })
    stream.setTimeout(TIMEOUT, () => stream.close(http2.constants.NGHTTP2_CANCEL))
    let headers: http2.IncomingHttpHeaders = {}
    let body = ''
    stream.setEncoding('utf8')
    stream.on('response', (h) => (headers = h))
    stream.on('data', (c: string) => (body += c))
    stream.on('end', async () => {
      // a full handshake gets a ticket for next time; a resumed one gets no new one here
      if (!client.isSessionReused()) await ticket
      session.close()
      resolve({ status: Number(headers[':status']), headers, body, client, ticket })
    })
    stream.on('error', reject)
    stream.end()
  })
}

/** What the client saw of its TLS connection, read while it is open. */
interface ClientView {
  protocol: string | null
  cipher: string
  reused: boolean
}
const viewOf = (s: tls.TLSSocket): ClientView => ({ protocol: s.getProtocol(), cipher: s.getCipher().name, reused: s.isSessionReused() })

/** A request over HTTPS with HTTP/1.1 (ALPN http/1.1) through `agent`, which keeps the session (ticket) it receives for its next connection. */
function h1(agent: https.Agent, method = 'GET'): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string; client: ClientView }> {
  return new Promise((resolve, reject) => {
    let ticket: Promise<unknown> = Promise.resolve()
    const req = https.request({ host: '127.0.0.1', port: server.port, path: PATH, method, servername: 'localhost', agent, timeout: TIMEOUT }, (res) => {
      let body = ''
      const client = viewOf(res.socket as tls.TLSSocket)
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      // a TLS 1.3 ticket may arrive just after the response: the agent stores it on the socket's 'session' event
      const done = () => resolve({ status: res.statusCode!, headers: res.headers, body, client })
      res.on('end', () => (client.reused ? done() : void ticket.then(done)))
      res.on('error', reject)
    })
    req.once('socket', (socket) => {
      ticket = new Promise((r) => {
        socket.once('session', r)
        setTimeout(r, TIMEOUT).unref()
      })
    })
    req.on('timeout', () => req.destroy(new Error('timed out')))
    req.on('error', reject)
    req.end()
  })
}

describe('the connection lab over TLS', () => {
  test('HTTP/2: the protocol, TLS version, cipher, ALPN, server name and the presented certificate', async () => {
    const r = await h2get()
    assert.equal(r.status, 200)
    assert.equal(r.headers['content-type'], 'application/json')
    assert.equal(r.headers['cache-control'], 'no-store')
    const c = JSON.parse(r.body) as Connection
    assert.equal(c.protocol, 'h2')
    assert.equal(c.streamId, 1, 'the first request of a connection is stream 1')
    assert.ok(c.tls)
    assert.equal(c.tls.version, 'TLSv1.3')
    assert.equal(c.tls.version, r.client.getProtocol())
    assert.equal(c.tls.alpn, 'h2')
    assert.equal(c.tls.cipher.name, r.client.getCipher().name)
    assert.equal(c.tls.cipher.standardName, r.client.getCipher().standardName)
    assert.equal(c.tls.cipher.version, 'TLSv1.3')
    assert.equal(c.tls.servername, 'localhost')
    assert.equal(c.tls.resumed, false)
    assert.equal(c.tls.ephemeralKey, null, 'a server socket does not report the key exchange group')
    assert.match(c.tls.ephemeralKeyNote, /client side only/)

    // the leaf: the very certificate file the server was given
    const leaf = new X509Certificate(readFileSync(cert.certPath))
    const [first, second] = c.tls.certificate
    assert.ok(first && second, `leaf and issuer: ${JSON.stringify(c.tls.certificate)}`)
    assert.equal(first.fingerprint256, leaf.fingerprint256)
    assert.equal(first.fingerprint256, r.client.getPeerX509Certificate()!.fingerprint256)
    assert.equal(first.serialNumber, leaf.serialNumber)
    assert.equal(first.subject, 'CN=localhost')
    assert.match(first.subjectAltName ?? '', /DNS:localhost/)
    assert.match(first.subjectAltName ?? '', /IP Address:127\.0\.0\.1/)
    assert.equal(first.ca, false)
    assert.equal(first.key, 'ec P-256')
    assert.equal(first.source, 'presented')
    assert.equal(first.validTo, new Date(leaf.validTo).toISOString())
    assert.ok(Date.parse(first.validFrom) < Date.now() && Date.now() < Date.parse(first.validTo))
    // its issuer: the local authority, found on disk (a root is never sent)
    const ca = new X509Certificate(caPem)
    assert.equal(second.fingerprint256, ca.fingerprint256)
    assert.equal(second.ca, true)
    assert.equal(second.source, 'local authority')
    assert.equal(first.issuer, second.subject)
    assert.equal(c.tls.certificate.length, 2, 'the local authority is self-signed: the chain ends there')
    assert.match(c.tls.chainNote, /presented/)
  })

  test('HTTP/2: a second connection that resumes the first one\'s session says resumed', async () => {
    const first = await h2get()
    const ticket = await first.ticket
    assert.ok(ticket, 'the server sent a session ticket')
    const second = await h2get({ session: ticket })
    assert.equal(second.client.isSessionReused(), true, 'the client resumed')
    const c = JSON.parse(second.body) as Connection
    assert.equal(c.tls?.resumed, true)
    assert.equal(c.tls?.alpn, 'h2')
    // a resumed handshake sends no certificate, but the server still knows which one the session belongs to
    assert.equal(c.tls?.certificate[0]?.fingerprint256, new X509Certificate(cert.certPem).fingerprint256)
  })

  test('HTTP/1.1: ALPN http/1.1, and the agent\'s cached session resumes on the next connection', async () => {
    const agent = new https.Agent({ keepAlive: false, ca: caPem, ALPNProtocols: ['http/1.1'], maxCachedSessions: 10 })
    try {
      const a = await h1(agent)
      assert.equal(a.status, 200)
      assert.equal(a.headers['cache-control'], 'no-store')
      const c = JSON.parse(a.body) as Connection
      assert.equal(c.protocol, 'http/1.1')
      assert.equal(c.streamId, undefined)
      assert.equal(c.tls?.alpn, 'http/1.1')
      assert.equal(c.tls?.version, a.client.protocol)
      assert.equal(c.tls?.cipher.name, a.client.cipher)
      assert.equal(c.tls?.servername, 'localhost')
      assert.equal(c.tls?.resumed, false)
      assert.equal(c.tls?.certificate[0]?.fingerprint256, new X509Certificate(readFileSync(cert.certPath)).fingerprint256)

      const b = await h1(agent)
      const again = JSON.parse(b.body) as Connection
      assert.equal(b.client.reused, true, 'the client resumed')
      assert.equal(again.tls?.resumed, true)
      assert.equal(again.protocol, 'http/1.1')
    } finally {
      agent.destroy()
    }
  })

  test('HEAD answers the headers only; POST is 405 with Allow', async () => {
    const head = await h2get({ method: 'HEAD' })
    assert.equal(head.status, 200)
    assert.equal(head.headers['content-type'], 'application/json')
    assert.equal(head.body, '')
    const post = await h2get({ method: 'POST' })
    assert.equal(post.status, 405)
    assert.equal(post.headers['allow'], 'GET, HEAD, OPTIONS')
    const agent = new https.Agent({ keepAlive: false, ca: caPem })
    try {
      const p = await h1(agent, 'POST')
      assert.equal(p.status, 405)
      assert.equal(p.headers['allow'], 'GET, HEAD, OPTIONS')
    } finally {
      agent.destroy()
    }
  })
})

describe('the connection lab on cleartext', () => {
  let plain: TestServer
  before(async () => {
    plain = await startServer({ sites: [{ routes }] })
  })
  after(() => plain?.close())

  for (const protocol of PROTOCOLS) {
    test(`${protocol}: no TLS, and the HTTP version`, async () => {
      const r = await request(protocol, new URL(PATH, plain.url).href)
      assert.equal(r.status, 200)
      assert.equal(r.headers['cache-control'], 'no-store')
      const c = JSON.parse(r.text) as Connection
      assert.equal(c.protocol, protocol)
      assert.equal(c.tls, null)
      if (protocol === 'h2c') assert.equal(c.streamId, 1)
    })

    test(`${protocol}: POST is 405 with Allow`, async () => {
      const r = await request(protocol, new URL(PATH, plain.url).href, { method: 'POST', body: 'x' })
      assert.equal(r.status, 405)
      assert.equal(r.headers['allow'], 'GET, HEAD, OPTIONS')
    })
  }
})
