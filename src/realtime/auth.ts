import { createRemoteJWKSet, jwtVerify, type JWTPayload } from 'jose'
import { HubError, patternRegExp, type Grant } from './hub.ts'

/**
 * Tokens for the realtime hub: JWTs verified with `jose`, with a shared
 * secret (HS256/384/512) or the keys of a JWKS URL (RS*, ES*, PS*, EdDSA).
 * The `edgebox` claim lists the channel patterns the holder may subscribe to
 * and publish on; `sub` names the user (for presence):
 *
 *   { "sub": "alice", "exp": 1795400000, "edgebox": { "sub": ["chat:*"], "pub": ["chat:lobby"] } }
 */

export interface AuthConfig {
  readonly secret?: string | undefined
  readonly jwksUrl?: string | undefined
  readonly issuer?: string | undefined
  readonly audience?: string | undefined
}

export type Verifier = (token: string) => Promise<Grant & { readonly expires: number | undefined }>

export function createVerifier(cfg: AuthConfig): Verifier | undefined {
  if (!cfg.secret && !cfg.jwksUrl) return undefined
  const secret = cfg.secret ? new TextEncoder().encode(cfg.secret) : undefined
  const jwks = cfg.jwksUrl ? createRemoteJWKSet(new URL(cfg.jwksUrl)) : undefined
  const options = {
    ...(cfg.issuer ? { issuer: cfg.issuer } : {}),
    ...(cfg.audience ? { audience: cfg.audience } : {}),
    algorithms: secret ? ['HS256', 'HS384', 'HS512'] : ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'],
  }
  return async (token) => {
    let payload: JWTPayload
    try {
      payload = (secret ? await jwtVerify(token, secret, options) : await jwtVerify(token, jwks!, options)).payload
    } catch (err) {
      const code = (err as { code?: string }).code
      const why = code === 'ERR_JWT_EXPIRED' ? 'the token has expired' : code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' ? 'the token signature is not valid' : `the token is not valid (${(err as Error).message})`
      throw new HubError('forbidden', why)
    }
    const claim = (payload.edgebox ?? {}) as { sub?: unknown; pub?: unknown }
    const patterns = (v: unknown) => (Array.isArray(v) ? v.filter((p): p is string => typeof p === 'string').map(patternRegExp) : [])
    return { user: typeof payload.sub === 'string' ? payload.sub : undefined, subscribe: patterns(claim.sub), publish: patterns(claim.pub), expires: payload.exp === undefined ? undefined : payload.exp * 1000 }
  }
}
