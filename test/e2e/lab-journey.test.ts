import assert from 'node:assert/strict'
import { statSync } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import { networkInterfaces } from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { defaultConfig, freeDnsLabPorts, freePortPair } from '../../src/cli/main.ts'
import { startServer, tempDir, type TestServer } from '../helpers/server.ts'

/**
 * The journey lab's endpoints (`lab: { demo: 'journey' }`, mounted by
 * npm start's configuration at /lab/demo/journey/) on real sockets: each
 * comparison answers JSON with its exact fields and counts (requests made on
 * each side, connections as the client and the server saw them), the DNS
 * comparison gets a truncated answer over UDP and the whole one over TCP,
 * the cache tiers name themselves in Cache-Status, and every bad parameter
 * is a 400 naming it. Timings are reported, never asserted.
 */

const API = '/lab/demo/journey/'
const ROOT = path.resolve(import.meta.dirname, '..', '..')

interface Reply {
  status: number
  headers: http.IncomingHttpHeaders
  text: string
  json: any
}

/** One GET on a new connection (HTTP/1.1; over TLS without checking the local authority's certificate). */
function get(server: TestServer, target: string): Promise<Reply> {
  const url = new URL(target, server.url)
  return new Promise((resolve, reject) => {
    const req = (url.protocol === 'https:' ? https : http).get(url, { agent: false, rejectUnauthorized: false, timeout: 60_000 }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let json: unknown = null
        try {
          json = JSON.parse(text)
        } catch {
          // not JSON: the test says what it expected
        }
        resolve({ status: res.statusCode!, headers: res.headers, text, json })
      })
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`GET ${target} timed out`)))
    req.on('error', reject)
  })
}

/** A 400 with a JSON error naming the problem. */
async function refused(server: TestServer, target: string, status: number, message: RegExp): Promise<void> {
  const r = await get(server, target)
  assert.equal(r.status, status, `${target}: ${r.text}`)
  assert.equal(r.headers['content-type'], 'application/json')
  assert.equal(r.headers['cache-control'], 'no-store')
  assert.match(r.json.error, message, target)
}

const isMs = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0

describe("the journey endpoints in npm start's configuration (cleartext)", { timeout: 180_000 }, () => {
  let server: TestServer
  let dir: ReturnType<typeof tempDir>

  before(async () => {
    dir = tempDir()
    const lab = await freeDnsLabPorts()
    assert.ok(lab, 'free ports for the DNS lab on 127.0.0.1-4')
    server = await startServer({ ...defaultConfig({ port: (await freePortPair('127.0.0.1'))!, ...lab }), dataDir: path.join(dir.dir, 'data') })
  })
  after(async () => {
    await server?.close()
    dir?.cleanup()
  })

  test('ping: a tiny answer, after a bounded delay', async () => {
    const r = await get(server, `${API}ping?delay=5&run=abc`)
    assert.equal(r.status, 200)
    assert.equal(r.text, 'pong\n')
    assert.equal(r.headers['cache-control'], 'no-store')
    await refused(server, `${API}ping?delay=501`, 400, /^\?delay= is a whole number from 0 to 500, not "501"$/)
    await refused(server, `${API}ping?delay=-1`, 400, /^\?delay= is a whole number from 0 to 500/)
    await refused(server, `${API}ping?run=a%20b`, 400, /^\?run= is an id/)
    await refused(server, `${API}ping?x=1`, 400, /^unknown parameter "x" \(this endpoint takes delay, run\)$/)
  })

  test('connections: N requests over one kept-alive connection against N new connections; no TLS on a cleartext listener', async () => {
    const r = await get(server, `${API}connections?n=7`)
    assert.equal(r.status, 200, r.text)
    assert.equal(r.headers['cache-control'], 'no-store')
    const j = r.json
    assert.deepEqual(Object.keys(j), ['target', 'protocol', 'tls', 'n', 'reused', 'fresh', 'resumed', 'note'])
    assert.equal(j.target, `${server.url}lab/demo/journey/ping`)
    assert.equal(j.protocol, 'http/1.1')
    assert.equal(j.tls, false)
    assert.equal(j.n, 7)
    assert.equal(j.resumed, null)
    assert.match(j.note, /cleartext.*npm start -- --https/)
    const fields = ['requests', 'statuses', 'connections', 'serverConnections', 'newConnections', 'resumed', 'totalMs', 'medianMs', 'connectMedianMs', 'tlsMedianMs', 'waitMedianMs']
    for (const side of [j.reused, j.fresh]) {
      assert.deepEqual(Object.keys(side), fields)
      assert.equal(side.requests, 7)
      assert.deepEqual(side.statuses, [200])
      assert.equal(side.resumed, 0)
      assert.equal(side.tlsMedianMs, null)
      for (const k of ['totalMs', 'medianMs', 'connectMedianMs', 'waitMedianMs']) assert.ok(isMs(side[k]), `${k}: ${side[k]}`)
    }
    // one connection for all seven, as the client and as the server saw it; seven new ones the other way
    assert.deepEqual([j.reused.connections, j.reused.serverConnections, j.reused.newConnections], [1, 1, 1])
    assert.deepEqual([j.fresh.connections, j.fresh.serverConnections, j.fresh.newConnections], [7, 7, 7])
    await refused(server, `${API}connections?n=0`, 400, /^\?n= is a whole number from 1 to 50, not "0"$/)
    await refused(server, `${API}connections?n=51`, 400, /^\?n= is a whole number from 1 to 50/)
    await refused(server, `${API}connections?n=2.5`, 400, /^\?n= is a whole number/)
    await refused(server, `${API}connections?n=2&n=3`, 400, /^\?n= given twice$/)
  })

  test('hol: the same 50 requests over HTTP/1.1 with 6 connections and over one HTTP/2 connection (h2c)', async () => {
    const r = await get(server, `${API}hol`)
    assert.equal(r.status, 200, r.text)
    const j = r.json
    assert.deepEqual(Object.keys(j), ['target', 'n', 'slow', 'delayMs', 'http1', 'http2'])
    assert.deepEqual([j.n, j.slow, j.delayMs], [50, 6, 100])
    const fields = ['protocol', 'requests', 'statuses', 'connections', 'serverConnections', 'totalMs', 'fastMedianMs', 'fastMaxMs', 'slowMedianMs', 'doneAt']
    assert.deepEqual(Object.keys(j.http1), fields)
    assert.deepEqual(Object.keys(j.http2), fields)
    assert.deepEqual([j.http1.protocol, j.http1.requests, j.http1.connections, j.http1.serverConnections], ['http/1.1', 50, 6, 6])
    assert.deepEqual([j.http2.protocol, j.http2.requests, j.http2.connections, j.http2.serverConnections], ['h2c', 50, 1, 1])
    for (const side of [j.http1, j.http2]) {
      assert.deepEqual(side.statuses, [200])
      assert.equal(side.doneAt.length, 50)
      assert.ok(side.doneAt.every(isMs))
      for (const k of ['totalMs', 'fastMedianMs', 'fastMaxMs', 'slowMedianMs']) assert.ok(isMs(side[k]), `${k}: ${side[k]}`)
      // a slow answer waited its 100 ms at least, whatever the protocol
      assert.ok(side.slowMedianMs >= 100, String(side.slowMedianMs))
    }
    // fewer requests than connections: each gets one of its own
    const small = (await get(server, `${API}hol?n=3&slow=0&delay=0`)).json
    assert.deepEqual([small.http1.requests, small.http1.connections, small.http1.serverConnections, small.http1.slowMedianMs], [3, 3, 3, null])
    assert.deepEqual([small.http2.requests, small.http2.connections, small.http2.serverConnections], [3, 1, 1])
    await refused(server, `${API}hol?n=101`, 400, /^\?n= is a whole number from 1 to 100, not "101"$/)
    await refused(server, `${API}hol?n=10&slow=11`, 400, /^\?slow= is a whole number from 0 to 10, not "11"$/)
    await refused(server, `${API}hol?slow=13`, 400, /^\?slow= is a whole number from 0 to 12/)
    await refused(server, `${API}hol?delay=600`, 400, /^\?delay= is a whole number from 0 to 500/)
    await refused(server, `${API}hol?delay=abc`, 400, /^\?delay= is a whole number/)
    await refused(server, `${API}hol?connections=2`, 400, /^unknown parameter "connections" \(this endpoint takes n, slow, delay\)$/)
  })

  test('dns: big.edgebox.test TXT is truncated over UDP (TC, no records) and whole over TCP; Edgebox\'s client retries over TCP', async () => {
    const r = await get(server, `${API}dns`)
    assert.equal(r.status, 200, r.text)
    const j = r.json
    assert.deepEqual(Object.keys(j), ['server', 'question', 'udp', 'tcp', 'retry'])
    assert.match(j.server, /^127\.0\.0\.4:\d+$/)
    assert.equal(j.question, 'big.edgebox.test. TXT')
    const fields = ['transport', 'ms', 'bytes', 'tc', 'aa', 'rcode', 'answers', 'records']
    assert.deepEqual(Object.keys(j.udp), fields)
    assert.deepEqual(Object.keys(j.tcp), fields)
    assert.deepEqual([j.udp.transport, j.udp.tc, j.udp.aa, j.udp.rcode, j.udp.answers, j.udp.records], ['udp', true, true, 'NOERROR', 0, []])
    assert.ok(j.udp.bytes <= 512, String(j.udp.bytes))
    assert.deepEqual([j.tcp.transport, j.tcp.tc, j.tcp.aa, j.tcp.rcode, j.tcp.answers], ['tcp', false, true, 'NOERROR', 3])
    assert.ok(j.tcp.bytes > 512, String(j.tcp.bytes))
    assert.equal(j.tcp.records.length, 3)
    for (const rec of j.tcp.records) assert.match(rec, /^big\.edgebox\.test\.\t300\tIN\tTXT\t"part [123] of a TXT record/)
    assert.deepEqual(j.retry, { transport: 'tcp', ms: j.retry.ms, tc: false, answers: 3 })
    assert.ok(isMs(j.udp.ms) && isMs(j.tcp.ms) && isMs(j.retry.ms))
    // a small answer fits over UDP: no TC
    const small = (await get(server, `${API}dns?name=edgebox.test&type=TXT`)).json
    assert.deepEqual([small.udp.tc, small.udp.answers, small.tcp.answers], [false, 1, 1])
    await refused(server, `${API}dns?name=a..b`, 400, /^\?name= is not a domain name/)
    await refused(server, `${API}dns?type=NOPE`, 400, /^\?type= is a record type/)
    await refused(server, `${API}dns?server=1.1.1.1`, 400, /^unknown parameter "server"/)
  })

  test('exchange: the page over HTTP/1.1 and over h2c, each on a new connection, by Edgebox\'s own client', async () => {
    const r = await get(server, `${API}exchange?path=/lab/journey.html`)
    assert.equal(r.status, 200, r.text)
    const j = r.json
    assert.deepEqual(Object.keys(j), ['url', 'http1', 'http2', 'note'])
    assert.equal(j.url, `${server.url}lab/journey.html`)
    const size = statSync(path.join(ROOT, 'lab', 'www', 'lab', 'journey.html')).size
    const fields = ['protocol', 'status', 'bytes', 'newConnection', 'connectMs', 'tlsMs', 'resumed', 'waitMs', 'totalMs']
    assert.deepEqual(Object.keys(j.http1), fields)
    assert.deepEqual(Object.keys(j.http2), fields)
    assert.deepEqual([j.http1.protocol, j.http1.status, j.http1.newConnection, j.http1.tlsMs, j.http1.resumed], ['http/1.1', 200, true, null, null])
    assert.deepEqual([j.http2.protocol, j.http2.status, j.http2.newConnection, j.http2.tlsMs, j.http2.resumed], ['h2c', 200, true, null, null])
    // the HTML with the monitoring SDK's script tag added: a little more than the file
    assert.ok(j.http1.bytes >= size && j.http1.bytes === j.http2.bytes, `${j.http1.bytes} ${j.http2.bytes} ${size}`)
    assert.match(j.note, /h2c.*browsers never speak/)
    await refused(server, `${API}exchange?path=http://example.com/`, 400, /^\?path= is a path on this site/)
    await refused(server, `${API}exchange?path=//example.com/`, 400, /^\?path= is a path on this site/)
    await refused(server, `${API}exchange?path=/a%20b`, 400, /^\?path= is a path on this site/)
    await refused(server, `${API}exchange?path=/lab/demo/journey/hol`, 400, /^\?path= may not be one of the journey's own endpoints/)
  })

  test('inspect: edgebox inspect --json of the page on this listener, run as a child process', async () => {
    const r = await get(server, `${API}inspect?path=/lab/journey.html`)
    assert.equal(r.status, 200, r.text)
    const j = r.json
    assert.deepEqual(Object.keys(j).filter((k) => k !== 'stderr'), ['url', 'command', 'exitCode', 'report'])
    assert.equal(j.url, `${server.url}lab/journey.html`)
    assert.equal(j.command, `edgebox inspect --json --timeout 5 ${server.url}lab/journey.html`)
    assert.equal(j.exitCode, 0)
    assert.equal(j.report.url, j.url)
    assert.equal(j.report.hops[0].status, 200)
    await refused(server, `${API}inspect?path=/lab/demo/journey/inspect`, 400, /^\?path= may not be one of the journey's own endpoints/)
    await refused(server, `${API}inspect?url=http://example.com/`, 400, /^unknown parameter "url" \(this endpoint takes path\)$/)
  })

  test('cache tiers: the edge and the parent each add their Cache-Status entry; another edge misses where the parent hits', async () => {
    const name = `obj-${Date.now()}`
    const cold = await get(server, `${API}cache/edge/${name}`)
    assert.equal(cold.status, 200)
    assert.equal(cold.headers['cache-status'], 'parent; fwd=miss; fwd-status=200; stored; ttl=60, edge; fwd=miss; fwd-status=200; stored; ttl=60')
    assert.equal(cold.json.object, name)
    const again = await get(server, `${API}cache/edge/${name}`)
    assert.match(String(again.headers['cache-status']), /^parent; fwd=miss; fwd-status=200; stored; ttl=\d+, edge; hit; ttl=\d+$/)
    const other = await get(server, `${API}cache/edge/${name}?edge=b`)
    assert.match(String(other.headers['cache-status']), /^parent; hit; ttl=\d+, edge; fwd=miss; fwd-status=200; stored; ttl=\d+$/)
    // the origin was asked once for all three
    assert.equal(other.json.originRequests, cold.json.originRequests)
    await refused(server, `${API}cache/edge/Bad_Name`, 404, /^no demo object "Bad_Name"/)
  })

  test('unknown endpoints are 404 with the list; other methods 405; one measurement at a time (503 with Retry-After)', async () => {
    await refused(server, `${API}nope`, 404, /^no journey endpoint \/lab\/demo\/journey\/nope \(\/lab\/demo\/journey\/ping, /)
    const post = await new Promise<number>((resolve, reject) => {
      const req = http.request(new URL(`${API}hol`, server.url), { method: 'POST', agent: false }, (res) => {
        res.resume()
        resolve(res.statusCode!)
      })
      req.on('error', reject)
      req.end()
    })
    assert.equal(post, 405)
    // a slow comparison (12 answers of 500 ms: at least 1.5 s in all), and others asked meanwhile
    const slow = get(server, `${API}hol?n=12&slow=12&delay=500`)
    let done = false
    void slow.then(() => (done = true))
    let busy: Reply | undefined
    while (!done && !busy) {
      const r = await get(server, `${API}dns`)
      if (r.status === 503) busy = r
      else await new Promise((res) => setTimeout(res, 50))
    }
    assert.ok(busy, 'a second measurement was refused while the first ran')
    assert.equal(busy.headers['retry-after'], '1')
    assert.match(busy.json.error, /^another measurement \(hol\) is running; try again in a moment$/)
    assert.equal((await slow).status, 200)
    assert.equal((await get(server, `${API}dns`)).status, 200, 'free again once it ended')
  })
})

describe("the journey endpoints over TLS (npm start -- --https's configuration)", { timeout: 180_000 }, () => {
  let server: TestServer
  let home: ReturnType<typeof tempDir>
  let savedHome: string | undefined

  before(async () => {
    // the local authority goes to a temporary home, not the user's
    home = tempDir('edgebox-home-')
    savedHome = process.env.EDGEBOX_HOME
    process.env.EDGEBOX_HOME = home.dir
    server = await startServer(defaultConfig({ port: (await freePortPair('127.0.0.1'))!, https: true }))
  })
  after(async () => {
    await server?.close()
    if (savedHome === undefined) delete process.env.EDGEBOX_HOME
    else process.env.EDGEBOX_HOME = savedHome
    home?.cleanup()
  })

  test('connections: full TLS handshakes on new connections, resumed ones after the first, none on the kept-alive one', async () => {
    const r = await get(server, `${API}connections?n=5`)
    assert.equal(r.status, 200, r.text)
    const j = r.json
    assert.equal(j.tls, true)
    assert.match(j.target, /^https:\/\/127\.0\.0\.1:\d+\/lab\/demo\/journey\/ping$/)
    assert.deepEqual([j.reused.requests, j.reused.connections, j.reused.serverConnections, j.reused.newConnections, j.reused.resumed], [5, 1, 1, 1, 0])
    assert.deepEqual([j.fresh.requests, j.fresh.connections, j.fresh.serverConnections, j.fresh.resumed], [5, 5, 5, 0])
    assert.ok(isMs(j.fresh.tlsMedianMs))
    // the first of these makes a full handshake and gets a ticket; the other four resume with it (RFC 8446 §2.2)
    assert.deepEqual([j.resumed.requests, j.resumed.connections, j.resumed.serverConnections, j.resumed.resumed], [5, 5, 5, 4])
    assert.match(j.note, /resumed/)
  })

  test('hol over TLS: http/1.1 with 6 connections against one h2 connection; the DNS comparison is off without a DNS lab', async () => {
    const j = (await get(server, `${API}hol?n=20&slow=6&delay=50`)).json
    assert.deepEqual([j.http1.protocol, j.http1.requests, j.http1.connections, j.http1.serverConnections], ['http/1.1', 20, 6, 6])
    assert.deepEqual([j.http2.protocol, j.http2.requests, j.http2.connections, j.http2.serverConnections], ['h2', 20, 1, 1])
    await refused(server, `${API}dns`, 503, /^the DNS lab is off here/)
  })

  test('the cache tiers over TLS: the edge reaches the parent through this listener, trusting the local authority', async () => {
    const name = `tls-${Date.now()}`
    const cold = await get(server, `${API}cache/edge/${name}`)
    assert.equal(cold.status, 200, cold.text)
    assert.equal(cold.headers['cache-status'], 'parent; fwd=miss; fwd-status=200; stored; ttl=60, edge; fwd=miss; fwd-status=200; stored; ttl=60')
    const again = await get(server, `${API}cache/edge/${name}`)
    assert.match(String(again.headers['cache-status']), /, edge; hit; ttl=\d+$/)
  })
})

/** An IPv4 address of this machine that is not loopback, if it has one. */
const outside = Object.values(networkInterfaces())
  .flat()
  .find((i) => i && !i.internal && i.family === 'IPv4')?.address

test('a request that arrives on an address that is not loopback is refused (403): the measurements never leave this machine', { skip: outside ? false : 'this machine has no IPv4 address besides loopback' }, async () => {
  const server = await startServer({ listen: [{ host: outside!, port: 0 }], sites: [{ routes: [{ path: API, lab: { demo: 'journey' } }] }] })
  try {
    for (const endpoint of ['connections', 'hol', 'exchange', 'inspect', 'cache/edge/x']) {
      await refused(server, `${API}${endpoint}`, 403, /^the journey's measurements run only against a loopback listener; open the page at http:\/\/127\.0\.0\.1:<port>\/lab\/journey\.html on this machine \(this request arrived on \d+\.\d+\.\d+\.\d+\)$/)
    }
    // the ping itself connects nowhere
    assert.equal((await get(server, `${API}ping`)).status, 200)
  } finally {
    await server.close()
  }
})
