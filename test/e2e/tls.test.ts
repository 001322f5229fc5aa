import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import http2 from 'node:http2'
import https from 'node:https'
import net, { type AddressInfo } from 'node:net'
import path from 'node:path'
import tls from 'node:tls'
import { after, before, describe, test } from 'node:test'
import { certDir, testCa, type TestCa } from '../helpers/certs.ts'
import { FRAME, rawH2 } from '../helpers/h2raw.ts'
import { startServer, type TestServer } from '../helpers/server.ts'

/**
 * TLS listeners (docs/tls.md) on real sockets: ALPN to h2 or http/1.1 on one
 * port, the handlers over HTTP/2 with TLS, SNI, versions, plain HTTP sent
 * to the TLS port, session resumption, 103 Early Hints, HSTS and the HTTPS
 * redirect, configuration errors, and reload.
 */

const TIMEOUT = 5_000
let ca: TestCa
let files: ReturnType<typeof certDir>
let upstream: http.Server
let upstreamUrl: string
let server: TestServer
let port: number
let redirectUrl: string

const BODY = 'x'.repeat(1000)

function tlsConfig(extra: Record<string, unknown> = {}) {
  return {
    listen: [{ host: '127.0.0.1', port: 0, tls: true }, { host: '127.0.0.1', port: 0, httpsRedirect: { port: 8443 } }],
    tls: { certificates: [{ cert: files.path('a.crt'), key: files.path('a.key') }, { cert: files.path('b.crt'), key: files.path('b.key') }], ...extra },
    sites: [
      {
        headers: { hsts: { maxAge: '1d', includeSubDomains: true } },
        routes: [
          { path: '/', static: { root: files.path('www') }, earlyHints: ['</a.txt>; rel=preload; as=fetch; crossorigin', '<https://cdn.example>; rel=preconnect'] },
          { path: '/api/', proxy: { upstreams: [upstreamUrl], cache: true } },
          { path: '/live/', realtime: { channels: { 'c:*': { history: { size: 10, age: '1m' } } } } },
        ],
      },
    ],
  }
}

before(async () => {
  ca = await testCa()
  const a = await ca.leaf(['localhost', '127.0.0.1', 'a.test'])
  const b = await ca.leaf(['b.test', '*.b.test'])
  files = certDir({ 'ca.crt': ca.certPem, 'a.crt': a.certPem, 'a.key': a.keyPem, 'b.crt': b.certPem, 'b.key': b.keyPem })
  mkdirSync(files.path('www'))
  writeFileSync(files.path('www/index.html'), '<!doctype html><title>tls</title><p>hello over TLS</p>\n')
  writeFileSync(files.path('www/a.txt'), BODY)
  upstream = http.createServer((req, res) => res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=60' }).end(JSON.stringify({ path: req.url })))
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`
  server = await startServer(tlsConfig())
  port = Number(new URL(server.url).port)
  redirectUrl = server.box.urls[1]!
})

after(async () => {
  await server?.close()
  await new Promise((r) => upstream.close(r))
  files?.cleanup()
})

interface H2Reply {
  status: number
  headers: http2.IncomingHttpHeaders
  informational: http2.IncomingHttpHeaders[]
  body: string
}

/** One request on an HTTP/2 session over TLS (trusting the test CA). */
function h2get(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders): Promise<H2Reply> {
  return new Promise((resolve, reject) => {
    const informational: http2.IncomingHttpHeaders[] = []
    const req = session.request(headers)
    req.setTimeout(TIMEOUT, () => req.close(http2.constants.NGHTTP2_CANCEL))
    req.on('headers', (h) => informational.push(h))
    let body = ''
    req.setEncoding('utf8')
    req.on('response', (h) => {
      req.on('data', (c: string) => (body += c))
      req.on('end', () => resolve({ status: Number(h[':status']), headers: h, informational, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

function h2connect(servername = 'localhost'): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = http2.connect(`https://127.0.0.1:${port}`, { ca: ca.certPem, servername })
    s.once('connect', () => resolve(s))
    s.once('error', reject)
  })
}

/** A TLS handshake only: what the client saw. */
function handshake(opts: tls.ConnectionOptions): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: ca.certPem, servername: 'localhost', ...opts })
    s.setTimeout(TIMEOUT, () => s.destroy(new Error('handshake timed out')))
    s.once('secureConnect', () => resolve(s))
    s.once('error', reject)
  })
}

/** An HTTP/1.1 request over TLS (ALPN http/1.1), with the 1xx responses it got. */
function h1get(pathname: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; informational: Array<{ statusCode: number; headers: http.IncomingHttpHeaders }>; body: string; alpn: string | false | null }> {
  return new Promise((resolve, reject) => {
    const informational: Array<{ statusCode: number; headers: http.IncomingHttpHeaders }> = []
    const req = https.request({ host: '127.0.0.1', port, path: pathname, headers, ca: ca.certPem, servername: 'localhost', agent: false, ALPNProtocols: ['http/1.1'], timeout: TIMEOUT } as https.RequestOptions)
    req.on('information', (i) => informational.push({ statusCode: i.statusCode, headers: i.headers }))
    req.on('response', (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, informational, body, alpn: (res.socket as tls.TLSSocket).alpnProtocol }))
    })
    req.on('timeout', () => req.destroy(new Error('timed out')))
    req.on('error', reject)
    req.end()
  })
}

describe('one TLS port, two protocols', () => {
  test('ALPN: h2 for clients that offer it, http/1.1 for those that offer only that, and for clients without ALPN', async () => {
    const s = await h2connect()
    try {
      assert.equal((s.socket as tls.TLSSocket).alpnProtocol, 'h2')
      const r = await h2get(s, { ':path': '/a.txt' })
      assert.equal(r.status, 200)
      assert.equal(r.body, BODY)
    } finally {
      s.close()
    }
    const h1 = await h1get('/a.txt')
    assert.equal(h1.alpn, 'http/1.1')
    assert.equal(h1.status, 200)
    assert.equal(h1.body, BODY)
    // no ALPN at all: HTTP/1.1
    const raw = await handshake({})
    try {
      assert.equal(raw.alpnProtocol, false)
      const text = await new Promise<string>((resolve) => {
        let got = ''
        raw.on('data', (c: Buffer) => (got += c.toString('latin1')))
        raw.on('close', () => resolve(got))
        raw.write('GET /a.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')
      })
      assert.match(text, /^HTTP\/1\.1 200 OK\r\n/)
      assert.ok(text.endsWith(BODY))
    } finally {
      raw.destroy()
    }
  })

  test('static files over HTTP/2 with TLS: ranges, 304 and HEAD as over HTTP/1.1', async () => {
    const s = await h2connect()
    try {
      const range = await h2get(s, { ':path': '/a.txt', range: 'bytes=10-19' })
      assert.equal(range.status, 206)
      assert.equal(range.headers['content-range'], 'bytes 10-19/1000')
      assert.equal(range.body, 'x'.repeat(10))
      const full = await h2get(s, { ':path': '/a.txt' })
      const etag = String(full.headers.etag)
      const notModified = await h2get(s, { ':path': '/a.txt', 'if-none-match': etag })
      assert.equal(notModified.status, 304)
      assert.equal(notModified.body, '')
      const head = await h2get(s, { ':path': '/a.txt', ':method': 'HEAD' })
      assert.equal(head.status, 200)
      assert.equal(head.headers['content-length'], '1000')
      assert.equal(head.body, '')
    } finally {
      s.close()
    }
  })

  test('the proxy and its cache, and the realtime hub, over HTTP/2 with TLS', async () => {
    const s = await h2connect()
    try {
      const miss = await h2get(s, { ':path': '/api/thing' })
      assert.equal(miss.status, 200)
      assert.deepEqual(JSON.parse(miss.body), { path: '/api/thing' })
      assert.match(String(miss.headers['cache-status']), /miss/)
      const hit = await h2get(s, { ':path': '/api/thing' })
      assert.match(String(hit.headers['cache-status']), /hit/)
      // where the channel is now, then a publish, then a short poll from there
      const first = JSON.parse((await h2get(s, { ':path': '/live/poll?ch=c:tls' })).body) as Array<{ t: string; e: string; o: number }>
      const sub = first.find((m) => m.t === 'sub')!
      const pub = await new Promise<number>((resolve, reject) => {
        const req = s.request({ ':method': 'POST', ':path': '/live/publish', 'content-type': 'application/json', origin: `https://localhost:${port}` })
        req.on('response', (h) => {
          req.resume()
          req.on('end', () => resolve(Number(h[':status'])))
        })
        req.on('error', reject)
        req.end(JSON.stringify({ ch: 'c:tls', d: { text: 'over h2' } }))
      })
      assert.equal(pub, 200)
      const poll = await h2get(s, { ':path': `/live/poll?ch=c:tls@${sub.e}/${sub.o}` })
      assert.equal(poll.status, 200)
      assert.match(poll.body, /"over h2"/)
    } finally {
      s.close()
    }
  })

  test('Server-Sent Events stream over HTTP/2 with TLS', async () => {
    const s = await h2connect()
    try {
      const text = await new Promise<string>((resolve, reject) => {
        const req = s.request({ ':path': '/live/sse?ch=c:sse', accept: 'text/event-stream' })
        let got = ''
        req.setEncoding('utf8')
        req.on('response', (h) => {
          assert.equal(h[':status'], 200)
          assert.match(String(h['content-type']), /^text\/event-stream/)
          const pub = s.request({ ':method': 'POST', ':path': '/live/publish', 'content-type': 'application/json', origin: `https://localhost:${port}` })
          pub.resume()
          pub.end(JSON.stringify({ ch: 'c:sse', d: 'pushed' }))
        })
        req.on('data', (c: string) => {
          got += c
          if (got.includes('"pushed"')) {
            req.close(http2.constants.NGHTTP2_CANCEL)
            resolve(got)
          }
        })
        req.on('error', reject)
        setTimeout(() => reject(new Error(`no event: ${got}`)), TIMEOUT).unref()
      })
      assert.match(text, /^retry: /m)
      assert.match(text, /data: .*"pushed"/)
    } finally {
      s.close()
    }
  })
})

describe('103 Early Hints', () => {
  test('over HTTP/2: a document request gets a 103 with the Link values first, and the same Link on the HTML', async () => {
    const s = await h2connect()
    try {
      const doc = await h2get(s, { ':path': '/', 'sec-fetch-dest': 'document', accept: 'text/html' })
      assert.equal(doc.status, 200)
      assert.equal(doc.informational.length, 1)
      assert.equal(doc.informational[0]![':status'], 103)
      assert.equal(doc.informational[0]!.link, '</a.txt>; rel=preload; as=fetch; crossorigin, <https://cdn.example>; rel=preconnect')
      assert.equal(doc.headers.link, '</a.txt>; rel=preload; as=fetch; crossorigin, <https://cdn.example>; rel=preconnect')
      // not for a subresource, and no Link on what is not HTML
      const sub = await h2get(s, { ':path': '/a.txt', 'sec-fetch-dest': 'empty' })
      assert.equal(sub.informational.length, 0)
      assert.equal(sub.headers.link, undefined)
    } finally {
      s.close()
    }
  })

  test('over HTTP/1.1 a browser navigation (Accept: text/html) gets the 103; an HTTP/1.0 client never does', async () => {
    const r = await h1get('/', { accept: 'text/html,application/xhtml+xml' })
    assert.equal(r.status, 200)
    assert.deepEqual(r.informational.map((i) => i.statusCode), [103])
    assert.match(String(r.informational[0]!.headers.link), /^<\/a\.txt>; rel=preload/)
    const raw = await handshake({})
    try {
      const text = await new Promise<string>((resolve) => {
        let got = ''
        raw.on('data', (c: Buffer) => (got += c.toString('latin1')))
        raw.on('close', () => resolve(got))
        raw.write('GET / HTTP/1.0\r\nHost: localhost\r\nAccept: text/html\r\n\r\n')
      })
      assert.match(text, /^HTTP\/1\.1 200 OK\r\n/, 'no 103 before the final response')
      assert.doesNotMatch(text, /103 Early Hints/)
    } finally {
      raw.destroy()
    }
  })

  test('a Link value that is not one is a configuration error', async () => {
    await assert.rejects(
      startServer({ sites: [{ routes: [{ path: '/', static: { root: files.path('www') }, earlyHints: ['/app.css; rel=preload'] }] }] }),
      /sites\[0\]\.routes\[0\]\.earlyHints\[0\]: is a Link value/,
    )
    await assert.rejects(startServer({ sites: [{ routes: [{ path: '/', static: { root: files.path('www') }, earlyHints: ['</app.css>; rel=stylesheet'] }] }] }), /needs rel=preload/)
  })
})

describe('HTTPS redirect and HSTS', () => {
  test('the cleartext listener answers 308 to the https URL; HSTS is sent over TLS only', async () => {
    const r = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = http.get(`${redirectUrl}some/path?q=1`, { headers: { host: 'localhost' } }, resolve)
      req.on('error', reject)
    })
    r.resume()
    assert.equal(r.statusCode, 308)
    assert.equal(r.headers.location, 'https://localhost:8443/some/path?q=1')
    assert.equal(r.headers['strict-transport-security'], undefined)
    const secure = await h1get('/a.txt')
    assert.equal(secure.headers['strict-transport-security'], 'max-age=86400; includeSubDomains')
  })
})

describe('certificates by SNI, versions and ciphers', () => {
  const cn = (s: tls.TLSSocket) => s.getPeerCertificate().subject.CN

  test('each name gets its certificate; a name no certificate covers gets the first; so does a client without SNI', async () => {
    for (const [name, expected] of [
      ['localhost', 'localhost'],
      ['b.test', 'b.test'],
      ['shop.b.test', 'b.test'],
      ['unknown.example', 'localhost'],
    ] as const) {
      const s = await handshake({ servername: name, rejectUnauthorized: false })
      assert.equal(cn(s), expected, name)
      s.destroy()
    }
    const noSni = await handshake({ servername: '', rejectUnauthorized: false })
    assert.equal(cn(noSni), 'localhost')
    noSni.destroy()
  })

  test('unknownServerName: refuse fails the handshake for an unknown name and still serves known ones', async () => {
    const strict = await startServer({ ...tlsConfig({ unknownServerName: 'refuse' }), listen: [{ host: '127.0.0.1', port: 0, tls: true }] })
    try {
      const p = Number(new URL(strict.url).port)
      await assert.rejects(handshake({ port: p, servername: 'unknown.example' }), /alert|handshake|disconnected before secure TLS connection|socket hang up|ECONNRESET/i)
      const ok = await handshake({ port: p, servername: 'b.test' })
      assert.equal(cn(ok), 'b.test')
      // a request on the next connection is served
      const answer = await new Promise<string>((resolve) => {
        let got = ''
        ok.on('data', (c: Buffer) => (got += c.toString('latin1')))
        ok.on('close', () => resolve(got))
        ok.write('GET /a.txt HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n')
      })
      assert.match(answer, /^HTTP\/1\.1 200 OK\r\n/)
      ok.destroy()
    } finally {
      await strict.close()
    }
  })

  test('TLS 1.0 and 1.1 are refused; TLS 1.2 negotiates an ECDHE AEAD cipher; TLS 1.3 is the default', async () => {
    for (const version of ['TLSv1', 'TLSv1.1'] as const) {
      await assert.rejects(handshake({ minVersion: version, maxVersion: version, ciphers: 'DEFAULT@SECLEVEL=0' }), /protocol version|alert|wrong version|ECONNRESET|unsupported/i, version)
    }
    const t12 = await handshake({ maxVersion: 'TLSv1.2' })
    assert.equal(t12.getProtocol(), 'TLSv1.2')
    assert.match(t12.getCipher().name, /^ECDHE-ECDSA-(AES128|AES256|CHACHA20)-(GCM-SHA256|GCM-SHA384|POLY1305)$/)
    t12.destroy()
    // a client that offers only CBC suites on TLS 1.2 gets no handshake
    await assert.rejects(handshake({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA' }), /alert|handshake|no shared cipher|ECONNRESET/i)
    const t13 = await handshake({})
    assert.equal(t13.getProtocol(), 'TLSv1.3')
    t13.destroy()
    // and the server goes on serving requests
    assert.equal((await h1get('/a.txt')).status, 200)
  })

  test('plain HTTP sent to the TLS port gets a readable 400 naming the https URL; TLS clients are served after it', async () => {
    const text = await new Promise<string>((resolve, reject) => {
      const c = net.connect(port, '127.0.0.1', () => c.write('GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n'))
      let got = ''
      c.on('data', (d) => (got += d.toString('latin1')))
      c.on('end', () => resolve(got))
      c.on('error', reject)
      c.setTimeout(TIMEOUT, () => c.destroy(new Error('no answer')))
    })
    assert.match(text, /^HTTP\/1\.1 400 Bad Request\r\n/)
    assert.match(text, /Connection: close\r\n/)
    assert.ok(text.endsWith(`This port speaks HTTPS, and the request was plain HTTP: use https://localhost:${port}/\n`), text)
    assert.equal((await h1get('/a.txt')).status, 200)
  })
})

describe('session resumption', () => {
  /** A first handshake that keeps its session, then a second that offers it: whether the server resumed. */
  async function resumes(p: number, opts: tls.ConnectionOptions): Promise<boolean> {
    const first = await handshake({ port: p, ...opts })
    const session = await new Promise<Buffer>((resolve, reject) => {
      const got = first.getSession()
      // TLS 1.3 tickets arrive after the handshake
      if (got && first.getProtocol() === 'TLSv1.2') return resolve(got)
      first.once('session', resolve)
      first.write('GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n')
      setTimeout(() => reject(new Error('no session')), TIMEOUT).unref()
    })
    first.destroy()
    const second = await handshake({ port: p, ...opts, session })
    const reused = second.isSessionReused()
    second.destroy()
    return reused
  }

  test('TLS 1.3 and TLS 1.2 resume with tickets', async () => {
    assert.equal(await resumes(port, {}), true)
    assert.equal(await resumes(port, { maxVersion: 'TLSv1.2' }), true)
  })

  test('without tickets, TLS 1.2 resumes from the session cache', async () => {
    const noTickets = await startServer({ ...tlsConfig({ sessionTickets: false }), listen: [{ host: '127.0.0.1', port: 0, tls: true }] })
    try {
      assert.equal(await resumes(Number(new URL(noTickets.url).port), { maxVersion: 'TLSv1.2' }), true)
    } finally {
      await noTickets.close()
    }
  })

  test('two processes sharing a ticketKeyFile resume each other’s sessions; with different secrets they do not', async () => {
    files.write('ticket.key', 'k'.repeat(48))
    files.write('other.key', 'o'.repeat(48))
    const one = await startServer({ ...tlsConfig({ ticketKeyFile: files.path('ticket.key') }), listen: [{ host: '127.0.0.1', port: 0, tls: true }] })
    const two = await startServer({ ...tlsConfig({ ticketKeyFile: files.path('ticket.key') }), listen: [{ host: '127.0.0.1', port: 0, tls: true }] })
    const three = await startServer({ ...tlsConfig({ ticketKeyFile: files.path('other.key') }), listen: [{ host: '127.0.0.1', port: 0, tls: true }] })
    try {
      const portOf = (s: TestServer) => Number(new URL(s.url).port)
      const first = await handshake({ port: portOf(one) })
      const session = await new Promise<Buffer>((resolve) => {
        first.once('session', resolve)
        first.write('GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n')
      })
      first.destroy()
      const onTwo = await handshake({ port: portOf(two), session })
      assert.equal(onTwo.isSessionReused(), true, 'same secret: resumed')
      onTwo.destroy()
      const onThree = await handshake({ port: portOf(three), session })
      assert.equal(onThree.isSessionReused(), false, 'another secret: a full handshake')
      onThree.destroy()
    } finally {
      await Promise.all([one.close(), two.close(), three.close()])
    }
    files.write('short.key', 'too short')
    await assert.rejects(startServer({ ...tlsConfig({ ticketKeyFile: files.path('short.key') }), listen: [{ host: '127.0.0.1', port: 0, tls: true }] }), /tls\.ticketKeyFile: .* holds 9 bytes; it needs at least 32/)
  })
})

describe('HTTP/2 limits', () => {
  test('a header list over limits.maxHeaderSize resets that stream (ENHANCE_YOUR_CALM); the connection goes on', async () => {
    const s = await h2connect()
    try {
      if (s.remoteSettings.maxHeaderListSize !== 16 * 1024) await new Promise((r) => s.once('remoteSettings', r))
      assert.equal(s.remoteSettings.maxHeaderListSize, 16 * 1024)
      const code = await new Promise<number>((resolve) => {
        const req = s.request({ ':path': '/a.txt', 'x-big': 'a'.repeat(20_000) })
        req.on('error', () => {})
        req.on('response', () => resolve(-1))
        req.on('close', () => resolve(req.rstCode))
        req.end()
      })
      assert.equal(code, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM)
      assert.equal((await h2get(s, { ':path': '/a.txt' })).status, 200)
    } finally {
      s.close()
    }
  })

  test('a client opening and resetting streams in a flood (rapid reset) gets GOAWAY and is cut; another client is served meanwhile', async () => {
    const flooder = await rawH2(port, { ca: ca.certPem })
    const bystander = await h2connect()
    try {
      for (let id = 1; id < 2 * 20_000; id += 2) {
        flooder.get(id, '/a.txt')
        flooder.reset(id)
        if (id % 1000 === 1) await flooder.flush()
      }
      await flooder.flush()
      const goaway = await flooder.waitFor(FRAME.GOAWAY, TIMEOUT)
      assert.ok(goaway, 'the server sent GOAWAY')
      // the error code: ENHANCE_YOUR_CALM (11) or PROTOCOL_ERROR (1), not NO_ERROR
      assert.notEqual(goaway!.payload.readUInt32BE(4), 0)
      await Promise.race([flooder.closed, new Promise((_, reject) => setTimeout(() => reject(new Error('the flooder is still connected')), TIMEOUT))])
      const r = await h2get(bystander, { ':path': '/a.txt' })
      assert.equal(r.status, 200)
    } finally {
      flooder.destroy()
      bystander.close()
    }
  })

  test('a client opening more streams than maxConcurrentStreams gets GOAWAY and is cut; another client is served', async () => {
    const small = await startServer({ ...tlsConfig(), listen: [{ host: '127.0.0.1', port: 0, tls: true }], limits: { maxConcurrentStreams: 2 } })
    const p = Number(new URL(small.url).port)
    const client = await rawH2(p, { ca: ca.certPem, authority: '127.0.0.1' })
    try {
      const settings = await client.waitFor(FRAME.SETTINGS, TIMEOUT)
      // SETTINGS_MAX_CONCURRENT_STREAMS (0x3) = 2
      const entries = new Map<number, number>()
      for (let i = 0; i + 6 <= settings!.payload.length; i += 6) entries.set(settings!.payload.readUInt16BE(i), settings!.payload.readUInt32BE(i + 2))
      assert.equal(entries.get(0x3), 2)
      // three streams at once, where two are allowed (RFC 9113 §5.1.2)
      client.getAll([1, 3, 5], '/a.txt')
      const goaway = await client.waitFor(FRAME.GOAWAY, TIMEOUT)
      assert.ok(goaway, 'the server sent GOAWAY')
      assert.equal(goaway!.payload.readUInt32BE(4), 0x1, 'PROTOCOL_ERROR')
      assert.match(goaway!.payload.subarray(8).toString(), /max concurrent streams exceeded/)
      await Promise.race([client.closed, new Promise((_, reject) => setTimeout(() => reject(new Error('still connected')), TIMEOUT))])
      const other = http2.connect(`https://127.0.0.1:${p}`, { ca: ca.certPem, servername: 'localhost' })
      other.on('error', () => {})
      try {
        assert.equal((await h2get(other, { ':path': '/a.txt' })).status, 200)
      } finally {
        other.close()
      }
    } finally {
      client.destroy()
      await small.close()
    }
  })
})

describe('configuration errors name the file and the problem', () => {
  const listenTls = [{ host: '127.0.0.1', port: 0, tls: true }]
  const site = () => [{ routes: [{ path: '/', static: { root: files.path('www') } }] }]

  test('a missing file, not PEM, a key that does not match, expired, not yet valid', async () => {
    const expired = await ca.leaf(['localhost'], { from: -10 * 86_400_000, to: -86_400_000 })
    const future = await ca.leaf(['localhost'], { from: 5 * 86_400_000, to: 30 * 86_400_000 })
    files.write('expired.crt', expired.certPem)
    files.write('expired.key', expired.keyPem)
    files.write('future.crt', future.certPem)
    files.write('future.key', future.keyPem)
    files.write('junk.crt', 'hello')
    const start = (certificates: unknown[]) => startServer({ listen: listenTls, tls: { certificates } as never, sites: site() })
    await assert.rejects(start([{ cert: files.path('nope.crt'), key: files.path('a.key') }]), /tls\.certificates\[0\]\.cert: cannot read .*nope\.crt \(ENOENT\)/)
    await assert.rejects(start([{ cert: files.path('junk.crt'), key: files.path('a.key') }]), /tls\.certificates\[0\]\.cert: .*junk\.crt is not a PEM certificate/)
    await assert.rejects(start([{ cert: files.path('a.crt'), key: files.path('b.key') }]), /tls\.certificates\[0\]\.key: .*b\.key does not match the certificate in .*a\.crt/)
    await assert.rejects(start([{ cert: files.path('expired.crt'), key: files.path('expired.key') }]), /tls\.certificates\[0\]\.cert: .*expired\.crt expired on /)
    await assert.rejects(start([{ cert: files.path('future.crt'), key: files.path('future.key') }]), /tls\.certificates\[0\]\.cert: .*future\.crt is not valid before /)
  })

  test('a site host no certificate covers; h2c on a TLS listener; a TLS listener without certificates', async () => {
    await assert.rejects(
      startServer({ listen: listenTls, tls: { certificates: [{ cert: files.path('b.crt'), key: files.path('b.key') }] }, sites: [{ hosts: ['shop.example', 'x.b.test'], routes: site()[0]!.routes }] }),
      /sites\[0\]\.hosts\[0\]: shop\.example is not covered by any certificate in tls\.certificates \(they cover: b\.test, \*\.b\.test\)/,
    )
    await assert.rejects(startServer({ listen: [{ host: '127.0.0.1', port: 0, tls: true, protocols: ['h2c'] }], tls: { certificates: [{ cert: files.path('a.crt'), key: files.path('a.key') }] }, sites: site() }), /listen\[0\]\.protocols\[0\]: h2c is cleartext HTTP\/2/)
    await assert.rejects(startServer({ listen: listenTls, sites: site() }), /listen\[0\]\.tls: a TLS listener needs tls\.certificates, tls\.acme for automatic certificates, or tls\.local: true/)
  })
})

describe('reload', () => {
  const fingerprint = async (p: number) => {
    const s = await handshake({ port: p, servername: 'localhost' })
    const f = s.getPeerX509Certificate()!.fingerprint256
    s.destroy()
    return f
  }

  test('new handshakes get the new certificate, a session opened before keeps working; a truncated certificate is refused and the old one keeps serving', async () => {
    const first = await ca.leaf(['localhost', '127.0.0.1'])
    files.write('r.crt', first.certPem)
    files.write('r.key', first.keyPem)
    const cfg = (extra: Record<string, unknown> = {}) => ({
      listen: [{ host: '127.0.0.1', port: 0, tls: true }],
      tls: { certificates: [{ cert: files.path('r.crt'), key: files.path('r.key') }] },
      sites: [{ routes: [{ path: '/', static: { root: files.path('www') } }] }],
      ...extra,
    })
    const box = await startServer(cfg())
    try {
      const p = Number(new URL(box.url).port)
      // startServer fills in listen with port 0: a reload must name the same listeners
      const same = () => ({ ...cfg(), listen: box.box.config.listen, log: box.box.config.log })
      const old = http2.connect(`https://127.0.0.1:${p}`, { ca: ca.certPem, servername: 'localhost' })
      await new Promise((r) => old.once('connect', r))
      assert.equal(await fingerprint(p), new X509Certificate(first.certPem).fingerprint256)

      const second = await ca.leaf(['localhost', '127.0.0.1'])
      files.write('r.crt', second.certPem)
      files.write('r.key', second.keyPem)
      await box.box.reload(same())
      assert.equal(await fingerprint(p), new X509Certificate(second.certPem).fingerprint256, 'a new handshake sees the new certificate')
      assert.equal((await h2get(old, { ':path': '/a.txt' })).status, 200, 'the session from before the reload still serves')
      old.close()

      files.write('r.crt', second.certPem.slice(0, 200))
      await assert.rejects(box.box.reload(same()), /tls\.certificates\[0\]\.cert: .*r\.crt is not a PEM certificate/)
      assert.equal(await fingerprint(p), new X509Certificate(second.certPem).fingerprint256, 'the old certificate keeps serving')
      await assert.rejects(box.box.reload({ ...same(), listen: [{ host: '127.0.0.1', port: 0, tls: true }, { host: '127.0.0.1', port: 0 }] }), /listen: listeners cannot change on reload/)
      await assert.rejects(box.box.reload({ ...same(), limits: { maxHeaderSize: '32k' } }), /limits: connection limits and timeouts belong to the listeners/)
    } finally {
      await box.close()
    }
  })
})

describe('SIGHUP', () => {
  test('the edgebox command reloads its configuration file and certificates on SIGHUP, and keeps serving when the new ones are bad', async () => {
    const first = await ca.leaf(['localhost', '127.0.0.1'])
    const second = await ca.leaf(['localhost', '127.0.0.1'])
    files.write('h.crt', first.certPem)
    files.write('h.key', first.keyPem)
    const config = (body: string) =>
      JSON.stringify({
        listen: [{ host: '127.0.0.1', port: 0, tls: true }],
        tls: { certificates: [{ cert: 'h.crt', key: 'h.key' }] },
        sites: [{ routes: [{ path: '/', static: { root: 'www' } }, { path: '/v/', redirect: { to: `/${body}/` } }] }],
      })
    files.write('edgebox.json', config('one'))
    const bin = path.join(import.meta.dirname, '..', '..', 'bin', 'edgebox.js')
    const child = spawn(process.execPath, [bin, '--config', files.path('edgebox.json')], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (c: Buffer) => (out += c.toString()))
    child.stderr.on('data', (c: Buffer) => (out += c.toString()))
    const until = async (re: RegExp, from = 0) => {
      const end = Date.now() + 10_000
      while (!re.test(out.slice(from))) {
        if (Date.now() > end) throw new Error(`waited for ${re} in:\n${out}`)
        await new Promise((r) => setTimeout(r, 50))
      }
    }
    try {
      await until(/listening on https:\/\/127\.0\.0\.1:(\d+)/)
      const p = Number(/listening on https:\/\/127\.0\.0\.1:(\d+)/.exec(out)![1])
      const seen = async () => {
        const s = await handshake({ port: p })
        const f = s.getPeerX509Certificate()!.fingerprint256
        s.destroy()
        return f
      }
      const location = async () => {
        const s = http2.connect(`https://127.0.0.1:${p}`, { ca: ca.certPem, servername: 'localhost' })
        try {
          return String((await h2get(s, { ':path': '/v/' })).headers.location)
        } finally {
          s.close()
        }
      }
      assert.equal(await seen(), new X509Certificate(first.certPem).fingerprint256)
      assert.equal(await location(), '/one/')

      // a new certificate and a changed route (the port stays what the file says: 0 is "the one already bound")
      files.write('h.crt', second.certPem)
      files.write('h.key', second.keyPem)
      files.write('edgebox.json', config('two'))
      let mark = out.length
      child.kill('SIGHUP')
      await until(/configuration reloaded/, mark)
      assert.equal(await seen(), new X509Certificate(second.certPem).fingerprint256)
      assert.equal(await location(), '/two/')

      // a truncated certificate: refused, with the reason, and the running configuration goes on
      files.write('h.crt', second.certPem.slice(0, 100))
      files.write('edgebox.json', config('three'))
      mark = out.length
      child.kill('SIGHUP')
      await until(/reload refused, the running configuration keeps serving/, mark)
      assert.match(out.slice(mark), /h\.crt is not a PEM certificate/)
      assert.equal(await seen(), new X509Certificate(second.certPem).fingerprint256)
      assert.equal(await location(), '/two/')
    } finally {
      child.kill('SIGTERM')
      await new Promise((r) => child.once('exit', r))
    }
  })
})
