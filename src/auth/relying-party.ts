import * as oidc from 'openid-client'
import { createRemoteJWKSet, customFetch, decodeJwt, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose'
import type { Clock } from '../core/clock.ts'
import { providerFetch } from './fetch.ts'
import type { ProviderConfig } from './schema.ts'

/**
 * Edgebox as an OpenID Connect relying party of one provider, on
 * openid-client: discovery, the authorization code flow with PKCE, `state`
 * and `nonce`, refresh, RP-initiated logout, and bearer access tokens. The
 * checks OpenID Connect Core §3.1.3.7 asks of the ID token (issuer, audience,
 * `azp`, expiry, `iat`, `nonce`, the signature by the issuer's keys) and RFC
 * 9207's `iss` response parameter are openid-client's; what it leaves to the
 * caller is done here and says so.
 */

/** The provider could not be reached or answered nonsense: a 502 page, not a failed login. */
export class ProviderUnavailable extends Error {
  override name = 'ProviderUnavailable'
}

/** The login itself failed (a refused code, a bad ID token, an error from the provider): a 4xx page naming why. */
export class LoginFailed extends Error {
  override name = 'LoginFailed'
  readonly status: number
  constructor(message: string, status = 400) {
    super(message)
    this.status = status
  }
}

/** A login under way: what the callback needs, kept server-side under its `state`. */
export interface PendingLogin {
  readonly provider: string
  readonly state: string
  readonly nonce: string
  readonly codeVerifier: string
  readonly redirectUri: string
  /** A same-site path (return-to.ts). */
  readonly returnTo: string
  /** SHA-256 of the browser's login cookie: the callback must come from the browser that started. */
  readonly binding: string
  readonly createdAt: number
}

export interface Tokens {
  readonly idToken: string
  readonly accessToken: string | null
  readonly refreshToken: string | null
  /** ms since the epoch */
  readonly expiresAt: number | null
}

export interface LoginResult {
  readonly sub: string
  readonly sid: string | null
  readonly claims: Record<string, unknown>
  readonly tokens: Tokens
}

/** A bearer access token's verdict: who, or why not. */
export type BearerVerdict = { readonly ok: true; readonly sub: string; readonly claims: Record<string, unknown>; readonly expiresAt: number } | { readonly ok: false; readonly why: string }

/** Claims that describe the token, not the user: not kept in a session. */
const TOKEN_CLAIMS = new Set(['iss', 'aud', 'exp', 'iat', 'nbf', 'nonce', 'at_hash', 'c_hash', 's_hash', 'azp', 'jti', 'auth_time', 'acr', 'amr', 'sid'])

/** How long a failed discovery is remembered before the provider is asked again. */
const RETRY_DISCOVERY_MS = 5_000
/** A provider that answered this recently is taken to be up when a login starts (so a burst of logins asks it once). */
const REACHED_MS = 1_000
/** How long the check before a login waits for the provider. */
const REACH_TIMEOUT_MS = 3_000

export class RelyingParty {
  readonly name: string
  readonly label: string
  readonly options: ProviderConfig
  private readonly clock: Clock
  private discovered: Promise<oidc.Configuration> | null = null
  private failedAt = 0
  /** When the provider last answered (discovery, a login, a refresh): the reachability check before a login trusts it this long. */
  private lastReached = 0
  private checking: Promise<void> | null = null
  private jwks: ReturnType<typeof createRemoteJWKSet> | null = null
  private readonly audiences: string[]

  constructor(name: string, options: ProviderConfig, clock: Clock) {
    this.name = name
    this.label = options.label ?? name
    this.options = options
    this.clock = clock
    this.audiences = options.audience === undefined ? [options.clientId] : Array.isArray(options.audience) ? [...options.audience] : [options.audience]
  }

  /** The provider's configuration (discovery), fetched once and kept; a failure is retried after a few seconds. */
  configuration(): Promise<oidc.Configuration> {
    if (this.discovered) return this.discovered
    if (this.clock.now() - this.failedAt < RETRY_DISCOVERY_MS) return Promise.reject(new ProviderUnavailable(`the identity provider ${this.name} (${this.options.issuer}) could not be reached a moment ago`))
    const o = this.options
    const auth = o.tokenAuth ?? (o.clientSecret ? 'client_secret_basic' : 'none')
    const clientAuth = auth === 'none' ? oidc.None() : auth === 'client_secret_post' ? oidc.ClientSecretPost(o.clientSecret) : oidc.ClientSecretBasic(o.clientSecret)
    const url = new URL(o.issuer)
    const options: oidc.DiscoveryRequestOptions = { timeout: 10, [oidc.customFetch]: providerFetch as oidc.CustomFetch }
    // the schema allows http only for a loopback issuer
    if (url.protocol === 'http:') options.execute = [oidc.allowInsecureRequests]
    const metadata: Partial<oidc.ClientMetadata> = { client_secret: o.clientSecret }
    const p = oidc.discovery(url, o.clientId, metadata, clientAuth, options).then(
      (found) => {
        // OpenID Connect Registration 1.0 §2: ID tokens are RS256 unless the client registered another algorithm;
        // a provider that does not offer RS256 signs with the first algorithm it lists (never `none`)
        const algs = found.serverMetadata().id_token_signing_alg_values_supported
        let config = found
        config[oidc.customFetch] = providerFetch as oidc.CustomFetch
        if (algs && !algs.includes('RS256')) {
          const alg = algs.find((a) => a !== 'none' && !a.startsWith('HS'))
          if (alg) {
            config = new oidc.Configuration(found.serverMetadata(), o.clientId, { ...metadata, id_token_signed_response_alg: alg }, clientAuth)
            if (url.protocol === 'http:') oidc.allowInsecureRequests(config)
            config[oidc.customFetch] = providerFetch as oidc.CustomFetch
          }
        }
        config.timeout = 10
        // OpenID Connect Core §3.1.3.7 item 6 lets a client skip the signature of an ID token it got from the token
        // endpoint over TLS; Edgebox checks it with the issuer's keys anyway (and over http on loopback there is no TLS)
        oidc.enableNonRepudiationChecks(config)
        this.lastReached = this.clock.now()
        return config
      },
      (err: unknown) => {
        this.discovered = null
        this.failedAt = this.clock.now()
        throw new ProviderUnavailable(`the identity provider ${this.name} (${o.issuer}) could not be reached: ${describe(err)}`)
      },
    )
    this.discovered = p
    return p
  }

  /**
   * Whether the provider answers: before a browser is sent to it, so a
   * provider that is down gives the user Edgebox's 502 page instead of a
   * connection error: its discovery document is asked for, unless it
   * answered within REACHED_MS.
   */
  private reachable(): Promise<void> {
    if (this.clock.now() - this.lastReached < REACHED_MS) return Promise.resolve()
    // logins starting together share one check
    this.checking ??= this.check().finally(() => (this.checking = null))
    return this.checking
  }

  private async check(): Promise<void> {
    const url = new URL('.well-known/openid-configuration', this.options.issuer.endsWith('/') ? this.options.issuer : this.options.issuer + '/')
    try {
      const res = await providerFetch(url, { signal: AbortSignal.timeout(REACH_TIMEOUT_MS), redirect: 'manual' })
      await res.body?.cancel()
      if (res.status >= 500) throw new Error(`status ${res.status}`)
    } catch (err) {
      throw new ProviderUnavailable(`the identity provider ${this.name} (${this.options.issuer}) could not be reached: ${describe(err)}`)
    }
    this.lastReached = this.clock.now()
  }

  /** The authorization request (OpenID Connect Core §3.1.2.1) for a new login, with its server-side state. */
  async startLogin(redirectUri: string, returnTo: string, binding: string): Promise<{ url: string; pending: PendingLogin }> {
    const config = await this.configuration()
    await this.reachable()
    const codeVerifier = oidc.randomPKCECodeVerifier()
    const state = oidc.randomState()
    const nonce = oidc.randomNonce()
    const params: Record<string, string> = {
      ...this.options.params,
      redirect_uri: redirectUri,
      scope: this.options.scopes.join(' '),
      response_type: 'code',
      code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    }
    const url = oidc.buildAuthorizationUrl(config, params).href
    return { url, pending: { provider: this.name, state, nonce, codeVerifier, redirectUri, returnTo, binding, createdAt: this.clock.now() } }
  }

  /** The callback (`query`: the callback's query string, with its `?`): the code exchanged and every check done. */
  async finishLogin(query: string, pending: PendingLogin): Promise<LoginResult> {
    const config = await this.configuration()
    let tokens: Awaited<ReturnType<typeof oidc.authorizationCodeGrant>>
    try {
      tokens = await oidc.authorizationCodeGrant(config, new URL(pending.redirectUri + query), {
        pkceCodeVerifier: pending.codeVerifier,
        expectedState: pending.state,
        expectedNonce: pending.nonce,
        idTokenExpected: true,
      })
    } catch (err) {
      throw classify(err, this.name)
    }
    const idClaims = tokens.claims()
    if (!idClaims || !tokens.id_token) throw new LoginFailed(`the identity provider ${this.name} returned no ID token`)
    const claims: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(idClaims)) if (!TOKEN_CLAIMS.has(k)) claims[k] = v
    if (this.options.userinfo && tokens.access_token && config.serverMetadata().userinfo_endpoint) {
      try {
        // OpenID Connect Core §5.3.2: the userinfo `sub` must be the ID token's (openid-client checks expectedSubject)
        const info = await oidc.fetchUserInfo(config, tokens.access_token, idClaims.sub)
        for (const [k, v] of Object.entries(info)) if (!TOKEN_CLAIMS.has(k) && !(k in claims)) claims[k] = v
      } catch (err) {
        throw classify(err, this.name)
      }
    }
    this.normaliseGroups(claims)
    this.lastReached = this.clock.now()
    return {
      sub: idClaims.sub,
      sid: typeof idClaims.sid === 'string' ? idClaims.sid : null,
      claims,
      tokens: this.tokensOf(tokens, null),
    }
  }

  /** New tokens for a refresh token (OpenID Connect Core §12). A refused refresh is LoginFailed; an unreachable provider, ProviderUnavailable. */
  async refresh(refreshToken: string, previous: Tokens): Promise<Tokens> {
    const config = await this.configuration()
    try {
      const tokens = await oidc.refreshTokenGrant(config, refreshToken)
      return this.tokensOf(tokens, previous)
    } catch (err) {
      throw classify(err, this.name)
    }
  }

  /** Where to send the browser to end its session at the provider (RP-Initiated Logout 1.0 §2), or null when the provider has no end-session endpoint. */
  async endSessionUrl(idToken: string, postLogoutRedirectUri: string): Promise<string | null> {
    let config: oidc.Configuration
    try {
      config = await this.configuration()
    } catch {
      return null
    }
    if (!config.serverMetadata().end_session_endpoint) return null
    return oidc.buildEndSessionUrl(config, { id_token_hint: idToken, post_logout_redirect_uri: postLogoutRedirectUri, client_id: this.options.clientId }).href
  }

  /**
   * A bearer access token (RFC 6750) from this provider: a JWT is checked
   * with the provider's keys (issuer, an audience of ours, expiry,
   * not-before, and an asymmetric algorithm: never `none` or a shared
   * secret); any other token goes to the introspection endpoint (RFC 7662).
   */
  async verifyBearer(token: string): Promise<BearerVerdict> {
    const config = await this.configuration()
    const meta = config.serverMetadata()
    if (token.split('.').length === 3) {
      let payload: JWTPayload
      let protectedHeader: string | undefined
      try {
        // jose checks iss, aud, exp and nbf; the algorithm is the key's, from the provider's JWKS
        this.jwks ??= createRemoteJWKSet(new URL(meta.jwks_uri!), { timeoutDuration: 10_000, [customFetch]: providerFetch })
        const verified = await jwtVerify(token, this.jwks, { issuer: meta.issuer, audience: this.audiences, algorithms: ASYMMETRIC, currentDate: new Date(this.clock.now()) })
        payload = verified.payload
        protectedHeader = verified.protectedHeader.typ?.toLowerCase().replace(/^application\//, '')
      } catch (err) {
        if (err instanceof joseErrors.JOSEError && !(err instanceof joseErrors.JWKSTimeout)) return { ok: false, why: bearerWhy(err) }
        throw new ProviderUnavailable(`the identity provider ${this.name}'s keys could not be fetched: ${describe(err)}`)
      }
      if (typeof payload.sub !== 'string' || payload.exp === undefined) return { ok: false, why: 'the token has no sub or exp' }
      // an ID token (it travels in id_token_hint URLs) or a logout token is not an access token, though its iss and aud
      // may be right: RFC 9068 §2.1 types access tokens `at+jwt`; the others are told by what only they carry
      if (protectedHeader !== 'at+jwt' && ('nonce' in payload || 'events' in payload || payload.token_use === 'id' || protectedHeader === 'logout+jwt')) {
        return { ok: false, why: 'the token is an ID or logout token, not an access token' }
      }
      const claims = { ...payload } as Record<string, unknown>
      for (const k of TOKEN_CLAIMS) delete claims[k]
      this.normaliseGroups(claims)
      return { ok: true, sub: payload.sub, claims, expiresAt: payload.exp * 1000 }
    }
    if (!meta.introspection_endpoint) return { ok: false, why: 'the token is not a JWT and the provider has no introspection endpoint' }
    let info: oidc.IntrospectionResponse
    try {
      info = await oidc.tokenIntrospection(config, token)
    } catch (err) {
      throw new ProviderUnavailable(`the identity provider ${this.name}'s introspection failed: ${describe(err)}`)
    }
    if (!info.active) return { ok: false, why: 'the token is not active' }
    // only an access token is a bearer token (RFC 6749 §1.5: a refresh token never goes to a resource server); RFC 7662
    // §2.2 leaves token_type optional, but a provider that introspects refresh tokens too has to say which is which
    const type = typeof info.token_type === 'string' ? info.token_type.toLowerCase() : ''
    if (type !== 'bearer' && type !== 'dpop') return { ok: false, why: 'the token is not an access token' }
    if (typeof info.sub !== 'string') return { ok: false, why: 'the token names no subject' }
    // RFC 7662 §4: the protected resource decides whether the token is meant for it: its audience, or without one,
    // the client it was issued to, must be one of ours (a token another application got is not for this one)
    const aud = info.aud === undefined ? [] : Array.isArray(info.aud) ? info.aud : [info.aud]
    const forUs = info.aud !== undefined ? aud.some((a) => this.audiences.includes(a)) : typeof info.client_id === 'string' && this.audiences.includes(info.client_id)
    if (!forUs) return { ok: false, why: 'the token is for another audience' }
    const claims = { ...info } as Record<string, unknown>
    for (const k of [...TOKEN_CLAIMS, 'active', 'scope', 'client_id', 'token_type', 'username']) delete claims[k]
    if (typeof info.username === 'string' && claims.preferred_username === undefined) claims.preferred_username = info.username
    this.normaliseGroups(claims)
    return { ok: true, sub: info.sub, claims, expiresAt: typeof info.exp === 'number' ? info.exp * 1000 : this.clock.now() + 60_000 }
  }

  /**
   * The provider's keys and issuer, for checking a back-channel logout token
   * (OpenID Connect Back-Channel Logout 1.0 §2.6): the caller checks the rest.
   */
  async verifyLogoutToken(token: string): Promise<JWTPayload> {
    const config = await this.configuration()
    const meta = config.serverMetadata()
    this.jwks ??= createRemoteJWKSet(new URL(meta.jwks_uri!), { timeoutDuration: 10_000, [customFetch]: providerFetch })
    // §2.6 items 3-5: the signature by the issuer's keys, iss, and aud containing our client ID; iat present
    const { payload } = await jwtVerify(token, this.jwks, {
      issuer: meta.issuer,
      audience: this.options.clientId,
      algorithms: ASYMMETRIC,
      requiredClaims: ['iat'],
      currentDate: new Date(this.clock.now()),
      // a logout token may lack exp (§2.4 makes it recommended, not required)
    })
    return payload
  }

  /** Whether a token names this provider as its issuer (read without checking, to pick the provider that checks it). */
  isIssuerOf(token: string): boolean {
    try {
      return decodeJwt(token).iss === this.options.issuer
    } catch {
      return false
    }
  }

  /** Puts the configured groups claim in `groups`, as a list of strings. */
  private normaliseGroups(claims: Record<string, unknown>): void {
    const raw = claims[this.options.groupsClaim]
    if (raw === undefined) return
    const list = Array.isArray(raw) ? raw.filter((g): g is string => typeof g === 'string') : typeof raw === 'string' ? [raw] : []
    claims.groups = list
  }

  private tokensOf(t: oidc.TokenEndpointResponse, previous: Tokens | null): Tokens {
    return {
      // OpenID Connect Core §12.2: a refresh response may leave out the ID token (and the refresh token)
      idToken: t.id_token ?? previous?.idToken ?? '',
      accessToken: t.access_token ?? null,
      refreshToken: t.refresh_token ?? previous?.refreshToken ?? null,
      expiresAt: typeof t.expires_in === 'number' ? this.clock.now() + t.expires_in * 1000 : null,
    }
  }
}

/** Signature algorithms accepted on tokens: asymmetric only (RFC 8725 §3.1: never `none`, and no HMAC with a key the client might know). */
const ASYMMETRIC = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519']

function bearerWhy(err: joseErrors.JOSEError): string {
  if (err instanceof joseErrors.JWTExpired) return 'the token has expired'
  if (err instanceof joseErrors.JWTClaimValidationFailed) return `the token's ${err.claim} claim is not acceptable (${err.reason})`
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'the token is signed with an algorithm that is not accepted'
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'the token signature does not verify'
  if (err instanceof joseErrors.JWKSNoMatchingKey) return "no key of the provider matches the token's"
  return 'the token is malformed'
}

/** What a failed exchange means for the user: the provider down (502) or the login refused (4xx). */
function classify(err: unknown, provider: string): Error {
  if (err instanceof ProviderUnavailable || err instanceof LoginFailed) return err
  if (err instanceof oidc.ResponseBodyError) {
    // RFC 6749 §5.2: an OAuth error from the token endpoint (invalid_grant: a used or expired code)
    const status = err.status >= 500 ? 502 : 400
    const text = `the identity provider ${provider} refused: ${err.error}${err.error_description ? ` (${err.error_description})` : ''}`
    return status === 502 ? new ProviderUnavailable(text) : new LoginFailed(text, 400)
  }
  if (err instanceof oidc.AuthorizationResponseError) return new LoginFailed(`the identity provider ${provider} refused: ${err.error}${err.error_description ? ` (${err.error_description})` : ''}`, err.error === 'access_denied' ? 403 : 400)
  if (err instanceof oidc.ClientError) {
    const code = (err as { code?: string }).code ?? ''
    // network failures and timeouts are the provider being unreachable; anything openid-client refused is a failed login
    if (code === 'OAUTH_TIMEOUT' || code === 'OAUTH_RESPONSE_IS_NOT_JSON' || code === 'OAUTH_RESPONSE_IS_NOT_CONFORM' && /status/.test(err.message)) return new ProviderUnavailable(`the identity provider ${provider} failed: ${err.message}`)
    return new LoginFailed(`the login with ${provider} was refused: ${err.message}`)
  }
  if (err instanceof TypeError || (err as { name?: string }).name === 'AbortError' || (err as { name?: string }).name === 'TimeoutError') return new ProviderUnavailable(`the identity provider ${provider} could not be reached: ${describe(err)}`)
  return new LoginFailed(`the login with ${provider} failed: ${describe(err)}`)
}

function describe(err: unknown): string {
  const e = err as { message?: string; cause?: { code?: string; message?: string } }
  const cause = e.cause?.code ?? e.cause?.message
  return `${e.message ?? String(err)}${cause ? ` (${cause})` : ''}`
}
