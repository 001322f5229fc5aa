import assert from 'node:assert/strict'
import dgram from 'node:dgram'
import { mkdirSync, writeFileSync } from 'node:fs'
import dnsPacket from 'dns-packet'
import http from 'node:http'
import https from 'node:https'
import net, { type AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { inspectCommand } from '../../src/cli/inspect.ts'
import { inspect } from '../../src/inspect/inspect.ts'
import { certDir, testCa } from '../helpers/certs.ts'
import { startServer, type TestServer } from '../helpers/server.ts'

/**
 * `edgebox inspect` (src/inspect/, docs/inspect.md) against servers the test
 * starts: Edgebox itself (cleartext and TLS), and a deliberately
 * misconfigured server (no validators, a validator it ignores, broken
 * ranges, redirect loops, a downgrade to http, a certificate for the wrong
 * name). The JSON report's facts are asserted.
 */

const BODY = 'edgebox inspect fixture\n'.repeat(100)
let files: ReturnType<typeof certDir>
let caPem: string
let edge: TestServer
let edgeTls: TestServer
let bad: http.Server
let badUrl: string
let wrongName: https.Server
let wrongNameUrl: string

before(async () => {
  const ca = await testCa()
  caPem = ca.certPem
  const leaf = await ca.leaf(['localhost', '127.0.0.1'])
  const other = await ca.leaf(['other.test'])
  files = certDir({ 'l.crt': leaf.certPem, 'l.key': leaf.keyPem })
  mkdirSync(files.path('www'))
  writeFileSync(files.path('www/page.txt'), BODY)
  edge = await startServer({
    sites: [
      {
        headers: { csp: 'strict' },
        routes: [
          { path: '/', static: { root: files.path('www') }, earlyHints: ['</style.css>; rel=preload; as=style'] },
          { path: '/api/', static: { root: files.path('www') }, cors: { origins: ['http://app.test'], allowHeaders: ['x-token'], maxAge: '10m' } },
          { path: '/old', redirect: { to: '/page.txt', status: 302 } },
        ],
      },
    ],
  })
  edgeTls = await startServer({
    listen: [{ host: '127.0.0.1', port: 0, tls: true }],
    tls: { certificates: [{ cert: files.path('l.crt'), key: files.path('l.key') }] },
    sites: [{ headers: { hsts: { maxAge: '365d' } }, routes: [{ path: '/', static: { root: files.path('www') } }] }],
  })

  bad = http.createServer((req, res) => {
    const url = req.url ?? '/'
    if (url === '/novalidators') return void res.writeHead(200, { 'content-type': 'text/plain' }).end(BODY)
    if (url === '/ignores') return void res.writeHead(200, { 'content-type': 'text/plain', etag: '"v1"', 'cache-control': 'no-cache' }).end(BODY)
    if (url === '/badrange') {
      // claims ranges, answers 206 with the whole body and a wrong Content-Range
      const h = { 'content-type': 'text/plain', etag: '"v1"', 'accept-ranges': 'bytes' }
      if (req.headers['if-none-match'] === '"v1"') return void res.writeHead(304, h).end()
      if (req.headers.range) return void res.writeHead(206, { ...h, 'content-range': 'bytes 0-99/2400' }).end(BODY)
      return void res.writeHead(200, h).end(BODY)
    }
    if (url === '/loop-a') return void res.writeHead(302, { location: '/loop-b' }).end()
    if (url === '/loop-b') return void res.writeHead(302, { location: '/loop-a' }).end()
    if (url === '/close') return void res.writeHead(200, { connection: 'close', 'content-type': 'text/plain' }).end('bye')
    if (url === '/hang') return // never answers
    res.writeHead(404).end()
  })
  await new Promise<void>((r) => bad.listen(0, '127.0.0.1', r))
  badUrl = `http://127.0.0.1:${(bad.address() as AddressInfo).port}`

  wrongName = https.createServer({ cert: other.certPem, key: other.keyPem }, (req, res) => {
    // a downgrade: HTTPS redirecting to plain HTTP
    if (req.url === '/down') return void res.writeHead(301, { location: `${badUrl}/novalidators` }).end()
    res.writeHead(200).end('ok')
  })
  await new Promise<void>((r) => wrongName.listen(0, '127.0.0.1', r))
  wrongNameUrl = `https://localhost:${(wrongName.address() as AddressInfo).port}`
})

after(async () => {
  await edge?.close()
  await edgeTls?.close()
  bad?.closeAllConnections()
  await new Promise((r) => bad.close(r))
  wrongName?.closeAllConnections()
  await new Promise((r) => wrongName.close(r))
  files?.cleanup()
})

describe('against Edgebox', () => {
  test('timings, caching with a proven 304, ranges with If-Range, compression, reuse, security headers', async () => {
    const r = await inspect({ url: `${edge.url}page.txt` })
    assert.equal(r.hops.length, 1)
    const e = r.hops[0]!.exchange
    assert.equal(e.status, 200)
    assert.equal(e.httpVersion, 'HTTP/1.1')
    // the inspector asks like a browser (Accept: text/html), so the route's 103 Early Hints come first
    assert.deepEqual(e.informational.map((i) => [i.status, i.headers.link]), [[103, '</style.css>; rel=preload; as=style']])
    const t = e.timings
    assert.equal(t.dns, undefined, 'an IP address needs no DNS lookup')
    for (const phase of ['tcp', 'send', 'ttfb', 'transfer', 'total'] as const) assert.ok(typeof t[phase] === 'number' && t[phase]! >= 0, phase)
    assert.ok(t.total >= t.tcp! + t.ttfb)
    assert.equal(r.caching.kind, 'strong')
    assert.equal(r.caching.freshSeconds, 300)
    assert.ok(r.caching.validators.etag)
    assert.equal(r.caching.revalidation?.status, 304)
    assert.equal(r.caching.revalidation?.works, true)
    assert.equal(r.ranges.supported, true)
    assert.equal(r.ranges.contentRange, `bytes 0-0/${BODY.length}`)
    assert.match(r.ranges.ifRange!.line, /resuming is safe/)
    assert.equal(r.compression.used, 'br')
    assert.equal(r.reuse?.reused, true)
    assert.equal(r.http.h2Offered, null, 'cleartext: no ALPN')
    const byCheck = new Map(r.security.map((f) => [f.check, f.status]))
    assert.equal([...byCheck.values()].includes('missing'), false, JSON.stringify(r.security))
  })

  test('a redirect is followed with its hop shown, and a 302 is flagged', async () => {
    const r = await inspect({ url: `${edge.url}old` })
    assert.deepEqual(r.hops.map((h) => [h.status, h.location]), [[302, '/page.txt'], [200, null]])
    assert.equal(r.finalUrl, `${edge.url}page.txt`)
    // the same origin: the second hop goes over the same connection
    assert.equal(r.hops[1]!.exchange.reused, true)
    assert.equal(r.hops[1]!.exchange.timings.tcp, undefined)
    assert.ok(r.warnings.some((w) => /302 .*307 keeps the method/.test(w)), r.warnings.join('\n'))
    const once = await inspect({ url: `${edge.url}old`, follow: false })
    assert.equal(once.hops.length, 1)
    // --http2 on an http:// URL: HTTP/2 with prior knowledge (h2c), which Edgebox speaks on the same port
    const h2c = await inspect({ url: `${edge.url}page.txt`, protocol: 'http2' })
    assert.equal(h2c.hops[0]!.exchange.httpVersion, 'HTTP/2')
    assert.equal(h2c.caching.revalidation?.status, 304)
    assert.equal(h2c.ranges.supported, true)
  })

  test('CORS: a simple GET from a listed origin is allowed; a custom header triggers a preflight the route allows; an unlisted origin is refused', async () => {
    const simple = await inspect({ url: `${edge.url}api/page.txt`, origin: 'http://app.test' })
    assert.equal(simple.cors?.plan.preflight, false)
    assert.equal(simple.cors?.allowed, true)
    const pre = await inspect({ url: `${edge.url}api/page.txt`, origin: 'http://app.test', corsMethod: 'GET', corsHeaders: { 'x-token': 'abc' } })
    assert.equal(pre.cors?.plan.preflight, true)
    assert.equal(pre.cors?.preflight?.status, 204)
    assert.equal(pre.cors?.preflight?.verdict.maxAgeSeconds, 600)
    assert.equal(pre.cors?.allowed, true)
    const other = await inspect({ url: `${edge.url}api/page.txt`, origin: 'http://evil.test', corsHeaders: { 'x-token': 'abc' } })
    assert.equal(other.cors?.allowed, false)
  })

  test('over TLS: HTTP/2 by ALPN, the chain, the name match, days left, HSTS; repeat shows what handshakes cost', async () => {
    const r = await inspect({ url: `${edgeTls.url.replace('127.0.0.1', 'localhost')}page.txt`, insecure: true, repeat: 5 })
    const hop = r.hops[0]!
    assert.equal(hop.exchange.httpVersion, 'HTTP/2')
    assert.equal(r.http.h2Offered, true)
    assert.ok(hop.exchange.timings.dns !== undefined && hop.exchange.timings.tls !== undefined)
    assert.equal(hop.tls?.version, 'TLSv1.3')
    assert.equal(hop.tls?.alpn, 'h2')
    assert.equal(hop.tls?.nameMatches, true)
    assert.equal(hop.tls?.authorized, false, 'the test CA is not in the system store')
    assert.deepEqual(hop.tls?.chain[0]?.names, ['localhost', '127.0.0.1'])
    assert.ok(hop.tls!.chain[0]!.daysLeft >= 28)
    assert.equal(r.security.find((f) => /HSTS|Strict-Transport/i.test(f.check))?.status, 'ok')
    assert.equal(r.repeat?.reused.n, 5)
    assert.equal(r.repeat?.fresh.n, 5)
    assert.equal(r.repeat?.resumed, 5, 'every new connection resumed the first TLS session')
    assert.ok(r.repeat!.fresh.p50 > 0 && r.repeat!.reused.p50 > 0)
    // --http1.1 offers only HTTP/1.1; HTTP/2 is still reported as offered
    const h1 = await inspect({ url: `${edgeTls.url}page.txt`, insecure: true, protocol: 'http1' })
    assert.equal(h1.hops[0]!.exchange.httpVersion, 'HTTP/1.1')
    assert.equal(h1.http.h2Offered, true)
  })
})

describe('against a misconfigured server', () => {
  test('no validators: no 304 possible, said so', async () => {
    const r = await inspect({ url: `${badUrl}/novalidators` })
    assert.equal(r.caching.validators.etag, null)
    assert.equal(r.caching.revalidation, null)
    assert.equal(r.caching.kind, 'none')
    assert.equal(r.ranges.supported, false)
    assert.equal(r.compression.used, null)
    assert.ok(r.compression.lines.some((l) => /Not compressed although text\/plain compresses well/.test(l)))
    assert.ok(r.security.some((f) => f.status === 'missing'))
  })

  test('a validator the server ignores: the conditional request gets 200, and the report says revalidation does not work', async () => {
    const r = await inspect({ url: `${badUrl}/ignores` })
    assert.equal(r.caching.kind, 'negotiated')
    assert.equal(r.caching.revalidation?.status, 200)
    assert.equal(r.caching.revalidation?.works, false)
  })

  test('broken ranges are caught', async () => {
    const r = await inspect({ url: `${badUrl}/badrange` })
    assert.equal(r.ranges.status, 206)
    assert.equal(r.ranges.supported, false)
    assert.match(r.ranges.lines[0]!, /broken range answer/)
  })

  test('a redirect loop is detected and stops', async () => {
    const r = await inspect({ url: `${badUrl}/loop-a` })
    assert.deepEqual(r.hops.map((h) => h.status), [302, 302])
    assert.ok(r.warnings.some((w) => /^redirect loop/.test(w)), r.warnings.join('\n'))
  })

  test('a connection the server closes is not reused', async () => {
    const r = await inspect({ url: `${badUrl}/close` })
    assert.equal(r.reuse?.reused, false)
  })

  test('a certificate for another name fails the TLS phase; --insecure goes on and flags it, and follows a downgrade to http with a warning', async () => {
    await assert.rejects(inspect({ url: `${wrongNameUrl}/down` }), (err: Error & { phase?: string }) => err.phase === 'tls' && /not for localhost/.test(err.message))
    const r = await inspect({ url: `${wrongNameUrl}/down`, insecure: true })
    assert.equal(r.hops[0]!.tls?.nameMatches, false)
    assert.deepEqual(r.hops.map((h) => h.status), [301, 200])
    assert.ok(r.warnings.some((w) => /from HTTPS down to plain HTTP/.test(w)), r.warnings.join('\n'))
  })
})

describe('IPv6 and a DNS server asked directly', () => {
  test('an IPv6 literal is reached over IPv6; -6 on a name with only IPv4 says so in the DNS phase', async () => {
    const v6 = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('six'))
    await new Promise<void>((r) => v6.listen(0, '::1', r))
    try {
      const r = await inspect({ url: `http://[::1]:${(v6.address() as AddressInfo).port}/` })
      assert.equal(r.hops[0]!.connection.family, 'IPv6')
      assert.equal(r.hops[0]!.exchange.remoteAddress, '::1')
      assert.equal(r.hops[0]!.exchange.timings.dns, undefined)
    } finally {
      v6.closeAllConnections()
      await new Promise((r) => v6.close(r))
    }
    await assert.rejects(inspect({ url: `${edge.url}page.txt`, family: 6 }), (err: Error & { phase?: string }) => err.phase === 'dns' && /no IPv6 address/.test(err.message))
  })

  test('--dns-server: the answers with their TTLs and flags, from that server', async () => {
    const server = dgram.createSocket('udp4')
    server.on('message', (msg, rinfo) => {
      const q = dnsPacket.decode(msg)
      const question = q.questions![0]!
      const answers = question.type === 'A' ? [{ name: question.name, type: 'A' as const, ttl: 42, class: 'IN' as const, data: '127.0.0.1' }] : []
      server.send(dnsPacket.encode({ id: q.id, type: 'response', flags: dnsPacket.AUTHORITATIVE_ANSWER | dnsPacket.RECURSION_DESIRED, questions: q.questions, answers }), rinfo.port, rinfo.address)
    })
    await new Promise<void>((r) => server.bind(0, '127.0.0.1', r))
    try {
      const r = await inspect({ url: `${edge.url.replace('127.0.0.1', 'localhost')}page.txt`, dnsServer: `127.0.0.1:${server.address().port}` })
      const a = r.dnsServer!.find((x) => x.type === 'A')!
      assert.deepEqual(a.answers.map((x) => [x.type, x.ttl, x.data]), [['A', 42, '127.0.0.1']])
      assert.equal(a.flags.authoritative, true)
      assert.equal(r.dnsServer!.find((x) => x.type === 'AAAA')!.answers.length, 0)
    } finally {
      server.close()
    }
  })
})

describe('the command', () => {
  const run = async (args: string[]) => {
    let stdout = ''
    let stderr = ''
    const code = await inspectCommand(args, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s) })
    return { code, stdout, stderr }
  }

  test('the text report draws the waterfall and explains; --json is the same report', async () => {
    const text = await run([`${edge.url}page.txt`])
    assert.equal(text.code, 0, text.stderr)
    assert.match(text.stdout, /TCP connect +█/)
    assert.match(text.stdout, /waiting \(TTFB\)/)
    assert.match(text.stdout, /got 304 Not Modified/)
    const json = await run([`${edge.url}page.txt`, '--json'])
    assert.equal(JSON.parse(json.stdout).hops[0].status, 200)
  })

  // DNS failures are in inspect-more.test.ts, asked of a DNS server on 127.0.0.1: the system resolver here may forward a .invalid name to a server outside
  test('failures name their phase: TCP (refused), response (timeout); bad usage is exit 2', async () => {
    const closedPort = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as AddressInfo).port
        s.close(() => resolve(p))
      })
    })
    const refused = await run([`http://127.0.0.1:${closedPort}/`])
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /tcp failed: .*connection refused/)
    const hang = await run([`${badUrl}/hang`, '--timeout', '0.3'])
    assert.equal(hang.code, 1)
    assert.match(hang.stderr, /response failed: .*timed out after 300 ms/)
    assert.equal((await run([])).code, 2)
    assert.equal((await run(['ftp://x/'])).code, 1)
    assert.match((await run([`${edge.url}`, '--repeat', 'many'])).stderr, /--repeat many/)
    assert.match((await run([`${edge.url}`, '--origin', 'app.test'])).stderr, /an origin like https:\/\/app\.example\.com/)
    // the good request after the bad ones
    assert.equal((await run([`${edge.url}page.txt`, '--json'])).code, 0)
  })
})
