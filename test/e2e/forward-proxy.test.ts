import assert from 'node:assert/strict'
import http from 'node:http'
import net from 'node:net'
import { after, before, describe, test } from 'node:test'
import { ConfigError } from '../../src/core/errors.ts'
import { closedPort, raw, request, startServer, statuses, type TestServer } from '../helpers/server.ts'

/** Forward proxy mode (build issue item 5): absolute-form requests and CONNECT tunnels, access-controlled. */

interface Seen {
  method: string
  url: string
  headers: http.IncomingHttpHeaders
  body: string
}

/** An origin server that records what it received. */
async function origin(): Promise<{ port: number; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = []
  const server = http.createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (c: string) => (body += c))
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body })
      res.writeHead(200, { 'Content-Type': 'text/plain', 'X-Origin': 'yes', Connection: 'X-Secret', 'X-Secret': 'hop' })
      res.end(`origin saw ${req.method} ${req.url}${body ? ` body=${body}` : ''}`)
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    port: (server.address() as net.AddressInfo).port,
    seen,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  }
}

/** A TCP echo server. */
async function echo(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
    s.on('error', () => {})
    s.pipe(s)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy()
        server.close(() => r())
      }),
  }
}


/** One request through the proxy: the absolute URI as the request target, as `curl -x` sends it. */
function viaProxy(proxyPort: number, target: string, headers: Record<string, string> = {}, body?: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(target)
    const req = http.request({ host: '127.0.0.1', port: proxyPort, method: body ? 'POST' : 'GET', path: target, headers: { Host: u.host, ...headers }, agent: false }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (text += c))
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`

/**
 * Sends `CONNECT target`, reads the response head; on 200, returns the open
 * socket for the tunnel. Otherwise the socket is closed.
 */
function connectThrough(proxyPort: number, target: string, headers: Record<string, string> = {}): Promise<{ status: number; head: string; socket: net.Socket }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(proxyPort, '127.0.0.1', () => {
      let head = `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n`
      for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`
      socket.write(head + '\r\n')
    })
    let buf = ''
    const onData = (d: Buffer) => {
      buf += d.toString('latin1')
      const end = buf.indexOf('\r\n\r\n')
      if (end === -1) return
      socket.off('data', onData)
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(buf)?.[1] ?? 0)
      resolve({ status, head: buf.slice(0, end), socket })
    }
    socket.on('data', onData)
    socket.on('error', reject)
    socket.on('close', () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(buf)?.[1] ?? 0), head: buf, socket }))
  })
}

/** Writes `data` on the tunnel and waits for as many bytes back. */
function roundTrip(socket: net.Socket, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let got = 0
    const onData = (d: Buffer) => {
      chunks.push(d)
      got += d.length
      if (got >= data.length) {
        socket.off('data', onData)
        resolve(Buffer.concat(chunks))
      }
    }
    socket.on('data', onData)
    socket.once('error', reject)
    socket.write(data)
  })
}

const SITE = { hosts: ['site.test'], routes: [{ path: '/', redirect: { to: 'https://example.org/', status: 302 as const } }] }

async function stillAnswers(srv: TestServer): Promise<void> {
  const r = await request('http/1.1', srv.url + '_edgebox/health')
  assert.equal(r.status, 200)
}

describe('forward proxy disabled (the default)', () => {
  let srv: TestServer
  let o: Awaited<ReturnType<typeof origin>>
  before(async () => {
    o = await origin()
    srv = await startServer({ sites: [SITE] })
  })
  after(async () => {
    await srv.close()
    await o.close()
  })

  test('the resolved configuration has forwardProxy disabled', () => {
    assert.equal(srv.box.config.forwardProxy.enabled, false)
    assert.deepEqual(srv.box.config.forwardProxy.connectPorts, [443])
    assert.equal(srv.box.config.forwardProxy.timeouts.connect, 10_000)
    assert.equal(srv.box.config.forwardProxy.timeouts.idle, 120_000)
  })

  test('CONNECT gets 405', async () => {
    const text = await raw(srv.port, `CONNECT 127.0.0.1:${o.port} HTTP/1.1\r\nHost: 127.0.0.1:${o.port}\r\n\r\n`)
    assert.deepEqual(statuses(text), [405])
    await stillAnswers(srv)
  })

  test('absolute-form is routed to the site by the URI host, never to another origin', async () => {
    const r = await viaProxy(srv.port, 'http://site.test/x')
    assert.equal(r.status, 302)
    assert.equal(r.headers.location, 'https://example.org/')
    // a foreign host falls back to the default site (today's behaviour), the origin sees nothing
    const f = await viaProxy(srv.port, `http://127.0.0.1:${o.port}/secret`)
    assert.equal(f.status, 302)
    assert.equal(o.seen.length, 0)
  })
})

describe('forward proxy configuration', () => {
  test('enabled without clients or credentials is a configuration error naming the path', async () => {
    await assert.rejects(
      startServer({ sites: [SITE], forwardProxy: { enabled: true } }),
      (err: unknown) => err instanceof ConfigError && err.issues.some((i) => i.startsWith('forwardProxy.enabled: ') && i.includes('open proxy')),
    )
  })

  test('a malformed client CIDR is reported with its index', async () => {
    await assert.rejects(
      startServer({ sites: [SITE], forwardProxy: { enabled: true, clients: ['127.0.0.1/8', 'nope'] } }),
      (err: unknown) => err instanceof ConfigError && err.issues.some((i) => i.startsWith('forwardProxy.clients[1]: ')),
    )
  })
})

describe('forward proxy for an allowed client address', () => {
  let srv: TestServer
  let o: Awaited<ReturnType<typeof origin>>
  let e: Awaited<ReturnType<typeof echo>>
  let closed: number
  before(async () => {
    o = await origin()
    e = await echo()
    closed = await closedPort()
    srv = await startServer({
      sites: [SITE],
      forwardProxy: { enabled: true, clients: ['127.0.0.0/8'], connectPorts: [e.port, closed] },
    })
  })
  after(async () => {
    await srv.close()
    await e.close()
    await o.close()
  })

  test('absolute-form GET is forwarded: right path and Host, no Proxy-Authorization, Via both ways', async () => {
    const r = await viaProxy(srv.port, `http://127.0.0.1:${o.port}/a/b?c=1`, { 'Proxy-Authorization': basic('x', 'y'), 'Proxy-Connection': 'keep-alive' })
    assert.equal(r.status, 200)
    assert.equal(r.text, 'origin saw GET /a/b?c=1')
    assert.equal(r.headers['x-origin'], 'yes')
    assert.equal(r.headers['x-secret'], undefined) // named in the origin's Connection
    assert.equal(r.headers.via, '1.1 edgebox')
    const seen = o.seen.at(-1)!
    assert.equal(seen.url, '/a/b?c=1')
    assert.equal(seen.headers.host, `127.0.0.1:${o.port}`)
    assert.equal(seen.headers['proxy-authorization'], undefined)
    assert.equal(seen.headers['proxy-connection'], undefined)
    assert.equal(seen.headers.via, '1.1 edgebox')
  })

  test('a request body streams to the origin', async () => {
    const r = await viaProxy(srv.port, `http://127.0.0.1:${o.port}/post`, {}, 'hello=1')
    assert.equal(r.status, 200)
    assert.equal(r.text, 'origin saw POST /post body=hello=1')
  })

  test("absolute-form for one of our site hosts or the proxy's own address is still served by the site", async () => {
    const before = o.seen.length
    const r = await viaProxy(srv.port, 'http://site.test/x')
    assert.equal(r.status, 302)
    const own = await viaProxy(srv.port, `http://127.0.0.1:${srv.port}/_edgebox/health`)
    assert.equal(own.status, 200)
    assert.match(own.text, /"status":"ok"/)
    assert.equal(o.seen.length, before)
  })

  test('an origin that refuses the connection gets 502, and the server still answers', async () => {
    const r = await viaProxy(srv.port, `http://127.0.0.1:${closed}/`)
    assert.equal(r.status, 502)
    await stillAnswers(srv)
  })

  test('CONNECT to an allowed port: 200, then bytes echo both ways', async () => {
    const { status, head, socket } = await connectThrough(srv.port, `127.0.0.1:${e.port}`)
    assert.equal(status, 200)
    assert.match(head, /^HTTP\/1\.1 200 Connection Established/)
    const first = await roundTrip(socket, Buffer.from('ping\n'))
    assert.equal(first.toString(), 'ping\n')
    const big = Buffer.alloc(256 * 1024, 7)
    const back = await roundTrip(socket, big)
    assert.ok(back.equals(big))
    socket.end()
    await new Promise((r) => socket.once('close', r))
    await stillAnswers(srv)
  })

  test('CONNECT to a port not in connectPorts: 403', async () => {
    const { status, socket } = await connectThrough(srv.port, `127.0.0.1:${o.port}`)
    assert.equal(status, 403)
    socket.destroy()
    await stillAnswers(srv)
  })

  test('CONNECT to a closed port: 502', async () => {
    const { status, socket } = await connectThrough(srv.port, `127.0.0.1:${closed}`)
    assert.equal(status, 502)
    socket.destroy()
    await stillAnswers(srv)
  })

  test('CONNECT with a target that is not host:port: 400', async () => {
    const { status, socket } = await connectThrough(srv.port, '127.0.0.1')
    assert.equal(status, 400)
    socket.destroy()
    await stillAnswers(srv)
  })
})

describe('forward proxy with credentials', () => {
  let srv: TestServer
  let o: Awaited<ReturnType<typeof origin>>
  let e: Awaited<ReturnType<typeof echo>>
  before(async () => {
    o = await origin()
    e = await echo()
    srv = await startServer({
      sites: [SITE],
      forwardProxy: { enabled: true, clients: ['10.9.8.0/24'], credentials: [{ user: 'alice', password: 's3cret:x' }], connectPorts: [e.port] },
    })
  })
  after(async () => {
    await srv.close()
    await e.close()
    await o.close()
  })

  test('no credential: 407 with Proxy-Authenticate; the right one: 200', async () => {
    const target = `http://127.0.0.1:${o.port}/private`
    const none = await viaProxy(srv.port, target)
    assert.equal(none.status, 407)
    assert.match(String(none.headers['proxy-authenticate']), /^Basic realm="edgebox proxy"/)
    assert.equal(o.seen.length, 0)
    await stillAnswers(srv)
    const ok = await viaProxy(srv.port, target, { 'Proxy-Authorization': basic('alice', 's3cret:x') })
    assert.equal(ok.status, 200)
    assert.equal(ok.text, 'origin saw GET /private')
    assert.equal(o.seen.at(-1)!.headers['proxy-authorization'], undefined)
  })

  test('a wrong credential: 407', async () => {
    for (const auth of [basic('alice', 'wrong'), basic('bob', 's3cret:x'), 'Bearer abc', 'Basic !!!']) {
      const r = await viaProxy(srv.port, `http://127.0.0.1:${o.port}/`, { 'Proxy-Authorization': auth })
      assert.equal(r.status, 407, auth)
    }
    await stillAnswers(srv)
  })

  test('CONNECT without a credential: 407; with it: a working tunnel', async () => {
    const denied = await connectThrough(srv.port, `127.0.0.1:${e.port}`)
    assert.equal(denied.status, 407)
    assert.match(denied.head, /Proxy-Authenticate: Basic realm="edgebox proxy"/)
    denied.socket.destroy()
    await stillAnswers(srv)
    const { status, socket } = await connectThrough(srv.port, `127.0.0.1:${e.port}`, { 'Proxy-Authorization': basic('alice', 's3cret:x') })
    assert.equal(status, 200)
    assert.equal((await roundTrip(socket, Buffer.from('hi'))).toString(), 'hi')
    socket.destroy()
  })
})

describe('forward proxy for other client addresses only', () => {
  let srv: TestServer
  let o: Awaited<ReturnType<typeof origin>>
  before(async () => {
    o = await origin()
    srv = await startServer({ sites: [SITE], forwardProxy: { enabled: true, clients: ['10.0.0.0/8'] } })
  })
  after(async () => {
    await srv.close()
    await o.close()
  })

  test('a client outside `clients` gets 403 (no challenge: no credentials configured)', async () => {
    const r = await viaProxy(srv.port, `http://127.0.0.1:${o.port}/`)
    assert.equal(r.status, 403)
    assert.equal(r.headers['proxy-authenticate'], undefined)
    const c = await connectThrough(srv.port, '127.0.0.1:443')
    assert.equal(c.status, 403)
    c.socket.destroy()
    assert.equal(o.seen.length, 0)
    await stillAnswers(srv)
  })
})

describe('forward proxy destination hosts', () => {
  let srv: TestServer
  let o: Awaited<ReturnType<typeof origin>>
  before(async () => {
    o = await origin()
    srv = await startServer({ sites: [SITE], forwardProxy: { enabled: true, clients: ['127.0.0.1'], allowHosts: ['*.allowed.test'] } })
  })
  after(async () => {
    await srv.close()
    await o.close()
  })

  test('a host outside allowHosts gets 403', async () => {
    const r = await viaProxy(srv.port, `http://127.0.0.1:${o.port}/`)
    assert.equal(r.status, 403)
    const c = await connectThrough(srv.port, '127.0.0.1:443')
    assert.equal(c.status, 403)
    c.socket.destroy()
    assert.equal(o.seen.length, 0)
    await stillAnswers(srv)
  })

  test('userinfo cannot smuggle another destination past the allow list: 400, nothing reaches it (RFC 9110 §4.2.4)', async () => {
    for (const target of [`http://x.allowed.test:1@127.0.0.1:${o.port}/secret`, `http://x.allowed.test@127.0.0.1:${o.port}/secret`, `http://127.0.0.1:${o.port}@x.allowed.test/secret`]) {
      const text = await raw(srv.port, `GET ${target} HTTP/1.1\r\nHost: x.allowed.test\r\nConnection: close\r\n\r\n`)
      assert.deepEqual(statuses(text), [400], target)
      assert.match(text, /userinfo/)
    }
    assert.equal(o.seen.length, 0)
    await stillAnswers(srv)
  })
})

describe('forward proxy shutdown', () => {
  test('an open tunnel is cut at the shutdown deadline; close() does not hang', async () => {
    const e = await echo()
    const srv = await startServer({ sites: [SITE], limits: { shutdownTimeout: '300ms' }, forwardProxy: { enabled: true, clients: ['127.0.0.1'], connectPorts: [e.port] } })
    try {
      const { status, socket } = await connectThrough(srv.port, `127.0.0.1:${e.port}`)
      assert.equal(status, 200)
      const gone = new Promise((r) => socket.once('close', r))
      socket.on('error', () => {})
      const t0 = Date.now()
      await srv.close()
      await gone
      assert.ok(Date.now() - t0 < 3000)
    } finally {
      await e.close()
    }
  })
})
