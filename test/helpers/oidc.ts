import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose'
// @ts-expect-error: oidc-provider ships no types
import Provider from 'oidc-provider'
import { Agent, request } from 'undici'
import { localhostLookup } from '../../src/auth/fetch.ts'

/** Connections as a browser makes them: names under .localhost are this machine (RFC 6761 §6.3). */
const LOCALHOST = new Agent({ connect: { lookup: localhostLookup as never } })

/**
 * An external OpenID Connect provider for tests: oidc-provider on 127.0.0.1,
 * with its development login form (any account id signs in, no password),
 * grants given without a consent page, back-channel logout, introspection and
 * refresh tokens. `sign` makes tokens with the provider's own key, for the
 * bearer-token and logout-token tests.
 */

export interface TestAccount {
  email?: string
  email_verified?: boolean
  name?: string
  preferred_username?: string
  groups?: string[]
}

export interface TestClient {
  client_id: string
  client_secret?: string
  redirect_uris: string[]
  post_logout_redirect_uris?: string[]
  backchannel_logout_uri?: string
  /** The provider names its session (`sid`) in ID and logout tokens. */
  backchannel_logout_session_required?: boolean
}

export interface TestProvider {
  readonly issuer: string
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly provider: any
  /** Signs `claims` with the provider's key (or `key`: another one, for forgeries). */
  sign(claims: Record<string, unknown>, opts?: { typ?: string; key?: CryptoKey; kid?: string }): Promise<string>
  /** Requests the provider answered, by path (`/token`, `/me`, ...). */
  readonly hits: Map<string, number>
  /** Stops answering (connections refused) until `resume`. */
  pause(): Promise<void>
  resume(): Promise<void>
  close(): Promise<void>
}

/**
 * `loopbackRequests`: the provider's own requests (back-channel logout
 * tokens) may go to loopback addresses, where Edgebox runs in tests;
 * oidc-provider refuses special-use addresses by default (its SSRF guard, an
 * undici dispatcher it passes to its `fetch` option, dropped here).
 */
export async function startTestProvider(opts: { accounts: Record<string, TestAccount>; clients: TestClient[]; accessTokenTtl?: number; loopbackRequests?: boolean; host?: string }): Promise<TestProvider> {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true })
  const jwk: JWK = { ...(await exportJWK(privateKey)), kid: 'test-key', alg: 'ES256', use: 'sig' }
  void publicKey
  const hits = new Map<string, number>()
  let handler: http.RequestListener = (_req, res) => res.end()
  const server = http.createServer((req, res) => {
    const p = (req.url ?? '').split('?')[0]!
    hits.set(p, (hits.get(p) ?? 0) + 1)
    handler(req, res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  let port = (server.address() as AddressInfo).port
  // `host`: a name under .localhost, reached on loopback as a browser would (RFC 6761 §6.3)
  const issuer = `http://${opts.host ?? '127.0.0.1'}:${port}`
  const provider = new Provider(issuer, {
    clients: opts.clients.map((c) => ({
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: c.client_secret ? 'client_secret_basic' : 'none',
      id_token_signed_response_alg: 'ES256',
      ...c,
    })),
    jwks: { keys: [jwk] },
    cookies: { keys: ['a test cookie key of the provider'] },
    scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'], groups: ['groups'] },
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: true },
      backchannelLogout: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      rpInitiatedLogout: { enabled: true, logoutSource: async (ctx: { body: string }, form: string) => void (ctx.body = `<!doctype html>${form}<script>document.forms[0].submit()</script>`) },
    },
    ttl: { AccessToken: opts.accessTokenTtl ?? 3600, IdToken: 3600, RefreshToken: 86400, Session: 86400, Grant: 86400, Interaction: 600 },
    issueRefreshToken: async () => true,
    ...(opts.loopbackRequests
      ? {
          fetch: (url: string | URL, init: RequestInit & { dispatcher?: unknown }) => {
            const { dispatcher, ...rest } = init
            void dispatcher
            return globalThis.fetch(url, rest)
          },
        }
      : {}),
    async findAccount(_ctx: unknown, sub: string) {
      const account = opts.accounts[sub]
      if (!account) return undefined
      return { accountId: sub, claims: async () => ({ sub, ...account }) }
    },
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    async loadExistingGrant(ctx: any) {
      const accountId = ctx.oidc.session!.accountId!
      const clientId = ctx.oidc.client!.clientId
      const grant = new ctx.oidc.provider.Grant({ clientId, accountId })
      grant.addOIDCScope('openid email profile groups offline_access')
      grant.addOIDCClaims(['email', 'email_verified', 'name', 'preferred_username', 'groups'])
      await grant.save()
      return grant
    },
  })
  handler = provider.callback()
  const sign: TestProvider['sign'] = async (claims, o = {}) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', kid: o.kid ?? 'test-key', ...(o.typ ? { typ: o.typ } : {}) })
      .sign(o.key ?? privateKey)
  return {
    issuer,
    provider,
    sign,
    hits,
    async pause() {
      await new Promise<void>((resolve) => server.close(() => resolve()))
      server.closeAllConnections()
    },
    async resume() {
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
      port = (server.address() as AddressInfo).port
    },
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/**
 * A cookie jar by host (cookies are not isolated by port, RFC 6265 §8.5,
 * as a browser keeps them) and a fetch that follows redirects by hand,
 * recording each hop: what a browser does in a login, without a browser.
 */
export class Browser {
  readonly jar = new Map<string, Map<string, string>>()
  readonly hops: Array<{ url: string; status: number; location?: string; setCookie: string[] }> = []

  cookies(url: string): Map<string, string> {
    const host = new URL(url).hostname
    let jar = this.jar.get(host)
    if (!jar) this.jar.set(host, (jar = new Map()))
    return jar
  }

  /** One request with this browser's cookies; Set-Cookie is stored. */
  async fetch(url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Response> {
    const jar = this.cookies(url)
    const headers: Record<string, string> = { accept: 'text/html', 'sec-fetch-mode': 'navigate', ...init.headers }
    if (jar.size) headers.cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ')
    // undici's request, not fetch: fetch sends `Sec-Fetch-Mode: cors` whatever it is told, and a browser's navigation says `navigate`
    const raw = await request(url, { method: (init.method ?? 'GET') as 'GET', headers, dispatcher: LOCALHOST, ...(init.body !== undefined ? { body: init.body } : {}) })
    const out = new Headers()
    for (const [name, value] of Object.entries(raw.headers)) for (const v of Array.isArray(value) ? value : [value]) if (v !== undefined) out.append(name, v)
    const body = Buffer.from(await raw.body.arrayBuffer())
    const res = new Response(raw.statusCode === 204 || raw.statusCode === 304 || init.method === 'HEAD' ? null : body, { status: raw.statusCode, headers: out })
    const setCookie = res.headers.getSetCookie()
    for (const line of setCookie) {
      const [pair, ...attrs] = line.split(';')
      const eq = pair!.indexOf('=')
      const name = pair!.slice(0, eq).trim()
      const value = pair!.slice(eq + 1).trim()
      const expired = attrs.some((a) => /^\s*max-age=0\s*$/i.test(a)) || /^\s*expires=Thu, 01 Jan 1970/i.test(attrs.join(';'))
      if (expired || value === '') jar.delete(name)
      else jar.set(name, value)
    }
    this.hops.push({ url, status: res.status, ...(res.headers.get('location') ? { location: res.headers.get('location')! } : {}), setCookie })
    return res
  }

  /**
   * Follows redirects (GET) from `url` until a non-redirect answer; `onPage` may answer a page (the provider's login
   * form) with a form post; `reroute` may send a redirect elsewhere (a load balancer routing it to another server).
   */
  async navigate(url: string, onPage?: (res: Response, url: string) => Promise<{ url: string; body: string } | null>, reroute?: (next: URL) => URL): Promise<{ res: Response; url: string; text: string }> {
    let current = url
    let init: { method?: string; headers?: Record<string, string>; body?: string } = {}
    for (let i = 0; i < 20; i++) {
      const res = await this.fetch(current, init)
      init = {}
      const location = res.headers.get('location')
      if (res.status >= 300 && res.status < 400 && location) {
        await res.arrayBuffer()
        const next = new URL(location, current)
        current = (reroute ? reroute(next) : next).href
        continue
      }
      if (onPage) {
        const next = await onPage(res, current)
        if (next) {
          current = next.url
          init = { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: new URL(next.url).origin }, body: next.body }
          continue
        }
      }
      return { res, url: current, text: await res.text() }
    }
    throw new Error(`too many redirects from ${url}`)
  }
}

/** Answers oidc-provider's development login form as `account` (and its logout confirmation). */
export function signInAs(account: string): (res: Response, url: string) => Promise<{ url: string; body: string } | null> {
  return async (res, url) => {
    const ctype = res.headers.get('content-type') ?? ''
    if (!ctype.includes('html')) return null
    const html = await res.clone().text()
    const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1]
    if (!action) return null
    const target = new URL(action.replace(/&amp;/g, '&'), url).href
    if (html.includes('name="prompt" value="login"')) return { url: target, body: new URLSearchParams({ prompt: 'login', login: account, password: 'x' }).toString() }
    if (html.includes('name="prompt" value="consent"')) return { url: target, body: 'prompt=consent' }
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(html)?.[1]
    if (xsrf) return { url: target, body: new URLSearchParams({ xsrf, logout: 'yes' }).toString() }
    return null
  }
}

/** What a page handler answers: a form post (`body`), a plain GET of `url` (no `body`), or null (the page is not for it). */
export type PageAnswer = { url: string; body?: string } | null

/**
 * Follows redirects from `url` as Browser.navigate does, but stops before
 * fetching the first URL `stop` accepts and returns it: the provider's
 * redirect to the callback, with its code and state, for tests that replay,
 * swap or move a callback. `onPage` answers pages on the way (a form post,
 * or a GET when it gives no body). Throws when the chain ends elsewhere.
 */
export async function redirectsUntil(browser: Browser, url: string, stop: (url: URL) => boolean, onPage?: (res: Response, url: string) => Promise<PageAnswer>): Promise<string> {
  let current = url
  let init: { method?: string; headers?: Record<string, string>; body?: string } = {}
  for (let i = 0; i < 20; i++) {
    if (stop(new URL(current))) return current
    const res = await browser.fetch(current, init)
    init = {}
    const location = res.headers.get('location')
    if (res.status >= 300 && res.status < 400 && location) {
      current = new URL(location, current).href
      continue
    }
    const next = onPage ? await onPage(res, current) : null
    if (!next) throw new Error(`${current} answered ${res.status} before the redirects got where they should: ${(await res.text()).slice(0, 300)}`)
    current = next.url
    if (next.body !== undefined) init = { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: new URL(next.url).origin }, body: next.body }
  }
  throw new Error(`too many redirects from ${url}`)
}

/** The stop for redirectsUntil at an Edgebox callback (`/_edgebox/auth/callback`). */
export const atCallback = (url: URL): boolean => url.pathname === '/_edgebox/auth/callback'

/** Answers oidc-provider's development login form with its Cancel link: the provider redirects back with error=access_denied. */
export function cancelSignIn(): (res: Response, url: string) => Promise<PageAnswer> {
  return async (res, url) => {
    if (!(res.headers.get('content-type') ?? '').includes('html')) return null
    const href = /<a href="([^"]+\/abort)"/.exec(await res.clone().text())?.[1]
    return href ? { url: new URL(href.replace(/&amp;/g, '&'), url).href } : null
  }
}

/**
 * Where a sign-out page sends the browser on (`<a id="continue">`, also its
 * meta refresh): the provider's end-session URL.
 */
export async function continueUrl(res: Response): Promise<string> {
  const html = await res.clone().text()
  const href = /<a id="continue" href="([^"]+)"/.exec(html)?.[1]
  if (!href) throw new Error(`no continue link in: ${html.slice(0, 300)}`)
  const url = href.replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>')
  if (!html.includes(`<meta http-equiv="refresh" content="0; url=${href}">`)) throw new Error('the page does not move on by itself')
  return url
}

/** What the echo app saw of one request. */
export interface Echo {
  path: string
  headers: Record<string, string | string[] | undefined>
}

/** A small app behind Edgebox in these tests: it answers every request with its path and headers as JSON, and keeps them in `seen`. */
export async function startEchoApp(): Promise<{ origin: string; seen: Echo[]; close(): void }> {
  const seen: Echo[] = []
  const app = http.createServer((req, res) => {
    seen.push({ path: req.url ?? '', headers: req.headers })
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ path: req.url, headers: req.headers }))
  })
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve))
  return {
    origin: `http://127.0.0.1:${(app.address() as AddressInfo).port}`,
    seen,
    close() {
      app.closeAllConnections()
      app.close()
    },
  }
}
