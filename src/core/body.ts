import { Transform, type Readable, type Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { Context } from './context.ts'
import type { Req } from './types.ts'
import { EdgeboxError, httpError } from './errors.ts'
import { jsonDepthProblem } from '../http/json-limits.ts'

export interface BodyLimits {
  /** Largest body accepted, in bytes (413 beyond it). */
  maxBodySize: number
  /** A body that sends no bytes for this long is cut (408). */
  bodyIdleTimeout: number
  /** Once `bodyRateGrace` has passed, a body whose average rate since its start is below this many bytes per second is cut (408); 0: no minimum. */
  bodyMinRate: number
  /** Milliseconds a body has before `bodyMinRate` applies. */
  bodyRateGrace: number
  /** For readers that hold a whole body (the proxy's request buffering, body-buffer.ts): bytes kept in memory before the body goes to a temporary file. */
  bodyBuffer: number
  /** The temporary body bytes of the whole process together may not go beyond this (503). */
  bodyTempMax: number
}

/** Where one body's clock stands (milliseconds on a monotonic clock). */
export interface BodyClock {
  /** When the measurement started. */
  start: number
  /** Bytes received since `start`. */
  bytes: number
  /** When the last byte arrived (`start` before any). */
  lastByte: number
}

/**
 * What a body's clock says at `now`: cut it for idleness (no byte for
 * `bodyIdleTimeout`), cut it for a low rate, or ask again in `wait` ms. The
 * rate rule is Apache mod_reqtimeout's `body=<grace>,MinRate=<rate>` read as
 * an average: after the grace period, the bytes received since the start
 * must keep up with the minimum rate over the whole time. A trickle that
 * sends a byte now and then, which the idle timeout never catches, falls
 * behind and is cut.
 */
export function checkBody(now: number, clock: BodyClock, limits: Pick<BodyLimits, 'bodyIdleTimeout' | 'bodyMinRate' | 'bodyRateGrace'>): { cut: 'idle' | 'rate' } | { wait: number } {
  const idleAt = clock.lastByte + limits.bodyIdleTimeout
  if (now >= idleAt) return { cut: 'idle' }
  let next = idleAt
  if (limits.bodyMinRate > 0) {
    // the moment the average since `start` falls to the minimum, given the bytes so far
    const rateAt = clock.start + Math.max(limits.bodyRateGrace, (clock.bytes * 1000) / limits.bodyMinRate)
    if (now >= rateAt) return { cut: 'rate' }
    next = Math.min(next, rateAt)
  }
  return { wait: Math.max(1, Math.ceil(next - now)) }
}

/**
 * Keeps the clock of one body as it arrives and calls `cut` with a 408 when
 * `checkBody` says so. One timer, re-armed only when it fires, so arriving
 * bytes cost a counter update and no timer work. `heldBack()` says whether
 * the reader itself is the slow party (its destination not taking bytes):
 * the client is then not blamed, and the measurement starts afresh.
 */
export function watchBody(limits: BodyLimits, heldBack: () => boolean, cut: (err: EdgeboxError) => void): { bytes(n: number): void; stop(): void } {
  const begin = performance.now()
  const clock: BodyClock = { start: begin, bytes: 0, lastByte: begin }
  let timer: NodeJS.Timeout | undefined
  function tick(): void {
    const now = performance.now()
    if (heldBack()) {
      clock.start = clock.lastByte = now
      clock.bytes = 0
    }
    const verdict = checkBody(now, clock, limits)
    if ('wait' in verdict) {
      timer = setTimeout(tick, verdict.wait)
      return
    }
    if (verdict.cut === 'idle') return cut(httpError('EB_ERR_REQUEST_TIMEOUT', `no request body bytes for ${limits.bodyIdleTimeout} ms`))
    const seconds = (now - clock.start) / 1000
    cut(
      httpError(
        'EB_ERR_REQUEST_TIMEOUT',
        `the request body arrived at ${Math.floor(clock.bytes / seconds)} bytes/s on average over ${seconds.toFixed(1)} s, below the minimum of ${limits.bodyMinRate} bytes/s`,
      ),
    )
  }
  const first = checkBody(begin, clock, limits)
  timer = setTimeout(tick, 'wait' in first ? first.wait : 0)
  return {
    bytes(n: number): void {
      clock.bytes += n
      clock.lastByte = performance.now()
    },
    stop(): void {
      clearTimeout(timer)
    },
  }
}

/**
 * Streams the request body into `dest`, enforcing the size limit as bytes
 * arrive and cutting a body that stalls (no bytes for `bodyIdleTimeout`) or
 * trickles (below `bodyMinRate` after `bodyRateGrace`), while a large body
 * that keeps flowing is never cut. Tells an
 * `Expect: 100-continue` client to go on first. Resolves with the byte count
 * once `dest` has finished; rejects with an EdgeboxError (413, 408, 400) or
 * the destination's own error (ENOSPC, ...).
 */
/**
 * The request body as a stream that fails when the client abandons it.
 * HTTP/2: the request's own body reader (src/server/h2-exchange.ts), made
 * on this first read; it fails when the stream is reset before the body is
 * complete, by the client (RST_STREAM) or by nghttp2 because the DATA frames
 * disagree with `content-length` (RFC 9113 §8.1.1). Taking that for a
 * complete body would forward a truncated body as whole, onto an HTTP/1.1
 * connection where the length is what frames the request. Over HTTP/1.x the
 * request itself already fails when the client leaves.
 */
export function requestBody(req: Req): Readable {
  return 'stream' in req ? req.body() : req
}

export async function pipeBody(ctx: Context, dest: Writable, limits: BodyLimits): Promise<number> {
  const declared = ctx.req.headers['content-length']
  if (declared !== undefined && Number(declared) > limits.maxBodySize) {
    throw httpError('EB_ERR_BODY_TOO_LARGE', `request body of ${declared} bytes is larger than the limit of ${limits.maxBodySize}`)
  }
  ctx.continue()
  let total = 0
  let failure: EdgeboxError | undefined
  const req = ctx.req
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      total += chunk.length
      if (total > limits.maxBodySize) return cb(httpError('EB_ERR_BODY_TOO_LARGE', `request body is larger than the limit of ${limits.maxBodySize} bytes`))
      watch.bytes(chunk.length)
      cb(null, chunk)
    },
  })
  // A destination that is not taking bytes (a slow disk) holds the body back, not the client.
  const watch = watchBody(
    limits,
    () => dest.writableNeedDrain || counter.writableNeedDrain,
    (err) => {
      failure ??= err
      counter.destroy(err)
    },
  )
  try {
    await pipeline(requestBody(req), counter, dest)
  } catch (err) {
    if (failure) throw failure
    if (err instanceof EdgeboxError) throw err
    const code = (err as NodeJS.ErrnoException).code
    // The destination's own errors (ENOSPC, EACCES, ...) go to the caller as they are.
    if (code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ECONNABORTED') {
      throw httpError('EB_ERR_BAD_REQUEST', 'the client stopped sending the body')
    }
    throw err
  } finally {
    watch.stop()
  }
  return total
}

/**
 * Reads a whole small body (at most `maxBytes`, and within the route's
 * limits) into memory: 413 beyond, 408 for a body that stalls or trickles
 * (watchBody), 400 when the client stops sending. The same rules as
 * pipeBody, with the body's own events instead of a stream pipeline: a
 * beacon or a form is a few hundred bytes, often already in the first read,
 * and a pipeline (a Transform, a Writable, an AbortController per body)
 * would cost more than reading it. A failure destroys the body as pipeBody's
 * pipeline does: a body refused half-way must not stay on the connection.
 */
export function readSmall(ctx: Context, limits: BodyLimits, maxBytes: number): Promise<Buffer> {
  const max = Math.min(limits.maxBodySize, maxBytes)
  const declared = ctx.req.headers['content-length']
  if (declared !== undefined && Number(declared) > max) {
    return Promise.reject(httpError('EB_ERR_BODY_TOO_LARGE', `request body of ${declared} bytes is larger than the limit of ${max}`))
  }
  ctx.continue()
  const body = requestBody(ctx.req)
  if (body.readableEnded) return Promise.resolve(Buffer.alloc(0))
  if (body.destroyed) return Promise.reject(httpError('EB_ERR_BAD_REQUEST', 'the client stopped sending the body'))
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = []
    let total = 0
    let settled = false
    const watch = watchBody(limits, () => false, (err) => fail(err))
    function cleanup(): void {
      settled = true
      watch.stop()
      body.off('data', onData)
      body.off('end', onEnd)
      body.off('error', onError)
      body.off('close', onClose)
    }
    function fail(err: Error): void {
      if (settled) return
      cleanup()
      body.on('error', () => {}) // what the destroyed body reports next is already answered
      body.destroy()
      reject(err)
    }
    function onData(chunk: Buffer): void {
      total += chunk.length
      if (total > max) return fail(httpError('EB_ERR_BODY_TOO_LARGE', `request body is larger than the limit of ${max} bytes`))
      watch.bytes(chunk.length)
      chunks.push(chunk)
    }
    function onEnd(): void {
      if (settled) return
      cleanup()
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total))
    }
    function onError(err: Error): void {
      if (settled) return
      const code = (err as NodeJS.ErrnoException).code
      fail(err instanceof EdgeboxError ? err : code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ECONNABORTED' ? httpError('EB_ERR_BAD_REQUEST', 'the client stopped sending the body') : err)
    }
    function onClose(): void {
      if (!settled) fail(httpError('EB_ERR_BAD_REQUEST', 'the client stopped sending the body'))
    }
    body.on('data', onData)
    body.on('end', onEnd)
    body.on('error', onError)
    body.on('close', onClose)
  })
}

/**
 * Reads a small JSON request body (at most `maxBytes`, and within the
 * route's limits): 415 unless it is declared as JSON, 413 beyond the size,
 * 400 when it nests arrays and objects deeper than `maxDepth` (checked
 * before parsing, src/http/json-limits.ts), 400 with the parser's reason
 * when it is not valid JSON.
 */
export async function readJson(ctx: Context, limits: BodyLimits, maxBytes: number, maxDepth = Infinity): Promise<unknown> {
  const type = ctx.header('content-type') ?? ''
  if (!/^application\/(?:[\w.+-]*\+)?json\s*(?:;|$)/i.test(type)) throw httpError('EB_ERR_UNSUPPORTED_MEDIA_TYPE', `the body must be JSON (Content-Type: application/json), not ${type ? JSON.stringify(type) : 'untyped'}`)
  const text = (await readSmall(ctx, limits, maxBytes)).toString('utf8')
  const tooDeep = jsonDepthProblem(text, maxDepth)
  if (tooDeep) throw httpError('EB_ERR_BAD_REQUEST', `the body is ${tooDeep}`)
  try {
    return JSON.parse(text)
  } catch (err) {
    throw httpError('EB_ERR_BAD_REQUEST', `the body is not valid JSON: ${(err as Error).message}`)
  }
}

/**
 * Reads a small HTML form body (`application/x-www-form-urlencoded`, at most
 * `maxBytes`): 415 for any other type, 413 beyond the size.
 */
export async function readForm(ctx: Context, limits: BodyLimits, maxBytes: number): Promise<URLSearchParams> {
  const type = ctx.header('content-type') ?? ''
  if (!/^application\/x-www-form-urlencoded\s*(?:;|$)/i.test(type)) throw httpError('EB_ERR_UNSUPPORTED_MEDIA_TYPE', `the body must be a form (Content-Type: application/x-www-form-urlencoded), not ${type ? JSON.stringify(type) : 'untyped'}`)
  return new URLSearchParams((await readSmall(ctx, limits, maxBytes)).toString('utf8'))
}
