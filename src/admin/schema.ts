import { isIP } from 'node:net'
import { z } from 'zod'
import { isLoopback } from '../http/address.ts'

/**
 * The `admin` section (docs/admin.md): the admin listener, where the admin
 * API lives, never on a site's listener. Who gets in (src/admin/access.ts):
 * the token from anywhere; with `auth`, a user the single sign-on gate lets
 * in; without `auth`, this machine's own user under the loopback rules. A
 * bind that is not loopback needs `token` or `auth`: the schema refuses one
 * without either.
 *
 * `auth` takes the same gate option as a site's or route's `auth`
 * (src/auth/schema.ts); the configuration schema hands that schema in, so
 * this module does not import the sign-on's.
 */
export function adminSchemaOf<G extends z.ZodType>(gate: G) {
  return z
    .strictObject({
      /** The address to bind: loopback by default. */
      host: z.string().refine((h) => isIP(h) !== 0, 'is an IP address (127.0.0.1, ::1, or with a token or auth, another)').default('127.0.0.1'),
      /** 0 picks a free port (printed). */
      port: z.number().int().min(0).max(65535).default(8082),
      /** A bearer token (at least 32 characters: `openssl rand -hex 32`) that opens the API from anywhere the listener is reachable. */
      token: z.string().min(32, 'is at least 32 characters (openssl rand -hex 32)').optional(),
      /** The single sign-on gate (`true`, or `{ rules, providers, bearer }`), with the top-level `auth` providers: everyone without the token signs in. */
      auth: gate.optional(),
    })
    .superRefine((a, ctx) => {
      const gated = a.auth !== undefined && a.auth !== false
      if (!isLoopback(a.host) && a.token === undefined && !gated) {
        ctx.addIssue({ code: 'custom', path: ['host'], message: `${a.host} is not a loopback address: an admin listener reachable from other machines needs admin.token or admin.auth (single sign-on)` })
      }
      if (!gated || typeof a.auth !== 'object' || a.auth === null) return
      const g = a.auth as { required?: boolean; skip?: readonly unknown[] }
      // nobody passes the admin listener's gate anonymously: a path let through would let anyone reload or purge
      if (g.required === false) ctx.addIssue({ code: 'custom', path: ['auth', 'required'], message: 'the admin listener lets nobody in anonymously: remove required: false (use admin.token for a client that cannot sign in)' })
      if (g.skip !== undefined && g.skip.length > 0) ctx.addIssue({ code: 'custom', path: ['auth', 'skip'], message: 'the admin listener has no paths open without a login: remove skip (Prometheus scrapes /metrics with admin.token)' })
    })
}
