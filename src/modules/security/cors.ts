import { z } from 'zod'
import type { Context } from '../../core/context.ts'
import { originPolicy } from '../../core/origin.ts'
import type { FilterModule, ResponseFilter } from '../../core/types.ts'
import { duration } from '../../config/units.ts'
import { preflight, responseHeaders, variesByOrigin, type CorsPolicy } from '../../http/cors.ts'
import { headerKey } from '../../http/header-map.ts'
import { TOKEN } from '../../http/token.ts'

/**
 * CORS in the pipeline (docs/security.md): a site's or route's `cors`
 * policy answers preflights itself (204 with exactly the allowed values, or
 * 403 without any CORS header) and adds the CORS headers to the responses of
 * allowed cross-origin requests. A refused origin gets a normal response
 * without CORS headers (the browser keeps it from the page) and the access
 * log says why. Same-origin requests are not touched.
 */

/** An origin as a browser sends it: lower-case scheme and host, an optional port, nothing else (no path, no trailing dot). */
const SERIALISED_ORIGIN = /^https?:\/\/(?:[a-z0-9-]+(?:\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(?::\d{1,5})?$/
const ORIGIN_ENTRY = /^\*$|^https?:\/\/(\*\.)?[^/?#*]+$/i

export const corsSchema = z.strictObject({
  /**
   * Origins whose pages may read responses: a list (`https://app.example.com`,
   * `https://*.example.com`, `*`) or, in a TypeScript configuration, a
   * function `(origin) => boolean`. Default: the site's `origins`.
   */
  origins: z
    .union([
      z.array(z.string().regex(ORIGIN_ENTRY, 'is an origin like https://app.example.com, https://*.example.com, or *')),
      z.custom<(origin: string) => boolean>((v) => typeof v === 'function', 'a list of origins or a function (origin) => boolean'),
    ])
    .optional(),
  /** Methods allowed cross-origin besides GET, HEAD and POST (which need no preflight). */
  methods: z.array(z.string().regex(TOKEN, 'is a method name')).default(['GET', 'HEAD', 'POST']),
  /** Request headers a preflight may ask for (names; e.g. content-type for JSON bodies, authorization). */
  allowHeaders: z.array(z.string().regex(TOKEN, 'is a header name')).default([]),
  /** Response headers pages may read besides the CORS-safelisted ones. */
  exposeHeaders: z.array(z.string().regex(TOKEN, 'is a header name')).default([]),
  /** Cookies and HTTP authentication cross-origin (then never `*`). */
  credentials: z.boolean().default(false),
  /** How long a browser may reuse a preflight answer. */
  maxAge: duration().default(600_000),
})

export type CorsConfig = z.output<typeof corsSchema>

export function createCorsPolicy(cfg: CorsConfig, siteOrigins: readonly string[]): CorsPolicy {
  const source = cfg.origins ?? siteOrigins
  let allows: (origin: string) => boolean
  let anyOrigin = false
  if (typeof source === 'function') {
    allows = (origin) => {
      try {
        return source(origin) === true
      } catch {
        return false // a throwing rule allows nothing
      }
    }
  } else {
    // The same entries as the site's origin policy, matched the same way; CORS adds
    // that an Origin must be exactly as browsers serialise it (RFC 6454 §6.2).
    anyOrigin = source.includes('*')
    const listed = originPolicy(source).listed
    allows = (origin) => SERIALISED_ORIGIN.test(origin) && listed(origin)
  }
  return {
    allows,
    anyOrigin,
    methods: [...new Set(cfg.methods)],
    allowHeaders: [...new Set(cfg.allowHeaders.map((h) => h.toLowerCase()))],
    exposeHeaders: cfg.exposeHeaders,
    credentials: cfg.credentials,
    maxAge: Math.floor(cfg.maxAge / 1000),
  }
}

function sameOrigin(ctx: Context, origin: string): boolean {
  return origin.toLowerCase() === ctx.origin
}

/**
 * The pipeline's CORS step for a route with a policy. Returns true when it
 * answered the request itself (a preflight).
 */
export function applyCors(ctx: Context, policy: CorsPolicy): boolean {
  if (variesByOrigin(policy)) ctx.vary = ctx.vary ? `${ctx.vary}, Origin` : 'Origin'
  const origin = ctx.req.headers.origin
  if (origin === undefined || sameOrigin(ctx, origin)) return false
  const method = ctx.req.headers['access-control-request-method']
  if (ctx.method === 'OPTIONS' && typeof method === 'string') {
    const result = preflight(policy, origin, method, ctx.header('access-control-request-headers'))
    if (!result.ok) {
      ctx.corsRefused = result.reason
      ctx.send(403, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', vary: 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers' }, `403 Forbidden: CORS preflight refused: ${result.reason}\n`)
      return true
    }
    ctx.vary = '' // the preflight answer names its own Vary
    ctx.send(204, result.headers)
    return true
  }
  if (policy.allows(origin)) ctx.corsHeaders = responseHeaders(policy, origin)
  else ctx.corsRefused = `origin ${origin} is not allowed`
  return false
}

/** Adds a request's CORS headers and Vary entries to its response (a response filter; nothing to do for most requests). */
export const corsFilter: ResponseFilter = function cors(ctx, headers) {
  if (ctx.corsHeaders) Object.assign(headers, ctx.corsHeaders)
  if (ctx.vary) {
    const key = headerKey(headers, 'vary')
    const current = key === undefined ? '' : String(headers[key])
    if (key !== undefined) delete headers[key]
    if (current.trim() === '*') headers.vary = '*'
    else {
      const have = new Set(current.split(',').map((v) => v.trim().toLowerCase()).filter(Boolean))
      const add = ctx.vary.split(',').map((v) => v.trim()).filter((v) => v && !have.has(v.toLowerCase()))
      headers.vary = [current.trim(), ...add].filter(Boolean).join(', ')
    }
  }
}

/** CORS on a route: its own `cors`, else its site's; `cors: false` turns it off there. */
export const corsModule: FilterModule = {
  name: 'cors',
  start: () => ({
    route(route, site) {
      const cfg = route === null || route.cors === false ? undefined : (route.cors ?? site.cors)
      if (!cfg) return null
      const policy = createCorsPolicy(cfg, site.origins)
      return { step: (ctx) => applyCors(ctx, policy), filter: corsFilter }
    },
  }),
}
