import { Transform, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { Context } from './context.ts'
import { EdgeboxError, httpError } from './errors.ts'
import { jsonDepthProblem } from '../http/json-limits.ts'

export interface BodyLimits {
  /** Largest body accepted, in bytes (413 beyond it). */
  maxBodySize: number
  /** A body that sends no bytes for this long is cut (408). */
  bodyIdleTimeout: number
}

/**
 * Streams the request body into `dest`, enforcing the size limit as bytes
 * arrive and cutting a body that stalls (no bytes for `bodyIdleTimeout`),
 * while a large body that keeps flowing is never cut. Tells an
 * `Expect: 100-continue` client to go on first. Resolves with the byte count
 * once `dest` has finished; rejects with an EdgeboxError (413, 408, 400) or
 * the destination's own error (ENOSPC, ...).
 */
export async function pipeBody(ctx: Context, dest: Writable, limits: BodyLimits): Promise<number> {
  const declared = ctx.req.headers['content-length']
  if (declared !== undefined && Number(declared) > limits.maxBodySize) {
    throw httpError('EB_ERR_BODY_TOO_LARGE', `request body of ${declared} bytes is larger than the limit of ${limits.maxBodySize}`)
  }
  ctx.continue()
  let total = 0
  let failure: EdgeboxError | undefined
  const req = ctx.req
  let timer: NodeJS.Timeout | undefined
  const cut = (err: EdgeboxError) => {
    failure ??= err
    counter.destroy(err)
  }
  const arm = () => {
    clearTimeout(timer)
    timer = setTimeout(() => cut(httpError('EB_ERR_REQUEST_TIMEOUT', `no request body bytes for ${limits.bodyIdleTimeout} ms`)), limits.bodyIdleTimeout)
  }
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      total += chunk.length
      if (total > limits.maxBodySize) return cb(httpError('EB_ERR_BODY_TOO_LARGE', `request body is larger than the limit of ${limits.maxBodySize} bytes`))
      arm()
      cb(null, chunk)
    },
  })
  arm()
  try {
    await pipeline(req, counter, dest)
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
    clearTimeout(timer)
  }
  return total
}

/** Reads a whole small body (at most `maxBytes`, and within the route's limits) into memory. */
async function readSmall(ctx: Context, limits: BodyLimits, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk)
      cb()
    },
  })
  await pipeBody(ctx, sink, { ...limits, maxBodySize: Math.min(limits.maxBodySize, maxBytes) })
  return Buffer.concat(chunks)
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
