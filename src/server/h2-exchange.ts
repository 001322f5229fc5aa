import http2 from 'node:http2'
import type { Socket } from 'node:net'
import { Readable } from 'node:stream'
import { httpError } from '../core/errors.ts'
import { H2_CONNECTION, type H2Connection } from '../core/log.ts'
import type { H2Req, H2Res, H2ResponseFields } from '../core/types.ts'
import { h2Fields } from '../http/h2-fields.ts'

/**
 * HTTP/2 requests as the pipeline sees them, on Node's stream API
 * (`Http2Server`'s 'stream' event) rather than its compatibility layer.
 *
 * Node's compatibility layer makes an Http2ServerRequest (a Readable) and an
 * Http2ServerResponse per stream, and adds about ten listeners to the stream
 * for them. Edgebox uses a small part of that API (core/types.ts, H2Req and
 * H2Res), so the listener makes these two plain objects instead: the request
 * is the stream's header block; its body is a Readable made only when a
 * handler reads it; the response writes the head with `stream.respond` and
 * hands listeners to the stream itself. What a stream needs beyond that (an
 * 'error' listener, the session's bookkeeping in ./h2-resets.ts) the
 * listener adds, with functions shared by every stream.
 */

type Headers = http2.IncomingHttpHeaders
type Listener = () => void

/** The request: the header block of one stream (RFC 9113 §8.3), with the connection's socket. */
export class H2Request implements H2Req {
  readonly stream: http2.ServerHttp2Stream
  /** Node's header object: every field, the pseudo-header fields (`:method`, `:path`, ...) included. */
  readonly headers: Headers
  /** The fields as received: [name, value, name, value, ...]. */
  readonly rawHeaders: string[]
  /** The connection (TCP, or TLS): it outlives the stream, so the peer stays known after a reset. */
  readonly socket: Socket
  /** The connection as the access log counts its resets (src/core/log.ts). */
  readonly [H2_CONNECTION]: H2Connection | undefined
  private reader: RequestBody | null = null

  constructor(stream: http2.ServerHttp2Stream, headers: Headers, rawHeaders: string[], socket: Socket, conn?: H2Connection) {
    this.stream = stream
    this.headers = headers
    this.rawHeaders = rawHeaders
    this.socket = socket
    this[H2_CONNECTION] = conn
  }

  get method(): string {
    return this.headers[':method'] ?? 'GET'
  }
  get url(): string {
    return this.headers[':path'] ?? ''
  }
  get httpVersion(): '2.0' {
    return '2.0'
  }
  get httpVersionMajor(): 2 {
    return 2
  }
  get httpVersionMinor(): 0 {
    return 0
  }
  get connection(): Socket {
    return this.socket
  }
  /** The client reset the stream while its half was open. */
  get aborted(): boolean {
    return this.stream.aborted
  }
  /** Nothing more will arrive: no body (END_STREAM on the header block), the body read to its end, or the stream gone. */
  get complete(): boolean {
    const s = this.stream
    return s.endAfterHeaders || s.readableEnded || s.closed || s.destroyed || this.reader?.readableEnded === true
  }

  /**
   * The request body, made on the first call (the same Readable after). It
   * fails with EB_ERR_CLIENT_CLOSED when the stream is reset before the body
   * is complete: by the client (RST_STREAM), or by nghttp2 because the DATA
   * frames disagree with `content-length` (RFC 9113 §8.1.1); a truncated
   * body must never pass for a whole one.
   */
  body(): Readable {
    return (this.reader ??= new RequestBody(this.stream))
  }
}

const BODY = Symbol('edgebox.h2Body')
type BodyStream = http2.ServerHttp2Stream & { [BODY]?: RequestBody }

function wasReset(stream: http2.ServerHttp2Stream): boolean {
  // rstCode is set once the stream is closed: 0 (NO_ERROR) for a normal close, the reset's code otherwise
  return stream.rstCode !== undefined && stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR
}

function resetError(stream: http2.ServerHttp2Stream): Error {
  return httpError('EB_ERR_CLIENT_CLOSED', `the request stream was reset (HTTP/2 error code ${stream.rstCode ?? 'unknown'}) before its body was complete`)
}

// One function of each for every body (the body is found on its stream: no closure per request).
function bodyData(this: BodyStream, chunk: Buffer): void {
  const body = this[BODY]
  if (body !== undefined && !body.push(chunk)) this.pause()
}
function bodyEnd(this: BodyStream): void {
  const body = this[BODY]
  if (body === undefined) return
  if (wasReset(this)) body.destroy(resetError(this))
  else body.push(null)
}
function bodyClose(this: BodyStream): void {
  const body = this[BODY]
  // closed before the body's end: reset by the client or by nghttp2, or cut by the server
  if (body !== undefined && !body.readableEnded && !body.destroyed) body.destroy(resetError(this))
}

/** The request body: the stream's DATA frames, with flow control (a full buffer pauses the stream). */
class RequestBody extends Readable {
  private readonly stream: BodyStream

  constructor(stream: BodyStream) {
    super()
    this.stream = stream
    if (wasReset(stream) || stream.destroyed) {
      this.destroy(resetError(stream))
      return
    }
    stream[BODY] = this
    stream.on('data', bodyData)
    stream.on('end', bodyEnd)
    stream.on('close', bodyClose)
  }

  override _read(): void {
    this.stream.resume()
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const stream = this.stream
    if (stream[BODY] === this) {
      stream[BODY] = undefined
      stream.off('data', bodyData)
      stream.off('end', bodyEnd)
      stream.off('close', bodyClose)
      // A body given up (413, an error downstream): what still comes is read and dropped, so the
      // stream can end and close (Node closes a stream only once its readable side has ended).
      if (!stream.destroyed) stream.resume()
    }
    cb(err)
  }
}

/**
 * A head with a body to come: the body's end is sent as an empty trailer
 * block (an empty DATA frame with END_STREAM) once Node has written the last
 * DATA, as the compatibility layer does. Ending the stream with the last DATA
 * frame instead lets a client that has sent its whole request close the
 * stream before the writable side reports 'finish', and a complete response
 * would then look cut short (core/respond.ts reads `writableFinished` at close).
 */
const MORE_TO_COME: http2.ServerStreamResponseOptions = Object.freeze({ endStream: false, waitForTrailers: true })
const NO_TRAILERS = Object.freeze({})

function sendNoTrailers(this: http2.ServerHttp2Stream): void {
  if (!this.destroyed && !this.closed) this.sendTrailers(NO_TRAILERS)
}
const END_STREAM: http2.ServerStreamResponseOptions = Object.freeze({ endStream: true })

/** Node's check of a Link value for 103 Early Hints (RFC 8288 §3): `<uri>` then `; param` or `; param=value`. */
const LINK_VALUE = /^(?:<[^>\r\n]*>)(?:\s*;\s*[^;"\s]+(?:=(")?[^;"\s]*\1)?)*$/

function linkValue(link: string | readonly string[] | undefined): string {
  const values = typeof link === 'string' ? [link] : (link ?? null)
  if (values === null) throw new TypeError('103 Early Hints need a link value')
  for (const v of values) if (typeof v !== 'string' || !LINK_VALUE.test(v)) throw new TypeError(`not a Link value: ${JSON.stringify(v)}`)
  return values.join(', ')
}

function headersSentError(): Error {
  return Object.assign(new Error('Response has already been initiated.'), { code: 'ERR_HTTP2_HEADERS_SENT' })
}

/**
 * The response: a head (`writeHead`, once) and a body (`write`, `end`) on
 * the stream, and the stream's own events ('close', 'finish', 'drain',
 * 'error') for whoever listens. The hot path of small answers
 * (core/respond.ts `sendComplete`) calls `stream.respond` itself.
 */
export class H2Response implements H2Res {
  readonly stream: http2.ServerHttp2Stream
  /** The status of the head written (or to be written by a `write` or `end` before `writeHead`). */
  statusCode = 200
  private ended = false

  constructor(stream: http2.ServerHttp2Stream) {
    this.stream = stream
  }

  get headersSent(): boolean {
    return this.stream.headersSent
  }
  get destroyed(): boolean {
    return this.stream.destroyed
  }
  /** `end()` was called, or the head and body went out on the stream directly. */
  get writableEnded(): boolean {
    return this.ended || (this.stream.headersSent && this.stream.writableEnded)
  }
  get writableFinished(): boolean {
    return this.stream.writableFinished
  }
  get writableLength(): number {
    return this.stream.writableLength
  }
  get writableNeedDrain(): boolean {
    return this.stream.writableNeedDrain
  }

  writeHead(status: number, headers?: H2ResponseFields): this {
    const stream = this.stream
    if (stream.destroyed || stream.closed) return this
    if (stream.headersSent) throw headersSentError()
    this.statusCode = status
    stream.on('wantTrailers', sendNoTrailers)
    stream.respond(h2Fields(status, headers), MORE_TO_COME)
    return this
  }

  write(chunk: Buffer | string, cb?: (err?: Error | null) => void): boolean
  write(chunk: Buffer | string, encoding: BufferEncoding, cb?: (err?: Error | null) => void): boolean
  write(chunk: Buffer | string, encoding?: BufferEncoding | ((err?: Error | null) => void), cb?: (err?: Error | null) => void): boolean {
    const stream = this.stream
    if (!stream.headersSent && !stream.destroyed && !stream.closed) this.writeHead(this.statusCode)
    if (typeof encoding === 'function') return stream.write(chunk, encoding)
    if (encoding === undefined) return stream.write(chunk, cb)
    return stream.write(chunk, encoding, cb)
  }

  end(cb?: () => void): this
  end(chunk: Buffer | string, cb?: () => void): this
  end(chunk: Buffer | string, encoding: BufferEncoding, cb?: () => void): this
  end(chunkOrCb?: Buffer | string | (() => void), encodingOrCb?: BufferEncoding | (() => void), cb?: () => void): this {
    let chunk: Buffer | string | undefined
    let encoding: BufferEncoding | undefined
    if (typeof chunkOrCb === 'function') cb = chunkOrCb
    else {
      chunk = chunkOrCb
      if (typeof encodingOrCb === 'function') cb = encodingOrCb
      else encoding = encodingOrCb
    }
    const stream = this.stream
    if (this.ended || stream.destroyed || stream.closed) {
      if (cb) process.nextTick(cb)
      return this
    }
    this.ended = true
    if (!stream.headersSent) {
      // no body: the head ends the stream (one HEADERS frame with END_STREAM)
      if (chunk === undefined || chunk.length === 0) {
        stream.respond(h2Fields(this.statusCode, undefined), END_STREAM)
        if (cb) stream.once('finish', cb)
        return this
      }
      this.writeHead(this.statusCode)
    }
    // HEAD, 204, 304: Node ended the stream with the head; a body would be a write after end
    if (chunk === undefined || stream.writableEnded) stream.end(cb)
    else if (encoding !== undefined) stream.end(chunk, encoding, cb)
    else stream.end(chunk, cb)
    return this
  }

  destroy(err?: Error): void {
    this.stream.destroy(err)
  }

  /** 100 Continue (RFC 9110 §15.2.1) as an informational HEADERS frame (RFC 9113 §8.1). */
  writeContinue(): void {
    const stream = this.stream
    if (stream.headersSent || stream.destroyed || stream.closed) return
    stream.additionalHeaders({ ':status': 100 })
  }

  /** 103 Early Hints (RFC 8297); false when there is no Link to send. */
  writeEarlyHints(hints: Record<string, string | readonly string[]>): boolean {
    const link = linkValue(hints.link)
    const stream = this.stream
    if (link === '' || stream.headersSent || stream.destroyed || stream.closed) return false
    const fields: http2.OutgoingHttpHeaders = { ':status': 103 }
    for (const name in hints) if (name !== 'link') fields[name.trim().toLowerCase()] = hints[name] as string | string[]
    fields.link = link
    stream.additionalHeaders(fields)
    return true
  }

  // The response's events are its stream's: 'close' (the stream closed, complete or reset), 'finish'
  // (the response handed to the connection), 'drain', 'error'.
  on(event: string, listener: Listener): this {
    this.stream.on(event, listener)
    return this
  }
  once(event: string, listener: Listener): this {
    this.stream.once(event, listener)
    return this
  }
  prependListener(event: string, listener: Listener): this {
    this.stream.prependListener(event, listener)
    return this
  }
  off(event: string, listener: Listener): this {
    this.stream.off(event, listener)
    return this
  }
  removeListener(event: string, listener: Listener): this {
    this.stream.removeListener(event, listener)
    return this
  }
  emit(event: string, ...args: unknown[]): boolean {
    return this.stream.emit(event, ...args)
  }
  listenerCount(event: string): number {
    return this.stream.listenerCount(event)
  }
}
