import { randomBytes } from 'node:crypto'
import http from 'node:http'
import http2 from 'node:http2'
import WebSocket from 'ws'

/**
 * Realtime clients that report how their exchange ended, for the shutdown
 * tests (docs/realtime.md, "Shutdown"): a WebSocket's close code, whether
 * an SSE stream ended cleanly (the whole body, as an EventSource needs to
 * reconnect) or was cut, and a held long poll's answer. Over HTTP/1.1 the
 * connections are kept alive, as browsers keep them; over h2c many
 * exchanges share a few sessions, and WebSockets use extended CONNECT
 * (RFC 8441). Each `ready` resolves once the hub has confirmed the
 * subscription; every wait is bounded.
 */

export interface Exchange<T> {
  /** The subscription is in place (the `sub` envelope arrived). */
  readonly ready: Promise<void>
  /** How the exchange ended. */
  readonly outcome: Promise<T>
}

export type StreamEnd = 'ended' | 'cut'

function bounded<T>(p: Promise<T>, what: string, ms = 5000): Promise<T> {
  let timer: NodeJS.Timeout
  const t = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms)))
  return Promise.race([p, t]).finally(() => clearTimeout(timer))
}

/** A WebSocket over HTTP/1.1 subscribed to `ch`: its outcome is the close code it got. */
export function wsH1(base: string, ch: string): Exchange<number> {
  const ws = new WebSocket(`${base.replace(/^http/, 'ws')}live/ws`, ['edgebox.v1'])
  ws.on('error', () => {})
  const outcome = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)))
  const ready = new Promise<void>((resolve) => {
    ws.once('open', () => ws.send(JSON.stringify({ t: 'sub', ch })))
    ws.on('message', (d) => {
      if ((JSON.parse(d.toString()) as { t: string }).t === 'sub') resolve()
    })
  })
  return { ready: bounded(ready, 'WebSocket subscription'), outcome }
}

/** An SSE stream over a kept-alive HTTP/1.1 connection: `ended` when its body ended cleanly, `cut` when the connection closed first. */
export function sseH1(base: string, ch: string, agent: http.Agent): Exchange<StreamEnd> {
  let ready!: Promise<void>
  const outcome = new Promise<StreamEnd>((resolve, reject) => {
    ready = new Promise<void>((onReady) => {
      const req = http.get(`${base}live/sse?ch=${ch}`, { agent }, (res) => {
        let text = ''
        res.on('data', (c: Buffer) => {
          text += c.toString()
          if (text.includes('"t":"sub"')) onReady()
        })
        res.on('error', () => {})
        res.on('close', () => resolve(res.complete ? 'ended' : 'cut'))
      })
      req.on('error', reject)
    })
  })
  return { ready: bounded(ready, 'SSE subscription'), outcome }
}

export interface PollAnswer {
  status: number
  body: string
}

/** A long poll over HTTP/1.1 from a position the channel has reached (so it is held). */
export function pollH1(base: string, query: string, agent: http.Agent): Promise<PollAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${base}live/poll?${query}`, { agent }, (res) => {
      let body = ''
      res.on('data', (c: Buffer) => (body += c.toString()))
      res.on('end', () => resolve({ status: res.statusCode!, body }))
      res.on('error', reject)
    })
    req.on('error', reject)
  })
}

/** An h2c session whose settings have arrived (extended CONNECT needs them). */
export function h2Session(base: string): Promise<http2.ClientHttp2Session> {
  return bounded(
    new Promise((resolve, reject) => {
      const s = http2.connect(base)
      s.once('remoteSettings', () => resolve(s))
      s.once('error', reject)
    }),
    'h2c session',
  )
}

/** An SSE stream on an h2c session: `ended` when the stream ended with END_STREAM and no reset. */
export function sseH2(session: http2.ClientHttp2Session, ch: string): Exchange<StreamEnd> {
  const stream = session.request({ ':path': `/live/sse?ch=${ch}` })
  let text = ''
  let ended = false
  const ready = new Promise<void>((resolve) => {
    stream.on('data', (c: Buffer) => {
      text += c.toString()
      if (text.includes('"t":"sub"')) resolve()
    })
  })
  stream.on('end', () => (ended = true))
  stream.on('error', () => {})
  const outcome = new Promise<StreamEnd>((resolve) => stream.on('close', () => resolve(ended && stream.rstCode === http2.constants.NGHTTP2_NO_ERROR ? 'ended' : 'cut')))
  return { ready: bounded(ready, 'SSE subscription (h2c)'), outcome }
}

/** A long poll on an h2c session. */
export function pollH2(session: http2.ClientHttp2Session, query: string): Promise<PollAnswer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': `/live/poll?${query}` })
    let status = 0
    let body = ''
    stream.on('response', (h) => (status = Number(h[':status'])))
    stream.on('data', (c: Buffer) => (body += c.toString()))
    stream.on('end', () => resolve({ status, body }))
    stream.on('error', reject)
  })
}

/** A client frame (masked, RFC 6455 §5.3). */
function clientFrame(opcode: number, payload: Buffer): Buffer {
  const mask = randomBytes(4)
  const body = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!))
  return Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | payload.length]), mask, body])
}

/**
 * A WebSocket over an h2c stream (RFC 8441) subscribed to `ch`: its outcome
 * is the code of the server's close frame (RFC 6455 §5.5.1), answered with
 * the client's own close frame as the closing handshake asks.
 */
export function wsH2(session: http2.ClientHttp2Session, ch: string): Exchange<number> {
  const stream = session.request({ ':method': 'CONNECT', ':protocol': 'websocket', ':path': '/live/ws', 'sec-websocket-version': '13', 'sec-websocket-protocol': 'edgebox.v1' }, { endStream: false })
  stream.on('error', () => {})
  stream.once('response', () => stream.write(clientFrame(0x1, Buffer.from(JSON.stringify({ t: 'sub', ch })))))
  let buf = Buffer.alloc(0)
  let onSub: () => void = () => {}
  const ready = new Promise<void>((r) => (onSub = r))
  const outcome = new Promise<number>((resolve) => {
    stream.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk])
      for (;;) {
        if (buf.length < 2) return
        let len = buf[1]! & 0x7f
        let off = 2
        if (len === 126) {
          if (buf.length < 4) return
          len = buf.readUInt16BE(2)
          off = 4
        }
        if (buf.length < off + len) return
        const opcode = buf[0]! & 0x0f
        const payload = buf.subarray(off, off + len)
        buf = buf.subarray(off + len)
        if (opcode === 0x1 && payload.toString().startsWith('{"t":"sub"')) onSub()
        if (opcode === 0x8) {
          stream.end(clientFrame(0x8, payload.subarray(0, 2)))
          resolve(payload.length >= 2 ? payload.readUInt16BE(0) : 1005)
        }
      }
    })
    stream.on('close', () => resolve(1006))
  })
  return { ready: bounded(ready, 'WebSocket subscription (h2c)'), outcome }
}
