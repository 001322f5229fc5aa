import http2 from 'node:http2'
import { read } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import { pipeline, Readable, type Transform } from 'node:stream'
import { STATUS_CODES, type ServerResponse } from 'node:http'
import { EdgeboxError } from './errors.ts'
import { headerKey } from '../http/header-map.ts'
import { h2Fields } from '../http/h2-fields.ts'
import type { BodyTransform, Context, Headers } from './context.ts'
import type { BodySource, PreparedFilter, ResponseFilter } from './types.ts'

/**
 * The ways a request is answered, behind `ctx.send`, `ctx.stream`,
 * `ctx.relay`, `ctx.sendFile` and `ctx.fail`: response filters, the
 * Set-Cookie merge, body transforms (JSONP's envelope, the RUM script tag:
 * `ctx.transform`, one mechanism for every send path), HEAD, byte counting, idle
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

/** The response filters of the request: its route's, else its site's, else every response's. */
function filtersOf(ctx: Context): readonly ResponseFilter[] {
  return ctx.route?.filters ?? ctx.site?.filters ?? ctx.hooks.filters
}

function applyFilters(ctx: Context, status: number, headers: Headers): void {
  ctx.status = status
  const filters = filtersOf(ctx)
  for (let i = 0; i < filters.length; i++) filters[i]!(ctx, headers)
  if (ctx.setCookies) {
    // Cookies Edgebox sets itself (the CSRF token) join any the handler or upstream set.
    const key = headerKey(headers, 'set-cookie')
    const current = key === undefined ? [] : ([] as string[]).concat(headers[key] as string | string[])
    if (key !== undefined) delete headers[key]
    headers['set-cookie'] = [...current, ...ctx.setCookies]
  }
  closeIfBodyUnread(ctx)
}

function closeIfBodyUnread(ctx: Context): void {
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
  complete(ctx, status, headers, body, encoding, undefined)
}

/** sendComplete; `bytes`: the same body as a Buffer, which HTTP/2 writes as it is (no string to convert per response). */
function complete(ctx: Context, status: number, headers: Headers, body: Buffer | string | undefined, encoding: 'latin1' | undefined, bytes: Buffer | undefined): void {
  const res = ctx.res
  if (clientGone(ctx)) return abandoned(ctx)
  if (body !== undefined) {
    const len = typeof body !== 'string' || encoding === 'latin1' ? body.length : Buffer.byteLength(body)
    headers['Content-Length'] = len
    if (!ctx.isHead) ctx.bytes = len
  }
  applyFilters(ctx, status, headers)
  const transform = ctx.transform
  if (transform !== null && body !== undefined) {
    const given = bytes ?? (typeof body === 'string' ? Buffer.from(body, encoding ?? 'utf8') : body)
    const out = transform.whole(given, headers)
    if (out === undefined) return completeInPieces(ctx, status, headers, given, transform)
    if (out !== null) {
      body = out
      encoding = undefined
      bytes = undefined
      const lengthKey = headerKey(headers, 'content-length')
      if (lengthKey !== undefined) headers[lengthKey] = out.length
      if (!ctx.isHead) ctx.bytes = out.length
    }
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
      if (bytes !== undefined) stream.end(bytes)
      else if (encoding) stream.end(body, encoding)
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

/** A complete body its transform sends in pieces (`BodyTransform.whole` gave undefined): through its stream, as `stream` sends one. */
function completeInPieces(ctx: Context, status: number, headers: Headers, body: Buffer, transform: BodyTransform): void {
  ctx.bytes = 0
  const source = Readable.from([body], { objectMode: false })
  const stage = transform.stream(headers)
  streamOut(ctx, status, headers, stage === null ? source : piped(source, stage))
}

/**
 * A complete response made once and sent many times (a static file's
 * representation, a stored response): the handler's fields (names as it
 * gives them), Content-Length, and the body both as a Buffer, which HTTP/2
 * writes, and (small bodies) as a latin1 string, which HTTP/1.1 writes with
 * the head in one call. The fields named in `varying` (a stored response's
 * Age and Cache-Status) get their values per response (`sendPrepared`).
 */
export class PreparedResponse {
  readonly status: number
  readonly headers: Readonly<Headers>
  readonly body: Buffer | undefined
  readonly wire: string | undefined
  readonly varying: readonly string[]
  /** Its heads with a route's filters applied, for plain and for TLS connections (routeHead). */
  plain: RouteHead | undefined = undefined
  tls: RouteHead | undefined = undefined

  /** `wire`: the body as a latin1 string (one char per byte), or none; `varying`: names of fields in `headers` whose values come per response. */
  constructor(status: number, headers: Headers, body?: Buffer, wire?: string, varying: readonly string[] = NO_NAMES) {
    const own: Headers = { ...headers }
    for (const name of varying) own[name] = PER_RESPONSE
    if (body !== undefined) own['Content-Length'] = body.length
    this.status = status
    this.headers = own
    this.body = body
    this.wire = wire
    this.varying = varying
  }
}

const NO_NAMES: readonly string[] = Object.freeze([])
/** What a field whose value comes per response holds in a prepared head. */
const PER_RESPONSE = ''
/** What a fieldless filter is given (frozen: a write throws). */
const NO_FIELDS: Headers = Object.freeze({}) as Headers

type FieldFilter = Extract<PreparedFilter, { kind: 'field' }>

/**
 * A prepared response with one route's filters applied once: the head in
 * HTTP/1.1's flat form (names as given) and HTTP/2's (lower-case names,
 * `:status` first), the positions of the values that change per response,
 * and the filters that still run per response.
 */
interface RouteHead {
  readonly filters: readonly ResponseFilter[]
  /** null: a filter of the route works per response, and so does every answer of this response there. */
  readonly h1: readonly (string | number | string[])[] | null
  /** null: the fields need HTTP/2's object form (h2Fields): sent the per-response way. */
  readonly h2: readonly string[] | null
  /** Where each per-response value goes: the response's `varying` fields first, then the field filters'. */
  readonly h1Slots: readonly number[]
  readonly h2Slots: readonly number[]
  readonly fields: readonly FieldFilter[]
  readonly fieldless: readonly ResponseFilter[]
}

/** Runs the route's filters on a prepared response once (ctx.status and ctx.secure as every response it serves has them). */
function routeHead(ctx: Context, p: PreparedResponse, filters: readonly ResponseFilter[]): RouteHead {
  const headers: Headers = { ...p.headers }
  const fields: FieldFilter[] = []
  const fieldless: ResponseFilter[] = []
  const names = [...p.varying]
  const perResponse = (): RouteHead => ({ filters, h1: null, h2: null, h1Slots: NO_SLOTS, h2Slots: NO_SLOTS, fields, fieldless })
  if (filters.some((filter) => filter.prepared === undefined)) return perResponse()
  for (const filter of filters) {
    const how = filter.prepared!
    if (how.kind === 'constant') filter(ctx, headers)
    else if (how.kind === 'field') {
      headers[how.name] = PER_RESPONSE
      fields.push(how)
      names.push(how.name)
    } else if (how.kind === 'selective') {
      // a filter that leaves this response alone is not run for it at all
      if (how.applies(p.status, headers)) return perResponse()
    } else fieldless.push(filter)
  }
  // a constant filter leaves the fields whose values come per response alone
  for (const name of names) if (headers[name] !== PER_RESPONSE) return perResponse()
  const h1: (string | number | string[])[] = []
  for (const name in headers) h1.push(name, headers[name]!)
  const flat = h2Fields(p.status, headers)
  const h2 = Array.isArray(flat) ? flat : null
  return {
    filters,
    h1,
    h2,
    h1Slots: names.map((name) => slot(h1, name, 0)),
    h2Slots: h2 === null ? NO_SLOTS : names.map((name) => slot(h2, name.toLowerCase(), 2)),
    fields,
    fieldless,
  }
}

const NO_SLOTS: readonly number[] = Object.freeze([])

/** The index of `name`'s value in a flat [name, value, ...] head. */
function slot(flat: readonly unknown[], name: string, from: number): number {
  for (let i = from; i < flat.length; i += 2) if (flat[i] === name) return i + 1
  throw new Error(`no field ${name} in the prepared head`)
}

/**
 * Sends a prepared response: HEAD gets the same head and no body. The
 * route's constant filters ran once on it (routeHead); per response only
 * the values that change are set (`values`, one per `varying` name, and the
 * field filters' values such as Server-Timing) and the fieldless filters
 * run. Date is Node's, on both protocols. A route with a filter that works
 * per response (or a selective one that picks this response), and a
 * response that carries cookies or a body transform, go the per-response
 * way with every filter, as `send` does.
 */
export function sendPrepared(ctx: Context, p: PreparedResponse, values: readonly string[] = NO_NAMES): void {
  if (clientGone(ctx)) return abandoned(ctx)
  const filters = filtersOf(ctx)
  ctx.status = p.status
  const secure = ctx.secure
  let head = secure ? p.tls : p.plain
  if (head === undefined || head.filters !== filters) {
    head = routeHead(ctx, p, filters)
    if (secure) p.tls = head
    else p.plain = head
  }
  const res = ctx.res
  const stream = (res as { stream?: H2Stream }).stream
  const flat = stream === undefined ? head.h1 : stream.headersSent || stream.destroyed ? null : head.h2
  if (flat === null || ctx.setCookies !== null || ctx.transform !== null) return sendEach(ctx, p, values)
  const body = ctx.isHead ? undefined : p.body
  if (body !== undefined) ctx.bytes = body.length
  const fieldless = head.fieldless
  for (let i = 0; i < fieldless.length; i++) fieldless[i]!(ctx, NO_FIELDS)
  closeIfBodyUnread(ctx)
  // a copy per response: Node keeps the array it is given (and adds Date to it over HTTP/2)
  const fields = flat.slice()
  const slots = stream === undefined ? head.h1Slots : head.h2Slots
  const n = p.varying.length
  for (let i = 0; i < slots.length; i++) fields[slots[i]!] = i < n ? (values[i] ?? PER_RESPONSE) : head.fields[i - n]!.value(ctx)
  if (stream !== undefined) {
    // RFC 9113 §8.1: HEADERS, then the body in DATA frames, written from the Buffer as it is
    if (body === undefined) stream.respond(fields as string[], END_STREAM)
    else {
      stream.respond(fields as string[], MORE_TO_COME)
      stream.end(body)
    }
    stream[STREAM_CONTEXT] = ctx
    stream.on('close', streamClosed)
    return
  }
  const r = res as ServerResponse
  r.writeHead(p.status, fields as (string | number | string[])[])
  if (body === undefined) r.end()
  else if (p.wire !== undefined) r.end(p.wire, 'latin1')
  else r.end(body)
  const socket = r.socket
  if (socket && socket.writableLength > 0) r.once('close', () => closed(ctx))
  else finish(ctx)
}

/** A prepared response sent as `send` sends any: its fields in a new object, every filter run on it. */
function sendEach(ctx: Context, p: PreparedResponse, values: readonly string[]): void {
  const headers: Headers = { ...p.headers }
  const varying = p.varying
  for (let i = 0; i < varying.length; i++) headers[varying[i]!] = values[i] ?? PER_RESPONSE
  if (p.body === undefined) complete(ctx, p.status, headers, undefined, undefined, undefined)
  else if (p.wire !== undefined) complete(ctx, p.status, headers, p.wire, 'latin1', p.body)
  else complete(ctx, p.status, headers, p.body, undefined, undefined)
}

/**
 * Sends headers, then pipes `source` to the client. If the client goes
 * away, the source is destroyed (its file descriptor closed) at once.
 */
export function sendStream(ctx: Context, status: number, headers: Headers, source: Readable): void {
  applyFilters(ctx, status, headers)
  const transform = ctx.transform
  if (transform !== null) {
    const stage = transform.stream(headers)
    if (stage !== null) source = piped(source, stage)
  }
  streamOut(ctx, status, headers, source)
}

/** Does nothing: what `pipeline` reports is also reported by the streams it joins. */
function ignore(): void {}

/**
 * `source` through a transform's stage: an error on either side destroys
 * both (the client then sees a cut body), and destroying the stage (the
 * client left) destroys the source and closes what it reads.
 */
function piped(source: Readable, stage: Transform): Readable {
  pipeline(source, stage, ignore)
  return stage
}

/** Once the filters have run: the head, then `source` piped to the client (see sendStream). */
function streamOut(ctx: Context, status: number, headers: Headers, source: Readable): void {
  const res = ctx.res
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
  const transform = ctx.transform
  if (transform !== null) {
    const stage = transform.stream(headers)
    if (stage !== null) source = staged(source, stage)
  }
  res.writeHead(status, headers)
  if (ctx.isHead) {
    source.destroy()
    res.end()
    finish(ctx)
    return
  }
  untilClosed(ctx, () => source.destroy())
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
 * A pushed body through a transform's stage, with backpressure on both
 * sides: a chunk the stage cannot take yet pauses the source until the
 * stage drains, and a chunk the sink refuses pauses the stage until the
 * sink's `resume`. An error on either side reaches the sink.
 */
function staged(inner: BodySource, stage: Transform): BodySource {
  return {
    attach(sink) {
      stage.on('data', (chunk: Buffer) => {
        if (!sink.data(chunk)) stage.pause()
      })
      stage.once('end', () => sink.end())
      stage.once('error', (err) => {
        inner.destroy(err)
        sink.error(err)
      })
      stage.on('drain', () => inner.resume())
      inner.attach({
        data: (chunk) => stage.write(chunk),
        end: () => stage.end(),
        error: (err) => stage.destroy(err),
      })
    },
    resume: () => stage.resume(),
    destroy(err) {
      inner.destroy(err)
      stage.destroy()
    },
  }
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
  const transform = ctx.transform
  if (transform !== null) {
    const stage = transform.stream(headers)
    if (stage !== null) {
      // the bytes go through the stage as a stream of the file's range (which closes the file)
      let source: Readable
      if (ctx.isHead || end < start) {
        file.close().catch(() => {})
        source = Readable.from([], { objectMode: false })
      } else source = file.createReadStream({ start, end, highWaterMark: chunk })
      return streamOut(ctx, status, headers, piped(source, stage))
    }
  }
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
        ;(res as ServerResponse).end(buf.subarray(0, got))
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
