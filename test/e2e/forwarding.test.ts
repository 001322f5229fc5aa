import assert from 'node:assert/strict'
import http from 'node:http'
import http2 from 'node:http2'
import https from 'node:https'
import { after, before, describe, test } from 'node:test'
import { certDir, testCa } from '../helpers/certs.ts'
import { listening, raw, startServer, type TestServer } from '../helpers/server.ts'

/**
 * The one request-target parser and the one client-address and forwarding
 * service (docs/configuration.md, "Client addresses behind proxies"): what the
 * upstream receives, which client a rate limit counts, and the configuration
 * errors that name the problem.
 */

interface Seen {
  url: string
  headers: http.IncomingHttpHeaders
}

async function upstream(): Promise<{ url: string; port: number; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = []
  const server = http.createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      seen.push({ url: req.url!, headers: req.headers })
      res.writeHead(200, { 'Content-Type': 'text/plain' })
      res.end(`saw ${req.url}`)
    })
  })
  return { ...(await listening(server)), seen }
}

/** A GET with the path sent exactly as written (no client-side URL normalisation), from a chosen local address. */
function get(port: number, path: string, headers: Record<string, string> = {}, from = '127.0.0.1'): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers, localAddress: from, agent: false }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (text += c))
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text }))
    })
    req.on('error', reject)
    req.end()
  })
}

function getH2(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`)
    session.on('error', reject)
    const stream = session.request({ ':path': path, ...headers })
    let status = 0
    let text = ''
    stream.on('response', (h) => (status = Number(h[':status'])))
    stream.setEncoding('utf8')
    stream.on('data', (c: string) => (text += c))
    stream.on('end', () => {
      session.close()
      resolve({ status, text })
    })
    stream.on('error', reject)
  })
}

const last = (u: { seen: Seen[] }) => u.seen[u.seen.length - 1]!

describe('the reverse proxy forwards the path it routed', () => {
  let up: Awaited<ReturnType<typeof upstream>>
  let srv: TestServer
  before(async () => {
    up = await upstream()
    srv = await startServer({
      sites: [
        {
          routes: [
            { path: '/api/', proxy: { upstreams: [up.url], stripPrefix: true, prefix: '/v1' } },
            { path: '/', redirect: { to: '/elsewhere' } },
          ],
        },
      ],
    })
  })
  after(async () => {
    await srv.close()
    await up.close()
  })

  test('dot segments resolved before stripping: /api/a/../../api/x reaches /v1/x, never outside /v1', async () => {
    let r = await get(srv.port, '/api/a/../../api/x?q=1')
    assert.equal(r.status, 200)
    assert.equal(last(up).url, '/v1/x?q=1')
    r = await get(srv.port, '/api/%2e%2e/api/y')
    assert.equal(r.status, 200)
    assert.equal(last(up).url, '/v1/y')
    const h2 = await getH2(srv.port, '/api/a/../../api/z')
    assert.equal(h2.status, 200)
    assert.equal(last(up).url, '/v1/z')
  })

  test("the client's percent-encoding of each kept segment is passed on as sent", async () => {
    await get(srv.port, '/api/caf%C3%A9/a%2Bb/./c%3Fd;e=1')
    assert.equal(last(up).url, '/v1/caf%C3%A9/a%2Bb/c%3Fd;e=1')
  })
})

describe('absolute-form targets name the host everywhere (RFC 9112 §3.2.2)', () => {
  let a: Awaited<ReturnType<typeof upstream>>
  let b: Awaited<ReturnType<typeof upstream>>
  let srv: TestServer
  before(async () => {
    a = await upstream()
    b = await upstream()
    srv = await startServer({
      sites: [
        { hosts: ['a.test'], routes: [{ path: '/', proxy: { upstreams: [a.url] } }] },
        { hosts: ['b.test'], routes: [{ path: '/', proxy: { upstreams: [b.url] } }] },
      ],
    })
  })
  after(async () => {
    await srv.close()
    await a.close()
    await b.close()
  })

  test('GET http://a.test/x with Host: b.test goes to a.test, whose upstream sees Host: a.test', async () => {
    const text = await raw(srv.port, 'GET http://a.test/x HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n')
    assert.match(text, /^HTTP\/1\.1 200 /)
    assert.equal(b.seen.length, 0)
    const h = last(a).headers
    assert.equal(h.host, 'a.test')
    assert.equal(h['x-forwarded-host'], 'a.test')
    assert.match(String(h.forwarded), /host="a\.test"/)
  })

  test('userinfo in the target is refused (RFC 9110 §4.2.4), before routing', async () => {
    const text = await raw(srv.port, 'GET http://b.test@a.test/x HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n')
    assert.match(text, /^HTTP\/1\.1 400 /)
    assert.match(text, /userinfo/)
  })
})

describe('client addresses behind a trusted proxy', () => {
  let srv: TestServer
  let fwd: TestServer
  let up: Awaited<ReturnType<typeof upstream>>
  before(async () => {
    up = await upstream()
    const routes = [
      { path: '/limited/', redirect: { to: '/elsewhere' }, rateLimit: { requests: 5, per: '1m' } },
      { path: '/up/', proxy: { upstreams: [up.url] } },
    ]
    srv = await startServer({ trustedProxies: ['127.0.0.1'], sites: [{ routes }] })
    fwd = await startServer({ trustedProxies: ['127.0.0.1'], clientAddressHeader: 'forwarded', sites: [{ routes }] })
  })
  after(async () => {
    await srv.close()
    await fwd.close()
    await up.close()
  })

  const remaining = async (s: TestServer, headers: Record<string, string>, from = '127.0.0.1') => Number((await get(s.port, '/limited/x', headers, from)).headers['ratelimit-remaining'])

  test('X-Forwarded-For names the client; a Forwarded field the client added is never read', async () => {
    const xff = { 'x-forwarded-for': '203.0.113.9' }
    const first = await remaining(srv, { ...xff, forwarded: 'for=198.51.100.1' })
    const second = await remaining(srv, { ...xff, forwarded: 'for=198.51.100.2' })
    assert.equal(first, 4)
    assert.equal(second, 3, 'both requests count for 203.0.113.9')
  })

  test("clientAddressHeader: 'forwarded' reads for= with its port and IPv6 brackets", async () => {
    assert.equal(await remaining(fwd, { forwarded: 'for="192.0.2.1:4711"' }), 4)
    assert.equal(await remaining(fwd, { forwarded: 'for="192.0.2.1:4712";proto=https' }), 3, 'the port is not part of the address')
    assert.equal(await remaining(fwd, { forwarded: 'for="[2001:db8::1]:80"' }), 4, 'another client, its own bucket')
    assert.equal(await remaining(fwd, { forwarded: 'For="[2001:DB8::1]"' }), 3, 'the same IPv6 client')
    // X-Forwarded-For is not read in this mode
    assert.equal(await remaining(fwd, { 'x-forwarded-for': '192.0.2.1' }), 4, 'without Forwarded: the peer, 127.0.0.1')
  })

  test('X-Forwarded-For entries with ports and brackets are parsed', async () => {
    assert.equal(await remaining(srv, { 'x-forwarded-for': '192.0.2.50:1234' }), 4)
    assert.equal(await remaining(srv, { 'x-forwarded-for': '192.0.2.50' }), 3)
    assert.equal(await remaining(srv, { 'x-forwarded-for': '[2001:db8::50]:99' }), 4)
    assert.equal(await remaining(srv, { 'x-forwarded-for': '2001:db8::50' }), 3)
  })

  test('the field not configured is removed before forwarding; both fields upstream carry the one chain', async () => {
    await get(srv.port, '/up/a', { 'x-forwarded-for': '203.0.113.9', forwarded: 'for=198.51.100.1' })
    let h = last(up).headers
    assert.equal(h['x-forwarded-for'], '203.0.113.9, 127.0.0.1')
    assert.equal(h.forwarded, `for=203.0.113.9, for=127.0.0.1;proto=http;host="127.0.0.1:${srv.port}"`)
    await get(fwd.port, '/up/b', { 'x-forwarded-for': '198.51.100.1', forwarded: 'for="[2001:db8::1]:80";proto=https' })
    h = last(up).headers
    assert.equal(h['x-forwarded-for'], '2001:db8::1, 127.0.0.1')
    assert.equal(h.forwarded, `for="[2001:db8::1]:80";proto=https, for=127.0.0.1;proto=http;host="127.0.0.1:${fwd.port}"`)
    assert.equal(h['x-forwarded-proto'], 'https', 'the scheme the client used, as the trusted proxy saw it')
  })

  test('an untrusted peer: neither field is read nor passed on', async () => {
    await get(srv.port, '/up/c', { 'x-forwarded-for': '203.0.113.9', forwarded: 'for=198.51.100.1;proto=https', 'x-forwarded-proto': 'https' }, '127.0.0.2')
    const h = last(up).headers
    assert.equal(h['x-forwarded-for'], '127.0.0.2')
    assert.equal(h['x-forwarded-proto'], 'http')
    assert.equal(h.forwarded, `for=127.0.0.2;proto=http;host="127.0.0.1:${srv.port}"`)
  })
})

describe('X-Forwarded-Proto behind TLS', () => {
  let srv: TestServer
  let up: Awaited<ReturnType<typeof upstream>>
  let files: ReturnType<typeof certDir>
  let ca: string
  before(async () => {
    up = await upstream()
    const authority = await testCa()
    const leaf = await authority.leaf(['localhost', '127.0.0.1'])
    ca = authority.certPem
    files = certDir({ 'site.crt': leaf.certPem, 'site.key': leaf.keyPem })
    srv = await startServer({
      listen: [{ host: '127.0.0.1', port: 0, tls: true }],
      tls: { certificates: [{ cert: files.path('site.crt'), key: files.path('site.key') }] },
      sites: [{ routes: [{ path: '/', proxy: { upstreams: [up.url] } }] }],
    })
  })
  after(async () => {
    await srv.close()
    await up.close()
    files.cleanup()
  })

  test('https over HTTP/1.1 and h2', async () => {
    await new Promise<void>((resolve, reject) => {
      https.get(`${srv.url}x`, { ca, agent: false }, (res) => res.resume().on('end', resolve)).on('error', reject)
    })
    let h = last(up).headers
    assert.equal(h['x-forwarded-proto'], 'https')
    assert.match(String(h.forwarded), /;proto=https;/)
    const session = http2.connect(srv.url, { ca })
    await new Promise<void>((resolve, reject) => {
      const s = session.request({ ':path': '/y' })
      s.on('error', reject)
      s.resume().on('end', resolve)
    })
    session.close()
    h = last(up).headers
    assert.equal(h['x-forwarded-proto'], 'https')
  })
})

describe('addresses, CIDRs and hosts in the configuration', () => {
  test('a CIDR with a prefix length out of range names its path', async () => {
    await assert.rejects(startServer({ trustedProxies: ['10.0.0.0/8', '1.2.3.4/99'], sites: [{ routes: [{ path: '/', redirect: { to: '/x' } }] }] }), (err: Error) => {
      assert.match(err.message, /trustedProxies\[1\]: 1\.2\.3\.4\/99 is not an address or CIDR/)
      return true
    })
    await assert.rejects(startServer({ forwardProxy: { enabled: true, clients: ['::1/129'] }, sites: [{ routes: [{ path: '/', redirect: { to: '/x' } }] }] }), /forwardProxy\.clients\[0\]: ::1\/129 is not an address or CIDR/)
    await assert.rejects(startServer({ sites: [{ hosts: ['exa mple.test'], routes: [{ path: '/', redirect: { to: '/x' } }] }] }), /sites\[0\]\.hosts\[0\]: "exa mple\.test" is not a host name/)
  })

  test('proxy.trustedProxies moved to the top level', async () => {
    await assert.rejects(
      startServer({ sites: [{ routes: [{ path: '/', redirect: { to: '/x' } }, { path: '/api/', proxy: { upstreams: ['http://127.0.0.1:9'], trustedProxies: ['10.0.0.0/8'] } }] }] } as never),
      /sites\[0\]\.routes\[1\]\.proxy\.trustedProxies: moved to the top-level trustedProxies/,
    )
  })
})
