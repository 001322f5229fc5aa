import { z } from 'zod'
import type { Context } from '../../core/context.ts'
import type { Handler, HandlerModule } from '../../core/types.ts'

/**
 * `forwardAuth`: Edgebox's sign-on as a check other proxies ask (nginx
 * `auth_request`, Traefik `forwardAuth`, Caddy `forward_auth`; docs/sso.md).
 *
 *   { path: '/_auth/app', forwardAuth: {}, auth: { rules: [{ allow: { group: 'staff' } }] } }
 *
 * The route's `auth` gate does the work in the access phase, reading the
 * original request from the proxy's `X-Forwarded-Method`, `-Uri`, `-Host`
 * and `-Proto` (only from `trustedProxies`): a signed-in, allowed user
 * reaches this handler, which answers 200 with the identity fields for the
 * proxy to copy upstream (`auth_request_set`, `authResponseHeaders`,
 * `copy_headers`); anyone else got 401 (or, with `redirect`, a browser got
 * 302 to the login) or 403 from the gate.
 */
const schema = z.strictObject({
  /** Send a browser without a session to the login with 302 (Traefik, Caddy); false: 401, and the proxy redirects (nginx `error_page 401`). */
  redirect: z.boolean().default(false),
})

export type ForwardAuthConfig = z.output<typeof schema>

export const forwardAuthModule = {
  kind: 'forwardAuth',
  schema,
  create() {
    return {
      kind: 'forwardAuth',
      methods: ['GET', 'HEAD'],
      handle: function forwardAuth(ctx: Context) {
        const identity = ctx.identity
        // a path listed in the gate's `skip` passes with no identity
        if (identity === null) return void ctx.send(200, { 'cache-control': 'no-store' })
        // the audience of the assertion is the origin the browser used, as the proxy forwarded it
        ctx.send(200, { ...identity.upstreamFields(ctx.origin), 'cache-control': 'no-store' })
      },
    } satisfies Handler
  },
} as const satisfies HandlerModule<typeof schema>
