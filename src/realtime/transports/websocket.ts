import { randomBytes } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocket, WebSocketServer } from 'ws'
import { jsonDepthProblem, MAX_JSON_DEPTH } from '../../http/json-limits.ts'
import type { Message } from '../engine.ts'
import { HubError, type Direct, type Grant, type Hub } from '../hub.ts'
import type { Timer } from '../../core/clock.ts'

/**
 * WebSocket (RFC 6455) with the `ws` library: subprotocol `edgebox.v1`, one
 * connection carrying any number of subscriptions, envelopes as text frames
 * (docs/realtime.md). The server pings every `heartbeat` ms and drops a
 * connection that did not answer the previous ping; `{"t":"ping"}` from the
 * client is answered `{"t":"pong"}`. A client whose unsent data passes
 * `maxBuffered` is closed with 1013 (a slow consumer may not grow the
 * server's memory); an oversized frame closes with 1009, one that is not a
 * JSON envelope, or nests deeper than MAX_JSON_DEPTH, with 1007.
 */

export const SUBPROTOCOL = 'edgebox.v1'

/** A name for a connection without a token, for presence. */
export function anonymous(): string {
  return `anon-${randomBytes(4).toString('hex')}`
}

function noop(): void {}

export interface WebSocketOptions {
  readonly heartbeat: number
  readonly maxBuffered: number
  readonly maxMessageSize: number
}

/**
 * A server-to-client text frame (RFC 6455 §5.2: FIN, opcode 1, unmasked,
 * 7-bit, 16-bit or 64-bit payload length) around a UTF-8 payload.
 */
export function textFrame(payload: Buffer): Buffer {
  const n = payload.length
  const head = n < 126 ? 2 : n < 65536 ? 4 : 10
  const frame = Buffer.allocUnsafe(head + n)
  frame[0] = 0x81
  if (n < 126) frame[1] = n
  else if (n < 65536) {
    frame[1] = 126
    frame.writeUInt16BE(n, 2)
  } else {
    frame[1] = 127
    frame.writeUInt32BE(Math.floor(n / 2 ** 32), 2)
    frame.writeUInt32BE(n >>> 0, 6)
  }
  payload.copy(frame, head)
  return frame
}

/**
 * Each message's whole frame, made once and written as is to every
 * connection that gets it (the last message first: a fan-out asks for the
 * same one a thousand times in a row).
 */
const frames = new WeakMap<Message, Buffer>()
let lastMessage: Message | undefined
let lastFrame: Buffer | undefined
function frameOf(json: string, m: Message): Buffer {
  if (m === lastMessage) return lastFrame!
  let f = frames.get(m)
  if (!f) frames.set(m, (f = textFrame(Buffer.from(json))))
  lastMessage = m
  lastFrame = f
  return f
}

/** The parts of a `ws` connection the shared-frame path writes through (compression is off, so ws never queues). */
interface WsInternals {
  _socket: { write(b: Buffer): boolean; readonly writableLength: number } | null
  _sender: { _state: number; _queue: unknown[] } | null
}

interface Session {
  readonly ws: WebSocket
  /** The name presence shows: the token's subject, or an anonymous name for this connection. */
  readonly who: string
  readonly subs: Map<string, (() => void) | null>
  alive: boolean
  closed: boolean
  /** Unregisters the session from the hub's shutdown list. */
  release: () => void
  /** How the channels' fan-out writes live messages to this connection (see Direct), when ws exposes its socket. */
  readonly direct: Direct | undefined
}

export class WebSocketTransport {
  private readonly wss: WebSocketServer
  private readonly sessions = new Set<Session>()
  private readonly timer: Timer
  private readonly hub: Hub
  private readonly opts: WebSocketOptions

  constructor(hub: Hub, opts: WebSocketOptions) {
    this.hub = hub
    this.opts = opts
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      // room for the envelope around the largest message
      maxPayload: opts.maxMessageSize + 1024,
      handleProtocols: (offered) => (offered.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
    })
    this.timer = hub.clock.setInterval(() => this.beat(), opts.heartbeat)
    this.timer.unref()
  }

  /** Completes the handshake (ws checks Sec-WebSocket-Key and answers 400 to a bad one) and starts a session. */
  accept(req: IncomingMessage, socket: Duplex, head: Buffer, grant: (Grant & { expires?: number | undefined }) | undefined): void {
    this.wss.handleUpgrade(req, socket, head, (ws) => this.session(ws, grant))
  }

  get connections(): number {
    return this.sessions.size
  }

  private session(ws: WebSocket, grant: (Grant & { expires?: number | undefined }) | undefined): void {
    // The fan-out writes each message's shared frame straight to the socket: ws's sender would queue only while
    // compressing (perMessageDeflate is off) or reading a Blob (never sent here), so frames cannot interleave.
    const socket = (ws as unknown as WsInternals)._socket
    const direct: Direct | undefined = socket ? { socket, conn: ws, limit: this.opts.maxBuffered, frame: frameOf } : undefined
    const s: Session = { ws, who: grant?.user ?? anonymous(), subs: new Map(), alive: true, closed: false, release: noop, direct }
    this.sessions.add(s)
    // Shutdown: 1001 (going away, RFC 6455 §7.4.1) tells the client to reconnect; the closing handshake then ends the connection.
    s.release = this.hub.hold(() => ws.close(1001, 'server shutting down'))
    if (grant?.expires !== undefined) {
      // What the token allowed ends with it: the client reconnects with a new one.
      const clock = this.hub.clock
      const t = clock.setTimeout(() => ws.close(1008, 'token expired'), Math.max(0, grant.expires - clock.now()))
      t.unref()
      ws.once('close', () => clock.clearTimeout(t))
    }
    ws.on('pong', () => (s.alive = true))
    ws.on('message', (data, isBinary) => {
      if (isBinary) return ws.close(1003, 'frames are JSON text')
      let env: { t?: unknown; ch?: unknown; e?: unknown; o?: unknown; d?: unknown; id?: unknown }
      const text = data.toString()
      // Refused before parsing, as invalid payload data (RFC 6455 §7.4.1): a deep value would overflow the stack when measured and stored.
      const tooDeep = jsonDepthProblem(text, MAX_JSON_DEPTH)
      if (tooDeep) return ws.close(1007, tooDeep)
      try {
        env = JSON.parse(text) as typeof env
        if (typeof env !== 'object' || env === null || typeof env.t !== 'string') throw new Error('not an envelope')
      } catch {
        return ws.close(1007, 'not a JSON envelope')
      }
      void this.onEnvelope(s, env, grant).catch((err: unknown) => {
        if (err instanceof HubError) return this.send(s, JSON.stringify(err.envelope(typeof env.id === 'string' ? env.id : undefined)))
        this.send(s, JSON.stringify({ t: 'err', code: 'bad-request', msg: (err as Error).message }))
      })
    })
    ws.on('close', () => this.end(s))
    ws.on('error', () => this.end(s)) // 1009 / 1007 from the parser: ws closes the connection itself
  }

  private async onEnvelope(s: Session, env: { t?: unknown; ch?: unknown; e?: unknown; o?: unknown; d?: unknown; id?: unknown }, grant: Grant | undefined): Promise<void> {
    switch (env.t) {
      case 'ping':
        return this.send(s, '{"t":"pong"}')
      case 'sub': {
        const ch = String(env.ch)
        const rule = this.hub.checkSubscribe(ch, grant)
        if (s.subs.has(ch)) return
        let after
        if (env.e !== undefined || env.o !== undefined) {
          if (typeof env.e !== 'string' || typeof env.o !== 'number' || !Number.isInteger(env.o) || env.o < 0) throw new HubError('bad-request', 'a position is "e" (the epoch) and "o" (an offset)', ch)
          after = { e: env.e, o: env.o }
        }
        s.subs.set(ch, null) // taken: a second `sub` while this one starts is ignored
        const stop = await this.hub.follow(ch, after, rule, (json, _p, m) => this.send(s, json, m), s.who, s.direct)
        if (s.closed || !s.subs.has(ch)) return stop()
        s.subs.set(ch, stop)
        return
      }
      case 'unsub': {
        const ch = String(env.ch)
        const stop = s.subs.get(ch)
        s.subs.delete(ch)
        stop?.()
        return
      }
      case 'presence': {
        const ch = String(env.ch)
        return this.send(s, JSON.stringify({ t: 'presence', ch, members: await this.hub.members(ch, grant) }))
      }
      case 'pub': {
        const ch = String(env.ch)
        const id = env.id === undefined ? undefined : String(env.id)
        const m = await this.hub.publish(ch, env.d, id, grant, 'client')
        const ack: Record<string, unknown> = { t: 'ack', ch, e: m.e, o: m.o }
        if (id !== undefined) ack.ref = id
        return this.send(s, JSON.stringify(ack))
      }
      default:
        throw new HubError('bad-request', `unknown envelope type ${JSON.stringify(env.t)}`)
    }
  }

  private send(s: Session, json: string, m?: Message): void {
    if (s.closed) return
    const ws = s.ws
    if (ws.readyState !== WebSocket.OPEN) return
    const internals = ws as unknown as WsInternals
    // Unsent bytes: the socket's own queue (ws's sender queues nothing with compression off).
    const buffered = internals._socket ? internals._socket.writableLength : ws.bufferedAmount
    if (buffered > this.opts.maxBuffered) {
      s.closed = true
      ws.close(1013, 'send buffer full: the client is not reading (slow consumer)')
      // The close frame may never get through a full buffer: cut the connection shortly after.
      this.hub.clock.setTimeout(() => ws.terminate(), 1000).unref()
      this.end(s)
      return
    }
    // A message's frame is shared by every recipient: one write each, no per-client framing.
    // Only while ws's sender is idle (state DEFAULT, nothing queued), so frames never interleave.
    if (m && internals._socket && internals._sender && internals._sender._state === 0 && internals._sender._queue.length === 0) internals._socket.write(frameOf(json, m))
    else ws.send(json)
  }

  private end(s: Session): void {
    s.closed = true
    s.release()
    for (const stop of s.subs.values()) stop?.()
    s.subs.clear()
    this.sessions.delete(s)
  }

  /** One timer for every connection: ping, and drop those that did not answer the previous ping. */
  private beat(): void {
    for (const s of this.sessions) {
      if (!s.alive) {
        s.ws.terminate()
        this.end(s)
        continue
      }
      s.alive = false
      s.ws.ping()
    }
  }

  /** Closes every connection (1001, going away) and stops the heartbeat. */
  close(): void {
    this.hub.clock.clearInterval(this.timer)
    for (const s of this.sessions) {
      s.ws.close(1001, 'server shutting down')
      this.end(s)
    }
    this.wss.close()
  }
}
