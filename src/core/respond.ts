import http2 from 'node:http2'
import { read } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { STATUS_CODES, type ServerResponse } from 'node:http'
import { EdgeboxError } from './errors.ts'
import { headerKey } from '../http/header-map.ts'
import { h2Fields } from '../http/h2-fields.ts'
import type { Context, Headers } from './context.ts'
import type { BodySource } from './types.ts'

/**
 * The ways a request is answered, behind `ctx.send`, `ctx.stream`,
 * `ctx.relay`, `ctx.sendFile` and `ctx.fail`: response filters, the
 * Set-Cookie merge, the body envelope (JSONP), HEAD, byte counting, idle
 * timers, and telling a finished response from one the client abandoned
 * (499), in one place whatever the protocol. Plain functions of the
 * Context, so the hot path (`sendComplete`) costs one direct call and no
 * object of its own.
 */

/** Marks the response as done (once) and runs the finish hook: the access log. */
function finish(ctx: Context): void {
  if (ctx.done) return
  ctx.done = true
  ctx.hooks.finished(ctx)
}

/** The client has gone: its connection closed, or (HTTP/2) it reset the stream. */
function clientGone(ctx: Context): boolean {
  const stream = (ctx.res as { stream?: http2.ServerHttp2Stream }).stream
  if (stream !== undefined) return stream.destroyed || stream.closed
  return ctx.req.socket?.destroyed === true
}

/** Nothing was sent: the client left before the answer (logged as 499, as nginx does). */
function abandoned(ctx: Context): void {
  ctx.status = 499
  ctx.bytes = 0
  finish(ctx)
}

/**
 * The response has closed, complete or not. One the client cut short (a
 * connection closed mid-response, an HTTP/2 RST_STREAM) is logged as 499
 * with the bytes it had taken; one the server cut (an error) keeps its status.
 */
function closed(ctx: Context): void {
  if (ctx.error === undefined) {
    const stream = (ctx.res as { stream?: http2.ServerHttp2Stream }).stream
    // HTTP/2: a stream closed with NO_ERROR after both sides sent END_STREAM (RFC 9113 §5.1) was
    // answered in full, even when the client closed it before Node reported the response finished
    const complete = stream !== undefined ? stream.writableFinished || (stream.writableEnded && stream.rstCode === http2.constants.NGHTTP2_NO_ERROR) : (ctx.res as ServerResponse).writableFinished
    if (!complete) {
      // HTTP/2: what the stream still held was never sent
      ctx.bytes = Math.max(0, ctx.bytes - (stream?.writableLength ?? 0))
      ctx.status = 499
    }
  }
  finish(ctx)
}

type H2Stream = http2.ServerHttp2Stream & { [STREAM_CONTEXT]?: Context }

/** The Context a stream answered by `sendComplete` belongs to. */
const STREAM_CONTEXT = Symbol('edgebox.context')
const END_STREAM: http2.ServerStreamResponseOptions = Object.freeze({ endStream: true })
const MORE_TO_COME: http2.ServerStreamResponseOptions = Object.freeze({ endStream: false })

function streamClosed(this: H2Stream): void {
  const ctx = this[STREAM_CONTEXT]
  if (ctx !== undefined) closed(ctx)
}

function applyFilters(ctx: Context, status: number, headers: Headers): void {
  ctx.status = status
  const filters = ctx.route?.filters ?? ctx.site?.filters ?? ctx.hooks.filters
  for (let i = 0; i < filters.length; i++) filters[i]!(ctx, headers)
  if (ctx.setCookies) {
    // Cookies Edgebox sets itself (the CSRF token) join any the handler or upstream set.
    const key = headerKey(headers, 'set-cookie')
    const current = key === undefined ? [] : ([] as string[]).concat(headers[key] as string | string[])
    if (key !== undefined) delete headers[key]
    headers['set-cookie'] = [...current, ...ctx.setCookies]
  }
  // RFC 9110 §10.1.1: a final response sent before the announced body was
  // read leaves the connection out of sync; close it (HTTP/1.x only).
  if (ctx.bodyUnread) {
    const res = ctx.res
    if ('shouldKeepAlive' in res) res.shouldKeepAlive = false
    // HTTP/2: end the stream once the response is out, or the client's
    // half stays open (RFC 9113 §8.1 allows RST_STREAM with NO_ERROR).
    else res.once('finish', () => res.stream.close(http2.constants.NGHTTP2_NO_ERROR))
  }
}

/**
 * Sends a complete response. HEAD gets the same headers and no body.
 * A `latin1` string body is sent byte for byte (one char per byte): Node
 * then writes head and body in one write call instead of two.
 */
export function sendComplete(ctx: Context, status: number, headers: Headers, body?: Buffer | string, encoding?: 'latin1'): void {
  const res = ctx.res
  if (clientGone(ctx)) return abandoned(ctx)
  if (body !== undefined) {
    const len = typeof body !== 'string' || encoding === 'latin1' ? body.length : Buffer.byteLength(body)
    headers['Content-Length'] = len
    if (!ctx.isHead) ctx.bytes = len
  }
  applyFilters(ctx, status, headers)
  const envelope = ctx.envelope
  if (envelope && body !== undefined) {
    body = Buffer.concat([envelope.prefix, typeof body === 'string' ? Buffer.from(body, encoding ?? 'utf8') : body, envelope.suffix])
    encoding = undefined
    if (!ctx.isHead) ctx.bytes = body.length
  }
  const stream = (res as { stream?: H2Stream }).stream
  if (stream !== undefined && !stream.headersSent && !stream.destroyed) {
    // HTTP/2: one call to the stream instead of the compatibility layer's
    // writeHead, setHeader per field and end (the hot path for small answers).
    // The flat [name, value, ...] form: Node copies a header object into one
    // of its own first, and lower-cases and checks the names either way.
    const fields = h2Fields(status, headers)
    if (body === undefined || ctx.isHead) stream.respond(fields, END_STREAM)
    else {
      stream.respond(fields, MORE_TO_COME)
      // a latin1 string is written as it is (Http2Stream does not decode strings)
      if (encoding) stream.end(body, encoding)
      else stream.end(body)
    }
    // logged when the stream closes: a client may reset it before the answer is out
    // (one shared listener, the Context kept on the stream: no closure per request)
    stream[STREAM_CONTEXT] = ctx
    stream.on('close', streamClosed)
    return
  }
  ;(res as ServerResponse).writeHead(status, headers)
  if (body === undefined || ctx.isHead) res.end()
  else if (encoding) (res as ServerResponse).end(body, encoding)
  else res.end(body)
  // Handed to the kernel whole: done. Still buffered (a large body, a slow
  // client): whether it completes is known when the response closes.
  const socket = (res as ServerResponse).socket
  if (socket && socket.writableLength > 0) res.once('close', () => closed(ctx))
  else finish(ctx)
}

/**
 * Sends headers, then pipes `source` to the client. If the client goes
 * away, the source is destroyed (its file descriptor closed) at once.
 */
export function sendStream(ctx: Context, status: number, headers: Headers, source: Readable): void {
  const res = ctx.res
  applyFilters(ctx, status, headers)
  const envelope = ctx.envelope
  if (envelope) {
    const inner = source
    source = Readable.from(
      (async function* () {
        yield envelope.prefix
        for await (const chunk of inner) yield chunk as Buffer
        yield envelope.suffix
      })(),
      { objectMode: false },
    )
    source.once('close', () => inner.destroy())
  }
  ;(res as ServerResponse).writeHead(status, headers)
  if (ctx.isHead) {
    source.once('error', () => {}) // a destroyed source may report its own abort
    source.destroy()
    res.end()
    finish(ctx)
    return
  }
  source.on('data', (chunk: Buffer) => {
    ctx.bytes += chunk.length
  })
  source.on('error', (err) => {
    ctx.error = err
    res.destroy()
  })
  untilClosed(ctx, () => {
    if (!source.destroyed) source.destroy()
  })
  source.pipe(res as NodeJS.WritableStream)
}

/**
 * Sends headers, then the chunks `source` pushes, with backpressure: a
 * write the socket cannot take at once pauses the source until 'drain'.
 * A source that fails mid-body cuts the connection (the client must not
 * take a truncated body for a whole one); a client that leaves destroys
 * the source.
 */
export function sendRelay(ctx: Context, status: number, headers: Headers, source: BodySource): void {
  const res = ctx.res as ServerResponse
  applyFilters(ctx, status, headers)
  const envelope = ctx.envelope
  if (envelope) {
    const inner = source
    source = {
      attach: (sink) =>
        inner.attach({
          data: (c) => sink.data(c),
          end: () => {
            sink.data(envelope.suffix)
            sink.end()
          },
          error: (err) => sink.error(err),
        }),
      resume: () => inner.resume(),
      destroy: (err) => inner.destroy(err),
    }
  }
  res.writeHead(status, headers)
  if (ctx.isHead) {
    source.destroy()
    res.end()
    finish(ctx)
    return
  }
  untilClosed(ctx, () => source.destroy())
  if (envelope) {
    ctx.bytes += envelope.prefix.length
    res.write(envelope.prefix)
  }
  // One pending 'drain' listener at most: a source that keeps pushing while
  // blocked (an event stream) would otherwise add one per refused write.
  let blocked = false
  const resume = () => {
    blocked = false
    source.resume()
  }
  source.attach({
    data: (chunk) => {
      ctx.bytes += chunk.length
      if (res.write(chunk)) return true
      if (!blocked) {
        blocked = true
        res.once('drain', resume)
      }
      return false
    },
    end: () => res.end(),
    error: (err) => {
      ctx.error = err
      res.destroy()
    },
  })
}

/**
 * Sends headers, then bytes `start..end` (inclusive) of an open file, read
 * in `chunk`-sized pieces with the callback API (less overhead per chunk
 * than a stream) and written with backpressure. The file is closed when the
 * range is sent or the client goes away, whichever comes first.
 */
export function sendFileRange(ctx: Context, status: number, headers: Headers, file: FileHandle, start: number, end: number, chunk: number): void {
  const res = ctx.res
  applyFilters(ctx, status, headers)
  const envelope = ctx.envelope
  ;(res as ServerResponse).writeHead(status, headers)
  let fileClosed = false
  const close = () => {
    if (fileClosed) return
    fileClosed = true
    file.close().catch(() => {})
  }
  untilClosed(ctx, close)
  if (ctx.isHead || end < start) {
    close()
    res.end()
    return
  }
  const fd = file.fd
  // One buffer per response, reused: the next read starts only once the
  // previous chunk has been handed to the kernel (the write callback), which
  // is also the backpressure. A fresh buffer per chunk costs more in GC
  // than the copy itself.
  const buf = Buffer.allocUnsafeSlow(Math.min(chunk, end - start + 1))
  let pos = start
  if (envelope) (res as ServerResponse).write(envelope.prefix)
  const next = (): void => {
    if (fileClosed) return
    const n = Math.min(buf.length, end - pos + 1)
    read(fd, buf, 0, n, pos, (err, got) => {
      if (fileClosed) return
      if (err || got === 0) {
        ctx.error = err ?? new Error(`file ended early at byte ${pos}`)
        close()
        res.destroy()
        return
      }
      pos += got
      ctx.bytes += got
      if (pos <= end) {
        ;(res as ServerResponse).write(got === buf.length ? buf : buf.subarray(0, got), written)
      } else {
        close()
        if (envelope) {
          ;(res as ServerResponse).write(buf.subarray(0, got))
          ;(res as ServerResponse).end(envelope.suffix)
        } else (res as ServerResponse).end(buf.subarray(0, got))
      }
    })
  }
  const written = (err?: Error | null): void => {
    if (!err) next()
  }
  next()
}

/**
 * For streamed responses: arms the idle timer (a client that stops reading
 * must not hold a file and a connection forever) and runs `cleanup`, then
 * the access log, once the response is complete or the client has gone.
 */
function untilClosed(ctx: Context, cleanup: () => void): void {
  const res = ctx.res
  // The log line is written when the response closes, often after the client's
  // socket is gone and its peer address with it: ask now, while it is connected
  // (the socket keeps the peer it read; through trusted proxies the view is kept).
  void ctx.clientAddress
  const socket = 'shouldKeepAlive' in res ? res.socket : null
  socket?.setTimeout(ctx.hooks.streamIdleTimeout)
  // No reset afterwards: once the response is finished Node sets the
  // keep-alive timeout on the socket itself (and a reset would clear it).
  res.once('close', () => {
    cleanup()
    closed(ctx)
  })
}

/** Turns any error into a clean response (or, after headers went out, a cut connection). */
export function sendError(ctx: Context, err: unknown): void {
  const res = ctx.res
  const known = err instanceof EdgeboxError
  if (!known || err.status >= 500) ctx.error = err
  if (res.headersSent) {
    if (clientGone(ctx)) ctx.status = 499
    res.destroy()
    finish(ctx)
    return
  }
  const status = known ? err.status : 500
  const message = known ? err.message : 'Internal Server Error'
  const headers: Headers = {
    'Content-Type': 'text/plain; charset=utf-8',
    'X-Content-Type-Options': 'nosniff',
    'Cache-Control': 'no-store',
    ...(known ? err.headers : {}),
  }
  sendComplete(ctx, status, headers, status === 304 ? undefined : `${status} ${STATUS_CODES[status] ?? ''}: ${message}\n`)
}
