import type { IncomingMessage, ServerResponse } from 'node:http'
import { Agent, fetch as undiciFetch } from 'undici'
// @ts-expect-error: oidc-provider ships no types; the part used here is typed below (OidcProvider)
import Provider, { errors as oidcErrors } from 'oidc-provider'
import type { Logger } from '../../core/log.ts'
import { escapeHtml } from '../../http/html.ts'
import { localhostLookup } from '../fetch.ts'
import type { User, UserDirectory } from '../users.ts'
import { ConsumedError, StoreUnavailableError, type Adapter, type IdpStore } from './store.ts'
import type { IdpKeys } from './keys.ts'
import { logoutPage, messagePage, type Page } from './pages.ts'
import type { IdpConfig } from './schema.ts'

/**
 * oidc-provider 9 set up as Edgebox's built-in OpenID Connect provider
 * (docs/idp.md): the authorization code flow only (OpenID Connect Core
 * §3.1), PKCE S256 required for every client (RFC 7636, RFC 9700 §2.1.1),
 * refresh tokens rotated at each use (RFC 9700 §4.14.2), userinfo (Core
 * §5.3), RP-Initiated Logout 1.0 with Edgebox's own confirmation page,
 * Back-Channel Logout 1.0 to clients that registered a URI, introspection
 * (RFC 7662) for confidential clients and revocation (RFC 7009). Clients are
 * first-party: a grant of every scope is made without a consent page.
 * devInteractions are off: the sign-in pages are Edgebox's
 * (interactions.ts). Accounts are the user store's, read on every use, so a
 * user removed or disabled with `edgebox user` gets no more tokens.
 */

/** The scopes and the claims each one releases (Core §5.4; `groups` is Edgebox's). */
export const SCOPE_CLAIMS = {
  openid: ['sub'],
  email: ['email', 'email_verified'],
  profile: ['name', 'preferred_username'],
  groups: ['groups'],
} as const

/** Every scope a client may ask for. */
export const SCOPES = ['openid', 'offline_access', 'email', 'profile', 'groups'] as const

const ALL_CLAIMS = Object.values(SCOPE_CLAIMS)
  .flat()
  .filter((c) => c !== 'sub')

/** The part of an oidc-provider interaction Edgebox reads (oidc-provider's Interaction model). */
export interface InteractionDetails {
  readonly uid: string
  /** Expiry, seconds since the epoch. */
  readonly exp: number
  readonly prompt: { readonly name: string; readonly reasons: string[]; readonly details: Record<string, unknown> }
  readonly params: Record<string, unknown>
  readonly session?: { readonly accountId?: string; readonly uid?: string }
  readonly grantId?: string
}

/** A grant (oidc-provider's Grant model): what a client may get for an account. */
export interface Grant {
  readonly accountId: string
  readonly clientId: string
  addOIDCScope(scope: string): void
  addOIDCClaims(claims: readonly string[]): void
  addResourceScope(indicator: string, scope: string): void
  save(): Promise<string>
}

/** A client (oidc-provider's Client model), as far as Edgebox uses it. */
export interface OidcClient {
  readonly clientId: string
  /** Where it takes logout tokens (Back-Channel Logout 1.0), when it registered one. */
  readonly backchannelLogoutUri?: string
  /**
   * Signs a logout token for `sub` (and `sid`) with the provider's keys and
   * posts it to the client's back-channel logout URI through the provider's
   * `fetch` (one attempt, 2.5 s at most); rejects unless the client answers
   * 200 or 204.
   */
  backchannelLogout(sub: string, sid: string | undefined): Promise<void>
}

/** The oidc-provider instance, as far as Edgebox uses it. */
export interface OidcProvider {
  proxy: boolean
  readonly issuer: string
  callback(): (req: IncomingMessage, res: ServerResponse) => void
  interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<InteractionDetails>
  interactionFinished(req: IncomingMessage, res: ServerResponse, result: Record<string, unknown>, opts?: { mergeWithLastSubmission?: boolean }): Promise<void>
  on(event: string, listener: (...args: never[]) => void): unknown
  readonly Grant: { new (init: { accountId: string; clientId: string }): Grant; find(id: string): Promise<Grant | undefined> }
  readonly Client: { find(id: string): Promise<OidcClient | undefined> }
}

/** Koa's context, as the page hooks use it. */
interface KoaContext {
  status: number
  body: unknown
  set(name: string, value: string): void
  readonly oidc: {
    readonly client?: { readonly clientId: string; readonly clientAuthMethod: string }
    readonly account?: { readonly accountId: string }
    readonly session?: { grantIdFor(clientId: string): string | undefined }
    readonly result?: { readonly consent?: { readonly grantId?: string } }
    readonly provider: OidcProvider
    readonly entities: { readonly RotatedRefreshToken?: { readonly remainingTTL: number } }
  }
}

/** The claims of a user (Core §5.1), all of them: oidc-provider releases those the granted scopes name. */
export function claimsOf(user: User): Record<string, unknown> {
  return {
    sub: user.username,
    preferred_username: user.username,
    ...(user.email !== null ? { email: user.email, email_verified: true } : {}),
    ...(user.name !== null ? { name: user.name } : {}),
    groups: [...user.groups],
  }
}

const seconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000))

/** Sends one of Edgebox's pages from an oidc-provider hook (a Koa context). */
function sendKoa(ctx: KoaContext, page: Page, keepStatus = false): void {
  if (!keepStatus) ctx.status = page.status
  for (const [k, v] of Object.entries(page.headers)) ctx.set(k, v)
  ctx.body = page.body
}


/** What building a provider needs. */
export interface ProviderDeps {
  readonly config: IdpConfig
  readonly store: IdpStore
  readonly users: UserDirectory
  readonly keys: IdpKeys
  readonly log: Logger
  /** The provider's name on its pages. */
  readonly name: string
  /** The CSP `form-action` sources of its pages. */
  readonly formAction: string
  /** The path of the interactions (`<issuer path>/interaction/`). */
  readonly interactionBase: string
}

/**
 * An oidc-provider instance with the current keys. A new one is made when
 * the keys rotate: everything it keeps lives in the store, so the swap loses
 * nothing.
 */
export function buildProvider(d: ProviderDeps, backchannel: Agent): OidcProvider {
  const { config } = d
  const issuer = new URL(config.issuer)
  const t = config.tokenLifetimes
  const backchannelUris = new Set(config.clients.flatMap((c) => (c.backchannelLogoutUri ? [new URL(c.backchannelLogoutUri).href] : [])))
  const provider: OidcProvider = new Provider(config.issuer, {
    adapter: (model: string) => singleUse(d.store.adapter(model), model),
    clients: config.clients.map((c) => ({
      client_id: c.clientId,
      ...(c.clientSecret ? { client_secret: c.clientSecret } : {}),
      ...(c.name ? { client_name: c.name } : {}),
      token_endpoint_auth_method: c.clientSecret ? (c.tokenAuth ?? 'client_secret_basic') : 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      application_type: 'web',
      id_token_signed_response_alg: c.idTokenAlg,
      redirect_uris: [...c.redirectUris],
      post_logout_redirect_uris: [...c.postLogoutRedirectUris],
      ...(c.backchannelLogoutUri ? { backchannel_logout_uri: c.backchannelLogoutUri, backchannel_logout_session_required: true } : {}),
    })),
    jwks: d.keys.jwks(),
    cookies: {
      keys: d.keys.cookieKeys(),
      long: { httpOnly: true, sameSite: 'lax' },
      short: { httpOnly: true, sameSite: 'lax' },
    },
    scopes: [...SCOPES],
    claims: Object.fromEntries(Object.entries(SCOPE_CLAIMS).map(([k, v]) => [k, [...v]])),
    conformIdTokenClaims: false,
    responseTypes: ['code'],
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      userinfo: { enabled: true },
      backchannelLogout: { enabled: true },
      // RFC 7662 §4: only clients that authenticate (confidential ones) learn about tokens
      introspection: { enabled: true, allowedPolicy: async (_ctx: unknown, client: { clientAuthMethod: string }) => client.clientAuthMethod !== 'none' },
      // RFC 7009 §2.1: a client revokes only its own tokens
      revocation: { enabled: true, allowedPolicy: async (_ctx: unknown, client: { clientId: string }, token: { clientId: string }) => token.clientId === client.clientId },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx: KoaContext, form: string) => sendKoa(ctx, logoutPage(d.name, issuer.host, form, d.formAction)),
        postLogoutSuccessSource: async (ctx: KoaContext) => sendKoa(ctx, messagePage(200, 'Signed out', `<p>You are signed out of ${escapeHtml(d.name)}.</p>`, d.formAction)),
      },
    },
    ttl: {
      AccessToken: seconds(t.accessToken),
      AuthorizationCode: 60,
      IdToken: seconds(t.idToken),
      // rotated at each use, the chain ends the refresh token lifetime after the sign-in (RFC 9700 §4.14.2)
      RefreshToken: (ctx: KoaContext | undefined) => ctx?.oidc?.entities.RotatedRefreshToken?.remainingTTL ?? seconds(t.refreshToken),
      Interaction: 15 * 60,
      Session: seconds(config.sessionTtl),
      Grant: seconds(Math.max(config.sessionTtl, t.refreshToken)),
    },
    issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(t: string): boolean }) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: true,
    interactions: { url: async (_ctx: unknown, interaction: { uid: string }) => `${d.interactionBase}${interaction.uid}` },
    async findAccount(_ctx: unknown, sub: string) {
      const user = await d.users.get(sub)
      // removed, disabled or renamed: no account, so no tokens, no refresh, no userinfo
      if (!user || user.disabled || user.username !== sub) return undefined
      return { accountId: user.username, claims: async () => claimsOf(user) }
    },
    // first-party clients: the grant covers every scope and claim, made without asking (what a consent page would record)
    async loadExistingGrant(ctx: KoaContext) {
      const { oidc } = ctx
      const accountId = oidc.account!.accountId
      const clientId = oidc.client!.clientId
      const grantId = oidc.result?.consent?.grantId ?? oidc.session?.grantIdFor(clientId)
      let grant = grantId ? await oidc.provider.Grant.find(grantId) : undefined
      if (grant && (grant.accountId !== accountId || grant.clientId !== clientId)) grant = undefined
      grant ??= new oidc.provider.Grant({ accountId, clientId })
      grant.addOIDCScope(SCOPES.join(' '))
      grant.addOIDCClaims(ALL_CLAIMS)
      await grant.save()
      return grant
    },
    async renderError(ctx: KoaContext, out: { error?: string; error_description?: string }, error: unknown) {
      if (error instanceof StoreUnavailableError) return sendKoa(ctx, unavailablePage(d.formAction))
      const what = out.error_description ?? out.error ?? 'the request could not be completed'
      sendKoa(ctx, messagePage(ctx.status, 'Sign-in error', `<p>${escapeHtml(what)}.</p><p class="muted">Go back to the application and start again.${out.error ? ` (<code>${escapeHtml(out.error)}</code>)` : ''}</p>`, d.formAction), true)
    },
    // back-channel logout tokens go to the URIs the configuration registered, loopback ones included (oidc-provider's own
    // dispatcher refuses special-use addresses, against request forgery through URIs clients send; these come from the admin)
    fetch: (url: string | URL, options: RequestInit) =>
      backchannelUris.has(new URL(String(url)).href) ? undiciFetch(url, { ...(options as Parameters<typeof undiciFetch>[1]), dispatcher: backchannel }) : globalThis.fetch(url, options),
  })
  provider.proxy = true
  watch(provider, d.log)
  return provider
}

/** What the provider's pages say when its storage cannot be reached (the shared PostgreSQL is down): try again soon, nothing else to do. */
export function unavailablePage(formAction: string): Page {
  return messagePage(
    503,
    'Sign-in unavailable',
    '<p>Signing in is not possible at the moment: this server cannot reach the database that keeps accounts and sign-ins.</p><p class="muted">Nothing was lost. Wait a minute, then go back to the application and sign in again.</p>',
    formAction,
    { 'retry-after': '30' },
  )
}

/** How a refused second use of a code or token is named to the client (oidc-provider's own words when it finds one used). */
const CONSUMED_LABEL: Readonly<Record<string, string>> = { AuthorizationCode: 'authorization code already consumed', RefreshToken: 'refresh token already used' }

/**
 * An adapter whose `consume` refuses a use that lost the race to another
 * (the same code sent twice at once, to this node or two of them) as
 * oidc-provider refuses a use it sees consumed: everything issued under the
 * grant is revoked (RFC 6749 §4.1.2, RFC 9700 §4.14.2) and the client gets
 * `invalid_grant`.
 */
function singleUse(adapter: Adapter, model: string): Adapter {
  return {
    ...adapter,
    async consume(id) {
      try {
        await adapter.consume(id)
      } catch (err) {
        if (!(err instanceof ConsumedError)) throw err
        if (err.grantId !== null) await adapter.revokeByGrantId(err.grantId)
        throw new oidcErrors.InvalidGrant(CONSUMED_LABEL[model] ?? `${model} already consumed`)
      }
    },
  }
}

/** The dispatcher of back-channel logout requests: `*.localhost` resolves to loopback (RFC 6761 §6.3). */
export function backchannelAgent(): Agent {
  return new Agent({ connect: { lookup: localhostLookup as never, timeout: 5_000 }, headersTimeout: 5_000, bodyTimeout: 5_000 })
}

/** Logs what oidc-provider reports: errors by name and description only (never a token, code or session id). */
function watch(provider: OidcProvider, log: Logger): void {
  const describe = (err: { name?: string; error?: string; error_description?: string; message?: string }) => ({ error: err.error ?? err.name, description: err.error_description ?? err.message })
  provider.on('server_error', (_ctx: never, err: never) => log.error(describe(err), 'identity provider: internal error'))
  // Koa's own error event: logged by the server_error above or here, never printed to stderr by Koa
  provider.on('error', (err: never) => log.error(describe(err), 'identity provider: error'))
  for (const event of ['authorization.error', 'grant.error', 'end_session.error', 'userinfo.error', 'introspection.error', 'revocation.error', 'jwks.error', 'discovery.error', 'check_session_origin.error']) {
    provider.on(event, (_ctx: never, err: never) => log.info({ event, ...describe(err) }, 'identity provider: request refused'))
  }
  provider.on('backchannel.error', (_ctx: never, err: never, client: never) => log.warn({ client: (client as { clientId: string }).clientId, ...describe(err) }, 'identity provider: back-channel logout failed'))
  provider.on('backchannel.success', (_ctx: never, client: never) => log.info({ client: (client as { clientId: string }).clientId }, 'identity provider: back-channel logout sent'))
}
