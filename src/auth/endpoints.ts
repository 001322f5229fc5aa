import { decodeJwt, errors as joseErrors } from 'jose'
import { readForm } from '../core/body.ts'
import type { Context } from '../core/context.ts'
import type { Endpoint } from '../core/endpoints.ts'
import { httpError } from '../core/errors.ts'
import { matchRoute } from '../core/router.ts'
import { cookieValue } from '../http/cookie.ts'
import { parseRequestTarget } from '../http/target.ts'
import { isNavigation, startLogin } from './gate.ts'
import { chooserPage, continueToProviderPage, displayName, loginFailedPage, providerDownPage, signedOutPage, signOutPage, storeDownPage } from './pages.ts'
import { LoginFailed, ProviderUnavailable, type PendingLogin } from './relying-party.ts'
import { safeReturnPath } from './return-to.ts'
import { callbackPath, cookieAttributes, LOGIN_TTL_MS, loginCookieName, sessionCookieName, sha256, type AuthState } from './state.ts'
import type { LiveSession } from './sessions.ts'

/**
 * Edgebox's sign-on endpoints, on every site with a gate (docs/sso.md):
 *
 *   GET  /_edgebox/auth/callback            the provider's redirect back: the code exchanged, the session made
 *                                           (with several providers, /_edgebox/auth/callback/<name>: one per provider)
 *   GET  /_edgebox/auth/login?rd=&provider= the chooser (several providers), or a login started with one
 *   GET  /_edgebox/auth/logout              a page with the sign-out button
 *   POST /_edgebox/auth/logout              sign out (the CSRF origin check), then the provider's own logout
 *   GET  /_edgebox/auth/signed-out          where a sign-out ends
 *   GET  /_edgebox/auth/frontchannel-logout the provider's sign-out in a frame (Front-Channel Logout 1.0)
 *   GET  /_edgebox/auth/userinfo            who the session is (JSON), for pages that show it
 *   GET  /_edgebox/auth/jwks.json           the key that signs Edgebox-Jwt-Assertion
 *   POST /_edgebox/auth/backchannel-logout  a provider ends sessions (Back-Channel Logout 1.0)
 */
export function authEndpoints(state: AuthState): Endpoint[] {
  const feature = 'auth'
  const noStore = { 'cache-control': 'no-store' }

  /** The session the request's cookie names, or null. */
  const sessionOf = async (ctx: Context): Promise<LiveSession | null> => {
    const id = cookieValue(ctx.header('cookie'), sessionCookieName(state, ctx))
    return id === undefined ? null : await state.sessions.find(id)
  }

  const clearSession = (ctx: Context) => {
    ctx.setCookies ??= []
    ctx.setCookies.push(`${sessionCookieName(state, ctx)}=${cookieAttributes(ctx, 0)}`)
  }

  return [
    ...[...new Set([...state.providers.keys()].map((name) => callbackPath(state, name)))].map((path): Endpoint => ({
      path,
      feature,
      methods: ['GET', 'HEAD'],
      async handle(ctx) {
        const params = new URLSearchParams(ctx.query)
        const stateParam = params.get('state')
        // single use, whatever happens next: taken from the store in the same step, on whichever process it came back to
        let pending: PendingLogin | undefined
        try {
          pending = stateParam === null ? undefined : await state.logins.take(sha256(stateParam), state.clock.now())
        } catch (err) {
          state.log.warn({ err: (err as Error).message }, 'a login could not finish: its store cannot be reached')
          ctx.auth = 'callback: store unreachable'
          return storeDownPage(ctx)
        }
        if (!pending || pending.state !== stateParam || state.clock.now() - pending.createdAt > LOGIN_TTL_MS) {
          ctx.auth = 'callback: unknown state'
          return loginFailedPage(ctx, 400, 'This sign-in has expired or was already used. Start again from the page you wanted.')
        }
        // the code came back on the path of the provider the login was started with (RFC 9700 §4.4.2)
        if (path !== callbackPath(state, pending.provider)) {
          ctx.auth = 'callback: another provider'
          return loginFailedPage(ctx, 400, 'This sign-in came back from another identity provider than the one it was started with. Start again.')
        }
        const binding = cookieValue(ctx.header('cookie'), loginCookieName(ctx))
        if (binding === undefined || sha256(binding) !== pending.binding) {
          ctx.auth = 'callback: another browser'
          return loginFailedPage(ctx, 400, 'This sign-in was started in another browser (or its cookie was lost). Start again from the page you wanted.')
        }
        const rp = state.providers.get(pending.provider)
        if (!rp) return loginFailedPage(ctx, 400, 'This sign-in was started with a provider that is no longer configured. Start again.')
        let result
        try {
          result = await rp.finishLogin(ctx.query, pending)
        } catch (err) {
          if (err instanceof ProviderUnavailable) {
            ctx.auth = `callback: ${rp.name} unreachable`
            state.log.warn({ provider: rp.name, why: err.message }, 'a login could not finish')
            return providerDownPage(ctx, err.message)
          }
          if (err instanceof LoginFailed) {
            ctx.auth = `callback: refused`
            state.log.info({ provider: rp.name, why: err.message }, 'a login failed')
            return loginFailedPage(ctx, err.status, err.message)
          }
          throw err
        }
        // a new session id at every login (no fixation); the one the browser had ends
        const old = await sessionOf(ctx)
        if (old) await state.sessions.end(old)
        const { id } = await state.sessions.create({
          provider: rp.name,
          sub: result.sub,
          sid: result.sid,
          claims: result.claims,
          idToken: result.tokens.idToken,
          accessToken: result.tokens.accessToken,
          refreshToken: result.tokens.refreshToken,
          tokenExpiresAt: result.tokens.expiresAt,
        })
        ctx.auth = `login ${rp.name}`
        ctx.user = result.sub
        ctx.setCookies ??= []
        ctx.setCookies.push(`${sessionCookieName(state, ctx)}=${id}${cookieAttributes(ctx, Math.floor(state.config.sessions.absoluteTimeout / 1000))}`)
        ctx.send(302, { location: safeReturnPath(pending.returnTo), ...noStore })
      },
    })),
    {
      path: '/_edgebox/auth/login',
      feature,
      // POST: a proxy in front may hand any request over here when its forward-auth check said 401 (nginx `error_page 401`)
      methods: ['GET', 'HEAD', 'POST'],
      async handle(ctx) {
        // only a browser's navigation is sent to a login page; a script gets the 401 it would have had
        if (!isNavigation(ctx, ctx.method)) throw httpError('EB_ERR_UNAUTHORIZED', 'sign in first (a session cookie or a bearer token)', { 'WWW-Authenticate': `Bearer realm="${ctx.host.replace(/["\\]/g, '')}"` })
        const params = new URLSearchParams(ctx.query)
        // the page to return to: `rd`, or the request a trusted proxy in front handed over (X-Forwarded-Uri)
        const rd = params.get('rd') ?? (ctx.client.trusted ? (ctx.header('x-forwarded-uri') ?? null) : null)
        const returnTo = safeReturnPath(rd)
        const names = providersFor(state, ctx, returnTo)
        const chosen = params.get('provider')
        if (chosen !== null) {
          if (!names.includes(chosen)) throw httpError('EB_ERR_BAD_REQUEST', `there is no provider ${JSON.stringify(chosen)} for ${returnTo}`)
          await startLogin(state, ctx, chosen, returnTo)
          return
        }
        if (names.length === 1) {
          await startLogin(state, ctx, names[0]!, returnTo)
          return
        }
        chooserPage(
          ctx,
          names.map((n) => ({ label: state.providers.get(n)!.label, href: `/_edgebox/auth/login?provider=${encodeURIComponent(n)}&rd=${encodeURIComponent(returnTo)}` })),
        )
      },
    },
    {
      path: '/_edgebox/auth/logout',
      feature,
      methods: ['GET', 'HEAD', 'POST'],
      async handle(ctx) {
        const session = await sessionOf(ctx)
        if (ctx.method !== 'POST') return signOutPage(ctx, session ? displayName(session.record.claims, session.record.sub) : null)
        // a sign-out is an unsafe request: only from this site's own pages (the CSRF filter's origin check)
        state.csrfCheck(ctx)
        clearSession(ctx)
        const signedOut = `${ctx.origin}/_edgebox/auth/signed-out`
        if (!session) return ctx.send(303, { location: signedOut, ...noStore })
        await state.sessions.end(session)
        ctx.auth = 'logout'
        ctx.user = session.record.sub
        // RP-Initiated Logout 1.0: the provider ends its own session too, told who with id_token_hint
        const rp = state.providers.get(session.record.provider)
        const there = rp && session.record.idToken ? await rp.endSessionUrl(session.record.idToken, signedOut) : null
        if (there === null) return ctx.send(303, { location: signedOut, ...noStore })
        continueToProviderPage(ctx, there)
      },
    },
    {
      path: '/_edgebox/auth/signed-out',
      feature,
      methods: ['GET', 'HEAD'],
      handle(ctx) {
        signedOutPage(ctx)
      },
    },
    {
      path: '/_edgebox/auth/frontchannel-logout',
      feature,
      methods: ['GET', 'HEAD'],
      async handle(ctx) {
        // Front-Channel Logout 1.0 §2: the provider loads this page in a frame with its `iss` and the `sid`. Only the
        // session this browser's own cookie names ends, and only when it is that provider session: a link cannot end
        // anyone else's. (A browser that keeps cookies from third-party frames sends none: back-channel logout is the
        // dependable one.)
        const params = new URLSearchParams(ctx.query)
        const session = await sessionOf(ctx)
        const rp = session ? state.providers.get(session.record.provider) : undefined
        const iss = params.get('iss')
        const sid = params.get('sid')
        // both named, and both this session's (§3: the RP checks them when it has them): a bare link from another site
        // ends nothing
        if (session && rp && iss === rp.options.issuer && sid !== null && sid === session.record.sid) {
          await state.sessions.end(session)
          clearSession(ctx)
          ctx.auth = 'frontchannel logout'
          ctx.user = session.record.sub
        }
        ctx.send(200, { 'content-type': 'text/plain; charset=utf-8', ...noStore }, 'signed out\n')
      },
    },
    {
      path: '/_edgebox/auth/userinfo',
      feature,
      methods: ['GET', 'HEAD'],
      async handle(ctx) {
        const session = await sessionOf(ctx)
        if (!session) throw httpError('EB_ERR_UNAUTHORIZED', 'not signed in', { 'WWW-Authenticate': `Bearer realm="${ctx.host.replace(/["\\]/g, '')}"` })
        const r = session.record
        ctx.send(200, { 'content-type': 'application/json', ...noStore }, JSON.stringify({ provider: r.provider, sub: r.sub, ...r.claims, session: { createdAt: new Date(r.createdAt).toISOString(), expiresAt: new Date(r.expiresAt).toISOString() } }) + '\n')
      },
    },
    {
      path: '/_edgebox/auth/jwks.json',
      feature,
      methods: ['GET', 'HEAD'],
      handle(ctx) {
        ctx.send(200, { 'content-type': 'application/jwk-set+json', 'cache-control': 'public, max-age=300' }, state.signer.jwks)
      },
    },
    {
      path: '/_edgebox/auth/backchannel-logout',
      feature,
      methods: ['POST'],
      async handle(ctx) {
        // Back-Channel Logout 1.0 §2.8: 200 when done, 400 with an OAuth error otherwise; never cached
        const refuse = (why: string) => {
          ctx.auth = `backchannel refused: ${why}`
          ctx.send(400, { 'content-type': 'application/json', ...noStore }, JSON.stringify({ error: 'invalid_request', error_description: why }) + '\n')
        }
        const form = await readForm(ctx, state.limits, 16 * 1024)
        const token = form.get('logout_token')
        if (!token) return refuse('no logout_token')
        let unverified: { iss?: unknown; aud?: unknown }
        try {
          unverified = decodeJwt(token)
        } catch {
          return refuse('the logout token is not a JWT')
        }
        // the provider it is for: its issuer, and among several clients of one issuer (two sites, one provider), the
        // one it is addressed to; the signature and every claim are checked next, by that provider's keys
        const aud = Array.isArray(unverified.aud) ? unverified.aud : [unverified.aud]
        const ofIssuer = [...state.providers.values()].filter((p) => p.options.issuer === unverified.iss)
        const rp = ofIssuer.find((p) => aud.includes(p.options.clientId)) ?? ofIssuer[0]
        if (!rp) return refuse('the logout token is from an issuer that is not configured')
        let claims
        try {
          claims = await rp.verifyLogoutToken(token)
        } catch (err) {
          if (err instanceof joseErrors.JOSEError) return refuse(`the logout token does not verify: ${err.code}`)
          if (err instanceof ProviderUnavailable) throw httpError('EB_ERR_BAD_GATEWAY', err.message)
          throw err
        }
        // §2.6 item 6: the events claim names a back-channel logout
        const events = claims.events as Record<string, unknown> | undefined
        if (typeof events !== 'object' || events === null || typeof events['http://schemas.openid.net/event/backchannel-logout'] !== 'object') return refuse('the logout token has no back-channel logout event')
        // item 8: no nonce (an ID token cannot pass for a logout token)
        if ('nonce' in claims) return refuse('a logout token has no nonce')
        // item 7: sub, sid, or both
        const sub = typeof claims.sub === 'string' ? claims.sub : undefined
        const sid = typeof claims.sid === 'string' ? claims.sid : undefined
        if (sub === undefined && sid === undefined) return refuse('the logout token names neither sub nor sid')
        // item 9 (jti never replayed), and a token issued recently (within the window jti values are remembered)
        if (typeof claims.jti !== 'string') return refuse('the logout token has no jti')
        const now = state.clock.now() / 1000
        if (typeof claims.iat !== 'number' || claims.iat < now - LOGOUT_WINDOW_S || claims.iat > now + 60) return refuse('the logout token was not issued just now')
        const seen = sha256(`logout ${rp.name} ${claims.jti}`)
        if (!(await state.logins.once(seen, state.clock.now() + (LOGOUT_WINDOW_S + 120) * 1000, state.clock.now()))) return refuse('the logout token was already used')
        // by sid when the token has one, and also every session of its sub that has no sid (a provider that put no sid in
        // its ID tokens but does in its logout tokens)
        const ended = await state.sessions.endWhere(rp.name, { ...(sid !== undefined ? { sid } : {}), ...(sub !== undefined ? { sub } : {}) })
        ctx.auth = `backchannel logout: ${ended} session${ended === 1 ? '' : 's'}`
        state.log.info({ provider: rp.name, sessions: ended }, 'sessions ended by the provider')
        ctx.send(200, { ...noStore }, '')
      },
    },
  ]
}

/** How old a logout token may be (its `jti` is remembered at least this long). */
export const LOGOUT_WINDOW_S = 10 * 60

/** The providers the route of a return path allows (every configured one where that route has no gate). */
function providersFor(state: AuthState, ctx: Context, returnTo: string): string[] {
  let path = '/'
  try {
    path = parseRequestTarget('GET', returnTo).path
  } catch {
    // a return path that is not a request target: the site's root
  }
  const route = ctx.site ? matchRoute(ctx.site, path) : null
  const gate = route ? state.gates.get(route.id) : undefined
  return gate ? gate.providers.map((p) => p.name) : [...state.providers.keys()]
}
