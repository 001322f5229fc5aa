import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import dns from 'node:dns'
import { mkdtempSync, rmSync } from 'node:fs'
import http from 'node:http'
import http2 from 'node:http2'
import type { AddressInfo, LookupFunction } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose'
import { Agent, getGlobalDispatcher, setGlobalDispatcher } from 'undici'
import { UserStore } from '../../src/auth/users.ts'
import { totpCode } from '../../src/auth/idp/totp.ts'
import { startEdgebox, type Edgebox } from '../../src/server/app.ts'
import { Browser, continueUrl } from '../helpers/oidc.ts'
import { freePort } from '../helpers/pebble.ts'
import { PROTOCOLS, request, type Protocol, captureLog } from '../helpers/server.ts'

/**
 * Edgebox's built-in OpenID Connect provider (the `idp` route kind), end to
 * end on real sockets, over HTTP/1.1 and h2c: discovery, the sign-in pages,
 * Edgebox as its relying party on another site, the second factor and its
 * set-up, tokens (PKCE, state, nonce, refresh rotation, userinfo,
 * introspection, revocation), a removed user, sign-out with back-channel
 * logout, and logs without secrets. Both sites are on one Edgebox, told
 * apart by host names under `localhost` (resolved to 127.0.0.1 here, RFC
 * 6761 §6.3). Rate limits are in idp-limits.test.ts; keys, rotation and
 * restarts in idp-keys.test.ts.
 */

const PASSWORDS = {
  alice: 'alice has a long password',
  bob: 'bob uses two factors always',
  carol: 'carol sets up her app now',
  dave: 'dave is about to be removed',
  frank: 'frank signs in and out',
  erin: 'erin tries the same code twice',
} as const
const BOB_SECRET = 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP'
const ERIN_SECRET = 'KRSXG5CTMVRXEZLUKN2XAZLSKNSWG4TF'
const CLIENT_SECRET = 'a client secret of the idp tests, long enough'
const TOOL_SECRET = 'the tool client secret, also long enough'

const lookup: LookupFunction = (hostname, options, callback) => {
  if (hostname.endsWith('.localhost')) {
    if (options.all) return (callback as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address: '127.0.0.1', family: 4 }])
    return callback(null, '127.0.0.1', 4)
  }
  dns.lookup(hostname, options, callback)
}

let box: Edgebox
let port: number
let issuer: string
let strictIssuer: string
let plainIssuer: string
let app: string
let upstream: http.Server
let dataDir: string
const captured = captureLog('debug')
const logLines = captured.text
/** Everything secret the tests saw: none of it may be in a log line. */
const secrets = new Set<string>(Object.values(PASSWORDS))
const previousDispatcher = getGlobalDispatcher()

before(async () => {
  // this process's fetch (the relying party's openid-client, the tests' Browser) resolves *.localhost to loopback
  setGlobalDispatcher(new Agent({ connect: { lookup } }))
  upstream = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ path: req.url, user: req.headers['x-auth-request-user'] ?? null, email: req.headers['x-auth-request-email'] ?? null, groups: req.headers['x-auth-request-groups'] ?? null }))
  })
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
  const upstreamOrigin = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`
  port = await freePort()
  issuer = `http://id.localhost:${port}`
  strictIssuer = `http://strict.localhost:${port}`
  plainIssuer = `http://plain.localhost:${port}`
  app = `http://app.localhost:${port}`
  dataDir = mkdtempSync(path.join(tmpdir(), 'edgebox-idp-'))
  const users = await UserStore.open(dataDir)
  await users.add({ username: 'alice', password: PASSWORDS.alice, email: 'alice@example.com', name: 'Alice Liddell', groups: ['staff', 'ops'] })
  await users.add({ username: 'bob', password: PASSWORDS.bob, email: 'bob@example.org' })
  users.setTotpSecret('bob', BOB_SECRET)
  await users.add({ username: 'carol', password: PASSWORDS.carol })
  await users.add({ username: 'dave', password: PASSWORDS.dave, groups: ['temps'] })
  await users.add({ username: 'frank', password: PASSWORDS.frank })
  await users.add({ username: 'erin', password: PASSWORDS.erin })
  users.setTotpSecret('erin', ERIN_SECRET)
  users.close()
  const tool = { clientId: 'tool', clientSecret: TOOL_SECRET, redirectUris: ['http://127.0.0.1:9/cb'] }
  const log = captured.logger
  box = await startEdgebox(
    {
      listen: [{ host: '127.0.0.1', port }],
      dataDir,
      log: { access: false, level: 'silent' },
      auth: { providers: { local: { issuer, clientId: 'app', clientSecret: CLIENT_SECRET, scopes: ['openid', 'email', 'profile', 'groups'] } } },
      sites: [
        {
          hosts: ['id.localhost'],
          routes: [
            {
              path: '/',
              idp: {
                issuer,
                name: 'Edgebox ID',
                // many sign-ins from 127.0.0.1 in this suite; the limits have their own
                loginLimits: { perAddress: { attempts: 1000, per: '15m' }, perAccount: { attempts: 100, per: '15m' } },
                clients: [
                  {
                    clientId: 'app',
                    clientSecret: CLIENT_SECRET,
                    name: 'The App',
                    redirectUris: [`${app}/_edgebox/auth/callback`],
                    postLogoutRedirectUris: [`${app}/_edgebox/auth/signed-out`],
                    backchannelLogoutUri: `${app}/_edgebox/auth/backchannel-logout`,
                  },
                  tool,
                  { clientId: 'spa', redirectUris: ['http://127.0.0.1:9/spa'], idTokenAlg: 'ES256' },
                ],
              },
            },
          ],
        },
        { hosts: ['strict.localhost'], routes: [{ path: '/', idp: { issuer: strictIssuer, secondFactor: 'required', clients: [tool] } }] },
        { hosts: ['plain.localhost'], routes: [{ path: '/', idp: { issuer: plainIssuer, secondFactor: 'off', clients: [tool] } }] },
        { hosts: ['app.localhost'], routes: [{ path: '/', proxy: { upstreams: [upstreamOrigin] }, auth: true }] },
      ],
    },
    { log },
  )
})

after(async () => {
  await box?.close()
  upstream?.close()
  setGlobalDispatcher(previousDispatcher)
  rmSync(dataDir, { recursive: true, force: true })
})

/** A browser over h2c: the same cookie jar and hops as Browser, each request on an HTTP/2 connection with prior knowledge. */
class H2Browser extends Browser {
  override async fetch(url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Response> {
    const u = new URL(url)
    const jar = this.cookies(url)
    const headers: Record<string, string> = { accept: 'text/html', 'sec-fetch-mode': 'navigate', ...init.headers }
    if (jar.size) headers.cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ')
    const raw = await new Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
      const session = http2.connect(u.origin, { lookup })
      session.on('error', reject)
      const stream = session.request({ ':method': init.method ?? 'GET', ':path': u.pathname + u.search, ...headers })
      const chunks: Buffer[] = []
      let head: http2.IncomingHttpHeaders = {}
      stream.on('response', (h) => (head = h))
      stream.on('data', (c: Buffer) => chunks.push(c))
      stream.on('end', () => {
        session.close()
        resolve({ status: Number(head[':status']), headers: head, body: Buffer.concat(chunks) })
      })
      stream.on('error', reject)
      stream.end(init.body)
    })
    const out = new Headers()
    for (const [name, value] of Object.entries(raw.headers)) if (!name.startsWith(':') && value !== undefined) for (const v of Array.isArray(value) ? value : [value]) out.append(name, String(v))
    const res = new Response(raw.status === 204 || raw.status === 304 ? null : new Uint8Array(raw.body), { status: raw.status, headers: out })
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
}

const browserFor = (p: Protocol): Browser => (p === 'h2c' ? new H2Browser() : new Browser())

/** What a test user does on the provider's pages: their password, their code (or a new app's), a sign-out confirmation. */
function user(name: keyof typeof PASSWORDS, o: { password?: string; code?: () => string; onEnrol?: (secret: string) => void } = {}) {
  return async (res: Response, url: string): Promise<{ url: string; body: string } | null> => {
    if (!(res.headers.get('content-type') ?? '').includes('html')) return null
    const html = await res.clone().text()
    const action = /<form method="post" action="([^"]+)" class="stack">/.exec(html)?.[1]
    if (action?.endsWith('/login')) return { url: new URL(action, url).href, body: new URLSearchParams({ username: name, password: o.password ?? PASSWORDS[name] }).toString() }
    if (action?.endsWith('/totp')) return { url: new URL(action, url).href, body: new URLSearchParams({ code: o.code ? o.code() : totpCode(BOB_SECRET, Date.now()) }).toString() }
    if (action?.endsWith('/enrol')) {
      const secret = /<code class="secret" id="secret">([A-Z2-7 ]+)<\/code>/.exec(html)![1]!.replaceAll(' ', '')
      o.onEnrol?.(secret)
      return { url: new URL(action, url).href, body: new URLSearchParams({ code: totpCode(secret, Date.now()) }).toString() }
    }
    const logout = /<form id="op.logoutForm" method="post" action="([^"]+)"><input type="hidden" name="xsrf" value="([^"]+)"\/><\/form>/.exec(html)
    if (logout) return { url: new URL(logout[1]!, url).href, body: new URLSearchParams({ xsrf: logout[2]!, logout: 'yes' }).toString() }
    return null
  }
}

/** The Host header of a site, for the plain request helper (which connects to 127.0.0.1). */
const local = (u: string) => `http://127.0.0.1:${port}${new URL(u).pathname}${new URL(u).search}`
const hostOf = (u: string) => new URL(u).host

async function getJson(p: Protocol, url: string, headers: Record<string, string> = {}): Promise<{ status: number; json: Record<string, unknown>; headers: Record<string, string | string[] | undefined> }> {
  const r = await request(p, local(url), { headers: { ...(p === 'h2c' ? { ':authority': hostOf(url) } : { host: hostOf(url) }), ...headers } })
  return { status: r.status, json: r.text ? (JSON.parse(r.text) as Record<string, unknown>) : {}, headers: r.headers }
}

async function postForm(p: Protocol, url: string, form: Record<string, string>, headers: Record<string, string> = {}) {
  const body = new URLSearchParams(form).toString()
  return getJsonWith(p, url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body })
}

async function getJsonWith(p: Protocol, url: string, o: { method: string; headers: Record<string, string>; body: string }) {
  const r = await request(p, local(url), { method: o.method, headers: { ...(p === 'h2c' ? { ':authority': hostOf(url) } : { host: hostOf(url) }), ...o.headers }, body: o.body })
  return { status: r.status, json: r.text ? (JSON.parse(r.text) as Record<string, unknown>) : {}, headers: r.headers }
}

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`

interface CodeResult {
  code: string
  state: string
  verifier: string
  nonce: string
  params: URLSearchParams
}

/** The authorization code flow as a client does it, driven by a browser that answers the pages with `onPage`; stops at the redirect to the client. */
async function authorize(browser: Browser, o: { issuer?: string; clientId?: string; redirectUri?: string; scope?: string; onPage: ReturnType<typeof user>; extra?: Record<string, string> }): Promise<CodeResult> {
  const iss = o.issuer ?? issuer
  const redirectUri = o.redirectUri ?? 'http://127.0.0.1:9/cb'
  const verifier = randomBytes(32).toString('base64url')
  const state = randomBytes(16).toString('base64url')
  const nonce = randomBytes(16).toString('base64url')
  const q = new URLSearchParams({
    client_id: o.clientId ?? 'tool',
    response_type: 'code',
    redirect_uri: redirectUri,
    scope: o.scope ?? 'openid email profile groups',
    state,
    nonce,
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
    ...o.extra,
  })
  let current = `${iss}/auth?${q}`
  let init: { method?: string; headers?: Record<string, string>; body?: string } = {}
  for (let i = 0; i < 20; i++) {
    const res = await browser.fetch(current, init)
    init = {}
    const location = res.headers.get('location')
    if (res.status >= 300 && res.status < 400 && location) {
      await res.arrayBuffer()
      const next = new URL(location, current)
      if (next.href.startsWith(redirectUri)) {
        const params = next.searchParams
        if (params.get('code')) secrets.add(params.get('code')!)
        return { code: params.get('code') ?? '', state: params.get('state') ?? '', verifier, nonce, params }
      }
      current = next.href
      continue
    }
    const answer = await o.onPage(res, current)
    if (!answer) throw new Error(`${current} answered ${res.status}: ${(await res.text()).slice(0, 400)}`)
    current = answer.url
    init = { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: new URL(answer.url).origin }, body: answer.body }
  }
  throw new Error('too many redirects')
}

async function exchange(p: Protocol, r: CodeResult, o: { issuer?: string; clientId?: string; secret?: string | null; redirectUri?: string; verifier?: string | null } = {}) {
  const form: Record<string, string> = { grant_type: 'authorization_code', code: r.code, redirect_uri: o.redirectUri ?? 'http://127.0.0.1:9/cb' }
  if (o.verifier !== null) form.code_verifier = o.verifier ?? r.verifier
  const headers: Record<string, string> = {}
  if (o.secret === null) form.client_id = o.clientId ?? 'tool'
  else headers.authorization = basic(o.clientId ?? 'tool', o.secret ?? TOOL_SECRET)
  const t = await postForm(p, `${o.issuer ?? issuer}/token`, form, headers)
  for (const k of ['access_token', 'refresh_token', 'id_token']) if (typeof t.json[k] === 'string') secrets.add(t.json[k] as string)
  return t
}

async function jwks(p: Protocol, iss = issuer): Promise<JSONWebKeySet> {
  return (await getJson(p, `${iss}/jwks`)).json as unknown as JSONWebKeySet
}

/** The hop of a page: its status, head and text. */
async function page(browser: Browser, url: string): Promise<{ res: Response; html: string }> {
  const res = await browser.fetch(url)
  return { res, html: await res.text() }
}

for (const p of PROTOCOLS) {
  describe(`discovery and keys (${p})`, () => {
    test('the discovery document: code flow only, PKCE S256, refresh tokens, userinfo, logout, introspection, revocation, the claims', async () => {
      const d = await getJson(p, `${issuer}/.well-known/openid-configuration`)
      assert.equal(d.status, 200)
      const m = d.json
      assert.equal(m.issuer, issuer)
      for (const [k, path] of [['authorization_endpoint', '/auth'], ['token_endpoint', '/token'], ['userinfo_endpoint', '/me'], ['jwks_uri', '/jwks'], ['end_session_endpoint', '/session/end'], ['introspection_endpoint', '/token/introspection'], ['revocation_endpoint', '/token/revocation']] as const) {
        assert.equal(m[k], `${issuer}${path}`, k)
      }
      assert.deepEqual(m.response_types_supported, ['code'])
      assert.deepEqual((m.grant_types_supported as string[]).toSorted(), ['authorization_code', 'refresh_token'])
      assert.deepEqual(m.code_challenge_methods_supported, ['S256'])
      for (const s of ['openid', 'email', 'profile', 'groups', 'offline_access']) assert.ok((m.scopes_supported as string[]).includes(s), s)
      for (const c of ['sub', 'email', 'email_verified', 'name', 'preferred_username', 'groups']) assert.ok((m.claims_supported as string[]).includes(c), c)
      assert.equal(m.backchannel_logout_supported, true)
      assert.equal(m.backchannel_logout_session_supported, true)
      assert.ok((m.id_token_signing_alg_values_supported as string[]).includes('RS256'))
      assert.ok((m.id_token_signing_alg_values_supported as string[]).includes('ES256'))
    })

    test('the JWKS publishes an RS256 and an ES256 key, public parts only', async () => {
      const { keys } = await jwks(p)
      assert.deepEqual(keys.map((k) => k.alg).toSorted(), ['ES256', 'RS256'])
      for (const k of keys) {
        assert.equal(k.use, 'sig')
        assert.match(k.kid!, /^[A-Za-z0-9_-]{43}$/)
        for (const priv of ['d', 'p', 'q', 'dp', 'dq', 'qi']) assert.equal((k as Record<string, unknown>)[priv], undefined, priv)
      }
    })
  })

  describe(`sign-in through Edgebox as the relying party (${p})`, () => {
    test('the login page: accessible, no script, never cached, never framed', async () => {
      const b = browserFor(p)
      const start = await b.fetch(`${app}/somewhere`)
      assert.equal(start.status, 302)
      const auth = await b.fetch(start.headers.get('location')!)
      assert.equal(auth.status, 303)
      const { res, html } = await page(b, new URL(auth.headers.get('location')!, issuer).href)
      assert.equal(res.status, 200)
      assert.equal(res.headers.get('cache-control'), 'no-store')
      assert.equal(res.headers.get('x-frame-options'), 'DENY')
      const csp = res.headers.get('content-security-policy')!
      assert.match(csp, /frame-ancestors 'none'/)
      assert.match(csp, /style-src 'nonce-[A-Za-z0-9+/=]+'/)
      assert.match(csp, new RegExp(`form-action 'self' ${app.replaceAll('.', '\\.')}`))
      assert.match(html, /<html lang="en">/)
      assert.equal(html.match(/<h1[ >]/g)?.length, 1)
      assert.doesNotMatch(html, /<script/)
      assert.match(html, /<label for="username">Username<\/label>/)
      assert.match(html, /<input id="username" name="username" type="text" autocomplete="username"/)
      assert.match(html, /<label for="password">Password<\/label>/)
      assert.match(html, /<input id="password" name="password" type="password" autocomplete="current-password"/)
      assert.match(html, /<form method="post" action="\/interaction\/[A-Za-z0-9_-]+\/login" class="stack">/)
      assert.match(html, /to continue to <strong>The App<\/strong>/)
    })

    test('signing in lands on the page asked for, with the identity sent upstream', async () => {
      const b = browserFor(p)
      const landed = await b.navigate(`${app}/docs/page?x=1`, user('alice'))
      assert.equal(landed.res.status, 200)
      assert.equal(landed.url, `${app}/docs/page?x=1`)
      assert.deepEqual(JSON.parse(landed.text), { path: '/docs/page?x=1', user: 'alice', email: 'alice@example.com', groups: 'staff,ops' })
      for (const v of b.cookies(app).values()) secrets.add(v)
      for (const v of b.cookies(issuer).values()) secrets.add(v)
      // signed in at the provider: without the app's session, a new login there needs no password
      b.jar.delete('app.localhost')
      const again = await b.navigate(`${app}/again`, async (res) => {
        assert.doesNotMatch(res.headers.get('content-type') ?? '', /html/)
        return null
      })
      assert.equal(JSON.parse(again.text).user, 'alice')
      assert.ok(b.hops.at(-2)!.url.startsWith(`${app}/_edgebox/auth/callback?`))
    })

    test('a wrong password, or an unknown user: the same page, one generic error tied to the fields, then the right password works', async () => {
      const b = browserFor(p)
      let answers = 0
      const landed = await b.navigate(`${app}/x`, async (res, url) => {
        const html = await res.clone().text()
        const action = /<form method="post" action="([^"]+\/login)"/.exec(html)?.[1]
        if (!action) return null
        answers++
        if (answers === 1) return { url: new URL(action, url).href, body: new URLSearchParams({ username: 'alice', password: 'not her password at all' }).toString() }
        assert.equal(res.status, 200)
        assert.match(html, /<p id="form-error" class="error" role="alert">Wrong username or password\.<\/p>/)
        assert.match(html, /<input id="username"[^>]* aria-invalid="true" aria-describedby="form-error"/)
        assert.match(html, /<input id="password"[^>]* aria-invalid="true" aria-describedby="form-error"/)
        if (answers === 2) {
          assert.match(html, /value="alice"/)
          return { url: new URL(action, url).href, body: new URLSearchParams({ username: 'nobody-here', password: 'not anyones password' }).toString() }
        }
        // the unknown user's page says exactly what the known user's did
        assert.match(html, /value="nobody-here"/)
        return { url: new URL(action, url).href, body: new URLSearchParams({ username: 'Alice', password: PASSWORDS.alice }).toString() }
      })
      assert.equal(answers, 3)
      assert.equal(JSON.parse(landed.text).user, 'alice')
    })

    test('a form posted from another site is refused', async () => {
      const b = browserFor(p)
      const start = await b.fetch(`${app}/x`)
      const auth = await b.fetch(start.headers.get('location')!)
      const interaction = new URL(auth.headers.get('location')!, issuer).href
      const body = new URLSearchParams({ username: 'alice', password: PASSWORDS.alice }).toString()
      const crossSite = await b.fetch(`${interaction}/login`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' }, body })
      assert.equal(crossSite.status, 403)
      // no cookie (another browser): the interaction is not found
      const other = browserFor(p)
      const stranger = await other.fetch(`${interaction}/login`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: issuer }, body })
      assert.equal(stranger.status, 400)
      assert.match(await stranger.text(), /Sign-in expired/)
    })
  })

  describe(`tokens (${p})`, () => {
    test('the code flow: state and nonce passed through, PKCE checked, an ID token signed with the current RS256 key, userinfo', async () => {
      const b = new Browser()
      const r = await authorize(b, { onPage: user('alice') })
      assert.match(r.code, /^[A-Za-z0-9_-]+$/)
      assert.equal(r.params.get('iss'), issuer)
      // no verifier, or another one: refused (RFC 7636 §4.6)
      const without = await exchange(p, r, { verifier: null })
      assert.equal(without.status, 400)
      assert.equal(without.json.error, 'invalid_grant')
      const again = await authorize(b, { onPage: user('alice') })
      const wrong = await exchange(p, again, { verifier: randomBytes(32).toString('base64url') })
      assert.equal(wrong.json.error, 'invalid_grant')
      const third = await authorize(b, { onPage: user('alice') })
      const t = await exchange(p, third)
      assert.equal(t.status, 200)
      assert.equal(t.headers['cache-control'], 'no-store')
      assert.equal(t.json.token_type, 'Bearer')
      assert.equal(t.json.expires_in, 600)
      assert.ok(t.json.refresh_token)
      const header = decodeProtectedHeader(t.json.id_token as string)
      assert.equal(header.alg, 'RS256')
      const keys = await jwks(p)
      assert.ok(keys.keys.some((k) => k.kid === header.kid && k.alg === 'RS256'))
      const { payload } = await jwtVerify(t.json.id_token as string, createLocalJWKSet(keys), { issuer, audience: 'tool' })
      assert.equal(payload.sub, 'alice')
      assert.equal(payload.nonce, third.nonce)
      assert.equal(payload.exp! - payload.iat!, 600)
      assert.equal(third.state, new URL(b.hops.at(-1)!.location!).searchParams.get('state'))
      const info = await getJson(p, `${issuer}/me`, { authorization: `Bearer ${t.json.access_token}` })
      assert.equal(info.status, 200)
      assert.deepEqual(info.json, { sub: 'alice', email: 'alice@example.com', email_verified: true, name: 'Alice Liddell', preferred_username: 'alice', groups: ['staff', 'ops'] })
      // a code is good once
      const replay = await exchange(p, third)
      assert.equal(replay.json.error, 'invalid_grant')
    })

    test('scopes decide the claims: without groups and email, userinfo has neither', async () => {
      const r = await authorize(new Browser(), { scope: 'openid profile', onPage: user('alice') })
      const t = await exchange(p, r)
      const info = await getJson(p, `${issuer}/me`, { authorization: `Bearer ${t.json.access_token}` })
      assert.deepEqual(info.json, { sub: 'alice', name: 'Alice Liddell', preferred_username: 'alice' })
    })

    test('refresh tokens rotate: the new one works, the old one no longer', async () => {
      const t = await exchange(p, await authorize(new Browser(), { onPage: user('alice') }))
      const first = t.json.refresh_token as string
      const r1 = await postForm(p, `${issuer}/token`, { grant_type: 'refresh_token', refresh_token: first }, { authorization: basic('tool', TOOL_SECRET) })
      assert.equal(r1.status, 200)
      secrets.add(r1.json.refresh_token as string)
      secrets.add(r1.json.access_token as string)
      assert.notEqual(r1.json.refresh_token, first)
      assert.ok(r1.json.id_token)
      const reuse = await postForm(p, `${issuer}/token`, { grant_type: 'refresh_token', refresh_token: first }, { authorization: basic('tool', TOOL_SECRET) })
      assert.equal(reuse.status, 400)
      assert.equal(reuse.json.error, 'invalid_grant')
    })

    test('introspection for a confidential client; revocation of its own token', async () => {
      const t = await exchange(p, await authorize(new Browser(), { onPage: user('alice') }))
      const active = await postForm(p, `${issuer}/token/introspection`, { token: t.json.access_token as string }, { authorization: basic('tool', TOOL_SECRET) })
      assert.equal(active.status, 200)
      assert.equal(active.json.active, true)
      assert.equal(active.json.sub, 'alice')
      assert.equal(active.json.client_id, 'tool')
      // a public client may not introspect
      const pub = await postForm(p, `${issuer}/token/introspection`, { token: t.json.access_token as string, client_id: 'spa' })
      assert.equal(pub.json.active, false)
      const revoked = await postForm(p, `${issuer}/token/revocation`, { token: t.json.access_token as string }, { authorization: basic('tool', TOOL_SECRET) })
      assert.equal(revoked.status, 200)
      const after = await postForm(p, `${issuer}/token/introspection`, { token: t.json.access_token as string }, { authorization: basic('tool', TOOL_SECRET) })
      assert.equal(after.json.active, false)
      assert.equal((await getJson(p, `${issuer}/me`, { authorization: `Bearer ${t.json.access_token}` })).status, 401)
    })

    test('a public client: PKCE alone, no secret; its ID tokens in ES256 as registered', async () => {
      const r = await authorize(new Browser(), { clientId: 'spa', redirectUri: 'http://127.0.0.1:9/spa', onPage: user('alice') })
      const t = await exchange(p, r, { clientId: 'spa', secret: null, redirectUri: 'http://127.0.0.1:9/spa' })
      assert.equal(t.status, 200)
      assert.equal(decodeProtectedHeader(t.json.id_token as string).alg, 'ES256')
      await jwtVerify(t.json.id_token as string, createLocalJWKSet(await jwks(p)), { issuer, audience: 'spa' })
    })
  })
}

describe('requests the provider refuses', () => {
  test('no code_challenge: the client gets invalid_request (PKCE required)', async () => {
    const b = new Browser()
    const q = new URLSearchParams({ client_id: 'tool', response_type: 'code', redirect_uri: 'http://127.0.0.1:9/cb', scope: 'openid', state: 's1' })
    const res = await b.fetch(`${issuer}/auth?${q}`)
    assert.equal(res.status, 303)
    const to = new URL(res.headers.get('location')!)
    assert.equal(to.origin + to.pathname, 'http://127.0.0.1:9/cb')
    assert.equal(to.searchParams.get('error'), 'invalid_request')
    assert.match(to.searchParams.get('error_description')!, /PKCE/)
    assert.equal(to.searchParams.get('state'), 's1')
  })

  test('the implicit and hybrid flows are not offered', async () => {
    const b = new Browser()
    for (const type of ['id_token', 'code id_token', 'token']) {
      const q = new URLSearchParams({ client_id: 'tool', response_type: type, redirect_uri: 'http://127.0.0.1:9/cb', scope: 'openid', state: 's2', nonce: 'n', code_challenge: 'x'.repeat(43), code_challenge_method: 'S256' })
      const res = await b.fetch(`${issuer}/auth?${q}`)
      const to = new URL(res.headers.get('location')!.replace('#', '?'))
      assert.equal(to.searchParams.get('error'), 'unsupported_response_type', type)
    }
  })

  test('an unregistered redirect URI gets an error page, never a redirect', async () => {
    const q = new URLSearchParams({ client_id: 'tool', response_type: 'code', redirect_uri: 'https://evil.example/cb', scope: 'openid', code_challenge: 'x'.repeat(43), code_challenge_method: 'S256' })
    const res = await new Browser().fetch(`${issuer}/auth?${q}`)
    assert.equal(res.status, 400)
    assert.equal(res.headers.get('location'), null)
    const html = await res.text()
    assert.match(html, /<html lang="en">/)
    assert.match(html, /redirect_uri/)
  })
})

describe('the second factor', () => {
  test("optional: a user with a TOTP secret is asked for a code; a wrong one is refused, the app's code lets them in", async () => {
    const b = new Browser()
    let codePage = ''
    let tries = 0
    const landed = await b.navigate(`${app}/bob`, async (res, url) => {
      const html = await res.clone().text()
      if (html.includes('/totp"')) {
        codePage = html
        tries++
        const action = /<form method="post" action="([^"]+\/totp)"/.exec(html)![1]!
        if (tries === 1) return { url: new URL(action, url).href, body: 'code=000000' }
        assert.match(html, /<p id="form-error" class="error" role="alert">That code is not right/)
        assert.match(html, /<input id="code"[^>]* aria-invalid="true" aria-describedby="form-error"/)
        return { url: new URL(action, url).href, body: new URLSearchParams({ code: totpCode(BOB_SECRET, Date.now()) }).toString() }
      }
      return user('bob')(res, url)
    })
    assert.equal(tries, 2)
    assert.equal(JSON.parse(landed.text).user, 'bob')
    assert.match(codePage, /<label for="code">Code<\/label>/)
    assert.match(codePage, /<input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code"/)
    assert.match(codePage, /<title>Two-step verification<\/title>/)
  })

  test('a code is accepted once (RFC 6238 §5.2): the same code in another sign-in is refused, a later one works', async () => {
    const used = totpCode(ERIN_SECRET, Date.now())
    await authorize(new Browser(), { onPage: user('erin', { code: () => used }) })
    let tries = 0
    const r = await authorize(new Browser(), {
      onPage: async (res, url) => {
        const html = await res.clone().text()
        const action = /<form method="post" action="([^"]+\/totp)"/.exec(html)?.[1]
        if (!action) return user('erin')(res, url)
        tries++
        if (tries === 1) return { url: new URL(action, url).href, body: `code=${used}` }
        assert.match(html, /That code is not right/)
        // the next step's code: within the window of one step (§5.2), and later than the one used
        return { url: new URL(action, url).href, body: `code=${totpCode(ERIN_SECRET, Date.now() + 30_000)}` }
      },
    })
    assert.equal(tries, 2)
    assert.ok(r.code)
  })

  test('required: a user without a secret sets one up (the otpauth URI and the key as text), then it is asked for at the next sign-in', async () => {
    let secret = ''
    let enrolPage = ''
    const r = await authorize(new Browser(), {
      issuer: strictIssuer,
      onPage: async (res, url) => {
        const html = await res.clone().text()
        if (html.includes('/enrol"')) enrolPage = html
        return user('carol', { onEnrol: (s) => (secret = s) })(res, url)
      },
    })
    assert.ok(r.code)
    assert.match(secret, /^[A-Z2-7]{32}$/)
    assert.match(enrolPage, /<title>Set up two-step verification<\/title>/)
    assert.ok(enrolPage.includes(`otpauth://totp/strict.localhost:carol?issuer=strict.localhost&amp;secret=${secret}&amp;algorithm=SHA1&amp;digits=6&amp;period=30`))
    assert.match(enrolPage, /autocomplete="one-time-code"/)
    const users = await UserStore.open(dataDir)
    try {
      assert.equal(users.get('carol')!.totpSecret, secret)
    } finally {
      users.close()
    }
    // the next sign-in asks for a code from that secret (a later step than the one used to set it up)
    let asked = false
    const again = await authorize(new Browser(), {
      issuer: strictIssuer,
      onPage: async (res, url) => {
        const html = await res.clone().text()
        const action = /<form method="post" action="([^"]+\/totp)"/.exec(html)?.[1]
        if (!action) return user('carol')(res, url)
        asked = true
        return { url: new URL(action, url).href, body: `code=${totpCode(secret, Date.now() + 30_000)}` }
      },
    })
    assert.ok(asked)
    assert.ok(again.code)
  })

  test('required: a user who has a secret is asked for a code, not set up again', async () => {
    let pages = ''
    const r = await authorize(new Browser(), {
      issuer: strictIssuer,
      onPage: async (res, url) => {
        pages += await res.clone().text()
        return user('bob', { code: () => totpCode(BOB_SECRET, Date.now() + 30_000) })(res, url)
      },
    })
    assert.ok(r.code)
    assert.match(pages, /\/totp"/)
    assert.doesNotMatch(pages, /\/enrol"/)
  })

  test('off: a user with a TOTP secret signs in with the password alone', async () => {
    let pages = ''
    const r = await authorize(new Browser(), {
      issuer: plainIssuer,
      onPage: async (res, url) => {
        pages += await res.clone().text()
        return user('bob')(res, url)
      },
    })
    assert.ok(r.code)
    assert.doesNotMatch(pages, /\/totp"/)
  })

  test('cancel: the client is told access_denied', async () => {
    const r = await authorize(new Browser(), {
      onPage: async (res, url) => {
        const html = await res.clone().text()
        const abort = /<form method="post" action="([^"]+\/abort)"/.exec(html)?.[1]
        return abort ? { url: new URL(abort, url).href, body: '' } : null
      },
    })
    assert.equal(r.code, '')
    assert.equal(r.params.get('error'), 'access_denied')
  })
})

describe('a removed user', () => {
  test('gets no more tokens: refresh and userinfo fail once `edgebox user remove` ran', async () => {
    const t = await exchange('http/1.1', await authorize(new Browser(), { scope: 'openid groups', onPage: user('dave') }))
    assert.equal(t.status, 200)
    const users = await UserStore.open(dataDir)
    try {
      assert.ok(users.remove('dave'))
    } finally {
      users.close()
    }
    const refresh = await postForm('http/1.1', `${issuer}/token`, { grant_type: 'refresh_token', refresh_token: t.json.refresh_token as string }, { authorization: basic('tool', TOOL_SECRET) })
    assert.equal(refresh.status, 400)
    assert.equal(refresh.json.error, 'invalid_grant')
    assert.equal((await getJson('http/1.1', `${issuer}/me`, { authorization: `Bearer ${t.json.access_token}` })).status, 401)
    // and cannot sign in again
    let refused = false
    await assert.rejects(
      authorize(new Browser(), {
        onPage: async (res, url) => {
          if ((await res.clone().text()).includes('Wrong username or password')) {
            refused = true
            return null
          }
          return user('dave')(res, url)
        },
      }),
    )
    assert.ok(refused)
  })
})

describe('sign-out', () => {
  test('from the app: Edgebox ends its session, then the provider asks on its own page and returns to the app', async () => {
    const b = new Browser()
    await b.navigate(`${app}/`, user('frank'))
    const out = await b.fetch(`${app}/_edgebox/auth/logout`, { method: 'POST', headers: { origin: app, 'sec-fetch-site': 'same-origin' } })
    assert.equal(out.status, 200)
    const end = new URL(await continueUrl(out))
    assert.equal(end.origin + end.pathname, `${issuer}/session/end`)
    const confirm = await page(b, end.href)
    assert.equal(confirm.res.status, 200)
    assert.equal(confirm.res.headers.get('cache-control'), 'no-store')
    assert.match(confirm.html, /<title>Sign out<\/title>/)
    assert.match(confirm.html, /<html lang="en">/)
    assert.match(confirm.html, /<button type="submit" form="op.logoutForm" name="logout" value="yes"/)
    const done = await b.navigate(end.href, user('frank'))
    assert.equal(done.url, `${app}/_edgebox/auth/signed-out`)
    // signed out at the provider too: the next visit asks for the password again
    let asked = false
    await b.navigate(`${app}/back`, async (res, url) => {
      asked = true
      return user('frank')(res, url)
    })
    assert.ok(asked)
  })

  test('at the provider: the app is told by back-channel logout and its session ends', async () => {
    const b = new Browser()
    const first = await b.navigate(`${app}/before`, user('alice'))
    assert.equal(JSON.parse(first.text).user, 'alice')
    // sign out at the provider directly (its own page, no client named)
    const done = await b.navigate(`${issuer}/session/end`, user('alice'))
    assert.equal(done.res.status, 200)
    assert.match(done.text, /You are signed out of Edgebox ID/)
    // the app's session was ended by the logout token: an API call is 401, a page goes to the provider
    const cookie = [...b.cookies(app)].map(([k, v]) => `${k}=${v}`).join('; ')
    const api = await fetch(`${app}/api`, { headers: { cookie, accept: 'application/json' } })
    assert.equal(api.status, 401)
    assert.ok(logLines.some((l) => l.includes('back-channel logout sent')))
  })
})

describe('logs', () => {
  test('no password, token, code or cookie value in any log line', () => {
    assert.ok(logLines.length > 10)
    assert.ok(secrets.size > 10)
    for (const line of logLines) for (const s of secrets) assert.ok(!line.includes(s), `a log line holds a secret: ${line}`)
    assert.ok(logLines.some((l) => l.includes('identity provider: signed in') && l.includes('"user":"alice"')))
    assert.ok(logLines.some((l) => l.includes('wrong username or password')))
  })
})
