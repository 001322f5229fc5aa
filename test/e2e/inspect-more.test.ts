import assert from 'node:assert/strict'
import dgram from 'node:dgram'
import { mkdirSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import dnsPacket from 'dns-packet'
import { inspectCommand } from '../../src/cli/inspect.ts'
import { formatHttpDate } from '../../src/http/date.ts'
import { inspect } from '../../src/inspect/inspect.ts'
import { certDir, testCa } from '../helpers/certs.ts'
import { ManualClock } from '../helpers/clock.ts'
import { startServer, type TestServer } from '../helpers/server.ts'

/**
 * `edgebox inspect` (docs/inspect.md), continued: DNS failures as a clean
 * `dns` phase error, the caches on the way (Cache-Status, Age, Via,
 * X-Cache), `--ca` and Edgebox's local authority, and no negative durations.
 */

const BODY = 'edgebox inspect fixture\n'.repeat(50)
let files: ReturnType<typeof certDir>
let caPem: string
let edgeTls: TestServer
let cached: TestServer
let origin: http.Server
let cdn: http.Server
let cdnUrl: string
let dns: dgram.Socket
let dnsAddr: string
const clock = new ManualClock()

/** The fixture DNS server's answer to a name: by its first label. */
function answerDns(msg: Buffer, rinfo: dgram.RemoteInfo): void {
  const q = dnsPacket.decode(msg)
  const question = q.questions![0]!
  const first = question.name.split('.')[0]
  if (first === 'silent') return // never answers: a timeout
  const rcode = first === 'servfail' ? 'SERVFAIL' : first === 'nxdomain' ? 'NXDOMAIN' : 'NOERROR'
  const answers = rcode === 'NOERROR' && question.type === 'A' ? [{ name: question.name, type: 'A' as const, ttl: 42, class: 'IN' as const, data: '127.0.0.1' }] : []
  const packet = dnsPacket.encode({ id: q.id, type: 'response', flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE, questions: q.questions, answers })
  // dns-packet's encoder takes the rcode from the low 4 bits of the flags word
  packet.writeUInt16BE((packet.readUInt16BE(2) & 0xfff0) | (rcode === 'SERVFAIL' ? 2 : rcode === 'NXDOMAIN' ? 3 : 0), 2)
  dns.send(packet, rinfo.port, rinfo.address)
}

before(async () => {
  const ca = await testCa()
  caPem = ca.certPem
  const leaf = await ca.leaf(['localhost', '127.0.0.1'])
  files = certDir({ 'l.crt': leaf.certPem, 'l.key': leaf.keyPem, 'ca.pem': caPem })
  mkdirSync(files.path('www'))
  writeFileSync(files.path('www/page.txt'), BODY)
  edgeTls = await startServer({
    listen: [{ host: '127.0.0.1', port: 0, tls: true }],
    tls: { certificates: [{ cert: files.path('l.crt'), key: files.path('l.key') }] },
    sites: [{ routes: [{ path: '/', static: { root: files.path('www') } }] }],
  })

  origin = http.createServer((req, res) => {
    req.resume()
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60', date: formatHttpDate(clock.now()) }).end(BODY)
  })
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r))
  cached = await startServer({ sites: [{ routes: [{ path: '/', proxy: { upstreams: [`http://127.0.0.1:${(origin.address() as AddressInfo).port}`], cache: { name: 'edge' } } }] }] }, undefined, { clock })

  cdn = http.createServer((req, res) => {
    req.resume()
    const h: Record<string, string> = { 'content-type': 'text/plain', 'cache-control': 'max-age=300' }
    if (req.url === '/hit') Object.assign(h, { 'x-cache': 'HIT', via: '1.1 varnish (Varnish/7.4), 1.1 shield.example', age: '120' })
    if (req.url === '/miss') Object.assign(h, { 'x-cache': 'MISS, MISS', via: '1.1 varnish' })
    if (req.url === '/bad-status') Object.assign(h, { 'cache-status': 'edge; hit; ttl=(1', age: 'ten' })
    if (req.url === '/stale') Object.assign(h, { 'cache-status': '"Example Cache"; hit; ttl=-30; detail=stale-while-revalidate' })
    res.writeHead(200, h).end(BODY)
  })
  await new Promise<void>((r) => cdn.listen(0, '127.0.0.1', r))
  cdnUrl = `http://127.0.0.1:${(cdn.address() as AddressInfo).port}`

  dns = dgram.createSocket('udp4')
  dns.on('message', answerDns)
  await new Promise<void>((r) => dns.bind(0, '127.0.0.1', r))
  dnsAddr = `127.0.0.1:${dns.address().port}`
})

after(async () => {
  await edgeTls?.close()
  await cached?.close()
  for (const s of [origin, cdn]) {
    s?.closeAllConnections()
    await new Promise((r) => s.close(r))
  }
  dns?.close()
  files?.cleanup()
})

const run = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
  let stdout = ''
  let stderr = ''
  const code = await inspectCommand(args, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s) }, env)
  return { code, stdout, stderr }
}

/** A UDP port nothing listens on: bound, then closed. */
async function closedUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4')
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r))
  const port = s.address().port
  await new Promise<void>((r) => s.close(r))
  return port
}

describe('DNS failures are a clean dns phase error', () => {
  test('NXDOMAIN, SERVFAIL, no answer, and a refused query from --dns-server; then a good lookup', async () => {
    const nx = await run([`${edgeTls.url}page.txt`.replace('127.0.0.1', 'nxdomain.invalid'), '--dns-server', dnsAddr, '--json'])
    assert.equal(nx.code, 1, nx.stderr)
    assert.deepEqual(JSON.parse(nx.stdout).error, { phase: 'dns', code: 'NXDOMAIN', message: `DNS server ${dnsAddr} answered NXDOMAIN for nxdomain.invalid: the name does not exist` })
    assert.equal(nx.stderr, `edgebox inspect: dns failed: DNS server ${dnsAddr} answered NXDOMAIN for nxdomain.invalid: the name does not exist\n`)

    const sf = await run(['http://servfail.test/', '--dns-server', dnsAddr, '--json'])
    assert.equal(sf.code, 1)
    const sfError = JSON.parse(sf.stdout).error
    assert.equal(sfError.phase, 'dns')
    assert.equal(sfError.code, 'SERVFAIL')
    assert.match(sfError.message, new RegExp(`^DNS server ${dnsAddr} answered SERVFAIL for servfail\\.test: the server could not get an answer`))

    const silent = await run(['http://silent.test/', '--dns-server', dnsAddr, '--timeout', '0.3'])
    assert.equal(silent.code, 1)
    assert.equal(silent.stderr, `edgebox inspect: dns failed: DNS server ${dnsAddr} did not answer for silent.test (A) within 300 ms: timed out\n`)

    const port = await closedUdpPort()
    const refused = await run(['http://app.test/', '--dns-server', `127.0.0.1:${port}`, '--json'])
    assert.equal(refused.code, 1)
    assert.deepEqual(JSON.parse(refused.stdout).error, { phase: 'dns', code: 'ECONNREFUSED', message: `DNS server 127.0.0.1:${port} refused the query for app.test: connection refused (nothing listens on that port)` })

    // a --dns-server that is not an address is bad usage
    const bad = await run(['http://app.test/', '--dns-server', 'dns.example'])
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /--dns-server dns\.example: .*not an IP address/)

    // the good lookup after the bad ones
    const good = await run([`${edgeTls.url.replace('127.0.0.1', 'localhost')}page.txt`, '--dns-server', dnsAddr, '--ca', files.path('ca.pem'), '--json'])
    assert.equal(good.code, 0, good.stderr)
    assert.deepEqual(JSON.parse(good.stdout).dnsServer[0].answers.map((a: { data: string }) => a.data), ['127.0.0.1'])
  })

  test("the system resolver's failures are named too (a resolver standing in for the system's, so no query leaves this machine)", async () => {
    const failing = (code: string) => async () => {
      throw Object.assign(new Error(`getaddrinfo ${code} app.test`), { code })
    }
    const cases: Array<[string, RegExp]> = [
      ['ENOTFOUND', /^DNS lookup of app\.test failed: no such name \(NXDOMAIN\)$/],
      ['EAI_AGAIN', /^DNS lookup of app\.test failed: the resolver got no answer in time \(a timeout or SERVFAIL on the way; EAI_AGAIN\)$/],
      ['ESERVFAIL', /^DNS lookup of app\.test failed: SERVFAIL: the server could not get an answer/],
      ['ECONNREFUSED', /^DNS lookup of app\.test failed: the DNS server refused the connection$/],
      ['ETIMEOUT', /^DNS lookup of app\.test failed: the DNS server did not answer in time$/],
    ]
    for (const [code, message] of cases) {
      await assert.rejects(inspect({ url: 'http://app.test/', lookup: failing(code) }), (err: Error & { phase?: string; code?: string }) => {
        assert.equal(err.phase, 'dns')
        assert.equal(err.code, code)
        assert.match(err.message, message)
        return true
      })
    }
    // the same stand-in resolver answering: the request goes on
    const ok = await inspect({ url: `${cdnUrl.replace('127.0.0.1', 'app.test')}/`, lookup: async () => [{ address: '127.0.0.1', family: 4 }] })
    assert.equal(ok.hops[0]!.status, 200)
  })
})

describe('the caches on the way', () => {
  test("Edgebox's own proxy cache: a miss, then a hit with its Age, read from Cache-Status", async () => {
    const miss = await inspect({ url: `${cached.url}a.txt` })
    assert.equal(miss.hops[0]!.exchange.headers['cache-status'], 'edge; fwd=miss; fwd-status=200; stored; ttl=60')
    assert.deepEqual(miss.caches.cacheStatus, [{ cache: 'edge', hit: false, fwd: 'miss', fwdStatus: 200, ttl: 60, stale: null, stored: true, collapsed: false, key: null, detail: null }])
    assert.equal(miss.caches.outcome, 'miss')
    assert.equal(miss.caches.answeredBy, null)
    assert.ok(miss.caches.lines.some((l) => l === 'edge: a miss (nothing stored for this request): it asked the origin, which answered 200; it stored the response, fresh for 60 s more.'), miss.caches.lines.join('\n'))
    clock.advance(7000)
    const hit = await inspect({ url: `${cached.url}a.txt` })
    assert.equal(hit.caches.outcome, 'hit')
    assert.equal(hit.caches.answeredBy, 'edge')
    assert.equal(hit.caches.age, 7)
    assert.deepEqual(hit.caches.cacheStatus?.[0], { cache: 'edge', hit: true, fwd: null, fwdStatus: null, ttl: 53, stale: null, stored: null, collapsed: false, key: null, detail: null })
    assert.ok(hit.caches.lines.includes('Answered by the cache edge from its copy (a hit), 7 s old (Age: 7).'), hit.caches.lines.join('\n'))
    const text = await run([`${cached.url}a.txt`])
    assert.match(text.stdout, /\nCaches on the way\n {2}Answered by the cache edge from its copy \(a hit\), 7 s old/)
  })

  test('a CDN saying X-Cache and Via; a stale hit; a broken Cache-Status and Age are reported, not trusted', async () => {
    const hit = await inspect({ url: `${cdnUrl}/hit` })
    assert.deepEqual(hit.caches.xCache, ['HIT'])
    assert.deepEqual(hit.caches.via, ['1.1 varnish (Varnish/7.4)', '1.1 shield.example'])
    assert.equal(hit.caches.outcome, 'hit')
    assert.equal(hit.caches.age, 120)
    assert.ok(hit.caches.lines.includes('X-Cache: HIT: a cache answered from its copy (X-Cache is no standard: each CDN words it its own way), 120 s old (Age: 120).'), hit.caches.lines.join('\n'))
    assert.ok(hit.caches.lines.includes('Via: the response passed 2 intermediaries, nearest the origin first: 1.1 varnish (Varnish/7.4), 1.1 shield.example.'), hit.caches.lines.join('\n'))
    const miss = await inspect({ url: `${cdnUrl}/miss` })
    assert.equal(miss.caches.outcome, 'miss')
    assert.deepEqual(miss.caches.xCache, ['MISS', 'MISS'])
    const stale = await inspect({ url: `${cdnUrl}/stale` })
    assert.deepEqual(stale.caches.cacheStatus?.[0], { cache: 'Example Cache', hit: true, fwd: null, fwdStatus: null, ttl: 0, stale: 30, stored: null, collapsed: false, key: null, detail: 'stale-while-revalidate' })
    assert.ok(stale.caches.lines.includes('Example Cache: a hit, stale by 30 s (detail: stale-while-revalidate).'), stale.caches.lines.join('\n'))
    const broken = await inspect({ url: `${cdnUrl}/bad-status` })
    assert.equal(broken.caches.cacheStatus, null)
    assert.equal(broken.caches.age, null)
    assert.ok(broken.caches.lines.includes('Cache-Status: edge; hit; ttl=(1 is not a valid list (RFC 9211, RFC 9651): ignored, as a client must.'), broken.caches.lines.join('\n'))
    assert.ok(broken.caches.lines.includes('Age: ten is not a whole number of seconds: ignored.'), broken.caches.lines.join('\n'))
    const none = await inspect({ url: `${cdnUrl}/none` })
    assert.equal(none.caches.outcome, 'none')
    assert.deepEqual(none.caches.lines, ['No Cache-Status, Age, X-Cache or Via: nothing says a cache was on the way.'])
  })
})

describe('trusted authorities', () => {
  test('--ca FILE trusts that authority and the report names it; without it the chain is not trusted; a missing file is bad usage', async () => {
    const url = `${edgeTls.url.replace('127.0.0.1', 'localhost')}page.txt`
    const untrusted = await run([url, '--json'])
    assert.equal(untrusted.code, 1)
    assert.equal(JSON.parse(untrusted.stdout).error.phase, 'tls')
    const trusted = await run([url, '--ca', files.path('ca.pem'), '--json'])
    assert.equal(trusted.code, 0, trusted.stderr)
    const tlsInfo = JSON.parse(trusted.stdout).hops[0].tls
    assert.equal(tlsInfo.authorized, true)
    assert.equal(tlsInfo.verifiedBy, `--ca ${files.path('ca.pem')} (CN=Edgebox test CA)`)
    const text = await run([url, '--ca', files.path('ca.pem')])
    assert.match(text.stdout, new RegExp(`trusted: verified by --ca ${files.path('ca.pem').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(CN=Edgebox test CA\\)`))
    const missing = await run([url, '--ca', files.path('nope.pem')])
    assert.equal(missing.code, 2)
    assert.match(missing.stderr, /--ca .*nope\.pem: cannot be read/)
    const notPem = await run([url, '--ca', files.path('www/page.txt')])
    assert.equal(notPem.code, 2)
    assert.match(notPem.stderr, /--ca .*page\.txt: no PEM certificate in it/)
  })

  test("Edgebox's local authority is trusted when present, and named", async () => {
    const home = certDir({})
    try {
      mkdirSync(home.path('ca'))
      writeFileSync(home.path('ca/ca.crt'), caPem)
      const r = await run([`${edgeTls.url.replace('127.0.0.1', 'localhost')}page.txt`, '--json'], { EDGEBOX_HOME: home.dir })
      assert.equal(r.code, 0, r.stderr)
      const tlsInfo = JSON.parse(r.stdout).hops[0].tls
      assert.equal(tlsInfo.authorized, true)
      assert.equal(tlsInfo.verifiedBy, `Edgebox's local authority ${home.path('ca/ca.crt')} (CN=Edgebox test CA)`)
    } finally {
      home.cleanup()
    }
  })
})

describe('durations', () => {
  test('every duration in the JSON report is >= 0, over several runs', async () => {
    const DURATION = new Set(['dns', 'tcp', 'tls', 'send', 'ttfb', 'transfer', 'total', 'firstTotal', 'ms', 'p50', 'p90', 'p99', 'min', 'max'])
    const negatives: string[] = []
    const walk = (v: unknown, at: string): void => {
      if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${at}[${i}]`))
      else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, `${at}.${k}`)
      else if (typeof v === 'number' && DURATION.has(at.slice(at.lastIndexOf('.') + 1)) && !(v >= 0)) negatives.push(`${at} = ${v}`)
    }
    for (let i = 0; i < 5; i++) {
      const r = await run([`${edgeTls.url.replace('127.0.0.1', 'localhost')}page.txt`, '--ca', files.path('ca.pem'), '--dns-server', dnsAddr, '--repeat', '3', '--json'])
      assert.equal(r.code, 0, r.stderr)
      const report = JSON.parse(r.stdout)
      walk(report, 'report')
      assert.doesNotMatch(report.repeat.line, /-\d/, 'no negative price of a new connection')
    }
    assert.deepEqual(negatives, [])
  })
})
