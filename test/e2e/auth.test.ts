import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { DatabaseSync } from 'node:sqlite'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { createRemoteJWKSet, jwtVerify } from 'jose'
import { freePort } from '../helpers/pebble.ts'
import { Browser, continueUrl, type Echo, signInAs, startEchoApp, startTestProvider, type TestProvider } from '../helpers/oidc.ts'
import { startServer, type TestServer } from '../helpers/server.ts'

/**
 * Single sign-on against an external OpenID Connect provider (oidc-provider
 * on loopback), over real sockets: the login round trip, the session, the
 * rules, what goes upstream, sign-out. Attacks are in auth-attacks.test.ts.
 */


let idp: TestProvider
let box: TestServer
let app: Awaited<ReturnType<typeof startEchoApp>>
let appOrigin: string
let dataDir: string

before(async () => {
  app = await startEchoApp()
  appOrigin = app.origin
  const port = await freePort()
  const origin = `http://127.0.0.1:${port}`
  idp = await startTestProvider({
    accounts: {
      alice: { email: 'alice@example.com', email_verified: true, name: 'Alice', groups: ['staff'] },
      bob: { email: 'bob@example.org', email_verified: true, groups: ['guests'] },
    },
    // a back-channel logout URI registered: the provider names its session (sid) in ID tokens, which front-channel logout checks
    clients: [{ client_id: 'edgebox', client_secret: 'a client secret for the tests', redirect_uris: [`${origin}/_edgebox/auth/callback`], post_logout_redirect_uris: [`${origin}/_edgebox/auth/signed-out`], backchannel_logout_uri: `${origin}/_edgebox/auth/backchannel-logout`, backchannel_logout_session_required: true }],
  })
  dataDir = mkdtempSync(path.join(tmpdir(), 'edgebox-auth-'))
  box = await startServer({
    listen: [{ host: '127.0.0.1', port }],
    dataDir,
    auth: { providers: { test: { issuer: idp.issuer, clientId: 'edgebox', clientSecret: 'a client secret for the tests', scopes: ['openid', 'email', 'profile', 'groups'] } } },
    sites: [
      {
        routes: [
          { path: '/', proxy: { upstreams: [appOrigin] }, auth: { skip: [{ path: '/status', methods: ['GET'] }, { path: '*.css' }] } },
          { path: '/admin/', proxy: { upstreams: [appOrigin] }, auth: { rules: [{ allow: { group: 'staff' } }] } },
          { path: '/open/', proxy: { upstreams: [appOrigin] } },
          {
            path: '/hub/',
            auth: { required: false },
            realtime: {
              channels: {
                'public:*': {},
                'staff:*': { subscribe: 'signedIn', publish: 'signedIn', who: { group: 'staff' } },
                'members:*': { subscribe: 'signedIn' },
              },
            },
          },
          { path: '/forms/', proxy: { upstreams: [appOrigin] }, csrf: { token: true }, auth: true },
        ],
      },
    ],
  })
})

after(async () => {
  await box?.close()
  await idp?.close()
  app?.close()
  rmSync(dataDir, { recursive: true, force: true })
})

/** A browser signed in as `account`, having asked for `path` first. */
async function signedIn(account: string, path = '/'): Promise<{ browser: Browser; landed: { res: Response; url: string; text: string } }> {
  const browser = new Browser()
  const landed = await browser.navigate(box.url + path.slice(1), signInAs(account))
  return { browser, landed }
}

describe('the gate without a session', () => {
  test('an API request gets 401 with a Bearer challenge, and nothing reaches the upstream', async () => {
    const before = app.seen.length
    const res = await fetch(`${box.url}api/items`, { headers: { accept: 'application/json' } })
    assert.equal(res.status, 401)
    assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="127.0.0.1"')
    assert.equal(app.seen.length, before)
  })

  test('a browser navigation is sent to the provider: code flow, PKCE S256, state, nonce, and a login cookie', async () => {
    const res = await new Browser().fetch(`${box.url}docs/page?x=1`)
    assert.equal(res.status, 302)
    assert.equal(res.headers.get('cache-control'), 'no-store')
    const to = new URL(res.headers.get('location')!)
    assert.equal(to.origin + to.pathname, `${idp.issuer}/auth`)
    const q = to.searchParams
    assert.equal(q.get('response_type'), 'code')
    assert.equal(q.get('client_id'), 'edgebox')
    assert.equal(q.get('redirect_uri'), `${box.url}_edgebox/auth/callback`)
    assert.equal(q.get('code_challenge_method'), 'S256')
    assert.match(q.get('code_challenge')!, /^[A-Za-z0-9_-]{43}$/)
    assert.match(q.get('state')!, /^[A-Za-z0-9_-]{43}$/)
    assert.match(q.get('nonce')!, /^[A-Za-z0-9_-]{43}$/)
    assert.equal(q.get('scope'), 'openid email profile groups')
    const cookie = res.headers.getSetCookie().find((c) => c.startsWith('edgebox-login='))!
    assert.match(cookie, /^edgebox-login=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=600; HttpOnly; SameSite=Lax$/)
  })

  test('a skipped path and method pass without a login; another method on it does not', async () => {
    assert.equal((await fetch(`${box.url}status`)).status, 200)
    assert.equal((await fetch(`${box.url}status`, { method: 'POST' })).status, 401)
  })

  test('a CORS preflight is not asked to sign in, and never reaches the upstream (a route without cors answers 204, allowing nothing)', async () => {
    const before = app.seen.length
    const res = await fetch(`${box.url}admin/delete?id=5`, { method: 'OPTIONS', headers: { origin: 'https://other.example', 'access-control-request-method': 'POST' }, body: 'id=5' })
    assert.equal(res.status, 204)
    assert.equal(res.headers.get('access-control-allow-origin'), null)
    assert.equal(app.seen.length, before)
  })

  test('path parameters do not get around the gate: a dot segment with parameters is refused, and a skip never applies to a path with them', async () => {
    const before = app.seen.length
    const traversal = await fetch(`${box.url}status/..;/admin/users`)
    assert.equal(traversal.status, 400)
    assert.match(await traversal.text(), /\.\.;/)
    assert.equal((await fetch(`${box.url}private/site.css`)).status, 200)
    // `/private/report;.css` is `/private/report` to a Tomcat upstream
    assert.equal((await fetch(`${box.url}private/report;.css`, { headers: { accept: 'application/json' } })).status, 401)
    assert.equal(app.seen.length, before + 1)
  })

  test("Edgebox's own cookies never reach an upstream: not on a skipped path, not on a route without a gate", async () => {
    const { browser } = await signedIn('alice')
    for (const p of ['status', 'open/x']) {
      const echo = (await (await browser.fetch(`${box.url}${p}`)).json()) as Echo
      const sent = String(echo.headers.cookie ?? '').split('; ')
      assert.ok(!sent.some((c) => c.startsWith('edgebox-session=') || c.startsWith('edgebox-login=')), `${p}: ${sent.join('; ')}`)
    }
  })
})

describe('the login round trip', () => {
  test('signing in returns to the page asked for, with an HttpOnly SameSite=Lax session cookie', async () => {
    const { browser, landed } = await signedIn('alice', '/docs/page?x=1&y=%2F')
    assert.equal(landed.res.status, 200)
    assert.equal(landed.url, `${box.url}docs/page?x=1&y=%2F`)
    assert.equal(JSON.parse(landed.text).path, '/docs/page?x=1&y=%2F')
    const callback = browser.hops.find((h) => h.url.startsWith(`${box.url}_edgebox/auth/callback`))!
    assert.equal(callback.status, 302)
    const cookie = callback.setCookie.find((c) => c.startsWith('edgebox-session='))!
    assert.match(cookie, /^edgebox-session=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=43200; HttpOnly; SameSite=Lax$/)
  })

  test('the upstream gets the identity: X-Auth-Request-* and an assertion checkable with the JWKS', async () => {
    const { browser } = await signedIn('alice')
    const res = await browser.fetch(`${box.url}whoami`)
    const echo = (await res.json()) as Echo
    assert.equal(echo.headers['x-auth-request-user'], 'alice')
    assert.equal(echo.headers['x-auth-request-email'], 'alice@example.com')
    assert.equal(echo.headers['x-auth-request-groups'], 'staff')
    assert.equal(echo.headers['x-auth-request-access-token'], undefined)
    const jwt = echo.headers['edgebox-jwt-assertion'] as string
    const jwks = createRemoteJWKSet(new URL(`${box.url}_edgebox/auth/jwks.json`))
    const { payload, protectedHeader } = await jwtVerify(jwt, jwks, { audience: appOrigin, issuer: box.url.slice(0, -1) })
    assert.equal(protectedHeader.alg, 'ES256')
    assert.equal(payload.sub, 'alice')
    assert.equal(payload.email, 'alice@example.com')
    assert.deepEqual(payload.groups, ['staff'])
    assert.equal(payload.exp! - payload.iat!, 60)
    // Edgebox's own cookies stay with Edgebox; the app's cookies go on
    browser.cookies(box.url).set('app_pref', 'dark')
    const withCookies = (await (await browser.fetch(`${box.url}whoami`)).json()) as Echo
    // (this jar also holds the provider's cookies: both are on 127.0.0.1)
    const sent = String(withCookies.headers.cookie).split('; ')
    assert.ok(sent.includes('app_pref=dark'))
    assert.ok(!sent.some((c) => c.startsWith('edgebox-session=') || c.startsWith('edgebox-login=')), sent.join('; '))
    // made once per lifetime: the next request carries the same assertion
    const again = (await (await browser.fetch(`${box.url}whoami`)).json()) as Echo
    assert.equal(again.headers['edgebox-jwt-assertion'], jwt)
  })

  test('identity fields a client sends are stripped, with or without a gate', async () => {
    const forged = { 'x-auth-request-email': 'ceo@example.com', 'x-auth-request-user': 'ceo', 'edgebox-jwt-assertion': 'forged', 'X-Auth-Request-Groups': 'admins' }
    const open = (await (await fetch(`${box.url}open/x`, { headers: forged })).json()) as Echo
    for (const name of Object.keys(forged)) assert.equal(open.headers[name.toLowerCase()], undefined, name)
    const { browser } = await signedIn('bob')
    const gated = (await (await browser.fetch(`${box.url}x`, { headers: forged })).json()) as Echo
    assert.equal(gated.headers['x-auth-request-email'], 'bob@example.org')
    assert.equal(gated.headers['x-auth-request-groups'], 'guests')
    assert.notEqual(gated.headers['edgebox-jwt-assertion'], 'forged')
  })

  test('a route whose rule needs a group: 403 page naming the account, with a sign-out form', async () => {
    const { browser } = await signedIn('bob')
    const before = app.seen.length
    const res = await browser.fetch(`${box.url}admin/panel`)
    assert.equal(res.status, 403)
    const html = await res.text()
    assert.match(html, /signed in as <strong>bob@example\.org<\/strong>/)
    assert.match(html, /<form method="post" action="\/_edgebox\/auth\/logout">/)
    assert.equal(app.seen.length, before)
    const { browser: staff } = await signedIn('alice')
    assert.equal((await staff.fetch(`${box.url}admin/panel`)).status, 200)
  })

  test('the userinfo endpoint says who the session is', async () => {
    const { browser } = await signedIn('alice')
    const res = await browser.fetch(`${box.url}_edgebox/auth/userinfo`)
    assert.equal(res.status, 200)
    const info = (await res.json()) as Record<string, unknown>
    assert.equal(info.sub, 'alice')
    assert.equal(info.email, 'alice@example.com')
    assert.equal(info.provider, 'test')
    assert.equal((await fetch(`${box.url}_edgebox/auth/userinfo`)).status, 401)
  })
})

describe('sign-out', () => {
  test('the front-channel logout page ends only the session of the browser that loads it, for its own provider', async () => {
    const { browser } = await signedIn('alice')
    const userinfo = () => browser.fetch(`${box.url}_edgebox/auth/userinfo`)
    // another issuer, or another provider session: nothing ends
    assert.equal((await browser.fetch(`${box.url}_edgebox/auth/frontchannel-logout?iss=${encodeURIComponent('https://other.example')}`)).status, 200)
    assert.equal((await browser.fetch(`${box.url}_edgebox/auth/frontchannel-logout?iss=${encodeURIComponent(idp.issuer)}&sid=not-this-one`)).status, 200)
    assert.equal((await userinfo()).status, 200)
    // a request without the cookie ends nobody's session
    assert.equal((await fetch(`${box.url}_edgebox/auth/frontchannel-logout?iss=${encodeURIComponent(idp.issuer)}`)).status, 200)
    assert.equal((await userinfo()).status, 200)
    // the provider's own frame names its issuer and the provider session; a bare link (from any site) ends nothing
    assert.equal((await browser.fetch(`${box.url}_edgebox/auth/frontchannel-logout`)).status, 200)
    assert.equal((await browser.fetch(`${box.url}_edgebox/auth/frontchannel-logout?iss=${encodeURIComponent(idp.issuer)}`)).status, 200)
    assert.equal((await userinfo()).status, 200)
    const db = new DatabaseSync(path.join(dataDir, 'auth', 'sessions.sqlite'), { readOnly: true })
    const { sid } = db.prepare('SELECT sid FROM sessions ORDER BY created_at DESC LIMIT 1').get() as { sid: string }
    db.close()
    assert.ok(sid, 'the provider named its session (sid) in the ID token')
    const res = await browser.fetch(`${box.url}_edgebox/auth/frontchannel-logout?iss=${encodeURIComponent(idp.issuer)}&sid=${encodeURIComponent(sid)}`)
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('cache-control'), 'no-store')
    assert.equal((await userinfo()).status, 401)
  })

  test('a cross-site POST cannot sign anybody out', async () => {
    const { browser } = await signedIn('alice')
    const res = await browser.fetch(`${box.url}_edgebox/auth/logout`, { method: 'POST', headers: { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' } })
    assert.equal(res.status, 403)
    assert.equal((await browser.fetch(`${box.url}x`)).status, 200)
  })

  test('POST /_edgebox/auth/logout ends the session and goes on to the provider with id_token_hint', async () => {
    const { browser } = await signedIn('alice')
    const res = await browser.fetch(`${box.url}_edgebox/auth/logout`, { method: 'POST', headers: { origin: box.url.slice(0, -1), 'sec-fetch-site': 'same-origin' } })
    // a page that moves on by itself (a redirect of the form's POST would be held to the page's CSP form-action)
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('cache-control'), 'no-store')
    const to = new URL(await continueUrl(res))
    assert.equal(to.origin + to.pathname, `${idp.issuer}/session/end`)
    assert.ok(to.searchParams.get('id_token_hint'))
    assert.equal(to.searchParams.get('post_logout_redirect_uri'), `${box.url}_edgebox/auth/signed-out`)
    assert.ok(!browser.cookies(box.url).has('edgebox-session'))
    // the old cookie no longer works, even sent again by hand
    const api = await fetch(`${box.url}x`, { headers: { accept: 'application/json' } })
    assert.equal(api.status, 401)
  })
})

describe('the realtime hub and CSRF with sessions', () => {
  const poll = (browser: Browser | null, ch: string) => (browser ? browser.fetch(`${box.url}hub/poll?ch=${ch}`, { headers: { accept: 'application/json', 'sec-fetch-mode': 'cors' } }) : fetch(`${box.url}hub/poll?ch=${ch}`))

  test('signedIn channels take the session, and `who` its claims; public channels stay open to anyone', async () => {
    const { browser: alice } = await signedIn('alice')
    const { browser: bob } = await signedIn('bob')
    assert.equal((await poll(alice, 'staff:news')).status, 200)
    assert.equal((await poll(alice, 'members:all')).status, 200)
    const refused = await poll(bob, 'staff:news')
    assert.equal(refused.status, 403)
    assert.match(await refused.text(), /staff:news is not open to this account/)
    assert.equal((await poll(bob, 'members:all')).status, 200)
    const anonymous = await poll(null, 'members:all')
    assert.equal(anonymous.status, 403)
    assert.match(await anonymous.text(), /needs a signed-in user/)
    assert.equal((await poll(null, 'public:lobby')).status, 200)
  })

  test('a signed-in user publishes to a signedIn channel; others may not', async () => {
    const { browser: alice } = await signedIn('alice')
    const { browser: bob } = await signedIn('bob')
    const send = async (b: Browser) => (await (await b.fetch(`${box.url}hub/publish`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json', 'sec-fetch-mode': 'cors', 'sec-fetch-site': 'same-origin', origin: box.url.slice(0, -1) }, body: JSON.stringify({ t: 'pub', ch: 'staff:news', d: { text: 'hello' } }) })).json()) as { t: string; e?: string; o?: number }
    const ack = await send(alice)
    assert.equal(ack.t, 'ack')
    const refused = await send(bob)
    assert.equal(refused.t, 'err')
    assert.match(JSON.stringify(refused), /staff:news is not open to this account/)
    const got = await (await poll(alice, `staff:news@${ack.e}/${ack.o! - 1}`)).text()
    assert.match(got, /hello/)
  })

  test('a WebSocket on a gated route carries its session: a signedIn channel takes it, and refuses a connection without one', async () => {
    const { browser } = await signedIn('alice')
    const cookie = `edgebox-session=${browser.cookies(box.url).get('edgebox-session')}`
    const { default: WebSocket } = await import('ws')
    // subscribes to a signedIn channel and says what came back: the `sub` envelope, an `err`, or the refused upgrade's status
    const open = (headers: Record<string, string>) =>
      new Promise<string>((resolve) => {
        const ws = new WebSocket(`${box.url.replace('http', 'ws')}hub/ws`, 'edgebox.v1', { headers })
        ws.on('open', () => ws.send(JSON.stringify({ t: 'sub', ch: 'staff:news' })))
        ws.on('message', (data) => {
          ws.close()
          resolve((JSON.parse(String(data)) as { t: string }).t)
        })
        ws.on('unexpected-response', (_req, res) => resolve(String(res.statusCode)))
        ws.on('error', (err) => resolve(err.message))
      })
    assert.equal(await open({ cookie }), 'sub')
    // the gate is optional on this route: no session is an anonymous connection, which the channel refuses
    assert.equal(await open({}), 'err')
    // a session that ended is no session
    assert.equal(await open({ cookie: 'edgebox-session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }), 'err')
  })

  test('the CSRF token is bound to the session: one from another session does not pass', async () => {
    const { browser: alice } = await signedIn('alice', '/forms/')
    const { browser: bob } = await signedIn('bob', '/forms/')
    const tokenOf = (b: Browser) => b.cookies(box.url).get('edgebox_csrf')!
    assert.ok(tokenOf(alice) && tokenOf(bob))
    const post = (b: Browser, token: string) => {
      b.cookies(box.url).set('edgebox_csrf', token)
      return b.fetch(`${box.url}forms/save`, { method: 'POST', headers: { 'x-csrf-token': token, 'sec-fetch-site': 'same-origin', origin: box.url.slice(0, -1), 'content-type': 'application/json' }, body: '{}' })
    }
    const own = tokenOf(alice)
    assert.equal((await post(alice, own)).status, 200)
    // bob's token, in both the cookie and the header, on alice's session
    const crossed = await post(alice, tokenOf(bob))
    assert.equal(crossed.status, 403)
    assert.match(await crossed.text(), /no valid CSRF token cookie for this session/)
  })
})
