import { Transform, type TransformCallback } from 'node:stream'
import { z } from 'zod'
import type { BodyTransform, Context } from '../../core/context.ts'
import { httpError } from '../../core/errors.ts'
import type { FilterModule, ResponseFilter } from '../../core/types.ts'
import { headerKey } from '../../http/header-map.ts'

/**
 * JSONP for configured JSON endpoints (docs/security.md): with the callback
 * parameter present, a JSON answer of the route (a static .json file, a
 * proxied JSON API) is sent as a script, `/**\/ handleData({...});`. The
 * callback name must be an identifier path (`handleData`, `app.cb`) or the
 * request gets 400, so the parameter cannot inject script; the answer is
 * `application/javascript` with `X-Content-Type-Options: nosniff`, and the
 * leading comment keeps a crafted callback from making the response start
 * with bytes another content type could be sniffed from.
 */

export const jsonpSchema = z.union([
  z.literal(true),
  z.strictObject({
    /** The query parameter that names the callback. */
    param: z.string().regex(/^[A-Za-z0-9_.-]{1,32}$/, 'is a query parameter name').default('callback'),
  }),
])

/** An identifier path: `cb`, `$jq_123`, `app.handlers.data`; at most 128 characters. */
const CALLBACK = /^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*$/

/**
 * The pipeline's JSONP step: with the parameter present on a GET or HEAD,
 * checks the callback and arranges for the JSON answer to be wrapped. The
 * request's range, conditional and compression fields are dropped first:
 * the script is a representation of its own, so no validator, range or
 * stored compressed form of the JSON may answer for it.
 */
export function applyJsonp(ctx: Context, param: string): void {
  if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return
  const params = new URLSearchParams(ctx.query)
  const callback = params.get(param)
  if (callback === null) return
  if (callback.length > 128 || !CALLBACK.test(callback)) {
    throw httpError('EB_ERR_BAD_REQUEST', `the JSONP callback must be an identifier path like handleData or app.handlers.data (at most 128 characters), not ${JSON.stringify(callback.slice(0, 40))}`)
  }
  const h = ctx.req.headers
  for (const f of ['range', 'if-range', 'if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since', 'accept-encoding']) delete h[f]
  wrapped.set(ctx, callback)
}

/** The callback each JSONP request asked for, from its step to its response filter. */
const wrapped = new WeakMap<Context, string>()

/**
 * The one place a JSON answer becomes JSONP, whichever way the handler sends
 * it: a 200 whose type is JSON gets the headers of a script
 * (application/javascript, nosniff), loses the JSON representation's
 * validators and ranges (they no longer describe it), and its body goes out
 * inside the envelope `/**\/ <callback>(` ... `);`, a body transform that
 * every send path applies (core/respond.ts).
 */
const jsonpFilter: ResponseFilter = function jsonp(ctx, headers) {
  const callback = wrapped.get(ctx)
  if (callback === undefined || ctx.status !== 200) return
  const typeKey = headerKey(headers, 'content-type')
  if (!/^application\/(?:[\w.+-]*\+)?json\s*(?:;|$)/i.test(typeKey === undefined ? '' : String(headers[typeKey]))) return
  const prefix = Buffer.from(`/**/ ${callback}(`)
  const suffix = Buffer.from(');')
  const lengthKey = headerKey(headers, 'content-length')
  const length = lengthKey === undefined ? undefined : Number(headers[lengthKey])
  for (const k of Object.keys(headers)) {
    const lower = k.toLowerCase()
    if (lower === 'content-type' || lower === 'etag' || lower === 'last-modified' || lower === 'content-length' || lower === 'accept-ranges' || lower === 'content-disposition' || lower === 'x-content-type-options') delete headers[k]
  }
  headers['content-type'] = 'application/javascript; charset=utf-8'
  headers['x-content-type-options'] = 'nosniff'
  if (length !== undefined) headers['content-length'] = length + prefix.length + suffix.length
  ctx.transform = new Envelope(prefix, suffix)
}

/**
 * Bytes put around a body: the whole body at once, or as a stream that
 * writes `prefix` before the first chunk and `suffix` after the last. The
 * filter has already counted them in Content-Length.
 */
class Envelope implements BodyTransform {
  readonly prefix: Buffer
  readonly suffix: Buffer
  constructor(prefix: Buffer, suffix: Buffer) {
    this.prefix = prefix
    this.suffix = suffix
  }
  whole(body: Buffer): Buffer {
    return Buffer.concat([this.prefix, body, this.suffix])
  }
  stream(): Transform {
    return new EnvelopeStage(this.prefix, this.suffix)
  }
}

class EnvelopeStage extends Transform {
  readonly #prefix: Buffer
  readonly #suffix: Buffer
  #started = false
  constructor(prefix: Buffer, suffix: Buffer) {
    super()
    this.#prefix = prefix
    this.#suffix = suffix
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (!this.#started) {
      this.#started = true
      this.push(this.#prefix)
    }
    callback(null, chunk)
  }
  override _flush(callback: TransformCallback): void {
    if (!this.#started) this.push(this.#prefix)
    callback(null, this.#suffix)
  }
}

/** JSONP for a route's JSON answers (`jsonp`). */
export const jsonpModule: FilterModule = {
  name: 'jsonp',
  start: () => ({
    route(route) {
      if (!route?.jsonp) return null
      const param = route.jsonp === true ? 'callback' : route.jsonp.param
      return { step: (ctx) => applyJsonp(ctx, param), filter: jsonpFilter }
    },
  }),
}
