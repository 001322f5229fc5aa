import { isIP } from 'node:net'
import { z } from 'zod'
import { isLoopback } from '../http/address.ts'

/**
 * The `admin` section (docs/admin.md): the admin listener, where the admin
 * API lives, never on a site's listener. On a loopback address it answers
 * without credentials under the rules of src/admin/access.ts; anywhere else
 * it needs a token, and the schema refuses a bind without one.
 */
export const adminSchema = z
  .strictObject({
    /** The address to bind: loopback by default. */
    host: z.string().refine((h) => isIP(h) !== 0, 'is an IP address (127.0.0.1, ::1, or with a token, another)').default('127.0.0.1'),
    /** 0 picks a free port (printed). */
    port: z.number().int().min(0).max(65535).default(8082),
    /** A bearer token (at least 32 characters: `openssl rand -hex 32`) that opens the API from anywhere the listener is reachable. */
    token: z.string().min(32, 'is at least 32 characters (openssl rand -hex 32)').optional(),
  })
  .superRefine((a, ctx) => {
    if (!isLoopback(a.host) && a.token === undefined) {
      ctx.addIssue({ code: 'custom', path: ['host'], message: `${a.host} is not a loopback address: an admin listener reachable from other machines needs admin.token` })
    }
  })

export type AdminConfig = z.output<typeof adminSchema>
