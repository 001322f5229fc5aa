import assert from 'node:assert/strict'
import http from 'node:http'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { after, before, describe, test } from 'node:test'
import { exportJWK, generateKeyPair, SignJWT } from 'jose'
import { pino } from 'pino'
import { startEdgebox } from '../../src/server/app.ts'
import { ManualClock, waitFor } from '../helpers/clock.ts'
import { freePort } from '../helpers/pebble.ts'
import { atCallback, Browser, cancelSignIn, continueUrl, type Echo, redirectsUntil, signInAs, startEchoApp, startTestProvider, type TestProvider } from '../helpers/oidc.ts'
import { startServer, type TestServer } from '../helpers/server.ts'

/**
 * Single sign-on under attack and failure (docs/sso.md, "What is tested"):
 * forged and misdirected bearer tokens, callbacks that are replayed, moved
 * to another browser or swapped, ID tokens a provider should not have
 * issued, return URLs that leave the site, the provider down, revoked and
 * timed-out sessions, back-channel logout, and secrets kept out of logs.
 * Everything runs on loopback against oidc-provider (test/helpers/oidc.ts)
 * or a small fake provider made here.
 */


const SECRET = 'a client secret for the attack tests'
const BCL_EVENT = 'http://schemas.openid.net/event/backchannel-logout'

let idp: TestProvider
let app: Awaited<ReturnType<typeof startEchoApp>>
let appOrigin: string
let box: TestServer
const dirs: string[] = []
/** Every request the upstream app got. */
/** Ports for the Edgebox servers some tests start themselves (each registered at the provider up front). */
const ports = { main: 0, clock: 0, down: 0, logs: 0 }
const originOf = (port: number) => `http://127.0.0.1:${port}`

function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'edgebox-auth-attacks-'))
  dirs.push(dir)
  return dir
}

/** The provider as Edgebox is configured with it. */
function provider(clientId = 'edgebox') {
  return { test: { issuer: idp.issuer, clientId, clientSecret: SECRET, scopes: ['openid', 'email', 'profile', 'groups'] } }
}

before(async () => {
  app = await startEchoApp()
  appOrigin = app.origin
  for (const k of Object.keys(ports) as Array<keyof typeof ports>) ports[k] = await freePort()
  const client = (id: string, list: number[], backchannel: number) => ({
    client_id: id,
    client_secret: SECRET,
    redirect_uris: list.map((p) => `${originOf(p)}/_edgebox/auth/callback`),
    post_logout_redirect_uris: list.map((p) => `${originOf(p)}/_edgebox/auth/signed-out`),
    backchannel_logout_uri: `${originOf(backchannel)}/_edgebox/auth/backchannel-logout`,
  })
  idp = await startTestProvider({
    accounts: {
      alice: { email: 'alice@example.com', email_verified: true, name: 'Alice', groups: ['staff'] },
      bob: { email: 'bob@example.org', email_verified: true, groups: ['guests'] },
      carol: { email: 'carol@example.com' },
      dave: { email: 'dave@example.com' },
      erin: { email: 'erin@example.com' },
      frank: { email: 'frank@example.com' },
      mallory: { email: 'mallory@example.net' },
    },
    clients: [
      client('edgebox', [ports.main, ports.clock, ports.down], ports.main),
      client('edgebox-logs', [ports.logs], ports.logs),
      // another application of the same provider, which Edgebox has nothing to do with
      { client_id: 'another-app', redirect_uris: ['https://another-app.example/callback'] },
    ],
    loopbackRequests: true,
  })
  box = await startServer({
    listen: [{ host: '127.0.0.1', port: ports.main }],
    dataDir: tempDir(),
    auth: { providers: provider() },
    sites: [
      {
        routes: [
          { path: '/', proxy: { upstreams: [appOrigin] }, auth: true },
          { path: '/token/', proxy: { upstreams: [appOrigin] }, auth: { upstream: { accessToken: true } } },
          { path: '/guarded/', proxy: { upstreams: [appOrigin] }, auth: { rules: [{ deny: { claim: { name: 'sub', equals: 'mallory' } } }, { allow: true }] } },
        ],
      },
    ],
  })
})

after(async () => {
  await box?.close()
  await idp?.close()
  app?.close()
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

/** A browser signed in as `account` at `base` (having asked for `page` first). */
async function signedIn(account: string, base = box.url, page = '/'): Promise<{ browser: Browser; landed: { res: Response; url: string; text: string } }> {
  const browser = new Browser()
  const landed = await browser.navigate(base + page.slice(1), signInAs(account))
  assert.equal(landed.res.status, 200, `signed in as ${account}`)
  return { browser, landed }
}

/** An API request (not a navigation) with this browser's cookies. */
function api(browser: Browser, url: string, headers: Record<string, string> = {}): Promise<Response> {
  return browser.fetch(url, { headers: { accept: 'application/json', 'sec-fetch-mode': 'cors', ...headers } })
}

/** The status of the userinfo endpoint for this browser's session at `base`. */
async function whoStatus(browser: Browser, base = box.url): Promise<number> {
  const res = await api(browser, `${base}_edgebox/auth/userinfo`)
  await res.arrayBuffer()
  return res.status
}

const nowS = () => Math.floor(Date.now() / 1000)

describe('bearer access tokens', () => {
  const challenge = (why: string) => `Bearer realm="127.0.0.1", error="invalid_token", error_description="${why}"`

  /** A request with this bearer token; asserts nothing reached the upstream unless it passed. */
  async function withBearer(token: string, url = `${box.url}api/items`): Promise<{ res: Response; text: string; echo: Echo | null }> {
    const before = app.seen.length
    const res = await fetch(url, { headers: { authorization: `Bearer ${token}`, accept: 'application/json' } })
    const text = await res.text()
    if (res.status !== 200) {
      assert.equal(app.seen.length, before, 'a refused token reaches no upstream')
      return { res, text, echo: null }
    }
    assert.equal(app.seen.length, before + 1)
    return { res, text, echo: JSON.parse(text) as Echo }
  }

  const good = () => ({ iss: idp.issuer, aud: 'edgebox', sub: 'alice', email: 'alice@example.com', iat: nowS(), exp: nowS() + 300 })

  test('a JWT signed by the provider for edgebox passes, and the upstream learns who', async () => {
    const { res, echo } = await withBearer(await idp.sign(good()))
    assert.equal(res.status, 200)
    assert.equal(echo!.headers['x-auth-request-user'], 'alice')
    assert.equal(echo!.headers['x-auth-request-email'], 'alice@example.com')
  })

  const unsigned = (claims: Record<string, unknown>) => `eyJhbGciOiJub25lIn0.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.`
  const refused: Array<[string, () => Promise<string>, string]> = [
    [
      'signed with another key under the provider key id',
      async () => idp.sign(good(), { key: (await generateKeyPair('ES256')).privateKey, kid: 'test-key' }),
      'the token signature does not verify',
    ],
    ['expired', async () => idp.sign({ ...good(), iat: nowS() - 600, exp: nowS() - 60 }), 'the token has expired'],
    ['not yet valid (nbf in the future)', async () => idp.sign({ ...good(), nbf: nowS() + 600 }), "the token's nbf claim is not acceptable (check_failed)"],
    ['for another audience', async () => idp.sign({ ...good(), aud: 'another-client' }), "the token's aud claim is not acceptable (check_failed)"],
    ['from another issuer', async () => idp.sign({ ...good(), iss: 'https://evil.example' }), 'no provider of this route issued the token'],
    ['alg none', async () => unsigned(good()), 'the token is signed with an algorithm that is not accepted'],
    [
      'HS256 with the client secret as the key',
      async () => new SignJWT(good()).setProtectedHeader({ alg: 'HS256', kid: 'test-key' }).sign(new TextEncoder().encode(SECRET)),
      'the token is signed with an algorithm that is not accepted',
    ],
    ['with no exp', async () => idp.sign({ ...good(), exp: undefined }), 'the token has no sub or exp'],
    ['garbage in three parts', async () => 'abc.def.ghi', 'no provider of this route issued the token'],
    ['garbage the provider does not know (introspected)', async () => 'not-a-token-anybody-issued', 'the token is not active'],
  ]
  for (const [name, make, why] of refused) {
    test(`a bearer token ${name}: 401 invalid_token, nothing upstream`, async () => {
      const { res, text } = await withBearer(await make())
      assert.equal(res.status, 401)
      assert.equal(res.headers.get('www-authenticate'), challenge(why))
      assert.equal(res.headers.get('content-type'), 'text/plain; charset=utf-8')
      assert.equal(text, `401 Unauthorized: the bearer token was refused: ${why}\n`)
    })
  }

  test('an opaque access token from a real login passes through introspection', async () => {
    const { browser } = await signedIn('alice')
    const echo = (await (await api(browser, `${box.url}token/x`)).json()) as Echo
    const accessToken = echo.headers['x-auth-request-access-token'] as string
    assert.match(accessToken, /^[A-Za-z0-9_-]{20,}$/)
    const hits = idp.hits.get('/token/introspection') ?? 0
    const { res, echo: upstream } = await withBearer(accessToken)
    assert.equal(res.status, 200)
    assert.equal(upstream!.headers['x-auth-request-user'], 'alice')
    assert.equal(idp.hits.get('/token/introspection'), hits + 1)
    // the verdict is kept: no second introspection
    assert.equal((await withBearer(accessToken)).res.status, 200)
    assert.equal(idp.hits.get('/token/introspection'), hits + 1)
  })

  test("a good token of a user the route's rules deny: 403 insufficient_scope, nothing upstream", async () => {
    const token = await idp.sign({ ...good(), sub: 'mallory', email: 'mallory@example.net' })
    const { res, text } = await withBearer(token, `${box.url}guarded/x`)
    assert.equal(res.status, 403)
    assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="127.0.0.1", error="insufficient_scope"')
    assert.equal(text, '403 Forbidden: mallory@example.net (test) may not use /guarded/x\n')
    // the same token where no rule denies it
    assert.equal((await withBearer(token)).res.status, 200)
  })

  test('an opaque access token the provider issued to another application: 401, nothing upstream', async () => {
    const grant = new idp.provider.Grant({ accountId: 'alice', clientId: 'another-app' })
    grant.addOIDCScope('openid email')
    const grantId = (await grant.save()) as string
    const token = (await new idp.provider.AccessToken({ accountId: 'alice', clientId: 'another-app', grantId, scope: 'openid email', gty: 'authorization_code' }).save()) as string
    assert.match(token, /^[A-Za-z0-9_-]{20,}$/)
    const { res } = await withBearer(token)
    assert.equal(res.status, 401)
  })

  test('an ID token from a login is not an access token', async () => {
    const { browser } = await signedIn('alice')
    const out = await browser.fetch(`${box.url}_edgebox/auth/logout`, { method: 'POST', headers: { origin: box.url.slice(0, -1), 'sec-fetch-site': 'same-origin' } })
    // the ID token leaves in a URL (RP-initiated logout's id_token_hint): browser history, the provider's logs
    const idToken = new URL(await continueUrl(out)).searchParams.get('id_token_hint')!
    assert.equal(idToken.split('.').length, 3)
    const { res } = await withBearer(idToken)
    assert.equal(res.status, 401)
  })

  test('a logout token is not an access token', async () => {
    const logoutToken = await idp.sign({ iss: idp.issuer, aud: 'edgebox', sub: 'alice', iat: nowS(), exp: nowS() + 120, jti: 'a-logout-token-as-a-bearer', events: { [BCL_EVENT]: {} } }, { typ: 'logout+jwt' })
    const { res } = await withBearer(logoutToken)
    assert.equal(res.status, 401)
  })
})

describe('the callback', () => {
  /** A browser's login at the provider, stopped at the redirect back to Edgebox: the callback URL (code, state, iss). */
  async function callbackUrl(browser: Browser, account: string, base = box.url): Promise<URL> {
    return new URL(await redirectsUntil(browser, `${base}docs/page`, atCallback, signInAs(account)))
  }

  const EXPIRED = 'This sign-in has expired or was already used. Start again from the page you wanted.'
  const ANOTHER_BROWSER = 'This sign-in was started in another browser (or its cookie was lost). Start again from the page you wanted.'
  const INVALID_GRANT = 'the identity provider test refused: invalid_grant (grant request is invalid)'

  /** A failed sign-in page: its status, title, no session cookie set, and the sentence it explains with. */
  async function assertFailedPage(res: Response, status: number, says: string): Promise<void> {
    assert.equal(res.status, status)
    assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8')
    assert.equal(res.headers.get('cache-control'), 'no-store')
    assert.ok(!res.headers.getSetCookie().some((c) => c.startsWith('edgebox-session=')), 'no session cookie')
    const html = await res.text()
    assert.match(html, /<title>Sign-in failed/)
    assert.equal(/<p>([^<]*)<\/p>/.exec(html)?.[1], says)
  }

  test('an unknown state: 400 page, nothing exchanged at the provider', async () => {
    const tokens = idp.hits.get('/token') ?? 0
    const res = await new Browser().fetch(`${box.url}_edgebox/auth/callback?code=abc&state=${'x'.repeat(43)}&iss=${encodeURIComponent(idp.issuer)}`)
    await assertFailedPage(res, 400, EXPIRED)
    const none = await new Browser().fetch(`${box.url}_edgebox/auth/callback?code=abc`)
    await assertFailedPage(none, 400, EXPIRED)
    assert.equal(idp.hits.get('/token') ?? 0, tokens)
  })

  test('the same callback replayed after a successful login: 400 (a state is used once)', async () => {
    const browser = new Browser()
    const url = await callbackUrl(browser, 'alice')
    const first = await browser.fetch(url.href)
    assert.equal(first.status, 302)
    assert.equal(first.headers.get('location'), '/docs/page')
    const session = browser.cookies(box.url).get('edgebox-session')!
    assert.match(session, /^[A-Za-z0-9_-]{43}$/)
    const tokens = idp.hits.get('/token') ?? 0
    await assertFailedPage(await browser.fetch(url.href), 400, EXPIRED)
    // from another browser too
    await assertFailedPage(await new Browser().fetch(url.href), 400, EXPIRED)
    assert.equal(idp.hits.get('/token') ?? 0, tokens, 'the code is not presented again')
    // the session made the first time is the one the browser still has, and works
    assert.equal(browser.cookies(box.url).get('edgebox-session'), session)
    assert.equal(await whoStatus(browser), 200)
  })

  test('a callback completed in a browser without the login cookie: 400, no session, and the login is spent', async () => {
    const victim = new Browser()
    const url = await callbackUrl(victim, 'alice')
    const attacker = new Browser()
    await assertFailedPage(await attacker.fetch(url.href), 400, ANOTHER_BROWSER)
    assert.equal(attacker.cookies(box.url).get('edgebox-session'), undefined)
    assert.equal(await whoStatus(attacker), 401)
    // the state was used up by the attempt: the browser that started it cannot finish it either
    await assertFailedPage(await victim.fetch(url.href), 400, EXPIRED)
    assert.equal(await whoStatus(victim), 401)
  })

  test("a callback completed in a browser with its own login cookie: 400, no session", async () => {
    const victim = new Browser()
    const url = await callbackUrl(victim, 'alice')
    // the attacker has a login cookie of its own, from a login it started
    const attacker = new Browser()
    const started = await attacker.fetch(`${box.url}docs/page`)
    assert.equal(started.status, 302)
    assert.match(attacker.cookies(box.url).get('edgebox-login')!, /^[A-Za-z0-9_-]{43}$/)
    assert.notEqual(attacker.cookies(box.url).get('edgebox-login'), victim.cookies(box.url).get('edgebox-login'))
    await assertFailedPage(await attacker.fetch(url.href), 400, ANOTHER_BROWSER)
    assert.equal(attacker.cookies(box.url).get('edgebox-session'), undefined)
    assert.equal(await whoStatus(attacker), 401)
  })

  test('a session cookie planted before the login is not the one after it (no fixation), and it ends', async () => {
    const { browser: attacker } = await signedIn('mallory')
    const planted = attacker.cookies(box.url).get('edgebox-session')!
    const victim = new Browser()
    victim.cookies(box.url).set('edgebox-session', planted)
    const landed = await victim.navigate(`${box.url}_edgebox/auth/login?rd=%2Fdocs`, signInAs('alice'))
    assert.equal(landed.res.status, 200)
    const now = victim.cookies(box.url).get('edgebox-session')!
    assert.match(now, /^[A-Za-z0-9_-]{43}$/)
    assert.notEqual(now, planted)
    const me = (await (await api(victim, `${box.url}_edgebox/auth/userinfo`)).json()) as { sub: string }
    assert.equal(me.sub, 'alice')
    assert.equal(await whoStatus(attacker), 401, 'the planted session ended when the browser signed in')
  })

  test('error=access_denied from the provider: 403 page naming the error, no session', async () => {
    const browser = new Browser()
    const url = new URL(await redirectsUntil(browser, `${box.url}docs/page`, atCallback, cancelSignIn()))
    assert.equal(url.searchParams.get('error'), 'access_denied')
    assert.equal(url.searchParams.get('code'), null)
    await assertFailedPage(await browser.fetch(url.href), 403, 'the identity provider test refused: access_denied (End-User aborted interaction)')
    assert.equal(await whoStatus(browser), 401)
  })

  test('a code from one login with the state of another in the same browser (swapped): refused, no session', async () => {
    const browser = new Browser()
    const a = await callbackUrl(browser, 'bob')
    const b = await callbackUrl(browser, 'bob')
    assert.notEqual(a.searchParams.get('state'), b.searchParams.get('state'))
    assert.notEqual(a.searchParams.get('code'), b.searchParams.get('code'))
    const swapped = new URL(b)
    swapped.searchParams.set('code', a.searchParams.get('code')!)
    // PKCE: the code was issued for login A's code challenge, and B's verifier does not match it
    await assertFailedPage(await browser.fetch(swapped.href), 400, INVALID_GRANT)
    assert.equal(browser.cookies(box.url).get('edgebox-session'), undefined)
    assert.equal(await whoStatus(browser), 401)
    // and B's code with A's state
    const other = new URL(a)
    other.searchParams.set('code', b.searchParams.get('code')!)
    await assertFailedPage(await browser.fetch(other.href), 400, INVALID_GRANT)
    assert.equal(await whoStatus(browser), 401)
  })
})

describe('ID tokens a provider should not have issued (a fake provider)', () => {
  /** What the fake provider puts in its next ID token, from the nonce Edgebox sent; and how it signs it. */
  let mint: (nonce: string) => Promise<string>
  let fake: http.Server
  let fakeIssuer: string
  let fbox: TestServer
  let fakeKey: CryptoKey
  let otherKey: CryptoKey
  const tokenRequests: URLSearchParams[] = []

  before(async () => {
    const pair = await generateKeyPair('ES256', { extractable: true })
    fakeKey = pair.privateKey
    otherKey = (await generateKeyPair('ES256')).privateKey
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'fake-key', alg: 'ES256', use: 'sig' }
    /** The nonce of the last authorization request. */
    let nonce = ''
    fake = http.createServer((req, res) => {
      const url = new URL(req.url ?? '/', fakeIssuer)
      const json = (body: unknown) => {
        res.setHeader('content-type', 'application/json')
        res.setHeader('cache-control', 'no-store')
        res.end(JSON.stringify(body))
      }
      if (url.pathname === '/.well-known/openid-configuration') {
        return json({
          issuer: fakeIssuer,
          authorization_endpoint: `${fakeIssuer}/authorize`,
          token_endpoint: `${fakeIssuer}/token`,
          jwks_uri: `${fakeIssuer}/jwks`,
          response_types_supported: ['code'],
          subject_types_supported: ['public'],
          id_token_signing_alg_values_supported: ['ES256'],
          code_challenge_methods_supported: ['S256'],
        })
      }
      if (url.pathname === '/jwks') return json({ keys: [jwk] })
      if (url.pathname === '/authorize') {
        nonce = url.searchParams.get('nonce') ?? ''
        const back = new URL(url.searchParams.get('redirect_uri')!)
        back.searchParams.set('code', 'a-fake-code')
        back.searchParams.set('state', url.searchParams.get('state') ?? '')
        res.writeHead(302, { location: back.href })
        return res.end()
      }
      if (url.pathname === '/token' && req.method === 'POST') {
        let body = ''
        req.setEncoding('utf8')
        req.on('data', (c: string) => (body += c))
        req.on('end', () => {
          tokenRequests.push(new URLSearchParams(body))
          mint(nonce).then((idToken) => json({ access_token: 'a-fake-access-token', token_type: 'Bearer', expires_in: 3600, id_token: idToken }), (err: unknown) => {
            res.statusCode = 500
            res.end(String(err))
          })
        })
        return
      }
      res.statusCode = 404
      res.end()
    })
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve))
    fakeIssuer = `http://127.0.0.1:${(fake.address() as AddressInfo).port}`
    fbox = await startServer({
      dataDir: tempDir(),
      auth: { providers: { fake: { issuer: fakeIssuer, clientId: 'edgebox', clientSecret: SECRET, scopes: ['openid'] } } },
      sites: [{ routes: [{ path: '/', proxy: { upstreams: [appOrigin] }, auth: true }] }],
    })
  })

  after(async () => {
    await fbox?.close()
    fake?.closeAllConnections()
    fake?.close()
  })

  const claims = (nonce: string): Record<string, unknown> => ({ iss: fakeIssuer, aud: 'edgebox', sub: 'eve', iat: nowS(), exp: nowS() + 300, nonce })
  const es256 = (c: Record<string, unknown>, key = fakeKey) => new SignJWT(c).setProtectedHeader({ alg: 'ES256', kid: 'fake-key' }).sign(key)

  /** A login through the fake provider, whose token endpoint answers with `make`'s ID token: the callback's answer. */
  async function loginWith(make: (nonce: string) => Promise<string>): Promise<{ res: Response; browser: Browser }> {
    mint = make
    const browser = new Browser()
    const url = await redirectsUntil(browser, `${fbox.url}docs/page`, atCallback)
    const before = tokenRequests.length
    const res = await browser.fetch(url)
    assert.equal(tokenRequests.length, before + 1, 'the code was exchanged')
    return { res, browser }
  }

  test('the control: a good ID token makes a session', async () => {
    const { res, browser } = await loginWith(async (nonce) => es256(claims(nonce)))
    assert.equal(res.status, 302)
    assert.equal(res.headers.get('location'), '/docs/page')
    const sent = tokenRequests.at(-1)!
    assert.equal(sent.get('grant_type'), 'authorization_code')
    assert.equal(sent.get('code'), 'a-fake-code')
    assert.match(sent.get('code_verifier')!, /^[A-Za-z0-9_-]{43}$/)
    assert.equal(await whoStatus(browser, fbox.url), 200)
  })

  const refusedBy = (why: string) => `the login with fake was refused: ${why}`
  const bad: Array<[string, (nonce: string) => Promise<string>, string | RegExp]> = [
    ['a nonce that is not the one sent', async () => es256(claims('not-the-nonce-edgebox-sent')), refusedBy('unexpected JWT claim value encountered')],
    ['no nonce', async (nonce) => es256({ ...claims(nonce), nonce: undefined }), refusedBy('invalid response encountered')],
    ['another audience', async (nonce) => es256({ ...claims(nonce), aud: 'another-client' }), refusedBy('unexpected JWT claim value encountered')],
    ['several audiences and azp another client', async (nonce) => es256({ ...claims(nonce), aud: ['edgebox', 'another-client'], azp: 'another-client' }), refusedBy('unexpected JWT claim value encountered')],
    ['another issuer', async (nonce) => es256({ ...claims(nonce), iss: 'https://evil.example' }), refusedBy('unexpected JWT claim value encountered')],
    ['an expiry passed', async (nonce) => es256({ ...claims(nonce), iat: nowS() - 900, exp: nowS() - 600 }), refusedBy('JWT timestamp claim value failed validation')],
    ['alg none', async (nonce) => `eyJhbGciOiJub25lIn0.${Buffer.from(JSON.stringify(claims(nonce))).toString('base64url')}.`, refusedBy('invalid response encountered')],
    ['HS256 with the client secret as the key', async (nonce) => new SignJWT(claims(nonce)).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(SECRET)), refusedBy('invalid response encountered')],
    ['a signature by another key under the provider key id', async (nonce) => es256(claims(nonce), otherKey), /^the login with fake was refused: /],
  ]
  for (const [name, make, why] of bad) {
    test(`an ID token with ${name}: 400 "Sign-in failed", no session`, async () => {
      const { res, browser } = await loginWith(make)
      assert.equal(res.status, 400)
      assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8')
      assert.ok(!res.headers.getSetCookie().some((c) => c.startsWith('edgebox-session=')))
      const html = await res.text()
      assert.match(html, /<title>Sign-in failed/)
      const said = /<p>([^<]*)<\/p>/.exec(html)?.[1] ?? ''
      if (typeof why === 'string') assert.equal(said, why)
      else assert.match(said, why)
      assert.equal(browser.cookies(fbox.url).get('edgebox-session'), undefined)
      assert.equal(await whoStatus(browser, fbox.url), 401)
    })
  }
})

describe('return URLs', () => {
  /** A login started at /_edgebox/auth/login?rd=…, completed: where the callback sends the browser. */
  async function landing(rd: string): Promise<string | null> {
    const browser = new Browser()
    const callback = await redirectsUntil(browser, `${box.url}_edgebox/auth/login?rd=${encodeURIComponent(rd)}`, atCallback, signInAs('alice'))
    const res = await browser.fetch(callback)
    assert.equal(res.status, 302)
    assert.ok(res.headers.getSetCookie().some((c) => c.startsWith('edgebox-session=')), 'signed in')
    return res.headers.get('location')
  }

  for (const rd of ['//evil.example', 'https://evil.example', '/\\evil.example', '/%2F%2Fevil.example', '/%5Cevil.example', '%2F%2Fevil.example', '/%09/evil.example', 'javascript:alert(1)']) {
    test(`rd=${rd} returns to /`, async () => {
      assert.equal(await landing(rd), '/')
    })
  }

  test('a same-site path returns to itself, query kept', async () => {
    assert.equal(await landing('/docs/a?b=1'), '/docs/a?b=1')
  })

  test("a gated page's own URL is where a login returns, whatever the callback's query says", async () => {
    const browser = new Browser()
    const callback = new URL(await redirectsUntil(browser, `${box.url}docs/here?x=1`, atCallback, signInAs('alice')))
    callback.searchParams.set('rd', 'https://evil.example')
    const res = await browser.fetch(callback.href)
    assert.equal(res.status, 302)
    assert.equal(res.headers.get('location'), '/docs/here?x=1')
  })
})

describe('the provider down', () => {
  test('at the first login (never reached before): 502 page; an API request still gets 401; after it is back, a login works', async () => {
    const clock = new ManualClock(Date.now())
    await idp.pause()
    let down: TestServer | undefined
    try {
      down = await startServer({ listen: [{ host: '127.0.0.1', port: ports.down }], dataDir: tempDir(), auth: { providers: provider() }, sites: [{ routes: [{ path: '/', proxy: { upstreams: [appOrigin] }, auth: true }] }] }, undefined, { clock })
      const browser = new Browser()
      const res = await browser.fetch(`${down.url}docs/page`)
      assert.equal(res.status, 502)
      assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8')
      assert.equal(res.headers.get('cache-control'), 'no-store')
      const html = await res.text()
      assert.match(html, /<title>Sign-in is unavailable/)
      assert.match(html, /could not be reached/)
      const apiRes = await api(browser, `${down.url}docs/page`)
      assert.equal(apiRes.status, 401)
      assert.equal(apiRes.headers.get('www-authenticate'), 'Bearer realm="127.0.0.1"')
      await idp.resume()
      // the failure is remembered for a few seconds: the provider is not asked again at once
      const again = await browser.fetch(`${down.url}docs/page`)
      assert.equal(again.status, 502)
      assert.match(await again.text(), /could not be reached a moment ago/)
      clock.advance(5_000)
      const landed = await browser.navigate(`${down.url}docs/page`, signInAs('alice'))
      assert.equal(landed.res.status, 200)
      assert.equal(landed.url, `${down.url}docs/page`)
    } finally {
      await idp.resume().catch(() => {})
      await down?.close()
    }
  })

  test('at the callback (the code cannot be exchanged): 502 page, no session; a session made before keeps working; after, a login works', async () => {
    const { browser: before } = await signedIn('alice')
    const browser = new Browser()
    const callback = await redirectsUntil(browser, `${box.url}docs/page`, atCallback, signInAs('bob'))
    await idp.pause()
    try {
      const res = await browser.fetch(callback)
      assert.equal(res.status, 502)
      assert.ok(!res.headers.getSetCookie().some((c) => c.startsWith('edgebox-session=')))
      assert.match(await res.text(), /<title>Sign-in is unavailable/)
      assert.equal(await whoStatus(browser), 401)
      // a session made before the provider went away needs nothing from it
      const page = await before.fetch(`${box.url}docs/page`)
      assert.equal(page.status, 200)
      assert.equal(((await page.json()) as Echo).headers['x-auth-request-user'], 'alice')
    } finally {
      await idp.resume()
    }
    const { landed } = await signedIn('bob', box.url, '/docs/after')
    assert.equal(landed.url, `${box.url}docs/after`)
  })

  test('at login after the provider was once reached: a navigation gets the 502 page, not a redirect to a dead provider', async () => {
    const clock = new ManualClock(Date.now())
    const down = await startServer({ listen: [{ host: '127.0.0.1', port: ports.down }], dataDir: tempDir(), auth: { providers: provider() }, sites: [{ routes: [{ path: '/', proxy: { upstreams: [appOrigin] }, auth: true }] }] }, undefined, { clock })
    try {
      await signedIn('alice', down.url)
      await idp.pause()
      // a provider that answered within the last second counts as up: past that, it is asked before a browser is sent
      clock.advance(1_000)
      const res = await new Browser().fetch(`${down.url}docs/page`)
      assert.equal(res.status, 502)
      assert.match(await res.text(), /<title>Sign-in is unavailable/)
    } finally {
      await idp.resume()
      await down.close()
    }
  })
})

describe('revoked sessions', () => {
  test('after sign-out, a copy of the old session cookie is refused everywhere', async () => {
    const { browser } = await signedIn('alice')
    const stolen = browser.cookies(box.url).get('edgebox-session')!
    assert.equal(await whoStatus(browser), 200)
    const out = await browser.fetch(`${box.url}_edgebox/auth/logout`, { method: 'POST', headers: { origin: box.url.slice(0, -1), 'sec-fetch-site': 'same-origin' } })
    assert.equal(out.status, 200)
    assert.equal(browser.cookies(box.url).get('edgebox-session'), undefined)
    const before = app.seen.length
    const cookie = `edgebox-session=${stolen}`
    const apiRes = await fetch(`${box.url}api/items`, { headers: { cookie, accept: 'application/json' } })
    assert.equal(apiRes.status, 401)
    assert.equal(apiRes.headers.get('www-authenticate'), 'Bearer realm="127.0.0.1"')
    const info = await fetch(`${box.url}_edgebox/auth/userinfo`, { headers: { cookie } })
    assert.equal(info.status, 401)
    // a navigation with it is sent to sign in again
    const nav = await new Browser().fetch(`${box.url}docs/page`, { headers: { cookie } })
    assert.equal(nav.status, 302)
    assert.ok(nav.headers.get('location')!.startsWith(`${idp.issuer}/auth?`))
    assert.equal(app.seen.length, before, 'nothing reached the upstream')
  })
})

describe('back-channel logout', () => {
  const endpoint = () => `${box.url}_edgebox/auth/backchannel-logout`
  const logoutClaims = (sub: string | undefined, jti: string): Record<string, unknown> => ({ iss: idp.issuer, aud: 'edgebox', iat: nowS(), jti, events: { [BCL_EVENT]: {} }, ...(sub ? { sub } : {}) })
  const post = (token: string) => fetch(endpoint(), { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ logout_token: token }).toString() })

  async function assertRefused(res: Response, why: string): Promise<void> {
    assert.equal(res.status, 400)
    assert.equal(res.headers.get('content-type'), 'application/json')
    assert.equal(res.headers.get('cache-control'), 'no-store')
    assert.equal(await res.text(), JSON.stringify({ error: 'invalid_request', error_description: why }) + '\n')
  }

  test("a logout token for a user ends that user's sessions (two browsers), not another's; the same token again is refused", async () => {
    const { browser: one } = await signedIn('carol')
    const { browser: two } = await signedIn('carol')
    const { browser: other } = await signedIn('erin')
    const token = await idp.sign(logoutClaims('carol', 'jti-carol-1'), { typ: 'logout+jwt' })
    const res = await post(token)
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('cache-control'), 'no-store')
    assert.equal(await res.text(), '')
    assert.equal(await whoStatus(one), 401)
    assert.equal(await whoStatus(two), 401)
    assert.equal(await whoStatus(other), 200)
    await assertRefused(await post(token), 'the logout token was already used')
  })

  test('logout tokens that must be refused: 400 invalid_request, and no session ends', async () => {
    const { browser } = await signedIn('frank')
    const { privateKey: otherKey } = await generateKeyPair('ES256')
    const cases: Array<[string, () => Promise<string>, string]> = [
      ['no events claim', async () => idp.sign({ ...logoutClaims('frank', 'jti-f1'), events: undefined }, { typ: 'logout+jwt' }), 'the logout token has no back-channel logout event'],
      ['another event only', async () => idp.sign({ ...logoutClaims('frank', 'jti-f2'), events: { 'https://example.com/other-event': {} } }, { typ: 'logout+jwt' }), 'the logout token has no back-channel logout event'],
      ['a nonce', async () => idp.sign({ ...logoutClaims('frank', 'jti-f3'), nonce: 'n' }, { typ: 'logout+jwt' }), 'a logout token has no nonce'],
      ['another audience', async () => idp.sign({ ...logoutClaims('frank', 'jti-f4'), aud: 'another-client' }, { typ: 'logout+jwt' }), 'the logout token does not verify: ERR_JWT_CLAIM_VALIDATION_FAILED'],
      ['an issuer not configured', async () => idp.sign({ ...logoutClaims('frank', 'jti-f5'), iss: 'https://evil.example' }, { typ: 'logout+jwt' }), 'the logout token is from an issuer that is not configured'],
      ['a signature by another key', async () => idp.sign(logoutClaims('frank', 'jti-f6'), { typ: 'logout+jwt', key: otherKey }), 'the logout token does not verify: ERR_JWS_SIGNATURE_VERIFICATION_FAILED'],
      ['an iat an hour old', async () => idp.sign({ ...logoutClaims('frank', 'jti-f7'), iat: nowS() - 3600 }, { typ: 'logout+jwt' }), 'the logout token was not issued just now'],
      ['neither sub nor sid', async () => idp.sign(logoutClaims(undefined, 'jti-f8'), { typ: 'logout+jwt' }), 'the logout token names neither sub nor sid'],
      ['no jti', async () => idp.sign({ ...logoutClaims('frank', 'x'), jti: undefined }, { typ: 'logout+jwt' }), 'the logout token has no jti'],
      ['alg none', async () => `eyJhbGciOiJub25lIn0.${Buffer.from(JSON.stringify(logoutClaims('frank', 'jti-f9'))).toString('base64url')}.`, 'the logout token does not verify: ERR_JOSE_ALG_NOT_ALLOWED'],
      ['not a JWT', async () => 'not-a-jwt', 'the logout token is not a JWT'],
    ]
    for (const [name, make, why] of cases) {
      await assertRefused(await post(await make()), why).catch((err: Error) => assert.fail(`${name}: ${err.message}`))
    }
    await assertRefused(await fetch(endpoint(), { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: '' }), 'no logout_token')
    assert.equal(await whoStatus(browser), 200, 'the session outlived every refused token')
  })

  test("signing out at the provider ends the user's Edgebox session in another browser (the provider's own logout token)", async () => {
    const { browser: one } = await signedIn('dave')
    const { browser: two } = await signedIn('dave')
    const { browser: other } = await signedIn('erin')
    const delivered: string[] = []
    const onOk = (_ctx: unknown, client: { clientId: string }, sub: string) => delivered.push(`ok ${client.clientId} ${sub}`)
    const onError = (_ctx: unknown, err: Error, client: { clientId: string }, sub: string) => delivered.push(`error ${client.clientId} ${sub}: ${err.message}`)
    idp.provider.on('backchannel.success', onOk)
    idp.provider.on('backchannel.error', onError)
    try {
      const out = await one.fetch(`${box.url}_edgebox/auth/logout`, { method: 'POST', headers: { origin: box.url.slice(0, -1), 'sec-fetch-site': 'same-origin' } })
      assert.equal(out.status, 200)
      const there = await continueUrl(out)
      assert.ok(there.startsWith(`${idp.issuer}/session/end?`))
      // the provider's confirm page, answered: it posts its logout token to Edgebox, then sends the browser back
      const done = await one.navigate(there, signInAs('dave'))
      assert.equal(done.url, `${box.url}_edgebox/auth/signed-out`)
      assert.equal(done.res.status, 200)
      assert.deepEqual(delivered, ['ok edgebox dave'], 'the provider delivered its logout token, and Edgebox answered 200')
    } finally {
      idp.provider.off('backchannel.success', onOk)
      idp.provider.off('backchannel.error', onError)
    }
    await waitFor("dave's other session ends", async () => (await whoStatus(two)) === 401, 2_000)
    assert.equal(await whoStatus(other), 200)
  })
})

describe('session times (a manual clock)', () => {
  let clock: ManualClock
  let cbox: TestServer
  before(async () => {
    clock = new ManualClock(Date.now())
    cbox = await startServer({ listen: [{ host: '127.0.0.1', port: ports.clock }], dataDir: tempDir(), auth: { providers: provider() }, sites: [{ routes: [{ path: '/', proxy: { upstreams: [appOrigin] }, auth: true }] }] }, undefined, { clock })
  })
  after(async () => {
    await cbox?.close()
  })

  const MINUTE = 60_000
  async function apiStatus(browser: Browser): Promise<number> {
    const res = await api(browser, `${cbox.url}api/items`)
    await res.arrayBuffer()
    if (res.status === 401) assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="127.0.0.1"')
    return res.status
  }

  test('a session unused for 30 minutes (the idle timeout) ends; one used a second before does not', async () => {
    const { browser: idle } = await signedIn('alice', cbox.url)
    const { browser: busy } = await signedIn('bob', cbox.url)
    clock.advance(30 * MINUTE - 1_000)
    assert.equal(await apiStatus(busy), 200)
    clock.advance(1_000)
    assert.equal(await apiStatus(idle), 401)
    assert.equal(await apiStatus(busy), 200)
    assert.equal(await whoStatus(idle, cbox.url), 401)
  })

  test('a session used every 20 minutes lives past 30 minutes, and ends at the 12-hour absolute timeout', async () => {
    const { browser } = await signedIn('alice', cbox.url)
    for (let t = 20; t <= 700; t += 20) {
      clock.advance(20 * MINUTE)
      assert.equal(await apiStatus(browser), 200, `${t} minutes after login`)
    }
    clock.advance(19 * MINUTE)
    assert.equal(await apiStatus(browser), 200, '11 h 59 min after login')
    clock.advance(MINUTE)
    assert.equal(await apiStatus(browser), 401, '12 h after login')
    assert.equal(await whoStatus(browser, cbox.url), 401)
  })
})

describe('secrets in logs', () => {
  test('no log line holds a session id, a token, a code, a state or the client secret; gated requests log auth and user', async () => {
    const dataDir = tempDir()
    const accessFile = path.join(dataDir, 'access.log')
    const appLines: string[] = []
    const lbox = await startEdgebox(
      {
        listen: [{ host: '127.0.0.1', port: ports.logs }],
        dataDir,
        log: { access: true, format: 'json', file: accessFile, level: 'debug' },
        auth: { providers: provider('edgebox-logs') },
        sites: [
          {
            routes: [
              { path: '/', proxy: { upstreams: [appOrigin] }, auth: true },
              { path: '/token/', proxy: { upstreams: [appOrigin] }, auth: { upstream: { accessToken: true } } },
              { path: '/admin/', proxy: { upstreams: [appOrigin] }, auth: { rules: [{ deny: { email: 'alice@example.com' } }, { allow: true }] } },
            ],
          },
        ],
      },
      { log: pino({ level: 'debug' }, { write: (line: string) => void appLines.push(line) }) },
    )
    const base = lbox.urls[0]!
    const secrets = new Map<string, string>([['the client secret', SECRET]])
    let closed = false
    try {
      // a login, with everything secret that passes through the browser noted
      const browser = new Browser()
      const callback = new URL(await redirectsUntil(browser, `${base}page`, atCallback, signInAs('alice')))
      const authorize = new URL(browser.hops.find((h) => h.location?.startsWith(`${idp.issuer}/auth?`))!.location!)
      secrets.set('the state', authorize.searchParams.get('state')!)
      secrets.set('the nonce', authorize.searchParams.get('nonce')!)
      secrets.set('the code', callback.searchParams.get('code')!)
      secrets.set('the login cookie', browser.cookies(base).get('edgebox-login')!)
      assert.equal((await browser.fetch(callback.href)).status, 302)
      secrets.set('the session id', browser.cookies(base).get('edgebox-session')!)
      // the same callback again: refused
      assert.equal((await browser.fetch(callback.href)).status, 400)
      // a failed login: a code presented with another login's state (PKCE refuses it)
      const swapper = new Browser()
      const a = new URL(await redirectsUntil(swapper, `${base}page`, atCallback, signInAs('alice')))
      const b = new URL(await redirectsUntil(swapper, `${base}page`, atCallback, signInAs('alice')))
      for (const [k, u] of [['a', a], ['b', b]] as const) {
        secrets.set(`the code of login ${k}`, u.searchParams.get('code')!)
        secrets.set(`the state of login ${k}`, u.searchParams.get('state')!)
      }
      b.searchParams.set('code', a.searchParams.get('code')!)
      assert.equal((await swapper.fetch(b.href)).status, 400)
      // a second session of alice (ended later by the provider's logout token), and one of bob
      const { browser: second } = await signedIn('alice', base)
      secrets.set("alice's second session id", second.cookies(base).get('edgebox-session')!)
      const { browser: bob } = await signedIn('bob', base)
      secrets.set("bob's session id", bob.cookies(base).get('edgebox-session')!)
      // API calls with the session; the access token as the upstream sees it
      assert.equal((await api(browser, `${base}api/x`)).status, 200)
      assert.equal((await api(browser, `${base}admin/x`)).status, 403)
      const echo = (await (await api(browser, `${base}token/x`)).json()) as Echo
      secrets.set('the access token', echo.headers['x-auth-request-access-token'] as string)
      // the tokens the session holds, read from the store
      const db = new DatabaseSync(path.join(dataDir, 'auth', 'sessions.sqlite'), { readOnly: true })
      const rows = db.prepare('SELECT id_token, access_token, refresh_token FROM sessions').all() as Array<{ id_token: string; access_token: string | null; refresh_token: string | null }>
      db.close()
      assert.equal(rows.length, 3)
      rows.forEach((r, i) => {
        secrets.set(`ID token ${i}`, r.id_token)
        secrets.set(`access token ${i}`, r.access_token!)
        secrets.set(`refresh token ${i}`, r.refresh_token!)
      })
      // bearer tokens: one refused, one accepted (introspected)
      const forged = await idp.sign({ iss: idp.issuer, aud: 'edgebox-logs', sub: 'alice', iat: nowS(), exp: nowS() + 300 }, { key: (await generateKeyPair('ES256')).privateKey })
      secrets.set('a forged bearer token', forged)
      assert.equal((await fetch(`${base}api/forged`, { headers: { authorization: `Bearer ${forged}` } })).status, 401)
      assert.equal((await fetch(`${base}api/bearer`, { headers: { authorization: `Bearer ${secrets.get('the access token')}` } })).status, 200)
      // sign-out, through the provider, whose logout token ends alice's second session
      const out = await browser.fetch(`${base}_edgebox/auth/logout`, { method: 'POST', headers: { origin: base.slice(0, -1), 'sec-fetch-site': 'same-origin' } })
      assert.equal(out.status, 200)
      const there = await continueUrl(out)
      secrets.set('the id_token_hint', new URL(there).searchParams.get('id_token_hint')!)
      assert.equal((await browser.navigate(there, signInAs('alice'))).url, `${base}_edgebox/auth/signed-out`)
      await waitFor("alice's second session ends", async () => (await whoStatus(second, base)) === 401, 2_000)
      // back-channel logout tokens by hand: one for bob, one with a bad signature
      const bcl = { iss: idp.issuer, aud: 'edgebox-logs', iat: nowS(), events: { [BCL_EVENT]: {} }, sub: 'bob' }
      const good = await idp.sign({ ...bcl, jti: 'logs-1' }, { typ: 'logout+jwt' })
      const bad = await idp.sign({ ...bcl, jti: 'logs-2' }, { typ: 'logout+jwt', key: (await generateKeyPair('ES256')).privateKey })
      secrets.set('a logout token', good)
      secrets.set('a forged logout token', bad)
      const form = (t: string) => ({ method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ logout_token: t }).toString() })
      assert.equal((await fetch(`${base}_edgebox/auth/backchannel-logout`, form(good))).status, 200)
      assert.equal((await fetch(`${base}_edgebox/auth/backchannel-logout`, form(bad))).status, 400)
      assert.equal(await whoStatus(bob, base), 401)
      await lbox.close()
      closed = true
    } finally {
      if (!closed) await lbox.close()
    }

    const access = readFileSync(accessFile, 'utf8').split('\n').slice(0, -1)
    assert.ok(access.length >= 20, `${access.length} access lines`)
    assert.ok(appLines.length > 0, 'the application logger wrote')
    for (const secret of secrets.values()) assert.ok(secret.length >= 16, 'every secret is long enough not to turn up by chance')
    for (const [what, secret] of secrets) {
      for (const line of access) assert.ok(!line.includes(secret), `${what} in the access log: ${line}`)
      for (const line of appLines) assert.ok(!line.includes(secret), `${what} in the application log: ${line}`)
    }

    // the auth decision and the user, on the lines of gated requests and sign-on endpoints
    const lines = access.map((l) => JSON.parse(l) as { method: string; path: string; status: number; auth?: string; user?: string })
    const first = (method: string, p: string, status?: number) => {
      const l = lines.find((x) => x.method === method && x.path === p && (status === undefined || x.status === status))
      assert.ok(l, `a line for ${method} ${p} ${status ?? ''}`)
      return { status: l.status, auth: l.auth, user: l.user }
    }
    assert.deepEqual(first('GET', '/page'), { status: 302, auth: 'login test', user: undefined })
    assert.deepEqual(first('GET', '/_edgebox/auth/callback', 302), { status: 302, auth: 'login test', user: 'alice' })
    assert.deepEqual(first('GET', '/_edgebox/auth/callback', 400), { status: 400, auth: 'callback: unknown state', user: undefined })
    assert.deepEqual(first('GET', '/api/x'), { status: 200, auth: 'allow', user: 'alice' })
    assert.deepEqual(first('GET', '/admin/x'), { status: 403, auth: 'deny rule 0', user: 'alice' })
    assert.deepEqual(first('GET', '/token/x'), { status: 200, auth: 'allow', user: 'alice' })
    assert.deepEqual(first('GET', '/api/forged'), { status: 401, auth: 'refused', user: undefined })
    assert.deepEqual(first('GET', '/api/bearer'), { status: 200, auth: 'allow bearer', user: 'alice' })
    assert.deepEqual(first('POST', '/_edgebox/auth/logout'), { status: 200, auth: 'logout', user: 'alice' })
    const bclLines = lines.filter((l) => l.path === '/_edgebox/auth/backchannel-logout').map((l) => `${l.status} ${l.auth}`)
    assert.deepEqual(bclLines, ['200 backchannel logout: 1 session', '200 backchannel logout: 1 session', '400 backchannel refused: the logout token does not verify: ERR_JWS_SIGNATURE_VERIFICATION_FAILED'])
    const messages = appLines.map((l) => (JSON.parse(l) as { msg: string }).msg)
    assert.ok(messages.includes('a login failed'), messages.join(', '))
    assert.ok(messages.includes('sessions ended by the provider'), messages.join(', '))
  })
})
