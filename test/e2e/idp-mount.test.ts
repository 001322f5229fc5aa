import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { UserStore } from '../../src/auth/users.ts'
import { ConfigError } from '../../src/core/errors.ts'
import { Browser } from '../helpers/oidc.ts'
import { freePort } from '../helpers/pebble.ts'
import { PROTOCOLS, request, startServer, type TestServer } from '../helpers/server.ts'

/**
 * The built-in provider under a path (`{ path: '/id/', idp: { issuer:
 * 'https://example.com/id' } }`) beside other routes of the same site, and
 * the configuration problems found when it starts.
 */

const PASSWORD = 'alice has a long password'
const SECRET = 'the tool client secret, long enough'
let dataDir: string
let server: TestServer
let issuer: string
let origin: string

before(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'edgebox-idp-mount-'))
  const users = await UserStore.open(dataDir)
  await users.add({ username: 'alice', password: PASSWORD })
  users.close()
  const port = await freePort()
  origin = `http://127.0.0.1:${port}`
  issuer = `${origin}/id`
  server = await startServer({
    listen: [{ host: '127.0.0.1', port }],
    dataDir,
    sites: [
      {
        routes: [
          { path: '/id/', idp: { issuer, clients: [{ clientId: 'tool', clientSecret: SECRET, redirectUris: ['http://127.0.0.1:9/cb'] }] } },
          { path: '/', redirect: { to: '/elsewhere' } },
        ],
      },
    ],
  })
})

after(async () => {
  await server?.close()
  rmSync(dataDir, { recursive: true, force: true })
})

for (const p of PROTOCOLS) {
  test(`the discovery document under the issuer's path (${p})`, async () => {
    const r = await request(p, `${issuer}/.well-known/openid-configuration`)
    assert.equal(r.status, 200)
    const m = JSON.parse(r.text) as Record<string, string>
    assert.equal(m.issuer, issuer)
    assert.equal(m.authorization_endpoint, `${issuer}/auth`)
    assert.equal(m.token_endpoint, `${issuer}/token`)
    assert.equal(m.jwks_uri, `${issuer}/jwks`)
  })
}

test('a sign-in under the path: the pages and redirects stay under it, and the code is good', async () => {
  const b = new Browser()
  const verifier = randomBytes(32).toString('base64url')
  const q = new URLSearchParams({ client_id: 'tool', response_type: 'code', redirect_uri: 'http://127.0.0.1:9/cb', scope: 'openid', code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256' })
  const auth = await b.fetch(`${issuer}/auth?${q}`)
  assert.equal(auth.status, 303)
  const interaction = new URL(auth.headers.get('location')!, origin)
  assert.match(interaction.pathname, /^\/id\/interaction\/[A-Za-z0-9_-]+$/)
  const html = await (await b.fetch(interaction.href)).text()
  const action = /<form method="post" action="([^"]+\/login)"/.exec(html)![1]!
  assert.ok(action.startsWith('/id/interaction/'))
  // the cookies are scoped under the path too
  let res = await b.fetch(new URL(action, origin).href, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', origin }, body: new URLSearchParams({ username: 'alice', password: PASSWORD }).toString() })
  let location = new URL(res.headers.get('location')!, origin)
  while (location.origin === origin) {
    assert.ok(location.pathname.startsWith('/id/'), location.href)
    res = await b.fetch(location.href)
    location = new URL(res.headers.get('location')!, location)
  }
  const code = location.searchParams.get('code')!
  const t = await request('http/1.1', `${issuer}/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`tool:${encodeURIComponent(SECRET)}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: 'http://127.0.0.1:9/cb', code_verifier: verifier }).toString(),
  })
  assert.equal(t.status, 200, t.text)
  assert.ok((JSON.parse(t.text) as { id_token?: string }).id_token)
})

test("the site's other routes are not the provider's", async () => {
  const r = await request('http/1.1', `${origin}/.well-known/openid-configuration`)
  assert.equal(r.status, 302)
})

test("an issuer whose path is not the route's is refused at start, naming the option", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'edgebox-idp-mount-bad-'))
  try {
    await assert.rejects(
      startServer({ dataDir: dir, sites: [{ routes: [{ path: '/', idp: { issuer: 'http://127.0.0.1:1/id', clients: [{ clientId: 'tool', redirectUris: ['http://127.0.0.1:9/cb'] }] } }] }] }),
      (err: Error) => err instanceof ConfigError && /sites\[0\]\.routes\[0\]\.idp\.issuer: the issuer's path \(\/id\) is the route's path/.test(err.message),
    )
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
