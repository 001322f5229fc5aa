import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import http from 'node:http'
import http2 from 'node:http2'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { WebSocketServer } from 'ws'
import { certDir, testCa } from '../helpers/certs.ts'
import { accessLogThrough, startServer, type TestServer } from '../helpers/server.ts'

/**
 * WebSocket over HTTP/2 (RFC 8441, src/server/extended-connect.ts): the
 * listener advertises SETTINGS_ENABLE_CONNECT_PROTOCOL; an extended CONNECT
 * with `:protocol: websocket` reaches the realtime hub and the proxy's
 * WebSocket tunnel, over h2c and over TLS, and is answered 200, then frames.
 */

const TIMEOUT = 5_000

/** A client frame (masked, RFC 6455 §5.3), text unless `opcode` says otherwise. */
function clientFrame(payload: string | Buffer, opcode = 0x1): Buffer {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload)
  const mask = randomBytes(4)
  const len = data.length
  const head = len < 126 ? Buffer.from([0x80 | opcode, 0x80 | len]) : Buffer.from([0x80 | opcode, 0x80 | 126, len >> 8, len & 0xff])
  const body = Buffer.from(data.map((b, i) => b ^ mask[i % 4]!))
  return Buffer.concat([head, mask, body])
}

/** Reads unmasked server frames from a stream: text payloads as strings. */
function frameReader(stream: http2.ClientHttp2Stream) {
  let buf = Buffer.alloc(0)
  const frames: Array<{ opcode: number; text: string }> = []
  stream.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk])
    for (;;) {
      if (buf.length < 2) break
      let len = buf[1]! & 0x7f
      let off = 2
      if (len === 126) {
        if (buf.length < 4) break
        len = buf.readUInt16BE(2)
        off = 4
      }
      if (buf.length < off + len) break
      frames.push({ opcode: buf[0]! & 0x0f, text: buf.subarray(off, off + len).toString() })
      buf = buf.subarray(off + len)
    }
  })
  return {
    frames,
    async next(pred: (f: { opcode: number; text: string }) => boolean): Promise<{ opcode: number; text: string }> {
      const end = Date.now() + TIMEOUT
      for (;;) {
        const f = frames.find(pred)
        if (f) return f
        if (Date.now() > end) throw new Error(`no such frame; got ${JSON.stringify(frames)}`)
        await new Promise((r) => setTimeout(r, 20))
      }
    },
  }
}

function connect(url: string, opts: http2.SecureClientSessionOptions = {}): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = http2.connect(url, opts)
    s.once('remoteSettings', () => resolve(s))
    s.once('error', reject)
  })
}

/** An extended CONNECT: the response head, and the stream. */
function extendedConnect(s: http2.ClientHttp2Session, path: string, headers: http2.OutgoingHttpHeaders = {}, protocol = 'websocket'): Promise<{ status: number; headers: http2.IncomingHttpHeaders; stream: http2.ClientHttp2Stream }> {
  return new Promise((resolve, reject) => {
    const stream = s.request({ ':method': 'CONNECT', ':protocol': protocol, ':path': path, 'sec-websocket-version': '13', ...headers }, { endStream: false })
    stream.once('response', (h) => resolve({ status: Number(h[':status']), headers: h, stream }))
    stream.once('error', reject)
    setTimeout(() => reject(new Error('no response')), TIMEOUT).unref()
  })
}

let echo: http.Server
let echoUrl: string
let plain: TestServer
let secure: TestServer
let files: ReturnType<typeof certDir>
let caPem: string
let logDir: ReturnType<typeof certDir>
const logFile = () => logDir.path('access.log')

const config = () => ({
  sites: [
    {
      routes: [
        { path: '/live/', realtime: { channels: { 'c:*': {} } } },
        { path: '/echo/', proxy: { upstreams: [echoUrl] } },
        { path: '/', redirect: { to: '/live/' } },
      ],
    },
  ],
})

before(async () => {
  logDir = certDir({})
  echo = http.createServer()
  const wss = new WebSocketServer({ server: echo })
  wss.on('connection', (ws, req) => ws.on('message', (data, isBinary) => ws.send(isBinary ? data : `echo ${req.url}: ${data.toString()}`)))
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r))
  echoUrl = `http://127.0.0.1:${(echo.address() as AddressInfo).port}`
  plain = await startServer({ ...config(), log: { access: true, file: logFile() } })
  const ca = await testCa()
  caPem = ca.certPem
  const leaf = await ca.leaf(['localhost', '127.0.0.1'])
  files = certDir({ 'l.crt': leaf.certPem, 'l.key': leaf.keyPem })
  secure = await startServer({ ...config(), listen: [{ host: '127.0.0.1', port: 0, tls: true }], tls: { certificates: [{ cert: files.path('l.crt'), key: files.path('l.key') }] } })
})

after(async () => {
  await plain?.close()
  await secure?.close()
  await new Promise((r) => echo.close(r))
  files?.cleanup()
  logDir?.cleanup()
})

for (const [name, target] of [
  ['h2c', () => ({ url: plain.url, opts: {} })],
  ['h2 over TLS', () => ({ url: secure.url, opts: { ca: caPem, servername: 'localhost' } })],
] as const) {
  describe(`WebSocket over HTTP/2 (${name})`, () => {
    test('the server advertises extended CONNECT; the realtime hub answers 200 with its subprotocol, then frames both ways', async () => {
      const { url, opts } = target()
      const s = await connect(url, opts)
      try {
        assert.equal(s.remoteSettings.enableConnectProtocol, true)
        const origin = new URL(url).origin.replace('127.0.0.1', new URL(url).protocol === 'https:' ? 'localhost' : '127.0.0.1')
        const r = await extendedConnect(s, '/live/ws', { 'sec-websocket-protocol': 'edgebox.v1', origin })
        assert.equal(r.status, 200)
        assert.equal(r.headers['sec-websocket-protocol'], 'edgebox.v1')
        assert.equal(r.headers['sec-websocket-accept'], undefined, 'no accept over HTTP/2 (RFC 8441 §5)')
        assert.equal(r.headers.upgrade, undefined)
        const reader = frameReader(r.stream)
        r.stream.write(clientFrame('{"t":"ping"}'))
        await reader.next((f) => f.text.includes('"pong"'))
        r.stream.write(clientFrame(JSON.stringify({ t: 'sub', ch: 'c:h2' })))
        await reader.next((f) => f.text.includes('"sub"'))
        r.stream.write(clientFrame(JSON.stringify({ t: 'pub', ch: 'c:h2', d: 'over one stream', id: 'x1' })))
        const m = await reader.next((f) => f.text.includes('"msg"'))
        assert.deepEqual((({ t, d, id }) => ({ t, d, id }))(JSON.parse(m.text) as { t: string; d: string; id: string }), { t: 'msg', d: 'over one stream', id: 'x1' })
        // a close frame is answered with a close frame, and the stream ends
        r.stream.write(clientFrame(Buffer.from([0x03, 0xe8]), 0x8))
        await reader.next((f) => f.opcode === 0x8)
        r.stream.close()
        // the connection goes on serving ordinary requests
        const other = s.request({ ':path': '/live/poll?ch=c:h2' })
        const status = await new Promise<number>((resolve) => other.once('response', (h) => resolve(Number(h[':status']))))
        other.resume()
        assert.equal(status, 200)
      } finally {
        s.close()
      }
    })

    test('a proxy route tunnels it to an HTTP/1.1 WebSocket upstream', async () => {
      const { url, opts } = target()
      const s = await connect(url, opts)
      try {
        const r = await extendedConnect(s, '/echo/room?x=1')
        assert.equal(r.status, 200)
        const reader = frameReader(r.stream)
        r.stream.write(clientFrame('hello'))
        const f = await reader.next((x) => x.opcode === 0x1)
        assert.equal(f.text, 'echo /echo/room?x=1: hello')
        r.stream.close()
      } finally {
        s.close()
      }
    })

    test('refusals keep their status: a foreign origin 403, a route without WebSocket 400, another protocol 501; the session goes on', async () => {
      const { url, opts } = target()
      const s = await connect(url, opts)
      try {
        const forbidden = await extendedConnect(s, '/live/ws', { 'sec-websocket-protocol': 'edgebox.v1', origin: 'https://evil.example' })
        assert.equal(forbidden.status, 403)
        let body = ''
        forbidden.stream.setEncoding('utf8')
        forbidden.stream.on('data', (c: string) => (body += c))
        await new Promise((r) => forbidden.stream.once('end', r))
        assert.match(body, /origin https:\/\/evil\.example is not allowed here/)
        assert.equal((await extendedConnect(s, '/somewhere')).status, 400)
        const other = await extendedConnect(s, '/live/ws', {}, 'connect-udp')
        assert.equal(other.status, 501)
        other.stream.resume()
        const ok = await extendedConnect(s, '/echo/')
        assert.equal(ok.status, 200)
        ok.stream.close()
      } finally {
        s.close()
      }
    })
  })
}

test('the access log shows a WebSocket over HTTP/2 as what it was on the wire: h2c, 200, its bytes', async () => {
  const s = await connect(plain.url)
  try {
    const r = await extendedConnect(s, '/echo/logged')
    assert.equal(r.status, 200)
    const reader = frameReader(r.stream)
    r.stream.write(clientFrame('x'))
    await reader.next((f) => f.opcode === 0x1)
    r.stream.close()
  } finally {
    s.close()
  }
  const end = Date.now() + TIMEOUT
  for (;;) {
    const lines = await accessLogThrough(new URL(plain.url).origin, `/marker-${Date.now()}`, logFile())
    const line = lines.find((l) => l.path === '/echo/logged')
    if (line) {
      assert.deepEqual([line.method, line.status, line.proto], ['GET', 200, 'h2c'])
      assert.ok(Number(line.bytes) > 0)
      break
    }
    if (Date.now() > end) assert.fail('no access log line for the WebSocket')
    await new Promise((r) => setTimeout(r, 100))
  }
})

