import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { pino } from 'pino'
import { UserStore } from '../../src/auth/users.ts'
import { validateConfig } from '../../src/config/load.ts'
import { startEdgebox, type Edgebox } from '../../src/server/app.ts'
import { Browser } from '../helpers/oidc.ts'
import { freePort } from '../helpers/pebble.ts'

/**
 * The admin listener behind the single sign-on gate (`admin.auth`), with
 * Edgebox's own identity provider (an `idp` site on id.localhost) on real
 * sockets: a browser without a session is sent to sign in, even from this
 * machine, and comes back to the admin listener's own callback; a signed-in
 * user the rules allow uses the API, one they refuse gets 403; a POST with
 * a session needs the admin listener's Origin; the token still opens it;
 * signing out ends the session. After every refusal the next request is
 * served.
 */

const TOKEN = 'c'.repeat(48)
const SECRET = 'the admin client secret, long enough for the provider'
const PASSWORDS = { alice: 'alice keeps the servers running', bob: 'bob only writes the docs' } as const

let box: Edgebox
let data: string
let admin: string
let issuer: string

before(async () => {
  data = mkdtempSync(path.join(tmpdir(), 'edgebox-admin-sso-'))
  const dashboard = path.join(data, 'dashboard')
  mkdirSync(dashboard)
  writeFileSync(path.join(dashboard, 'index.html'), '<!doctype html><title>Edgebox admin</title><p>the dashboard</p>\n')
  const users = await UserStore.open(data)
  await users.add({ username: 'alice', password: PASSWORDS.alice, email: 'alice@example.com', groups: ['ops'] })
  await users.add({ username: 'bob', password: PASSWORDS.bob, email: 'bob@example.com' })
  users.close()
  const port = await freePort()
  const adminPort = await freePort()
  issuer = `http://id.localhost:${port}`
  admin = `http://127.0.0.1:${adminPort}`
  box = await startEdgebox(
    {
      listen: [{ host: '127.0.0.1', port }],
      dataDir: data,
      log: { access: false, level: 'silent' },
      auth: { providers: { local: { issuer, clientId: 'edgebox-admin', clientSecret: SECRET, scopes: ['openid', 'email', 'profile', 'groups'] } } },
      admin: { port: adminPort, token: TOKEN, auth: { rules: [{ allow: { group: 'ops' } }] } },
      sites: [
        {
          hosts: ['id.localhost'],
          routes: [
            {
              path: '/',
              idp: {
                issuer,
                secondFactor: 'off',
                clients: [
                  {
                    clientId: 'edgebox-admin',
                    clientSecret: SECRET,
                    // the admin listener's own origin: its callback and where a sign-out ends
                    redirectUris: [`${admin}/_edgebox/auth/callback`],
                    postLogoutRedirectUris: [`${admin}/_edgebox/auth/signed-out`],
                  },
                ],
              },
            },
          ],
        },
      ],
    },
    { log: pino({ level: 'silent' }), dashboardDir: dashboard },
  )
})

after(async () => {
  await box?.close()
  if (data) rmSync(data, { recursive: true, force: true })
})

/** What a user does on the provider's sign-in page: their password. */
function signInAs(name: keyof typeof PASSWORDS) {
  return async (res: Response, url: string): Promise<{ url: string; body: string } | null> => {
    if (!(res.headers.get('content-type') ?? '').includes('html')) return null
    const action = /<form method="post" action="([^"]+)" class="stack">/.exec(await res.clone().text())?.[1]
    if (!action?.endsWith('/login')) return null
    return { url: new URL(action, url).href, body: new URLSearchParams({ username: name, password: PASSWORDS[name] }).toString() }
  }
}

/** A browser signed in on the admin listener as `name`, landed on the dashboard. */
async function signedIn(name: keyof typeof PASSWORDS): Promise<{ browser: Browser; landed: { res: Response; url: string; text: string } }> {
  const browser = new Browser()
  const landed = await browser.navigate(`${admin}/`, signInAs(name))
  return { browser, landed }
}

/** A script's request (not a navigation): what the dashboard's fetch sends. */
const API = { accept: 'application/json', 'sec-fetch-mode': 'cors' }

/** A request without the Browser's defaults (no Sec-Fetch-Mode, no Accept). */
function plain(method: string, p: string, headers: Record<string, string> = {}, body?: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${admin}${p}`, { method, headers, agent: false }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (text += c))
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

test('from this machine without a session: a navigation is sent to sign in at the provider, with the admin listener as the redirect URI; a script gets 401 JSON', async () => {
  const browser = new Browser()
  const nav = await browser.fetch(`${admin}/`)
  assert.equal(nav.status, 302)
  assert.equal(nav.headers.get('cache-control'), 'no-store')
  const to = new URL(nav.headers.get('location')!)
  assert.equal(`${to.origin}${to.pathname}`, `${issuer}/auth`)
  assert.equal(to.searchParams.get('redirect_uri'), `${admin}/_edgebox/auth/callback`)
  assert.equal(to.searchParams.get('client_id'), 'edgebox-admin')
  const api = await browser.fetch(`${admin}/api/v1/config`, { headers: API })
  assert.equal(api.status, 401)
  assert.equal(api.headers.get('content-type'), 'application/json; charset=utf-8')
  assert.equal(api.headers.get('www-authenticate'), 'Bearer realm="127.0.0.1"')
  assert.deepEqual(await api.json(), { error: 'sign in first (a session cookie or a bearer token)' })
  // the loopback rules no longer let a request in: curl from this machine, with a local Host, is 401 too
  const curl = await plain('GET', '/metrics')
  assert.equal(curl.status, 401)
  // a provider's bearer token that is no token of theirs: refused by the gate, not taken for the admin token
  const forged = await plain('GET', '/api/v1/config', { authorization: 'Bearer not-a-token-of-anyone' })
  assert.equal(forged.status, 401)
  assert.match(String(forged.headers['www-authenticate']), /error="invalid_token"/)
  assert.match(JSON.parse(forged.text).error, /^the bearer token was refused/)
})

test('signed in as a user the rules allow: back on the dashboard, and the API answers', async () => {
  const { browser, landed } = await signedIn('alice')
  assert.equal(landed.url, `${admin}/`)
  assert.equal(landed.res.status, 200)
  assert.match(landed.text, /the dashboard/)
  // the login went to the provider and came back to the admin listener's own callback
  assert.ok(browser.hops.some((h) => h.url.startsWith(`${issuer}/`)))
  assert.ok(browser.hops.some((h) => h.url.startsWith(`${admin}/_edgebox/auth/callback?`) && h.status === 302))
  const config = await browser.fetch(`${admin}/api/v1/config`, { headers: API })
  assert.equal(config.status, 200)
  const body = (await config.json()) as { config: { admin: { auth: unknown; token: string } } }
  assert.deepEqual(body.config.admin.auth, { rules: [{ allow: { group: 'ops' } }], skip: [], required: true, bearer: true, upstream: { assertion: true, headers: true, accessToken: false } })
  const metrics = await browser.fetch(`${admin}/metrics`, { headers: API })
  assert.equal(metrics.status, 200)
  // who the session is, on the admin listener's sign-on endpoints
  const who = await browser.fetch(`${admin}/_edgebox/auth/userinfo`, { headers: API })
  assert.equal(who.status, 200)
  assert.equal(((await who.json()) as { email: string }).email, 'alice@example.com')
})

test('signed in as a user the rules refuse: 403, for the dashboard and the API; the next request is served', async () => {
  const { browser, landed } = await signedIn('bob')
  assert.equal(landed.url, `${admin}/`)
  assert.equal(landed.res.status, 403)
  assert.match(landed.text, /You are signed in as <strong>bob@example\.com<\/strong>/)
  // the sign-on page's inline style is allowed by its nonce, and nothing else is
  const csp = landed.res.headers.get('content-security-policy')!
  assert.match(csp, /^default-src 'self'; script-src 'self'; style-src 'self' 'nonce-[A-Za-z0-9+/=]+'; /)
  assert.equal(landed.res.headers.get('x-frame-options'), 'DENY')
  const api = await browser.fetch(`${admin}/api/v1/config`, { headers: API })
  assert.equal(api.status, 403)
  const post = await browser.fetch(`${admin}/api/v1/reload`, { method: 'POST', headers: { ...API, origin: admin } })
  assert.equal(post.status, 403)
  const { browser: alice } = await signedIn('alice')
  assert.equal((await alice.fetch(`${admin}/api/v1/config`, { headers: API })).status, 200)
})

test('a POST with a session needs the admin listener Origin (CSRF): 403 without it or from another origin, 200 with it', async () => {
  const { browser } = await signedIn('alice')
  const cases: Array<[string, Record<string, string>]> = [
    ['no Origin', {}],
    ['another site', { origin: 'https://attacker.example' }],
    ['another port of this host', { origin: 'http://127.0.0.1:1' }],
    ['localhost for 127.0.0.1', { origin: admin.replace('127.0.0.1', 'localhost') }],
  ]
  for (const [what, headers] of cases) {
    const res = await browser.fetch(`${admin}/api/v1/reload`, { method: 'POST', headers: { ...API, ...headers } })
    assert.equal(res.status, 403, what)
    assert.equal(res.headers.get('content-type'), 'application/json; charset=utf-8', what)
    assert.match(((await res.json()) as { error: string }).error, /^a POST with a session needs Origin: http:\/\/127\.0\.0\.1:\d+ /, what)
    // the next request is served
    assert.equal((await browser.fetch(`${admin}/api/v1/config`, { headers: API })).status, 200, what)
  }
  const ok = await browser.fetch(`${admin}/api/v1/reload`, { method: 'POST', headers: { ...API, origin: admin } })
  assert.equal(ok.status, 200)
  assert.equal(((await ok.json()) as { ok: boolean }).ok, true)
  // the reloaded configuration's gate takes over, and the session goes on
  assert.equal((await browser.fetch(`${admin}/api/v1/config`, { headers: API })).status, 200)
  assert.equal((await new Browser().fetch(`${admin}/api/v1/config`, { headers: API })).status, 401)
})

test('the token still opens it, with no session, no Origin and any Host; a wrong token goes to the gate and is refused', async () => {
  const auth = { authorization: `Bearer ${TOKEN}` }
  assert.equal((await plain('GET', '/api/v1/config', auth)).status, 200)
  assert.equal((await plain('GET', '/metrics', { ...auth, host: 'admin.example.com' })).status, 200)
  const post = await plain('POST', '/api/v1/reload', auth)
  assert.equal(post.status, 200)
  const wrong = await plain('GET', '/api/v1/config', { authorization: `Bearer ${TOKEN.slice(1)}x` })
  assert.equal(wrong.status, 401)
  assert.equal((await plain('GET', '/api/v1/config', auth)).status, 200)
})

test('signing out on the admin listener ends the session: the API is 401 again', async () => {
  const { browser } = await signedIn('alice')
  const noOrigin = await browser.fetch(`${admin}/_edgebox/auth/logout`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: '' })
  assert.equal(noOrigin.status, 403)
  const out = await browser.fetch(`${admin}/_edgebox/auth/logout`, { method: 'POST', headers: { origin: admin, 'content-type': 'application/x-www-form-urlencoded' }, body: '' })
  assert.equal(out.status, 200)
  assert.match(await out.text(), /Now signing out at the identity provider/)
  const api = await browser.fetch(`${admin}/api/v1/config`, { headers: API })
  assert.equal(api.status, 401)
})

test('the option: a non-loopback bind with auth and the top-level auth is accepted; without them it is refused, naming the path', async () => {
  const site = { routes: [{ path: '/', static: { root: '.' } }] }
  const providers = { providers: { local: { issuer: 'https://id.example.com', clientId: 'admin' } } }
  assert.equal(validateConfig({ sites: [site], auth: providers, admin: { host: '0.0.0.0', auth: true } }).admin?.auth, true)
  const refused = (input: unknown, message: string) =>
    assert.throws(
      () => validateConfig(input as never),
      (err: Error & { issues?: string[] }) => {
        assert.deepEqual(err.issues, [message])
        return true
      },
    )
  refused({ sites: [site], admin: { host: '0.0.0.0' } }, 'admin.host: 0.0.0.0 is not a loopback address: an admin listener reachable from other machines needs admin.token or admin.auth (single sign-on)')
  refused({ sites: [site], admin: { host: '0.0.0.0', auth: true } }, 'admin.auth: a sign-on gate needs the top-level auth.providers (docs/sso.md)')
  refused({ sites: [site], auth: providers, admin: { auth: { providers: ['other'] } } }, 'admin.auth.providers[0]: there is no provider "other" in auth.providers (local)')
  refused({ sites: [site], auth: providers, admin: { auth: { required: false } } }, 'admin.auth.required: the admin listener lets nobody in anonymously: remove required: false (use admin.token for a client that cannot sign in)')
  refused({ sites: [site], auth: providers, admin: { auth: { skip: [{ path: '/metrics' }] } } }, 'admin.auth.skip: the admin listener has no paths open without a login: remove skip (Prometheus scrapes /metrics with admin.token)')
  // auth: false is no gate: a non-loopback bind still needs the token
  refused({ sites: [site], auth: providers, admin: { host: '0.0.0.0', auth: false } }, 'admin.host: 0.0.0.0 is not a loopback address: an admin listener reachable from other machines needs admin.token or admin.auth (single sign-on)')
  // the running Edgebox serves on after a refused start of another
  assert.equal((await plain('GET', '/api/v1/config', { authorization: `Bearer ${TOKEN}` })).status, 200)
})
