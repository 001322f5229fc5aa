import { z } from 'zod'
import type { Context } from '../core/context.ts'
import { httpError } from '../core/errors.ts'

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
  ctx.jsonp = { prefix: Buffer.from(`/**/ ${callback}(`), suffix: Buffer.from(');') }
}
