import { LRUCache } from 'lru-cache'
import type { Context } from '../core/context.ts'
import { httpError } from '../core/errors.ts'
import type { RouteParts } from '../core/types.ts'
import { cookieValue } from '../http/cookie.ts'
import { compileGlob } from '../http/glob.ts'
import { clientNetwork } from '../http/address.ts'
import { parseRequestTarget } from '../http/target.ts'
import { deniedPage, displayName, providerDownPage, storeDownPage } from './pages.ts'
import { LoginFailed, ProviderUnavailable, type BearerVerdict } from './relying-party.ts'
import { safeReturnPath } from './return-to.ts'
import { compileRules } from './rules.ts'
import type { GateConfig } from './schema.ts'
import type { LiveSession } from './sessions.ts'
import { LOGIN_TTL_MS, loginBinding, PENDING_PER_CLIENT, redirectUri, sessionCookieName, sha256, SessionView, viewOf, type AuthState, type ForwardMode, type Gate } from './state.ts'

/**
 * The sign-on gate of one route (docs/sso.md), in the pipeline's access
 * phase after CORS (a preflight was answered there, or passes here):
 *
 * - a path or method listed in `skip` passes;
 * - `Authorization: Bearer` is checked as an access token of one of the
 *   route's providers (verdicts kept until the token expires);
 * - a session cookie names a session (from memory, else the store): the
 *   route's rules decide (403 page on deny), and the identity goes to the
 *   handler (`ctx.identity`) and upstream;
 * - without either, a browser navigation is redirected to the provider (or
 *   the chooser when the route allows several) and anything else gets 401.
 *
 * A session whose tokens end within `refreshBefore` is refreshed in the
 * background, one refresh at a time; the request does not wait unless it
 * carries the access token upstream and that token has already expired.
 */

export function createGate(state: AuthState, id: string, options: GateConfig, forward: ForwardMode | null): Gate {
  const names = options.providers ?? [...state.providers.keys()]
  const skips = options.skip.map((s) => ({ match: compileGlob(s.path), methods: s.methods ? new Set(s.methods) : null }))
  const gate: Gate = {
    id,
    options,
    forward,
    providers: names.map((n) => state.providers.get(n)!),
    decide: compileRules(options.rules),
    skips(method, path) {
      for (const s of skips) if (s.match(path) && (s.methods === null || s.methods.has(method))) return true
      return false
    },
  }
  state.gates.set(id, gate)
  return gate
}

/** A path segment of one or two dots followed by parameters (`..;x`, `.;`), raw or percent-encoded. */
const DOT_PARAMETER = /\/(?:\.|%2e){1,2}(?:;|%3b)/i

/** A bearer token's verdict, kept by its SHA-256 until it expires (at most 5 minutes). */
interface BearerEntry {
  readonly verdict: BearerVerdict
  readonly provider: string
  readonly until: number
  view: SessionView | null
}

export function gateParts(state: AuthState, gate: Gate): RouteParts {
  const bearers = new LRUCache<string, BearerEntry>({ max: 10_000 })
  const allowed = new Set(gate.providers.map((p) => p.name))

  function step(ctx: Context): boolean | void | Promise<boolean | void> {
    let skipped: boolean
    // a skip never applies to a path with parameters (`/private/report;.css` is `/private/report` to some servers)
    if (ctx.target.rawPath.includes(';')) skipped = false
    else if (gate.forward === null) skipped = gate.skips(ctx.method, ctx.path)
    else {
      const [method, path] = askedOf(ctx)
      skipped = gate.skips(method, path)
    }
    if (skipped) {
      ctx.auth = 'skip'
      return
    }
    // A CORS preflight carries no credentials (Fetch standard, CORS-preflight request), so it is never asked to sign
    // in; but it never reaches the handler either (a proxy would hand it, with its path, query and body, to an upstream
    // that may act on any method). A route with `cors` answered it before this step: here it gets a plain 204, with no
    // CORS fields, which the browser takes as "not allowed".
    if (ctx.method === 'OPTIONS' && ctx.req.headers['access-control-request-method'] !== undefined) {
      ctx.auth = 'preflight'
      ctx.send(204, { 'cache-control': 'no-store' })
      return true
    }
    // path parameters (`;`) next to dot segments are read as `..` by some servers (Tomcat, Jetty: `/public/..;/admin`):
    // refused where a gate decides by path
    if (DOT_PARAMETER.test(ctx.target.rawPath)) throw httpError('EB_ERR_BAD_PATH', 'a path segment of dots with parameters (..;) is refused on routes behind sign-on')
    const authorization = ctx.header('authorization')
    if (authorization !== undefined && /^bearer\s/i.test(authorization)) return bearer(ctx, authorization.slice(7).trim())
    const id = cookieValue(ctx.header('cookie'), sessionCookieName(state, ctx))
    if (id !== undefined) {
      const found = state.sessions.find(id)
      if (found === null) return unauthenticated(ctx)
      if (found instanceof Promise) return found.then((s) => (s ? admit(ctx, s) : unauthenticated(ctx)))
      return admit(ctx, found)
    }
    return unauthenticated(ctx)
  }

  /** A session: the rules, the identity, a refresh when its tokens are due. */
  function admit(ctx: Context, session: LiveSession): boolean | void | Promise<boolean | void> {
    if (!allowed.has(session.record.provider)) return unauthenticated(ctx)
    const view = viewOf(state, gate, session, ctx.origin)
    ctx.user = session.record.sub
    if (!view.decision.allow) {
      ctx.auth = `deny rule ${view.decision.rule}`
      deniedPage(ctx, displayName(session.record.claims, session.record.sub), state.providers.get(session.record.provider)!.label)
      return true
    }
    ctx.auth = view.decision.rule === -1 ? 'allow' : `allow rule ${view.decision.rule}`
    ctx.identity = view
    const r = session.record
    if (r.refreshToken !== null && r.tokenExpiresAt !== null) {
      const now = state.clock.now()
      if (r.tokenExpiresAt - now <= state.config.sessions.refreshBefore) {
        const refreshing = refresh(session)
        // nothing waits for a background refresh: its failures are logged inside, never left unhandled
        refreshing.catch((err: unknown) => state.log.warn({ why: (err as Error).message }, 'a session refresh failed'))
        // the upstream is handed the access token itself: it must not be an expired one
        if (gate.options.upstream.accessToken && r.tokenExpiresAt <= now) {
          return refreshing.then(() => {
            const t = session.record.tokenExpiresAt
            if (t === null || t <= state.clock.now()) {
              ctx.identity = null
              return unauthenticated(ctx)
            }
          })
        }
      }
    }
  }

  /** One refresh per session at a time; a refused refresh ends the session, an unreachable provider leaves it as it is. */
  function refresh(session: LiveSession): Promise<void> {
    session.refreshing ??= (async () => {
      const rp = state.providers.get(session.record.provider)!
      const r = session.record
      try {
        const t = await rp.refresh(r.refreshToken!, { idToken: r.idToken, accessToken: r.accessToken, refreshToken: r.refreshToken, expiresAt: r.tokenExpiresAt })
        await state.sessions.updateTokens(session, { idToken: t.idToken, accessToken: t.accessToken, refreshToken: t.refreshToken, tokenExpiresAt: t.expiresAt })
      } catch (err) {
        if (err instanceof LoginFailed) {
          // another process (or an earlier read of this session) may have refreshed it already, with the refresh token
          // rotated: a refusal of the old one then says nothing about the session
          const now = await state.sessions.store.get(session.key).catch(() => undefined)
          if (now && now.refreshToken !== r.refreshToken) {
            session.record = now
            return
          }
          state.log.info({ provider: rp.name, why: err.message }, 'a session ended: its refresh was refused')
          await state.sessions.end(session).catch((e: unknown) => state.log.warn({ why: (e as Error).message }, 'a session could not be ended'))
        } else state.log.warn({ provider: rp.name, why: (err as Error).message }, 'a session could not be refreshed; it goes on until its end')
      } finally {
        session.refreshing = null
      }
    })()
    return session.refreshing
  }

  function bearer(ctx: Context, token: string): boolean | void | Promise<boolean | void> {
    if (!gate.options.bearer) return refuseBearer(ctx, 'bearer tokens are not accepted here')
    const key = sha256(token)
    const entry = bearers.get(key)
    if (entry && entry.until > state.clock.now()) return bearerAdmit(ctx, entry)
    return verify(token).then(
      (found) => {
        const until = found.verdict.ok ? Math.min(found.verdict.expiresAt, state.clock.now() + 300_000) : state.clock.now() + 60_000
        const e: BearerEntry = { ...found, until, view: null }
        bearers.set(key, e)
        return bearerAdmit(ctx, e)
      },
      (err: unknown) => {
        if (!(err instanceof ProviderUnavailable)) throw err
        state.log.warn({ why: err.message }, 'a bearer token could not be checked')
        throw httpError('EB_ERR_BAD_GATEWAY', 'the identity provider could not be reached to check the token')
      },
    )
  }

  /** The verdict of the route's providers: the one that issued a JWT, else the first whose introspection knows the token. */
  async function verify(token: string): Promise<{ verdict: BearerVerdict; provider: string }> {
    const jwt = token.split('.').length === 3
    // a JWT goes to the provider that issued it; an opaque token to the route's first provider only (sending it to
    // each in turn would show one provider's tokens to another)
    const candidates = jwt ? gate.providers.filter((rp) => rp.isIssuerOf(token)) : gate.providers.slice(0, 1)
    for (const rp of candidates) {
      const verdict = await rp.verifyBearer(token)
      return { verdict, provider: verdict.ok ? rp.name : '' }
    }
    return { verdict: { ok: false, why: 'no provider of this route issued the token' }, provider: '' }
  }

  function bearerAdmit(ctx: Context, entry: BearerEntry): boolean | void {
    const v = entry.verdict
    if (!v.ok) return refuseBearer(ctx, v.why)
    const rp = state.providers.get(entry.provider)!
    entry.view ??= new SessionView(state, gate, entry.provider, v.sub, v.claims, ctx.origin, () => null)
    ctx.user = v.sub
    if (!entry.view.decision.allow) {
      ctx.auth = `deny rule ${entry.view.decision.rule}`
      // RFC 6750 §3.1: the token is good, but not for this resource
      throw httpError('EB_ERR_FORBIDDEN', `${displayName(v.claims, v.sub)} (${rp.label}) may not use ${ctx.rawPath}`, { 'WWW-Authenticate': `Bearer realm="${realm(ctx)}", error="insufficient_scope"` })
    }
    ctx.auth = entry.view.decision.rule === -1 ? 'allow bearer' : `allow bearer rule ${entry.view.decision.rule}`
    ctx.identity = entry.view
  }

  function refuseBearer(ctx: Context, why: string): never {
    ctx.auth = 'refused'
    // RFC 6750 §3: the challenge names the error
    throw httpError('EB_ERR_UNAUTHORIZED', `the bearer token was refused: ${why}`, { 'WWW-Authenticate': `Bearer realm="${realm(ctx)}", error="invalid_token", error_description="${why.replace(/["\\]/g, '')}"` })
  }

  /** No (usable) credentials: a browser goes to sign in, anything else gets 401. */
  function unauthenticated(ctx: Context): boolean | Promise<boolean> {
    if (!gate.options.required) {
      ctx.auth = 'anonymous'
      return false
    }
    const [method, , target] = askedOf(ctx)
    if (!isNavigation(ctx, method) || (gate.forward !== null && !gate.forward.redirect)) {
      ctx.auth = 'unauthenticated'
      throw httpError('EB_ERR_UNAUTHORIZED', 'sign in first (a session cookie or a bearer token)', { 'WWW-Authenticate': `Bearer realm="${realm(ctx)}"` })
    }
    ctx.auth = 'login'
    const returnTo = safeReturnPath(target)
    // several providers: the chooser; asked by another proxy: the login on the origin the browser used
    if (gate.providers.length > 1 || gate.forward !== null) {
      ctx.send(302, { location: `${gate.forward ? ctx.origin : ''}/_edgebox/auth/login?rd=${encodeURIComponent(returnTo)}`, 'cache-control': 'no-store' })
      return true
    }
    return startLogin(state, ctx, gate.providers[0]!.name, returnTo)
  }

  /**
   * The request the gate decides about: this one, or for a forward-auth
   * route the one the proxy in front describes (`X-Forwarded-Method`,
   * `X-Forwarded-Uri`), believed only from a trusted proxy.
   */
  function askedOf(ctx: Context): Asked {
    if (gate.forward === null) return [ctx.method, ctx.path, ctx.target.rawPath + ctx.query]
    if (!ctx.client.trusted) {
      ctx.auth = 'refused'
      throw httpError('EB_ERR_FORBIDDEN', 'the forward-auth endpoint answers only the proxies listed in trustedProxies')
    }
    const method = (ctx.header('x-forwarded-method') ?? 'GET').toUpperCase()
    const target = ctx.header('x-forwarded-uri') ?? '/'
    let path = '/'
    try {
      path = parseRequestTarget(method, target).path
    } catch {
      // a target that is no path: decided as the site's root
    }
    return [method, path, target]
  }

  return {
    step,
    upgrade(ctx) {
      // an Upgrade (a WebSocket) has no page to go to: a session or a token, else 401
      if (gate.skips(ctx.method, ctx.path)) return 0
      const authorization = ctx.header('authorization')
      const decide = (s: LiveSession | null): number => {
        if (!s || !allowed.has(s.record.provider)) return gate.options.required ? 401 : 0
        const view = viewOf(state, gate, s, ctx.origin)
        if (!view.decision.allow) return 403
        ctx.identity = view
        ctx.user = s.record.sub
        return 0
      }
      if (authorization !== undefined && /^bearer\s/i.test(authorization)) {
        if (!gate.options.bearer) return 401
        const admitEntry = (entry: BearerEntry): number => {
          if (!entry.verdict.ok) return 401
          entry.view ??= new SessionView(state, gate, entry.provider, entry.verdict.sub, entry.verdict.claims, ctx.origin, () => null)
          if (!entry.view.decision.allow) return 403
          ctx.identity = entry.view
          ctx.user = entry.verdict.sub
          return 0
        }
        const token = authorization.slice(7).trim()
        const key = sha256(token)
        const entry = bearers.get(key)
        if (entry && entry.until > state.clock.now()) return admitEntry(entry)
        return verify(token).then(
          (found) => {
            const e: BearerEntry = { ...found, until: found.verdict.ok ? Math.min(found.verdict.expiresAt, state.clock.now() + 300_000) : state.clock.now() + 60_000, view: null }
            bearers.set(key, e)
            return admitEntry(e)
          },
          () => 401,
        )
      }
      const id = cookieValue(ctx.header('cookie'), sessionCookieName(state, ctx))
      if (id === undefined) return gate.options.required ? 401 : 0
      const found = state.sessions.find(id)
      return found instanceof Promise ? found.then(decide) : decide(found)
    },
  }
}

/** Starts a login with one provider: the browser is sent to its authorization endpoint (or a 502 page when it cannot be reached). */
export async function startLogin(state: AuthState, ctx: Context, provider: string, returnTo: string): Promise<boolean> {
  const rp = state.providers.get(provider)!
  const binding = loginBinding(ctx)
  try {
    const { url, pending } = await rp.startLogin(redirectUri(state, ctx, rp.name), returnTo, sha256(binding))
    const key = sha256(pending.state)
    try {
      await state.logins.put(key, pending, pending.createdAt + LOGIN_TTL_MS)
    } catch (err) {
      state.log.warn({ provider: rp.name, err: (err as Error).message }, 'a login could not start: its store cannot be reached')
      storeDownPage(ctx)
      return true
    }
    const client = clientNetwork(ctx.clientAddress)
    const mine = state.pendingByClient.get(client) ?? []
    mine.push(key)
    // a client that starts logins without finishing them keeps its latest ones only
    while (mine.length > PENDING_PER_CLIENT) void state.logins.take(mine.shift()!, pending.createdAt).catch(() => undefined)
    state.pendingByClient.set(client, mine)
    ctx.auth = `login ${rp.name}`
    ctx.send(302, { location: url, 'cache-control': 'no-store' })
  } catch (err) {
    if (!(err instanceof ProviderUnavailable)) throw err
    state.log.warn({ provider: rp.name, why: err.message }, 'a login could not start')
    providerDownPage(ctx, err.message)
  }
  return true
}

/** The method and decoded path a gate decides about, and the target to return to after a login. */
type Asked = readonly [method: string, path: string, target: string]

/** A top-level navigation of a browser: it may be redirected to a login page (anything else gets 401). */
export function isNavigation(ctx: Context, method: string): boolean {
  if (method !== 'GET' && method !== 'HEAD') return false
  const mode = ctx.header('sec-fetch-mode')
  if (mode !== undefined) return mode === 'navigate'
  return (ctx.header('accept') ?? '').includes('text/html')
}

function realm(ctx: Context): string {
  return ctx.host.replace(/["\\]/g, '')
}
