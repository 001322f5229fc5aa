import { randomBytes } from 'node:crypto'
import http2 from 'node:http2'
import { Duplex } from 'node:stream'
import type { Req } from '../core/types.ts'
import { HEAD_END, parseResponseHead } from '../http/response-head.ts'

/**
 * WebSocket over HTTP/2 (RFC 8441). The listener advertises
 * SETTINGS_ENABLE_CONNECT_PROTOCOL; a browser then opens a WebSocket as a
 * stream of the HTTP/2 connection it already has: an extended CONNECT with
 * `:protocol: websocket`, answered `200`, after which the stream carries
 * WebSocket frames both ways.
 *
 * Handlers that take upgrades (the realtime hub, the proxy's tunnels) speak
 * the HTTP/1.1 handshake (RFC 6455 §4) on a socket. Rather than teach each
 * of them HTTP/2, the stream is handed to them as such a socket: the request
 * they see is the HTTP/1.1 form (GET, `Upgrade: websocket`, a fresh
 * `Sec-WebSocket-Key`, which RFC 8441 §5 leaves out), and the response head
 * they write is turned into the HTTP/2 answer: `101` becomes `200` with the
 * negotiated subprotocol and extensions (`Sec-WebSocket-Accept` is dropped,
 * RFC 8441 §5), any other status is sent as that status with its body.
 * After the head, bytes pass through unchanged.
 */

/** Field names of the handler's 101 that carry over to the HTTP/2 200. */
const CARRIED = new Set(['sec-websocket-protocol', 'sec-websocket-extensions'])
/** HTTP/1.1-only fields that must not appear in an HTTP/2 response (RFC 9113 §8.2.2). */
const CONNECTION_SPECIFIC = new Set(['connection', 'upgrade', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'sec-websocket-accept'])

/** The HTTP/2 stream as the socket an upgrade handler expects. */
export class StreamSocket extends Duplex {
  private readonly stream: http2.ServerHttp2Stream
  private head: Buffer | null = Buffer.alloc(0)
  private written = 0
  readonly encrypted: boolean
  readonly remoteAddress: string | undefined
  readonly remotePort: number | undefined

  constructor(stream: http2.ServerHttp2Stream) {
    super({ allowHalfOpen: true })
    this.stream = stream
    const socket = stream.session?.socket as (http2.Http2Session['socket'] & { encrypted?: boolean }) | undefined
    this.encrypted = socket?.encrypted === true
    this.remoteAddress = socket?.remoteAddress
    this.remotePort = socket?.remotePort
    stream.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) stream.pause()
    })
    stream.on('end', () => this.push(null))
    stream.on('error', (err) => this.destroy(err))
    stream.on('close', () => this.destroy())
  }

  get bytesWritten(): number {
    return this.written
  }

  // what ws and the tunnels call on a net.Socket
  setNoDelay(): this {
    return this
  }
  setKeepAlive(): this {
    return this
  }
  setTimeout(ms: number, cb?: () => void): this {
    this.stream.setTimeout(ms, cb)
    return this
  }

  override _read(): void {
    this.stream.resume()
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.written += chunk.length
    if (this.head === null) return void this.stream.write(chunk, cb)
    // the handler's HTTP/1.1 response head, until its blank line
    this.head = Buffer.concat([this.head, chunk])
    const end = this.head.indexOf(HEAD_END)
    if (end === -1) {
      if (this.head.length > 16 * 1024) return cb(new Error('the upgrade response head is too large'))
      return cb()
    }
    const text = this.head.subarray(0, end).toString('latin1')
    const rest = this.head.subarray(end + 4)
    this.head = null
    // a head that does not parse (no handler of Edgebox writes one) is a 502 with no fields
    const parsed = parseResponseHead(text)
    const status = parsed?.status ?? 502
    const headers: http2.OutgoingHttpHeaders = { ':status': status === 101 ? 200 : status }
    for (const [field, value] of parsed?.fields ?? []) {
      const name = field.toLowerCase()
      if (status === 101 ? CARRIED.has(name) : !CONNECTION_SPECIFIC.has(name) && name !== 'content-length') headers[name] = value
    }
    if (this.stream.destroyed) return cb()
    this.stream.respond(headers)
    if (status !== 101) {
      // a refusal: its body, then the end of the stream; the client's half is
      // not waited for (RST_STREAM NO_ERROR after a complete response, RFC 9113 §8.1)
      this.stream.end(rest, () => {
        if (!this.stream.destroyed) this.stream.close(http2.constants.NGHTTP2_NO_ERROR)
        cb()
      })
      return
    }
    if (rest.length) this.stream.write(rest, cb)
    else cb()
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.stream.destroyed || this.stream.writableEnded) return cb()
    if (this.head !== null) {
      // ended without a response head: nothing was accepted
      this.stream.respond({ ':status': 502 })
    }
    this.stream.end(() => cb())
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.stream.destroyed) this.stream.close(err ? http2.constants.NGHTTP2_INTERNAL_ERROR : http2.constants.NGHTTP2_CANCEL)
    cb(err)
  }
}

/**
 * The HTTP/1.1 form of an extended CONNECT for a WebSocket: the request an
 * upgrade handler expects, with the stream as its socket.
 */
export function websocketRequest(h2: http2.IncomingHttpHeaders, socket: StreamSocket): Req {
  const headers: Record<string, string | string[] | undefined> = {}
  for (const name in h2) if (name.charCodeAt(0) !== 58 /* : */) headers[name] = h2[name]
  headers.host = h2[':authority'] ?? headers.host
  headers.connection = 'Upgrade'
  headers.upgrade = 'websocket'
  // RFC 8441 §5: no key over HTTP/2; the HTTP/1.1 handshake the handler speaks needs one
  headers['sec-websocket-key'] = randomBytes(16).toString('base64')
  headers['sec-websocket-version'] ??= '13'
  return {
    method: 'GET',
    url: h2[':path'] ?? '/',
    headers,
    httpVersion: '2.0',
    httpVersionMajor: 2,
    httpVersionMinor: 0,
    socket,
    connection: socket,
  } as unknown as Req
}
