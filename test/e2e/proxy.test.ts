import assert from 'node:assert/strict'
import http from 'node:http'
import net from 'node:net'
import { after, before, describe, test } from 'node:test'
import { closedPort, listening, PROTOCOLS, raw, request, startServer, statuses, type TestServer } from '../helpers/server.ts'

/** The proxy handler: forwarding, headers, streaming, timeouts and retries, against real upstream sockets. */

interface Seen {
  method: string
  url: string
  headers: http.IncomingHttpHeaders
  bodyLength: number
}

/** A small upstream that records what it received and answers by path. */
/** What the /endless and /sink paths of an upstream observed. */
interface Flow {
  written: number
  closed: boolean
  received: number
  completed: boolean | null
}

async function upstream(name: string): Promise<{ url: string; port: number; seen: Seen[]; flow: Flow; close(): Promise<void> }> {
  const seen: Seen[] = []
  const flow: Flow = { written: 0, closed: false, received: 0, completed: null }
  const server = http.createServer((req, res) => {
    if (req.url === '/endless') {
      // writes as fast as the proxy takes it, until the connection goes
      flow.written = 0
      flow.closed = false
      res.writeHead(200, { 'Content-Type': 'application/octet-stream' })
      const chunk = Buffer.alloc(64 * 1024, 7)
      const more = () => {
        while (!res.destroyed) {
          flow.written += chunk.length
          if (!res.write(chunk)) return void res.once('drain', more)
        }
      }
      res.once('close', () => (flow.closed = true))
      return more()
    }
    if (req.url === '/sink') {
      flow.received = 0
      flow.completed = null
      req.on('data', (c: Buffer) => (flow.received += c.length))
      req.once('end', () => {
        flow.completed = true
        res.end('whole')
      })
      req.once('close', () => (flow.completed ??= false))
      return
    }
    let bodyLength = 0
    req.on('data', (c: Buffer) => (bodyLength += c.length))
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, bodyLength })
      if (req.url === '/hop') {
        res.writeHead(200, { Connection: 'X-Hop', 'X-Hop': 'secret', 'Keep-Alive': 'timeout=9', 'X-Kept': 'yes', 'Content-Type': 'text/plain' })
        return res.end(name)
      }
      if (req.url === '/big') {
        res.writeHead(200, { 'Content-Type': 'application/octet-stream' }) // chunked
        let left = 40
        const more = () => {
          while (left > 0) {
            left--
            if (!res.write(Buffer.alloc(128 * 1024, left % 256))) return void res.once('drain', more)
          }
          res.end()
        }
        return more()
      }
      if (req.url === '/stall') return // never answers
      if (req.url === '/stall-body') {
        res.writeHead(200, { 'Content-Length': '100000' })
        return void res.write(Buffer.alloc(1000)) // and nothing more
      }
      if (req.url === '/reset') {
        res.writeHead(200, { 'Content-Length': '100000' })
        res.write(Buffer.alloc(1000))
        setTimeout(() => req.socket.destroy(), 20)
        return
      }
      res.writeHead(200, { 'Content-Type': 'application/json', 'Set-Cookie': ['a=1', 'b=2'] })
      res.end(JSON.stringify({ name, method: req.method, url: req.url, bodyLength }))
    })
  })
  return { ...(await listening(server)), seen, flow }
}

/** An upstream that speaks raw bytes (malformed responses). */
async function rawUpstream(reply: string): Promise<{ url: string; close(): Promise<void> }> {
  const server = net.createServer((s) => {
    s.once('data', () => s.end(reply))
    s.on('error', () => {})
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return { url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`, close: () => new Promise((r) => server.close(() => r())) }
}


let a: Awaited<ReturnType<typeof upstream>>
let b: Awaited<ReturnType<typeof upstream>>
let srv: TestServer

before(async () => {
  a = await upstream('a')
  b = await upstream('b')
  srv = await startServer({
    sites: [
      {
        routes: [
          { path: '/', proxy: { upstreams: [a.url] } },
          { path: '/api/', proxy: { upstreams: [a.url], stripPrefix: true, prefix: '/v1', host: 'upstream' } },
          { path: '/fixed/', proxy: { upstreams: [a.url], host: 'backend.internal' } },
          { path: '/rr/', proxy: { upstreams: [a.url, b.url] } },
          { path: '/slow/', proxy: { upstreams: [a.url], stripPrefix: true, timeouts: { response: '300ms', idle: '300ms' } } },
          { path: '/streaming/', proxy: { upstreams: [a.url], stripPrefix: true, requestBuffering: false } },
        ],
      },
    ],
  })
})
after(async () => {
  await srv.close()
  await a.close()
  await b.close()
})

function lastSeen(u: { seen: Seen[] }): Seen {
  return u.seen[u.seen.length - 1]!
}

for (const protocol of PROTOCOLS) {
  describe(`proxy over ${protocol}`, () => {
    test('forwards method, path and query; streams the answer back', async () => {
      const r = await request(protocol, srv.url + 'x/y?z=1')
      assert.equal(r.status, 200)
      assert.deepEqual(JSON.parse(r.text), { name: 'a', method: 'GET', url: '/x/y?z=1', bodyLength: 0 })
      assert.deepEqual(r.headers['set-cookie'], ['a=1', 'b=2'])
      assert.equal(r.headers.via, '1.1 edgebox')
    })

    test('hop-by-hop fields never cross, in either direction (RFC 9110 §7.6.1)', async () => {
      const r = await request(protocol, srv.url + 'hop', {
        headers: protocol === 'h2c' ? { 'x-secret': '1', 'proxy-authorization': 'Basic x' } : { connection: 'X-Secret', 'x-secret': '1', te: 'trailers', 'proxy-authorization': 'Basic x' },
      })
      assert.equal(r.headers['x-hop'], undefined)
      assert.equal(r.headers['x-kept'], 'yes')
      assert.notEqual(r.headers['keep-alive'], 'timeout=9')
      const h = lastSeen(a).headers
      if (protocol !== 'h2c') assert.equal(h['x-secret'], undefined)
      assert.equal(h.te, undefined)
      assert.equal(h['proxy-authorization'], undefined)
    })

    test('adds Via, Forwarded and X-Forwarded-*; drops forged ones from an untrusted client', async () => {
      await request(protocol, srv.url + 'who', { headers: { 'x-forwarded-for': '6.6.6.6', forwarded: 'for=6.6.6.6', via: '1.0 fake' } })
      const h = lastSeen(a).headers
      assert.equal(h['x-forwarded-for'], '127.0.0.1')
      assert.equal(h['x-forwarded-proto'], 'http')
      assert.match(String(h['x-forwarded-host']), /^127\.0\.0\.1:\d+$/)
      assert.match(String(h.forwarded), /^for=127\.0\.0\.1;proto=http;host="127\.0\.0\.1:\d+"$/)
      assert.equal(h.via, `1.0 fake, ${protocol === 'h2c' ? '2' : '1.1'} edgebox`)
      assert.match(String(h.host), /^127\.0\.0\.1:\d+$/, 'Host preserved by default')
    })

    test('prefix rewriting and Host handling', async () => {
      let r = await request(protocol, srv.url + 'api/users?id=3')
      assert.equal(JSON.parse(r.text).url, '/v1/users?id=3')
      assert.equal(lastSeen(a).headers.host, `127.0.0.1:${a.port}`)
      r = await request(protocol, srv.url + 'fixed/p')
      assert.equal(JSON.parse(r.text).url, '/fixed/p')
      assert.equal(lastSeen(a).headers.host, 'backend.internal')
    })

    test('a large upload and a large chunked download stream through whole', async () => {
      const body = Buffer.alloc(3 * 1024 * 1024, 7)
      const up = await request(protocol, srv.url + 'upload', { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } })
      assert.equal(JSON.parse(up.text).bodyLength, body.length)
      const down = await request(protocol, srv.url + 'big')
      assert.equal(down.status, 200)
      assert.equal(down.body.length, 40 * 128 * 1024)
      assert.equal(down.body[0], 39)
    })

    test('requests are balanced across upstreams (round robin)', async () => {
      const names = []
      for (let i = 0; i < 4; i++) names.push(JSON.parse((await request(protocol, srv.url + 'rr/n')).text).name)
      assert.deepEqual(names.sort(), ['a', 'a', 'b', 'b'])
    })
  })
}

describe('upstream faults', () => {
  test('an upstream that refuses the connection: 502 saying so', async () => {
    const dead = `http://127.0.0.1:${await closedPort()}`
    const s = await startServer({ sites: [{ routes: [{ path: '/', proxy: { upstreams: [dead], retries: { attempts: 0 } } }] }] })
    try {
      const r = await request('http/1.1', s.url + 'x')
      assert.equal(r.status, 502)
      assert.equal(r.text, `502 Bad Gateway: upstream ${dead} refused the connection\n`)
    } finally {
      await s.close()
    }
  })

  test('an upstream that does not answer in time: 504 saying so; the server goes on', async () => {
    const r = await request('http/1.1', srv.url + 'slow/stall')
    assert.equal(r.status, 504)
    assert.match(r.text, /did not answer within 300 ms/)
    assert.equal((await request('http/1.1', srv.url + 'ok')).status, 200)
  })

  test('a malformed upstream response and conflicting framing: 502, never passed on', async () => {
    for (const reply of ['HTTP/1.1 abc\r\n\r\n', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 'garbage\r\n\r\n']) {
      const u = await rawUpstream(reply)
      const s = await startServer({ sites: [{ routes: [{ path: '/', proxy: { upstreams: [u.url], retries: { attempts: 0 } } }] }] })
      try {
        const r = await request('http/1.1', s.url + 'x')
        assert.equal(r.status, 502, JSON.stringify(reply))
        assert.match(r.text, /malformed response|closed the connection|failed/)
      } finally {
        await s.close()
        await u.close()
      }
    }
  })

  test('an upstream that resets mid-body: the client connection is cut, not completed', async () => {
    const r = await raw(srv.port, 'GET /reset HTTP/1.1\r\nHost: x\r\n\r\n', 3000)
    assert.match(r, /^HTTP\/1\.1 200 /)
    assert.match(r, /Content-Length: 100000/i)
    assert.ok(r.length < 100000, 'fewer bytes than announced: the client can tell')
    assert.equal((await request('http/1.1', srv.url + 'ok')).status, 200)
  })

  test('an upstream that stalls mid-body: cut after the idle timeout, the client can tell', async () => {
    const t0 = Date.now()
    const r = await raw(srv.port, 'GET /slow/stall-body HTTP/1.1\r\nHost: x\r\n\r\n', 3000)
    assert.match(r, /^HTTP\/1\.1 200 /)
    assert.match(r, /Content-Length: 100000/i)
    assert.ok(r.length < 100000, 'fewer bytes than announced')
    assert.ok(Date.now() - t0 < 2500, 'cut by the 300 ms idle timeout, not by the test')
    assert.equal((await request('http/1.1', srv.url + 'ok')).status, 200)
  })

  test('a client that stops reading holds the upstream back (backpressure); leaving closes the upstream response', async () => {
    const c = net.connect(srv.port, '127.0.0.1')
    c.pause() // reads nothing
    c.write('GET /endless HTTP/1.1\r\nHost: x\r\n\r\n')
    await new Promise((r) => setTimeout(r, 600))
    const held = a.flow.written
    await new Promise((r) => setTimeout(r, 300))
    // socket buffers on three hops can hold some megabytes; without backpressure loopback moves gigabytes
    assert.ok(a.flow.written < 48 * 1024 * 1024, `upstream wrote ${a.flow.written} bytes into a client that reads nothing`)
    assert.ok(a.flow.written - held < 2 * 1024 * 1024, 'the upstream is paused, not trickling')
    c.destroy()
    const t0 = Date.now()
    while (!a.flow.closed && Date.now() - t0 < 2000) await new Promise((r) => setTimeout(r, 20))
    assert.ok(a.flow.closed, 'the upstream response is closed once the client left')
    assert.equal((await request('http/1.1', srv.url + 'ok')).status, 200)
  })

  test('a client that leaves mid-upload (requestBuffering: false): the upstream request is aborted, never completed', async () => {
    const c = net.connect(srv.port, '127.0.0.1')
    c.on('error', () => {})
    c.write('POST /streaming/sink HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n')
    c.write(Buffer.alloc(300_000, 1))
    const t0 = Date.now()
    while (a.flow.received < 300_000 && Date.now() - t0 < 2000) await new Promise((r) => setTimeout(r, 10))
    c.destroy()
    while (a.flow.completed === null && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 10))
    assert.equal(a.flow.completed, false)
    assert.ok(a.flow.received < 10_000_000)
    assert.equal((await request('http/1.1', srv.url + 'ok')).status, 200)
  })

  test('idempotent requests move to another upstream when one refuses; requests with a body do not', async () => {
    const dead = `http://127.0.0.1:${await closedPort()}`
    // passive ejection off here: the point is what each attempt does
    const s = await startServer({ sites: [{ routes: [{ path: '/', proxy: { upstreams: [dead, b.url], health: { passive: { consecutiveFailures: 100 } } } }] }] })
    try {
      for (let i = 0; i < 6; i++) assert.equal((await request('http/1.1', s.url + 'r')).status, 200)
      const codes = []
      for (let i = 0; i < 4; i++) codes.push((await request('http/1.1', s.url + 'r', { method: 'POST', body: 'x' })).status)
      assert.deepEqual(codes.sort(), [200, 200, 502, 502])
    } finally {
      await s.close()
    }
  })

  test('a request with conflicting framing is refused with 400 and never forwarded', async () => {
    const before = a.seen.length
    const r = await raw(srv.port, 'POST /smuggle HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n', 1500)
    assert.deepEqual(statuses(r), [400])
    await new Promise((res) => setTimeout(res, 100))
    assert.equal(a.seen.length, before)
  })
})

test('a client that leaves before the upstream answers is logged as 499, not as an upstream failure', async () => {
  const { tempDir } = await import('../helpers/server.ts')
  const { readFileSync } = await import('node:fs')
  const t = tempDir()
  const file = `${t.dir}/access.log`
  const s = await startServer({ log: { access: true, format: 'json', file }, sites: [{ routes: [{ path: '/', proxy: { upstreams: [a.url] } }] }] })
  try {
    const before = a.seen.filter((x) => x.url === '/stall').length
    const c = net.connect(s.port, '127.0.0.1', () => c.write('GET /stall HTTP/1.1\r\nHost: x\r\n\r\n'))
    // leave only once the request is upstream (bounded wait), so the leaving happens mid-exchange
    const t0 = Date.now()
    while (a.seen.filter((x) => x.url === '/stall').length === before && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 10))
    c.destroy()
    await new Promise((r) => setTimeout(r, 100))
  } finally {
    await s.close()
  }
  const line = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.path === '/stall')!
  assert.equal(line.status, 499)
  assert.equal(line.error, undefined)
  t.cleanup()
})
