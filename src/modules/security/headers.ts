import { z } from 'zod'
import type { Context } from '../../core/context.ts'
import type { FilterModule, ResponseFilter } from '../../core/types.ts'
import { duration } from '../../config/units.ts'

/**
 * Security response headers for a site (docs/security.md). The defaults
 * cannot break a site: `X-Content-Type-Options: nosniff`,
 * `Referrer-Policy: strict-origin-when-cross-origin`, and
 * `X-Frame-Options: SAMEORIGIN` with the matching CSP `frame-ancestors`.
 * A `strict` Content-Security-Policy preset and the rest are opt-in. A header
 * the response already has (a handler's, an upstream's) is left as it is.
 */

const REFERRER_POLICIES = ['no-referrer', 'no-referrer-when-downgrade', 'origin', 'origin-when-cross-origin', 'same-origin', 'strict-origin', 'strict-origin-when-cross-origin', 'unsafe-url'] as const

const hstsSchema = z.union([
  z.literal(false),
  z.strictObject({
    maxAge: duration().default(180 * 24 * 3600 * 1000),
    includeSubDomains: z.boolean().default(false),
    preload: z.boolean().default(false),
  }),
])

/** Each header's setting, without defaults (a route's `headers` overrides only what it names). */
const fields = {
  /** `X-Content-Type-Options: nosniff`: browsers use the declared type, never a guess. */
  contentTypeOptions: z.boolean(),
  /** `Referrer-Policy`; false: none sent. */
  referrerPolicy: z.union([z.enum(REFERRER_POLICIES), z.literal(false)]),
  /** Clickjacking: `X-Frame-Options` and CSP `frame-ancestors` ('self' for SAMEORIGIN, 'none' for DENY); false: framing allowed. */
  frameOptions: z.union([z.enum(['SAMEORIGIN', 'DENY']), z.literal(false)]),
  /**
   * `Content-Security-Policy`: 'strict' (same-origin scripts, styles,
   * images, connections and forms only, no plugins, and a per-response
   * nonce for inline code in HTML Edgebox renders itself), a policy string
   * of your own, or false (only `frame-ancestors` from frameOptions).
   */
  csp: z.union([z.literal('strict'), z.literal(false), z.string().min(1).regex(/^[^\r\n]+$/, 'is one line')]),
  /** `Permissions-Policy`, e.g. `camera=(), microphone=(), geolocation=()`; false: none. */
  permissionsPolicy: z.union([z.string().min(1).regex(/^[^\r\n]+$/, 'is one line'), z.literal(false)]),
  /** `Strict-Transport-Security` on responses over TLS: false, or { maxAge, includeSubDomains, preload }. */
  hsts: hstsSchema,
  /** `X-DNS-Prefetch-Control`: 'on' lets browsers resolve the names a page links to ahead of time, 'off' stops them; false: not sent (the browser decides). */
  dnsPrefetchControl: z.union([z.enum(['on', 'off']), z.literal(false)]),
}

/** A site's `headers`, every default filled in. */
export const securityHeadersSchema = z.strictObject({
  contentTypeOptions: fields.contentTypeOptions.default(true),
  referrerPolicy: fields.referrerPolicy.default('strict-origin-when-cross-origin'),
  frameOptions: fields.frameOptions.default('SAMEORIGIN'),
  csp: fields.csp.default(false),
  permissionsPolicy: fields.permissionsPolicy.default(false),
  hsts: fields.hsts.default(false),
  dnsPrefetchControl: fields.dnsPrefetchControl.default(false),
})

/** A route's `headers`: the settings it changes from its site's (e.g. a page other origins may frame). */
export const routeSecurityHeadersSchema = z.strictObject({
  contentTypeOptions: fields.contentTypeOptions.optional(),
  referrerPolicy: fields.referrerPolicy.optional(),
  frameOptions: fields.frameOptions.optional(),
  csp: fields.csp.optional(),
  permissionsPolicy: fields.permissionsPolicy.optional(),
  hsts: fields.hsts.optional(),
  dnsPrefetchControl: fields.dnsPrefetchControl.optional(),
})

export type RouteSecurityHeadersConfig = z.output<typeof routeSecurityHeadersSchema>

/** The site's settings with the route's over them. */
export function mergeSecurityHeaders(site: SecurityHeadersConfig, route: RouteSecurityHeadersConfig): SecurityHeadersConfig {
  const merged: Record<string, unknown> = { ...site }
  for (const [k, v] of Object.entries(route)) if (v !== undefined) merged[k] = v
  return merged as SecurityHeadersConfig
}

export type SecurityHeadersConfig = z.output<typeof securityHeadersSchema>

export interface SecurityHeaders {
  apply(ctx: Context, headers: Record<string, string | number | string[]>): void
}

const CONSTANT = Object.freeze({ kind: 'constant' } as const)

const STRICT = (ancestors: string, nonce: string) =>
  `default-src 'self'; base-uri 'self'; object-src 'none'; form-action 'self'; frame-ancestors ${ancestors}; img-src 'self' data:; ` +
  `script-src 'self'${nonce}; style-src 'self'${nonce}; connect-src 'self'`

export function compileSecurityHeaders(cfg: SecurityHeadersConfig): SecurityHeaders {
  const fixed: Array<[lower: string, canonical: string, value: string]> = []
  if (cfg.contentTypeOptions) fixed.push(['x-content-type-options', 'X-Content-Type-Options', 'nosniff'])
  if (cfg.referrerPolicy) fixed.push(['referrer-policy', 'Referrer-Policy', cfg.referrerPolicy])
  if (cfg.frameOptions) fixed.push(['x-frame-options', 'X-Frame-Options', cfg.frameOptions])
  if (cfg.permissionsPolicy) fixed.push(['permissions-policy', 'Permissions-Policy', cfg.permissionsPolicy])
  if (cfg.dnsPrefetchControl) fixed.push(['x-dns-prefetch-control', 'X-DNS-Prefetch-Control', cfg.dnsPrefetchControl])
  const ancestors = cfg.frameOptions === 'DENY' ? "'none'" : "'self'"
  const csp = cfg.csp === 'strict' ? null : cfg.csp ? cfg.csp : cfg.frameOptions ? `frame-ancestors ${ancestors}` : null
  const hsts = cfg.hsts ? `max-age=${Math.floor(cfg.hsts.maxAge / 1000)}${cfg.hsts.includeSubDomains ? '; includeSubDomains' : ''}${cfg.hsts.preload ? '; preload' : ''}` : null
  return {
    apply(ctx, headers) {
      for (const [lower, canonical, value] of fixed) if (headers[lower] === undefined && headers[canonical] === undefined) headers[lower] = value
      if (headers['content-security-policy'] === undefined && headers['Content-Security-Policy'] === undefined) {
        if (cfg.csp === 'strict') headers['content-security-policy'] = STRICT(ancestors, ctx.cspNonce ? ` 'nonce-${ctx.cspNonce}'` : '')
        else if (csp) headers['content-security-policy'] = csp
      }
      if (hsts && ctx.secure) headers['strict-transport-security'] = hsts
    },
  }
}

/**
 * The security headers of a route (its site's, with the route's `headers`
 * over them) or, for responses no route answered, of its site: a response
 * filter on every response except 304. A 304 carries only what updates the
 * stored response (RFC 9110 §15.4.5: a sender SHOULD NOT generate other
 * representation metadata); the browser keeps applying the headers of the
 * 200 it stored.
 */
export const headersModule: FilterModule = {
  name: 'headers',
  start: () => ({
    route(route, site) {
      const cfg = route?.headers ? mergeSecurityHeaders(site.headers, route.headers) : site.headers
      const compiled = compileSecurityHeaders(cfg)
      const filter: ResponseFilter = function securityHeaders(ctx, headers) {
        if (ctx.status !== 304) compiled.apply(ctx, headers)
      }
      // Without the strict CSP's per-response nonce, what it adds depends only on the fields already
      // there, the status and TLS (HSTS): applied once to a prepared response (core/respond.ts).
      return { filter: cfg.csp === 'strict' ? filter : Object.assign(filter, { prepared: CONSTANT }) }
    },
  }),
}
