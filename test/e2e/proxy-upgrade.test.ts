import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import http from 'node:http'
import net from 'node:net'
import { after, before, describe, test } from 'node:test'
import WebSocket, { WebSocketServer } from 'ws'
import { openTunnel, type TunnelOutcome, type UpstreamAnswer } from '../../src/modules/proxy/tunnel.ts'
import { readFileSync } from 'node:fs'
import { closedPort, fdsSettle, openFds, raw, startServer, tempDir, type TestServer } from '../helpers/server.ts'

/**
 * Upgrade requests through the proxy: raw tunnels with the
 * same balancing and timeouts. First openTunnel alone behind a minimal
 * HTTP server (every failure step, framing of refused upgrades), then
 * WebSocket end to end through an Edgebox proxy route.
 */

/** Rejects when `p` has not settled within `ms`: no wait in this file is unbounded. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<never>((_, reject) => {
      t = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms)
    }),
  ])
}

/** Resolves true when the socket is closed (or closes) within `ms`, false (and destroys it) otherwise. */
function closedWithin(sock: net.Socket, ms: number): Promise<boolean> {
  if (sock.closed) return Promise.resolve(true)
  sock.resume() // a socket that does not read never sees the peer's FIN
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      sock.destroy()
      resolve(false)
    }, ms)
    sock.on('error', () => {})
    sock.once('close', () => {
      clearTimeout(t)
      resolve(true)
    })
  })
}

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)))
}

function stop(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    if ('closeAllConnections' in server) (server as http.Server).closeAllConnections()
    server.close(() => resolve())
  })
}


// ---------------------------------------------------------------------------
// openTunnel on its own

/** An upstream speaking raw bytes: `onRequest` gets the socket and everything received so far once a request head is complete. */
async function rawUpstream(onRequest: (sock: net.Socket, received: Buffer) => void): Promise<{ port: number; received: Buffer[]; close(): Promise<void> }> {
  const received: Buffer[] = []
  const sockets = new Set<net.Socket>()
  const server = net.createServer((sock) => {
    sockets.add(sock)
    sock.on('close', () => sockets.delete(sock))
    sock.on('error', () => {})
    let seen = Buffer.alloc(0)
    let answered = false
    sock.on('data', (c: Buffer) => {
      seen = Buffer.concat([seen, c])
      received.push(c)
      if (!answered && seen.includes('\r\n\r\n')) {
        answered = true
        // let the bytes that follow the head arrive too
        setTimeout(() => onRequest(sock, seen), 20)
      }
    })
  })
  const port = await listen(server)
  return {
    port,
    received,
    close: () => {
      for (const s of sockets) s.destroy()
      return stop(server)
    },
  }
}

interface Mini {
  port: number
  outcomes: { outcome: TunnelOutcome; detail: string | undefined }[]
  /** What onAnswer reported, in order (for passive health checks). */
  answers: UpstreamAnswer[]
  /** Resolves with the next outcome reported. */
  nextOutcome(): Promise<{ outcome: TunnelOutcome; detail: string | undefined }>
  close(): Promise<void>
}

/** A minimal front server whose only job is handing upgrades to openTunnel. */
async function miniProxy(target: string, timeouts: { connect?: number; response?: number; idle?: number } = {}): Promise<Mini> {
  const outcomes: Mini['outcomes'] = []
  const answers: UpstreamAnswer[] = []
  let waiting: ((o: Mini['outcomes'][number]) => void)[] = []
  const server = http.createServer((_req, res) => res.end('not an upgrade'))
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    const headers: Record<string, string | string[]> = {}
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && k !== 'connection') headers[k] = v
    openTunnel({
      target: { url: new URL(target), id: new URL(target).origin },
      method: req.method!,
      path: req.url!,
      headers,
      clientSocket: socket,
      head,
      connectTimeout: timeouts.connect ?? 1000,
      responseTimeout: timeouts.response ?? 1000,
      idleTimeout: timeouts.idle ?? 1000,
      onAnswer: (a) => answers.push(a),
      onDone(outcome, detail) {
        const o = { outcome, detail }
        outcomes.push(o)
        const w = waiting
        waiting = []
        for (const f of w) f(o)
      },
    })
  })
  const port = await listen(server)
  return {
    port,
    outcomes,
    answers,
    nextOutcome: () => within(new Promise((r) => waiting.push(r)), 5000, 'tunnel outcome'),
    close: () => stop(server),
  }
}

const UPGRADE_REQUEST = 'GET /chat?x=1 HTTP/1.1\r\nHost: front.test\r\nConnection: Upgrade\r\nUpgrade: edgebox-test\r\nX-Custom: kept\r\n\r\n'

describe('openTunnel', () => {
  let baseline = 0
  before(() => {
    baseline = openFds()
  })

  test('101: the head goes to the client as received, then bytes flow raw both ways; the client head bytes go first', async () => {
    const up = await rawUpstream((sock) => {
      sock.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: edgebox-test\r\nX-Up: 1\r\n\r\nearly')
      sock.on('data', (c: Buffer) => {
        if (c.includes('ping')) sock.write('pong')
        if (c.includes('bye')) sock.end('ciao')
      })
    })
    const mini = await miniProxy(`http://127.0.0.1:${up.port}`)
    try {
      const done = mini.nextOutcome()
      const client = net.connect(mini.port, '127.0.0.1')
      client.on('error', () => {})
      let got = ''
      client.setEncoding('latin1')
      client.on('data', (d: string) => {
        got += d
        if (got.endsWith('early')) client.write('ping')
        if (got.endsWith('pong')) client.write('bye')
      })
      client.write(UPGRADE_REQUEST + 'HEADBYTES')
      assert.equal(await closedWithin(client, 3000), true, 'the upstream closing closes the client')
      assert.match(got, /^HTTP\/1\.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: edgebox-test\r\nX-Up: 1\r\n\r\nearlypongciao$/)
      const sent = Buffer.concat(up.received).toString('latin1')
      assert.match(sent, /^GET \/chat\?x=1 HTTP\/1\.1\r\n/)
      assert.match(sent, /\r\nx-custom: kept\r\n/i)
      assert.match(sent, /\r\nConnection: Upgrade\r\nUpgrade: edgebox-test\r\n\r\nHEADBYTES/)
      assert.equal((sent.match(/^connection:/gim) ?? []).length, 1, 'one Connection field')
      assert.deepEqual(await done, { outcome: 'ok', detail: 'tunnel' })
      assert.deepEqual(mini.answers, ['ok'])
    } finally {
      await mini.close()
      await up.close()
    }
  })

  test('interim 1xx responses are skipped until the 101', async () => {
    const up = await rawUpstream((sock) => sock.end('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\nUpgrade: edgebox-test\r\nConnection: Upgrade\r\n\r\nafter'))
    const mini = await miniProxy(`http://127.0.0.1:${up.port}`)
    try {
      const text = await raw(mini.port, UPGRADE_REQUEST, 3000)
      assert.match(text, /^HTTP\/1\.1 101 Switching Protocols\r\n[^]*\r\n\r\nafter$/)
      assert.doesNotMatch(text, /100 Continue/)
    } finally {
      await mini.close()
      await up.close()
    }
  })

  test('a refused upgrade is relayed with its body (Content-Length) and the connection closed, though the upstream keeps it open', async () => {
    const up = await rawUpstream((sock) => sock.write('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 10\r\nConnection: keep-alive\r\nKeep-Alive: timeout=60\r\n\r\nforbidden\nEXTRA'))
    const mini = await miniProxy(`http://127.0.0.1:${up.port}`)
    try {
      const done = mini.nextOutcome()
      const text = await raw(mini.port, UPGRADE_REQUEST, 3000)
      assert.match(text, /^HTTP\/1\.1 403 Forbidden\r\n/)
      assert.match(text, /\r\nConnection: close\r\n\r\nforbidden\n$/)
      assert.doesNotMatch(text, /keep-alive|EXTRA/i)
      assert.equal((await done).outcome, 'ok')
      assert.deepEqual(mini.answers, ['ok'], 'a refusal is an answer, not an upstream failure')
    } finally {
      await mini.close()
      await up.close()
    }
  })

  test('a refused upgrade with a chunked body is relayed to its last chunk', async () => {
    const body = '5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n'
    const up = await rawUpstream((sock) => {
      sock.write('HTTP/1.1 426 Upgrade Required\r\nTransfer-Encoding: chunked\r\nUpgrade: other\r\n\r\n' + body.slice(0, 9))
      setTimeout(() => sock.write(body.slice(9) + 'GARBAGE'), 30)
    })
    const mini = await miniProxy(`http://127.0.0.1:${up.port}`)
    try {
      const text = await raw(mini.port, UPGRADE_REQUEST, 3000)
      assert.match(text, /^HTTP\/1\.1 426 Upgrade Required\r\n/)
      assert.ok(text.endsWith('\r\nConnection: close\r\n\r\n' + body), text)
    } finally {
      await mini.close()
      await up.close()
    }
  })

  test('a close-delimited refusal is relayed until the upstream closes; a 5xx refusal counts as 5xx', async () => {
    const up = await rawUpstream((sock) => sock.end('HTTP/1.1 503 Service Unavailable\r\n\r\nnot now'))
    const mini = await miniProxy(`http://127.0.0.1:${up.port}`)
    try {
      const text = await raw(mini.port, UPGRADE_REQUEST, 3000)
      assert.match(text, /^HTTP\/1\.1 503 Service Unavailable\r\nConnection: close\r\n\r\nnot now$/)
      assert.deepEqual(mini.answers, ['5xx'])
    } finally {
      await mini.close()
      await up.close()
    }
  })

  test('connection refused: 502 saying so', async () => {
    const mini = await miniProxy(`http://127.0.0.1:${await closedPort()}`)
    try {
      const done = mini.nextOutcome()
      const text = await raw(mini.port, UPGRADE_REQUEST, 3000)
      assert.match(text, /^HTTP\/1\.1 502 Bad Gateway\r\n/)
      assert.match(text, /refused the connection\n$/)
      assert.equal((await done).outcome, 'error')
      assert.deepEqual(mini.answers, ['error'])
    } finally {
      await mini.close()
    }
  })

  test('connect timeout (a TLS upstream that never completes the handshake): 504 saying so', async () => {
    const up = await rawUpstream(() => {})
    const mini = await miniProxy(`https://127.0.0.1:${up.port}`, { connect: 200 })
    try {
      const done = mini.nextOutcome()
      const text = await raw(mini.port, UPGRADE_REQUEST, 3000)
      assert.match(text, /^HTTP\/1\.1 504 Gateway Timeout\r\n/)
      assert.match(text, /did not accept the connection within 200 ms\n$/)
      assert.equal((await done).outcome, 'timeout')
    } finally {
      await mini.close()
      await up.close()
    }
  })

  test('response timeout: 504 saying so', async () => {
    const up = await rawUpstream(() => {})
    const mini = await miniProxy(`http://127.0.0.1:${up.port}`, { response: 200 })
    try {
      const done = mini.nextOutcome()
      const text = await raw(mini.port, UPGRADE_REQUEST, 3000)
      assert.match(text, /^HTTP\/1\.1 504 Gateway Timeout\r\n/)
      assert.match(text, /did not answer within 200 ms\n$/)
      assert.equal((await done).outcome, 'timeout')
      assert.deepEqual(mini.answers, ['timeout'])
    } finally {
      await mini.close()
      await up.close()
    }
  })

  const malformed: [string, string, RegExp][] = [
    ['a status line that is not HTTP', 'SSH-2.0-OpenSSH\r\n\r\n', /malformed response/],
    ['a field line without a colon', 'HTTP/1.1 101 Switching Protocols\r\nUpgrade edgebox-test\r\n\r\n', /malformed response/],
    ['contradicting Content-Length fields', 'HTTP/1.1 403 Forbidden\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab', /malformed response/],
    ['a head larger than 16 KiB', 'HTTP/1.1 101 Switching Protocols\r\nX-Big: ' + 'a'.repeat(17 * 1024) + '\r\n\r\n', /response head larger than 16384 bytes/],
    ['a close before the head ends', 'HTTP/1.1 101 Switching', /closed the connection before answering/],
  ]
  for (const [what, reply, message] of malformed) {
    test(`${what}: 502 saying so`, async () => {
      const up = await rawUpstream((sock) => sock.end(reply))
      const mini = await miniProxy(`http://127.0.0.1:${up.port}`)
      try {
        const done = mini.nextOutcome()
        const text = await raw(mini.port, UPGRADE_REQUEST, 3000)
        assert.match(text, /^HTTP\/1\.1 502 Bad Gateway\r\n/)
        assert.match(text, message)
        assert.equal((await done).outcome, 'error')
      } finally {
        await mini.close()
        await up.close()
      }
    })
  }

  test('an idle tunnel is closed on both sides', async () => {
    let upstreamSocket: net.Socket | undefined
    const up = await rawUpstream((sock) => {
      upstreamSocket = sock
      sock.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: edgebox-test\r\n\r\n')
    })
    const mini = await miniProxy(`http://127.0.0.1:${up.port}`, { idle: 250 })
    try {
      const done = mini.nextOutcome()
      const client = net.connect(mini.port, '127.0.0.1', () => client.write(UPGRADE_REQUEST))
      const start = Date.now()
      assert.equal(await closedWithin(client, 3000), true)
      assert.ok(Date.now() - start >= 200, 'not before the idle timeout')
      assert.match((await done).detail ?? '', /idle for 250 ms/)
      assert.equal(await closedWithin(upstreamSocket!, 1000), true, 'the upstream side is closed too')
    } finally {
      await mini.close()
      await up.close()
    }
  })

  test('a client that goes away while the upstream is silent releases the upstream connection', async () => {
    let upstreamSocket: net.Socket | undefined
    const up = await rawUpstream((sock) => (upstreamSocket = sock))
    const mini = await miniProxy(`http://127.0.0.1:${up.port}`, { response: 5000 })
    try {
      const done = mini.nextOutcome()
      const client = net.connect(mini.port, '127.0.0.1', () => client.write(UPGRADE_REQUEST))
      client.on('error', () => {})
      await within(
        (async () => {
          while (!upstreamSocket) await new Promise((r) => setTimeout(r, 10))
        })(),
        3000,
        'upstream request',
      )
      client.destroy()
      assert.equal(await closedWithin(upstreamSocket!, 2000), true)
      assert.deepEqual(await done, { outcome: 'error', detail: 'the client went away before the upstream answered' })
      assert.deepEqual(mini.answers, [], 'a client that left says nothing about the upstream')
    } finally {
      await mini.close()
      await up.close()
    }
  })

  test('no socket is left open', async () => {
    assert.ok((await fdsSettle(baseline)) <= baseline, 'descriptors back to the baseline')
  })
})

// ---------------------------------------------------------------------------
// WebSocket through an Edgebox proxy route

interface WsUpstream {
  name: string
  url: string
  /** Request heads of the WebSocket handshakes accepted. */
  seen: http.IncomingHttpHeaders[]
  urls: string[]
  /** Server-side sockets currently open. */
  clients: Set<WebSocket>
  /** Close events seen on the server side. */
  closes: { code: number; reason: string }[]
  close(): Promise<void>
}

/** A ws upstream that echoes (text as text, binary as binary), negotiates `chat.v1`, and answers 403 below /forbidden. */
async function wsUpstream(name: string): Promise<WsUpstream> {
  const seen: http.IncomingHttpHeaders[] = []
  const urls: string[] = []
  const clients = new Set<WebSocket>()
  const closes: { code: number; reason: string }[] = []
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: 4 * 1024 * 1024,
    handleProtocols: (protocols) => (protocols.has('chat.v1') ? 'chat.v1' : false),
  })
  const server = http.createServer((_req, res) => res.end('plain http'))
  // closeAllConnections does not reach upgraded sockets: track them all
  const sockets = new Set<net.Socket>()
  server.on('connection', (s: net.Socket) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    if (req.url!.startsWith('/forbidden')) {
      // refused, and the connection kept open: the proxy must end the relay itself
      socket.write('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nnot allowed\n')
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      seen.push(req.headers)
      urls.push(req.url!)
      clients.add(ws)
      ws.on('message', (data, isBinary) => {
        if (!isBinary && data.toString() === 'who') return ws.send(name)
        if (!isBinary && data.toString() === 'push') {
          ws.send('pushed-1')
          ws.send('pushed-2')
          return
        }
        ws.send(data, { binary: isBinary })
      })
      ws.on('close', (code, reason) => {
        clients.delete(ws)
        closes.push({ code, reason: reason.toString() })
      })
    })
  })
  const port = await listen(server)
  return {
    name,
    url: `http://127.0.0.1:${port}`,
    seen,
    urls,
    clients,
    closes,
    async close() {
      for (const ws of wss.clients) ws.terminate()
      wss.close()
      for (const s of sockets) s.destroy()
      await stop(server)
    },
  }
}

/** Opens a WebSocket and resolves once it is open (or rejects with the handshake failure). */
function openWs(url: string, protocols: string[] = ['chat.v2', 'chat.v1']): Promise<WebSocket> {
  const ws = new WebSocket(url, protocols, { maxPayload: 4 * 1024 * 1024 })
  return within(
    new Promise<WebSocket>((resolve, reject) => {
      ws.once('open', () => resolve(ws))
      ws.once('error', reject)
    }),
    5000,
    `open ${url}`,
  )
}

/** The handshake's HTTP answer when the upgrade is refused. */
function refusedWith(url: string): Promise<{ status: number; body: string }> {
  const ws = new WebSocket(url)
  return within(
    new Promise((resolve, reject) => {
      ws.once('open', () => {
        ws.terminate()
        reject(new Error('the upgrade succeeded'))
      })
      ws.once('unexpected-response', (_req, res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (d: string) => (body += d))
        res.on('end', () => {
          resolve({ status: res.statusCode!, body })
          ws.terminate()
        })
      })
      ws.once('error', (err) => reject(err))
    }),
    5000,
    `refused ${url}`,
  )
}

function nextMessage(ws: WebSocket): Promise<{ data: Buffer; isBinary: boolean }> {
  return within(
    new Promise((resolve) => ws.once('message', (data, isBinary) => resolve({ data: Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[]), isBinary }))),
    5000,
    'message',
  )
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve({ code: -1, reason: 'already closed' })
  return within(new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }))), 5000, 'close')
}

describe('WebSocket through the proxy', () => {
  let a: WsUpstream
  let b: WsUpstream
  let srv: TestServer
  let ws: string

  before(async () => {
    a = await wsUpstream('a')
    b = await wsUpstream('b')
    const down = `http://127.0.0.1:${await closedPort()}`
    srv = await startServer({
      sites: [
        {
          routes: [
            { path: '/', proxy: { upstreams: [a.url] } },
            { path: '/rr/', proxy: { upstreams: [a.url, b.url], stripPrefix: true } },
            { path: '/idle/', proxy: { upstreams: [a.url], stripPrefix: true, timeouts: { idle: '300ms' } } },
            { path: '/down/', proxy: { upstreams: [down] } },
          ],
        },
      ],
    })
    ws = srv.url.replace(/^http/, 'ws')
  })
  after(async () => {
    await srv.close()
    await a.close()
    await b.close()
  })

  test('the handshake goes through: subprotocol negotiated, path and query kept, forwarding fields added', async () => {
    const before = a.seen.length
    const client = await openWs(ws + 'chat/room?id=7')
    try {
      assert.equal(client.protocol, 'chat.v1')
      assert.equal(a.seen.length, before + 1)
      const h = a.seen.at(-1)!
      assert.equal(a.urls.at(-1), '/chat/room?id=7')
      assert.equal(h['sec-websocket-protocol'], 'chat.v2,chat.v1')
      assert.equal(h.upgrade, 'websocket')
      assert.match(String(h.connection), /upgrade/i)
      assert.equal(h['x-forwarded-for'], '127.0.0.1')
      assert.equal(h['x-forwarded-proto'], 'http')
      assert.equal(h.via, '1.1 edgebox')
      assert.match(String(h.forwarded), /^for=127\.0\.0\.1;proto=http;host="127\.0\.0\.1:\d+"$/)
      assert.equal(h.host, new URL(srv.url).host)
    } finally {
      client.close()
      await closed(client)
    }
  })

  test('messages flow both ways: text, server pushes, and 1 MiB binary each way', async () => {
    const client = await openWs(ws + 'echo')
    try {
      let reply = nextMessage(client)
      client.send('hello')
      assert.deepEqual(await reply, { data: Buffer.from('hello'), isBinary: false })

      const pushed: string[] = []
      const both = within(
        new Promise<void>((resolve) =>
          client.on('message', function onPush(d) {
            pushed.push(String(d))
            if (pushed.length === 2) {
              client.off('message', onPush)
              resolve()
            }
          }),
        ),
        5000,
        'pushes',
      )
      client.send('push')
      await both
      assert.deepEqual(pushed, ['pushed-1', 'pushed-2'])

      const big = randomBytes(1024 * 1024)
      reply = nextMessage(client)
      client.send(big)
      const echoed = await reply
      assert.equal(echoed.isBinary, true)
      assert.equal(echoed.data.length, big.length)
      assert.ok(echoed.data.equals(big), '1 MiB binary echoed intact')

      for (let i = 0; i < 20; i++) {
        reply = nextMessage(client)
        client.send(`n${i}`)
        assert.equal(String((await reply).data), `n${i}`)
      }
    } finally {
      client.close()
      await closed(client)
    }
  })

  test('the client closing closes the upstream side (close code and reason pass)', async () => {
    const client = await openWs(ws + 'bye')
    const n = a.closes.length
    client.close(4000, 'client bye')
    assert.equal((await closed(client)).code, 4000)
    await within(
      (async () => {
        while (a.closes.length === n) await new Promise((r) => setTimeout(r, 10))
      })(),
      3000,
      'upstream close',
    )
    assert.deepEqual(a.closes.at(-1), { code: 4000, reason: 'client bye' })
  })

  test('the upstream closing closes the client (clean close, and a dropped connection)', async () => {
    const client = await openWs(ws + 'server-bye')
    const server = [...a.clients].at(-1)!
    const gone = closed(client)
    server.close(4001, 'server bye')
    assert.deepEqual(await gone, { code: 4001, reason: 'server bye' })

    const client2 = await openWs(ws + 'server-drop')
    const gone2 = closed(client2)
    ;[...a.clients].at(-1)!.terminate()
    assert.equal((await gone2).code, 1006, 'abnormal closure seen by the client')
  })

  test('an upstream that refuses the connection: the client gets 502', async () => {
    const r = await refusedWith(ws + 'down/socket')
    assert.equal(r.status, 502)
    assert.match(r.body, /refused the connection/)
  })

  test('an upstream that answers 403 to the upgrade: the client sees 403 and its body', async () => {
    const r = await refusedWith(ws + 'forbidden')
    assert.equal(r.status, 403)
    assert.equal(r.body, 'not allowed\n')
  })

  test('connections are balanced across two upstreams', async () => {
    const a0 = a.seen.length
    const b0 = b.seen.length
    const clients: WebSocket[] = []
    try {
      const names: string[] = []
      for (let i = 0; i < 4; i++) {
        const c = await openWs(ws + 'rr/who')
        clients.push(c)
        const reply = nextMessage(c)
        c.send('who')
        names.push(String((await reply).data))
      }
      assert.equal(a.seen.length - a0, 2)
      assert.equal(b.seen.length - b0, 2)
      assert.deepEqual(names.toSorted(), ['a', 'a', 'b', 'b'])
      assert.equal(a.urls.at(-1), '/who', 'stripPrefix applies')
    } finally {
      for (const c of clients) c.close()
      await Promise.all(clients.map(closed))
    }
  })

  test('an idle tunnel is closed after the idle timeout; a busy one is not', async () => {
    const busy = await openWs(ws + 'idle/busy')
    const idle = await openWs(ws + 'idle/quiet')
    const start = Date.now()
    const idleGone = closed(idle)
    let busyClosed = false
    busy.once('close', () => (busyClosed = true))
    for (let i = 0; i < 8; i++) {
      const reply = nextMessage(busy)
      busy.send(`tick${i}`)
      await reply
      await new Promise((r) => setTimeout(r, 100))
    }
    const r = await idleGone
    assert.equal(r.code, 1006, 'the tunnel was cut')
    const elapsed = Date.now() - start
    assert.ok(elapsed >= 250, `closed after ${elapsed} ms`)
    assert.equal(busyClosed, false, 'the busy tunnel (a message every ~100 ms) stays open')
    busy.close()
    await closed(busy)
  })

  test('no tunnel is left open', async () => {
    await within(
      (async () => {
        while (a.clients.size + b.clients.size > 0) await new Promise((r) => setTimeout(r, 20))
      })(),
      3000,
      'upstream sockets closed',
    )
  })
})

describe('upgrades in the access log', () => {
  test('one line per upgrade once it is over: 101 with the upstream for a tunnel, the relayed or gateway status otherwise', async () => {
    const a = await wsUpstream('a')
    const down = `http://127.0.0.1:${await closedPort()}`
    const t = tempDir()
    const file = `${t.dir}/access.log`
    const srv = await startServer({
      log: { access: true, format: 'json', file },
      sites: [{ routes: [{ path: '/', proxy: { upstreams: [a.url] } }, { path: '/down/', proxy: { upstreams: [down] } }] }],
    })
    const ws = srv.url.replace(/^http/, 'ws')
    try {
      const client = await openWs(ws + 'chat/logged')
      const gone = closed(client)
      client.send('hello')
      await nextMessage(client)
      client.close(1000)
      await gone
      assert.equal((await refusedWith(ws + 'forbidden')).status, 403)
      assert.equal((await refusedWith(ws + 'down/x')).status, 502)
      await new Promise((r) => setTimeout(r, 200))
    } finally {
      await srv.close()
      await a.close()
    }
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
    const byPath = (p: string) => lines.find((l) => l.path === p)
    assert.equal(byPath('/chat/logged')?.status, 101)
    assert.equal(byPath('/chat/logged')?.upstream, a.url)
    assert.ok(Number(byPath('/chat/logged')?.bytes) > 0)
    assert.equal(byPath('/forbidden')?.status, 403)
    assert.equal(byPath('/down/x')?.status, 502)
    t.cleanup()
  })
})
