import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { PROTOCOLS, closedWithin, fdsSettle, openFds, raw, request, startServer, statuses, tempDir, type TestServer } from '../helpers/server.ts'

/** Server core: connection handling, limits, timeouts, methods, and malformed input (issue items 2-4). */

const site = tempDir()
const BIG = Buffer.alloc(8 * 1024 * 1024, 'x')
writeFileSync(path.join(site.dir, 'index.html'), '<!doctype html><title>home</title>')
writeFileSync(path.join(site.dir, 'a.txt'), 'AAAA')
writeFileSync(path.join(site.dir, 'b.txt'), 'BBBB')
writeFileSync(path.join(site.dir, 'big.bin'), BIG)

let srv: TestServer
before(async () => {
  srv = await startServer({
    limits: { headersTimeout: '1s', maxHeaderSize: 4096 },
    sites: [{ routes: [{ path: '/', static: { root: site.dir } }] }],
  })
})
after(async () => {
  await srv.close()
  site.cleanup()
})

/** The server still answers a normal request on a new connection. */
async function stillServes(): Promise<void> {
  const r = await raw(srv.port, 'GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  assert.match(r, /^HTTP\/1\.1 200 OK\r\n/)
  assert.ok(r.endsWith('AAAA'))
}

describe('connections', () => {
  test('keep-alive by default; two requests on one connection', async () => {
    const r = await raw(srv.port, 'GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n', 300)
    assert.match(r, /Connection: keep-alive/i)
  })

  test('Connection: close is honoured: the server closes after the response', async () => {
    const start = Date.now()
    const r = await raw(srv.port, 'GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 5000)
    assert.match(r, /Connection: close/i)
    assert.ok(Date.now() - start < 4000, 'closed by the server, not by the test timeout')
  })

  test('pipelined requests are answered in order', async () => {
    const r = await raw(srv.port, 'GET /b.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /b.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 3000)
    assert.deepEqual(statuses(r), [200, 200, 200])
    const bodies = [...r.matchAll(/\r\n\r\n(AAAA|BBBB)/g)].map((m) => m[1])
    assert.deepEqual(bodies, ['BBBB', 'AAAA', 'BBBB'])
  })

  test('h2c with prior knowledge on the same port', async () => {
    const r = await request('h2c', srv.url + 'a.txt')
    assert.equal(r.status, 200)
    assert.equal(r.text, 'AAAA')
    assert.match(String(r.headers['server-timing']), /^edge;dur=\d+(\.\d{1,2})?$/)
  })

  test('a client that sends no complete head within headersTimeout gets 408 and is closed', async () => {
    const start = Date.now()
    const r = await raw(srv.port, 'GET / HTTP/1.1\r\nHost: x\r\nX-Slow: 1', 5000)
    assert.match(r, /^HTTP\/1\.1 408 /)
    assert.ok(Date.now() - start < 4500, 'cut by the server')
    await stillServes()
  })

  test('a connection that sends nothing at all is closed after headersTimeout', async () => {
    const closed = await closedWithin(net.connect(srv.port, '127.0.0.1'), 5000)
    assert.equal(closed, true)
    await stillServes()
  })

  test('a client that closes its side before sending a byte is let go at once, not after headersTimeout', async () => {
    const c = net.connect(srv.port, '127.0.0.1')
    await new Promise((r) => c.once('connect', r))
    const t0 = Date.now()
    c.end() // FIN without a request
    assert.equal(await closedWithin(c, 5000), true)
    assert.ok(Date.now() - t0 < 1000, `closed after ${Date.now() - t0} ms`)
    await stillServes()
  })

  test('a client that disconnects mid-download leaks no file descriptor', async () => {
    const baseline = openFds()
    for (let i = 0; i < 5; i++) {
      await new Promise<void>((resolve) => {
        const s = net.connect(srv.port, '127.0.0.1', () => s.write('GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n'))
        s.once('data', () => {
          s.destroy()
          resolve()
        })
      })
    }
    const now = await fdsSettle(baseline)
    assert.ok(now <= baseline, `file descriptors: ${baseline} before, ${now} after`)
    await stillServes()
  })
})

describe('malformed and refused requests', () => {
  const cases: Array<[string, string, number]> = [
    ['HTTP/2.0 in an HTTP/1 request line', 'GET / HTTP/2.0\r\nHost: x\r\n\r\n', 505],
    ['HTTP/3.0 request line', 'GET / HTTP/3.0\r\nHost: x\r\n\r\n', 505],
    ['two Host headers', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 400],
    ['no Host on HTTP/1.1', 'GET / HTTP/1.1\r\n\r\n', 400],
    ['a method the parser knows but the server does not implement', 'PROPFIND / HTTP/1.1\r\nHost: x\r\n\r\n', 501],
    ['a method token the parser does not know', 'FROB / HTTP/1.1\r\nHost: x\r\n\r\n', 501],
    ['garbage request line', '\x01\x02 / HTTP/1.1\r\nHost: x\r\n\r\n', 400],
    ['TRACE (cross-site tracing)', 'TRACE / HTTP/1.1\r\nHost: x\r\n\r\n', 405],
    ['header block over maxHeaderSize', `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'y'.repeat(8000)}\r\n\r\n`, 431],
    ['Content-Length twice with different values', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab', 400],
    ['Content-Length and Transfer-Encoding together', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
    ['a target that is not a path', 'GET a.txt HTTP/1.1\r\nHost: x\r\n\r\n', 400],
    ['an unknown Expect value', 'GET / HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\n\r\n', 417],
    ['POST on a static route', 'POST /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n', 405],
  ]
  for (const [name, bytes, status] of cases) {
    test(`${name} -> ${status}`, async () => {
      const r = await raw(srv.port, bytes, 1500)
      assert.equal(statuses(r)[0], status, r.slice(0, 200))
      await stillServes()
    })
  }

  test('HTTP/1.0 without Host is fine', async () => {
    const r = await raw(srv.port, 'GET /a.txt HTTP/1.0\r\n\r\n', 1500)
    assert.match(r, /^HTTP\/1\.1 200 /)
  })

  test('405 names the allowed methods', async () => {
    const r = await raw(srv.port, 'DELETE /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    assert.match(r, /\r\nAllow: GET, HEAD, OPTIONS\r\n/)
  })

  test('no stack trace or internal path on the wire', async () => {
    const r = await raw(srv.port, 'GET /%E0%A4%A HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    assert.equal(statuses(r)[0], 400)
    assert.doesNotMatch(r, /at |\.ts:|node:internal/)
  })
})

for (const protocol of PROTOCOLS) {
  describe(`methods over ${protocol}`, () => {
    test('OPTIONS * answers for the server as a whole', async () => {
      if (protocol === 'h2c') return // `*` is not a valid :path for GET/OPTIONS via the http2 client API
      const r = await raw(srv.port, 'OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
      assert.equal(statuses(r)[0], 204)
      assert.match(r, /\r\nAllow: GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS\r\n/)
    })

    test('OPTIONS on a path lists the route methods', async () => {
      const r = await request(protocol, srv.url + 'a.txt', { method: 'OPTIONS' })
      assert.equal(r.status, 204)
      assert.equal(r.headers.allow, 'GET, HEAD, OPTIONS')
    })

    test('HEAD: the headers of GET, no body', async () => {
      const get = await request(protocol, srv.url + 'a.txt')
      const head = await request(protocol, srv.url + 'a.txt', { method: 'HEAD' })
      assert.equal(head.status, 200)
      assert.equal(head.body.length, 0)
      for (const h of ['content-type', 'content-length', 'etag', 'last-modified', 'cache-control', 'accept-ranges']) assert.equal(head.headers[h], get.headers[h], h)
    })

    test('the health endpoint', async () => {
      const r = await request(protocol, srv.url + '_edgebox/health')
      assert.equal(r.status, 200)
      assert.equal((JSON.parse(r.text) as { status: string }).status, 'ok')
    })

    test('404 for a missing file, with a plain-text reason', async () => {
      const r = await request(protocol, srv.url + 'nope.txt')
      assert.equal(r.status, 404)
      assert.equal(r.headers['content-type'], 'text/plain; charset=utf-8')
      assert.equal(r.text, '404 Not Found: Not Found\n')
    })
  })
}

describe('limits', () => {
  test('open connections are bounded by maxConnections', async () => {
    const small = await startServer({ limits: { maxConnections: 2 }, sites: [{ routes: [{ path: '/', static: { root: site.dir } }] }] })
    const held: net.Socket[] = []
    try {
      for (let i = 0; i < 2; i++) {
        const s = net.connect(small.port, '127.0.0.1')
        await new Promise((r) => s.once('connect', r))
        s.write('GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n')
        await new Promise((r) => s.once('data', r))
        held.push(s)
      }
      const third = await raw(small.port, 'GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n', 1000)
      assert.equal(third, '', 'the third connection is closed without an answer')
      held.pop()!.destroy()
      await new Promise((r) => setTimeout(r, 100))
      const again = await raw(small.port, 'GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 1000)
      assert.match(again, /^HTTP\/1\.1 200 /)
    } finally {
      for (const s of held) s.destroy()
      await small.close()
    }
  })
})

describe('slow readers', () => {
  test('a client that stops reading a streamed response is cut after idleTimeout, and its file is closed', async () => {
    // larger than what the kernel's socket buffers can hold on loopback
    writeFileSync(path.join(site.dir, 'huge.bin'), Buffer.alloc(64 * 1024 * 1024))
    const s = await startServer({ limits: { idleTimeout: '500ms' }, sites: [{ routes: [{ path: '/', static: { root: site.dir } }] }] })
    try {
      const baseline = openFds()
      const start = Date.now()
      let received = 0
      const c = net.connect(s.port, '127.0.0.1', () => c.write('GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n'))
      c.on('data', (d: Buffer) => (received += d.length))
      // read the first bytes, stop reading well past idleTimeout, then drain what is left
      c.once('data', () => {
        c.pause()
        setTimeout(() => c.resume(), 2000)
      })
      const closed = await closedWithin(c, 8000)
      assert.equal(closed, true, 'the server closed the stalled connection')
      assert.ok(received < 64 * 1024 * 1024, `the response was cut (${received} bytes arrived)`)
      assert.ok(Date.now() - start < 8000)
      const now = await fdsSettle(baseline)
      assert.ok(now <= baseline, `file descriptors: ${baseline} before, ${now} after`)
    } finally {
      await s.close()
    }
  })
})

describe('graceful shutdown', () => {
  test('in-flight downloads finish, new connections are refused, idle keep-alive connections close', async () => {
    const s = await startServer({ sites: [{ routes: [{ path: '/', static: { root: site.dir } }] }] })
    // an idle keep-alive connection
    const idle = net.connect(s.port, '127.0.0.1')
    await new Promise((r) => idle.once('connect', r))
    idle.write('GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n')
    await new Promise((r) => idle.once('data', r))
    const idleClosed = new Promise((r) => idle.once('close', r))
    // an in-flight download, read slowly
    const busy = net.connect(s.port, '127.0.0.1')
    await new Promise((r) => busy.once('connect', r))
    let received = 0
    const done = new Promise<void>((resolve) => busy.on('close', () => resolve()))
    busy.on('data', (d: Buffer) => {
      received += d.length
      busy.pause()
      setTimeout(() => busy.resume(), 1)
    })
    busy.write('GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n')
    await new Promise((r) => setTimeout(r, 50))
    const closing = s.close()
    await idleClosed
    const refused = await new Promise<boolean>((resolve) => {
      const c = net.connect(s.port, '127.0.0.1')
      c.on('error', () => resolve(true))
      c.on('connect', () => {
        c.destroy()
        resolve(false)
      })
    })
    assert.equal(refused, true, 'new connections are refused')
    busy.write('GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n') // pipelined while shutting down
    await closing
    await done
    assert.ok(received > BIG.length, `the download finished (${received} bytes)`)
  })
})

test('an idle keep-alive connection is closed after keepAliveTimeout, also after a streamed response', async () => {
  const s = await startServer({ limits: { keepAliveTimeout: '300ms' }, sites: [{ routes: [{ path: '/', static: { root: site.dir } }] }] })
  try {
    const start = Date.now()
    const c = net.connect(s.port, '127.0.0.1', () => c.write('GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n'))
    c.resume()
    const closed = await closedWithin(c, 6000)
    assert.equal(closed, true)
    assert.ok(Date.now() - start < 5000)
  } finally {
    await s.close()
  }
})
