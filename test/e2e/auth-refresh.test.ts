import assert from 'node:assert/strict'
import http from 'node:http'
import { mkdtempSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { DatabaseSync } from 'node:sqlite'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { ManualClock } from '../helpers/clock.ts'
import { freePort } from '../helpers/pebble.ts'
import { Browser, signInAs, startTestProvider, type TestProvider } from '../helpers/oidc.ts'
import { startServer, type TestServer } from '../helpers/server.ts'

/**
 * Token refresh (OpenID Connect Core §12): a session whose access token ends
 * within `refreshBefore` is refreshed in the background, one refresh at a
 * time; a request that carries the access token upstream waits when the token
 * has already expired; a refresh the provider refuses ends the session.
 */

let idp: TestProvider
let box: TestServer
let app: http.Server
let dir: string
const clock = new ManualClock(Date.now())

before(async () => {
  app = http.createServer((req, res) => res.end(JSON.stringify({ token: req.headers['x-auth-request-access-token'] ?? null })))
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve))
  const port = await freePort()
  idp = await startTestProvider({
    accessTokenTtl: 300,
    accounts: { alice: { email: 'alice@example.com' } },
    clients: [{ client_id: 'edgebox', client_secret: 'a client secret for the tests', redirect_uris: [`http://127.0.0.1:${port}/_edgebox/auth/callback`] }],
  })
  dir = mkdtempSync(path.join(tmpdir(), 'edgebox-refresh-'))
  box = await startServer(
    {
      listen: [{ host: '127.0.0.1', port }],
      dataDir: dir,
      auth: { providers: { test: { issuer: idp.issuer, clientId: 'edgebox', clientSecret: 'a client secret for the tests', scopes: ['openid', 'email', 'offline_access'] } }, sessions: { idleTimeout: '2h' } },
      sites: [{ routes: [{ path: '/', proxy: { upstreams: [`http://127.0.0.1:${(app.address() as AddressInfo).port}`] }, auth: { upstream: { accessToken: true } } }] }],
    },
    undefined,
    { clock },
  )
})

after(async () => {
  await box?.close()
  await idp?.close()
  app?.close()
  rmSync(dir, { recursive: true, force: true })
})

const tokenOf = async (browser: Browser) => ((await (await browser.fetch(`${box.url}x`)).json()) as { token: string | null }).token

/** Waits (bounded) until the provider's token endpoint has answered `n` times. */
async function tokenCalls(n: number): Promise<void> {
  for (let i = 0; i < 200 && (idp.hits.get('/token') ?? 0) < n; i++) await new Promise((r) => setTimeout(r, 10))
  assert.equal(idp.hits.get('/token'), n)
}

test('tokens due within refreshBefore are refreshed in the background; an expired one is waited for', async () => {
  const browser = new Browser()
  await browser.navigate(`${box.url}x`, signInAs('alice'))
  const calls = idp.hits.get('/token') ?? 0
  const first = await tokenOf(browser)
  assert.ok(first)
  // 4 minutes on: more than a minute left, nothing happens
  clock.advance(4 * 60_000 - 1_000)
  assert.equal(await tokenOf(browser), first)
  assert.equal(idp.hits.get('/token') ?? 0, calls)
  // within the last minute: this request goes on with the current token, and one refresh starts behind it
  clock.advance(2_000)
  const during = await Promise.all([tokenOf(browser), tokenOf(browser), tokenOf(browser)])
  assert.deepEqual(during, [first, first, first])
  await tokenCalls(calls + 1)
  const second = await tokenOf(browser)
  assert.notEqual(second, first)
  // past the new token's end: the request waits for a refresh, and carries the fresh token
  clock.advance(6 * 60_000)
  const third = await tokenOf(browser)
  assert.notEqual(third, second)
  assert.equal(idp.hits.get('/token'), calls + 2)
})

test('a refresh the provider refuses ends the session', async () => {
  const browser = new Browser()
  await browser.navigate(`${box.url}x`, signInAs('alice'))
  // revoke the session's refresh token at the provider (RFC 7009), as an administrator ending the user's access would
  const db = new DatabaseSync(path.join(dir, 'auth', 'sessions.sqlite'))
  const rows = db.prepare('SELECT refresh_token FROM sessions WHERE refresh_token IS NOT NULL').all() as Array<{ refresh_token: string }>
  db.close()
  for (const { refresh_token } of rows) {
    const res = await fetch(`${idp.issuer}/token/revocation`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from('edgebox:a client secret for the tests').toString('base64')}` },
      body: new URLSearchParams({ token: refresh_token, token_type_hint: 'refresh_token' }),
    })
    assert.equal(res.status, 200)
  }
  // past the access token's end: the refresh is refused (invalid_grant), the session ends, the request is not let in
  clock.advance(10 * 60_000)
  const res = await browser.fetch(`${box.url}x`, { headers: { accept: 'application/json', 'sec-fetch-mode': 'cors' } })
  assert.equal(res.status, 401)
  assert.equal((await browser.fetch(`${box.url}_edgebox/auth/userinfo`)).status, 401)
})

test('a refresh token is not a bearer token (RFC 6749 §1.5): refused, though the provider introspects it as active', async () => {
  const browser = new Browser()
  await browser.navigate(`${box.url}x`, signInAs('alice'))
  const db = new DatabaseSync(path.join(dir, 'auth', 'sessions.sqlite'))
  const { refresh_token } = db.prepare('SELECT refresh_token FROM sessions WHERE refresh_token IS NOT NULL ORDER BY created_at DESC LIMIT 1').get() as { refresh_token: string }
  db.close()
  const res = await fetch(`${box.url}x`, { headers: { authorization: `Bearer ${refresh_token}` } })
  assert.equal(res.status, 401)
  assert.match(res.headers.get('www-authenticate')!, /error="invalid_token", error_description="the token is not an access token"/)
})
