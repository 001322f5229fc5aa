import { createHmac, randomBytes } from 'node:crypto'
import { z } from 'zod'
import type { Context } from '../../core/context.ts'
import { httpError } from '../../core/errors.ts'
import type { OriginPolicy } from '../../core/origin.ts'
import { safeEqual } from '../../core/secrets.ts'
import { cookieValue } from '../../http/cookie.ts'
import { originOf } from '../../http/target.ts'
import { TOKEN } from '../../http/token.ts'
import type { FilterModule } from '../../core/types.ts'

/**
 * CSRF protection for a route's unsafe methods (docs/security.md). A
 * browser tells where a request comes from: `Sec-Fetch-Site`, else
 * `Origin`, else the origin of `Referer`. A request from a page of another
 * origin that the site does not list is refused with 403 and the reason. On
 * top of that, `token: true` asks for a signed double-submit token: Edgebox
 * issues a cookie (`SameSite=Lax`, `Secure` over TLS; readable by the page,
 * which sends it back), and an unsafe request must repeat its value in the
 * `X-CSRF-Token` header or a `_csrf` query parameter; the value is signed
 * with a secret, so a cookie an attacker planted (a sibling subdomain can
 * set cookies) does not pass.
 */

export const csrfSchema = z.union([
  z.literal(true),
  z.strictObject({
    /** Also require the double-submit token on unsafe requests. */
    token: z.boolean().default(false),
    /** The token cookie's name. */
    cookie: z.string().regex(TOKEN, 'is a cookie name').default('edgebox_csrf'),
    /** The secret tokens are signed with (at least 32 characters); default: the deployment's own (a file in the data folder, or Redis when the nodes share one). */
    secret: z.string().min(32, 'secrets are at least 32 characters').optional(),
  }),
])

export type CsrfConfig = z.output<typeof csrfSchema>

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE'])

export interface CsrfGuard {
  /** Refuses (403) a cross-site unsafe request; issues the token cookie on safe ones where it is missing. */
  check(ctx: Context): void
}

/**
 * `shared`: the deployment's secret (core/shared-secret.ts), which a guard
 * without its own `secret` signs with, under a key of its own (`id`, the
 * route's place): tokens hold across reloads, restarts, workers and nodes,
 * and a token of one route is no token for another.
 */
export function createCsrfGuard(cfg: CsrfConfig, origins: OriginPolicy, shared: Buffer, id: string): CsrfGuard {
  const opts = cfg === true ? { token: false, cookie: 'edgebox_csrf', secret: undefined } : cfg
  const secret = opts.secret ?? createHmac('sha256', shared).update(`csrf\n${id}`).digest()
  // A token is signed with the sign-on session it was issued in, when there is one (ctx.identity.binding): a token
  // from before a login, or from another user's session, does not pass.
  const sign = (value: string, binding: string) => createHmac('sha256', secret).update(binding === '' ? value : `${value}\n${binding}`).digest('base64url')
  const valid = (token: string, binding: string): boolean => {
    const dot = token.indexOf('.')
    if (dot <= 0) return false
    return safeEqual(sign(token.slice(0, dot), binding), token.slice(dot + 1))
  }
  const cookieOf = (ctx: Context): string | undefined => cookieValue(ctx.header('cookie'), opts.cookie)

  return {
    check(ctx) {
      const scheme = ctx.scheme
      const binding = ctx.identity?.binding ?? ''
      if (SAFE.has(ctx.method)) {
        if (opts.token) {
          const cookie = cookieOf(ctx)
          if (cookie && valid(cookie, binding)) return
          // none yet, or one from before a sign-in (or another session): a new one, bound to this session
          const raw = randomBytes(18).toString('base64url')
          ctx.setCookies ??= []
          ctx.setCookies.push(`${opts.cookie}=${raw}.${sign(raw, binding)}; Path=/; SameSite=Lax${scheme === 'https' ? '; Secure' : ''}`)
        }
        return
      }
      const host = ctx.client.host
      const refuse = (why: string) => {
        ctx.csrfRefused = why
        throw httpError('EB_ERR_FORBIDDEN', `cross-site request refused: ${why}`)
      }
      const site = ctx.header('sec-fetch-site')
      const origin = ctx.header('origin')
      if (site === 'cross-site' || site === 'same-site') {
        // Fetch Metadata: the browser says the request comes from another site's or origin's page.
        if (origin === undefined || !origins.allows(origin, host, scheme)) refuse(`${site} request${origin ? ` from ${origin}` : ''} to an unsafe method`)
      } else if (site !== 'same-origin' && site !== 'none') {
        if (origin !== undefined && origin !== 'null') {
          if (!origins.allows(origin, host, scheme)) refuse(`origin ${origin} is not allowed`)
        } else if (origin === 'null') refuse('an opaque origin (null) may not use unsafe methods')
        else {
          const referer = ctx.header('referer')
          if (referer !== undefined) {
            const from = originOf(referer)
            if (from === null) return refuse('the Referer is not an http(s) URL')
            if (!origins.allows(from, host, scheme)) refuse(`referer origin ${from} is not allowed`)
          }
          // Neither Origin nor Referer: not a browser form or fetch (browsers send Origin on every unsafe cross-origin request).
        }
      }
      if (opts.token) {
        const cookie = cookieOf(ctx)
        const given = ctx.header('x-csrf-token') ?? new URLSearchParams(ctx.query).get('_csrf') ?? undefined
        if (!cookie || !valid(cookie, binding)) refuse(binding ? 'no valid CSRF token cookie for this session' : 'no valid CSRF token cookie')
        if (given !== cookie) refuse('the CSRF token is missing or does not match the cookie')
      }
    },
  }
}

/** CSRF protection on a route's unsafe methods (`csrf`). */
export const csrfModule: FilterModule = {
  name: 'csrf',
  start: ({ secret }) => ({
    route(route, _site, deps) {
      if (!route?.csrf) return null
      const guard = createCsrfGuard(route.csrf, deps.origins, secret, deps.configPath)
      return { step: (ctx) => guard.check(ctx) }
    },
  }),
}
