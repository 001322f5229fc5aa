import { createHash, randomBytes } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import type { BodyLimits } from '../core/body.ts'
import type { Clock } from '../core/clock.ts'
import type { Context } from '../core/context.ts'
import type { Logger } from '../core/log.ts'
import type { Identity } from '../core/types.ts'
import { cookieValue } from '../http/cookie.ts'
import { isSafeFieldValue } from '../http/token.ts'
import type { AssertionSigner } from './assertion.ts'
import type { LoginStore } from './login-store.ts'
import type { RelyingParty } from './relying-party.ts'
import type { Decision } from './rules.ts'
import type { AuthConfig, GateConfig } from './schema.ts'
import type { LiveSession, Sessions } from './sessions.ts'

/**
 * What the sign-on parts share (the gate, the endpoints): the providers, the
 * sessions, the logins under way, the assertion key. One per configuration;
 * a reload with the same session settings hands it on (logins under way and
 * the session cache survive a reload).
 */
export interface AuthState {
  readonly config: AuthConfig
  readonly providers: ReadonlyMap<string, RelyingParty>
  readonly sessions: Sessions
  /**
   * Logins under way, by the SHA-256 of their `state` (OpenID Connect Core
   * §3.1.2.1), for 10 minutes, and the back-channel logout tokens' `jti`
   * already used (Back-Channel Logout 1.0 §2.6 item 9): shared with every
   * process the sessions are shared with, so a callback may come back
   * through any of them, once.
   */
  readonly logins: LoginStore
  /** The `state` digests of the logins each client network started here (clientNetwork): at most PENDING_PER_CLIENT each. */
  readonly pendingByClient: LRUCache<string, string[]>
  readonly signer: AssertionSigner
  readonly clock: Clock
  readonly log: Logger
  /** The gates of the routes, by route id (`sites[0].routes[2]`): the chooser page reads the providers a route allows. */
  readonly gates: Map<string, Gate>
  /** The site-level origin check of the CSRF filter, for the logout form. */
  readonly csrfCheck: (ctx: Context) => void
  /** Request body limits (`limits`), for the back-channel logout's form. */
  readonly limits: BodyLimits
}

/** A route's gate, resolved once: its providers, its compiled rules, its skips. */
export interface Gate {
  readonly id: string
  readonly options: GateConfig
  /** A forward-auth route's gate (other proxies ask it about their requests); null: an ordinary route. */
  readonly forward: ForwardMode | null
  readonly providers: readonly RelyingParty[]
  readonly decide: (claims: Readonly<Record<string, unknown>>) => Decision
  /** Whether a request (its method and decoded path) passes without a login. */
  skips(method: string, path: string): boolean
}

/** How a forward-auth route answers a browser without a session: 302 to the login (`redirect`), else 401. */
export interface ForwardMode {
  readonly redirect: boolean
}

/** How long a login may take from the redirect to the callback. */
export const LOGIN_TTL_MS = 10 * 60_000

/**
 * Logins under way one client network may have: its oldest goes when it
 * starts more, so a client starting logins in a loop cannot push other
 * users' logins out of the server's memory.
 */
export const PENDING_PER_CLIENT = 20

/** The session cookie's name for this request: `__Host-` on HTTPS (RFC 6265bis §4.1.3.2), where it is also `Secure`. */
export function sessionCookieName(state: AuthState, ctx: Context): string {
  return ctx.scheme === 'https' ? `__Host-${state.config.sessions.cookie}` : state.config.sessions.cookie
}

/** The login cookie binds a login to the browser that started it (its SHA-256 is kept with the `state`). */
export function loginCookieName(ctx: Context): string {
  return ctx.scheme === 'https' ? '__Host-edgebox-login' : 'edgebox-login'
}

export function cookieAttributes(ctx: Context, maxAgeSeconds: number): string {
  return `; Path=/; Max-Age=${maxAgeSeconds}; HttpOnly; SameSite=Lax${ctx.scheme === 'https' ? '; Secure' : ''}`
}

/** The browser's login cookie, set on this response if it has none; returns its value. */
export function loginBinding(ctx: Context): string {
  const name = loginCookieName(ctx)
  let value = cookieValue(ctx.header('cookie'), name)
  if (value === undefined || !/^[A-Za-z0-9_-]{43}$/.test(value)) {
    value = randomBytes(32).toString('base64url')
    ctx.setCookies ??= []
    ctx.setCookies.push(`${name}=${value}${cookieAttributes(ctx, LOGIN_TTL_MS / 1000)}`)
  }
  return value
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('base64url')
}

/**
 * The callback path of a provider: `/_edgebox/auth/callback` when it is the
 * only one configured, else `/_edgebox/auth/callback/<name>`. With several
 * providers, the path says which provider a code comes from, so a provider
 * cannot pass off another's code as its own (mix-up, RFC 9700 §4.4.2).
 */
export function callbackPath(state: AuthState, provider: string): string {
  return state.providers.size === 1 ? '/_edgebox/auth/callback' : `/_edgebox/auth/callback/${provider}`
}

/** The callback URL of a provider on the origin the browser used. */
export function redirectUri(state: AuthState, ctx: Context, provider: string): string {
  return `${ctx.origin}${callbackPath(state, provider)}`
}

/** Who a session (or a bearer token) is to one route: the identity its handler and upstream see, and the route's decision. */
export class SessionView implements Identity {
  readonly provider: string
  readonly subject: string
  readonly claims: Readonly<Record<string, unknown>>
  readonly decision: Decision
  readonly binding: string
  private readonly state: AuthState
  private readonly gate: Gate
  private readonly issuer: string
  private readonly accessToken: () => string | null
  private readonly minted = new Map<string, { fields: Readonly<Record<string, string>>; until: number }>()

  constructor(state: AuthState, gate: Gate, provider: string, subject: string, claims: Readonly<Record<string, unknown>>, issuer: string, accessToken: () => string | null, binding = '') {
    this.binding = binding
    this.state = state
    this.gate = gate
    this.provider = provider
    this.subject = subject
    this.claims = claims
    this.decision = gate.decide(claims)
    this.issuer = issuer
    this.accessToken = accessToken
  }

  /**
   * The fields for an upstream of `audience` (its origin): made once per
   * assertion lifetime and reused until 10 seconds before it ends, so no
   * request signs anything of its own.
   */
  upstreamFields(audience: string): Readonly<Record<string, string>> {
    const now = this.state.clock.now()
    const made = this.minted.get(audience)
    const token = this.accessToken()
    if (made && made.until > now && (!this.gate.options.upstream.accessToken || made.fields['x-auth-request-access-token'] === token)) return made.fields
    const lifetime = this.state.config.assertion.lifetime
    const up = this.gate.options.upstream
    const fields: Record<string, string> = {}
    const email = typeof this.claims.email === 'string' ? this.claims.email : undefined
    const groups = Array.isArray(this.claims.groups) ? (this.claims.groups as string[]) : []
    const user = typeof this.claims.preferred_username === 'string' ? this.claims.preferred_username : this.subject
    if (up.assertion) {
      const iat = Math.floor(now / 1000)
      fields['edgebox-jwt-assertion'] = this.state.signer.sign({
        iss: this.issuer,
        aud: audience,
        sub: this.subject,
        iat,
        exp: iat + Math.ceil(lifetime / 1000),
        idp: this.provider,
        ...(email !== undefined ? { email } : {}),
        ...(user !== this.subject ? { preferred_username: user } : {}),
        groups,
      })
    }
    if (up.headers) {
      // a value that cannot be a field value (a control character, or not Latin-1) is left out; the assertion carries it
      setIfSafe(fields, 'x-auth-request-user', user)
      if (email !== undefined) setIfSafe(fields, 'x-auth-request-email', email)
      // a group whose name holds a comma would read as two: then the groups go in the assertion only
      if (groups.length > 0 && !groups.some((g) => g.includes(','))) setIfSafe(fields, 'x-auth-request-groups', groups.join(','))
    }
    if (up.accessToken && token) fields['x-auth-request-access-token'] = token
    Object.freeze(fields)
    this.minted.set(audience, { fields, until: now + lifetime - Math.min(10_000, lifetime / 2) })
    if (this.minted.size > 16) this.minted.delete(this.minted.keys().next().value!)
    return fields
  }
}

function setIfSafe(fields: Record<string, string>, name: string, value: string): void {
  if (isSafeFieldValue(value) && /^[\x20-\x7e]*$/.test(value)) fields[name] = value
}

/** The view of a session for one gate, made once per session and gate. */
export function viewOf(state: AuthState, gate: Gate, session: LiveSession, issuer: string): SessionView {
  let view = session.views.get(gate) as SessionView | undefined
  if (!view) {
    // the binding: a hash of the store's key (itself a hash of the id), so it gives neither
    view = new SessionView(state, gate, session.record.provider, session.record.sub, session.record.claims, issuer, () => session.record.accessToken, sha256(`csrf ${session.key}`))
    session.views.set(gate, view)
  }
  return view
}
