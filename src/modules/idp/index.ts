import type { Handler, HandlerModule } from '../../core/types.ts'
import { idpSchema } from '../../auth/idp/schema.ts'

/**
 * `idp`: Edgebox's built-in OpenID Connect provider on a route
 * (docs/idp.md). Its users are the user store's (`edgebox user add`).
 *
 *   { path: '/', idp: { issuer: 'https://id.example.com', clients: [{ clientId, clientSecret, redirectUris }] } }
 *
 * The implementation (oidc-provider, its storage, keys and sign-in pages,
 * src/auth/idp/) is loaded only when a configuration has such a route.
 */
export const idpModule = {
  kind: 'idp',
  schema: idpSchema,
  async create(cfg, deps): Promise<Handler> {
    const { createIdp } = await import('../../auth/idp/service.ts')
    return createIdp(cfg, deps)
  },
} as const satisfies HandlerModule<typeof idpSchema>
