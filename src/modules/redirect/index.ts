import { z } from 'zod'
import type { Context } from '../../core/context.ts'
import type { Handler, HandlerModule } from '../../core/types.ts'
import { encodePath } from '../../http/target.ts'

/**
 * `redirect`: answers every request of the route with a redirect.
 *
 *   { path: '/old/', redirect: { to: '/new/', status: 301, preservePath: true } }
 *   { path: '/', redirect: { to: 'https://{host}', status: 308, preservePath: true } }
 *
 * `{host}` in `to` is replaced by the request's host name (without port).
 * With preservePath the path below the route prefix is appended, and the
 * query is kept unless preserveQuery is false. 301 and 302 let clients turn
 * POST into GET (RFC 9110 §15.4.2, §15.4.3); 307 and 308 keep the method.
 */
const schema = z.strictObject({
  /** Target: an absolute URL or a path. May contain `{host}`. */
  to: z.string().min(1),
  status: z.union([z.literal(301), z.literal(302), z.literal(303), z.literal(307), z.literal(308)]).default(302),
  /** Append the request path below the route prefix to `to`. */
  preservePath: z.boolean().default(false),
  /** Keep the query string (only with preservePath). */
  preserveQuery: z.boolean().default(true),
})

export const redirectModule = {
  kind: 'redirect',
  schema,
  create(cfg) {
    const usesHost = cfg.to.includes('{host}')
    const base = cfg.to.endsWith('/') && cfg.preservePath ? cfg.to.slice(0, -1) : cfg.to
    return {
      kind: 'redirect',
      methods: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH'],
      handle: function redirect(ctx: Context) {
        let location = usesHost ? base.replaceAll('{host}', hostWithBrackets(ctx.host)) : base
        if (cfg.preservePath) {
          location += encodedRest(ctx)
          if (cfg.preserveQuery) location += ctx.query
        }
        const body = `Redirecting to ${location}\n`
        ctx.send(cfg.status, { Location: location, 'Content-Type': 'text/plain; charset=utf-8' }, body)
      },
    } satisfies Handler
  },
} as const satisfies HandlerModule<typeof schema>

function hostWithBrackets(host: string): string {
  return host.includes(':') ? `[${host}]` : host
}

/**
 * The path below the route prefix, normalized and percent-encoded. Never the
 * raw target: `///evil.example/` must not become `//evil.example/`, which a
 * browser reads as another host.
 */
function encodedRest(ctx: Context): string {
  return encodePath(ctx.routePath)
}
