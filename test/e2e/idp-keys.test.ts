import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose'
import { UserStore } from '../../src/auth/users.ts'
import { ManualClock } from '../helpers/clock.ts'
import { Browser } from '../helpers/oidc.ts'
import { freePort } from '../helpers/pebble.ts'
import { PROTOCOLS, request, startServer, type TestServer } from '../helpers/server.ts'

/**
 * The built-in provider's keys and state across time and restarts
 * (docs/idp.md, "Keys and rotation", "Storage"): keys made on the first
 * start in a private file; a restart keeps the keys, the sign-in session and
 * refresh tokens; after `keyRotation` (a manual clock) a new key signs while
 * the old one stays in the JWKS, and is dropped once what it signed has
 * expired.
 */

const PASSWORD = 'alice has a long password'
const SECRET = 'the tool client secret, long enough'
const DAY = 24 * 3_600_000

let dataDir: string
let port: number
let issuer: string
let server: TestServer | undefined
const clock = new ManualClock()

const config = () => ({
  listen: [{ host: '127.0.0.1', port }],
  dataDir,
  sites: [{ routes: [{ path: '/', idp: { issuer, keyRotation: '1d', clients: [{ clientId: 'tool', clientSecret: SECRET, redirectUris: ['http://127.0.0.1:9/cb'] }] } }] }],
})

before(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'edgebox-idp-keys-'))
  const users = await UserStore.open(dataDir)
  await users.add({ username: 'alice', password: PASSWORD })
  users.close()
  port = await freePort()
  issuer = `http://127.0.0.1:${port}`
  server = await startServer(config(), undefined, { clock })
})

after(async () => {
  await server?.close()
  rmSync(dataDir, { recursive: true, force: true })
})

const basic = `Basic ${Buffer.from(`tool:${encodeURIComponent(SECRET)}`).toString('base64')}`

async function jwks(): Promise<JSONWebKeySet> {
  return JSON.parse((await request('http/1.1', `${issuer}/jwks`)).text) as JSONWebKeySet
}

async function token(form: Record<string, string>): Promise<Record<string, string>> {
  const r = await request('http/1.1', `${issuer}/token`, { method: 'POST', headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form).toString() })
  return JSON.parse(r.text) as Record<string, string>
}

/** A code flow in `b`: signs in with the password when the provider asks (`asked` says whether it did); returns the tokens. */
async function signIn(b: Browser): Promise<{ tokens: Record<string, string>; asked: boolean }> {
  const verifier = randomBytes(32).toString('base64url')
  const q = new URLSearchParams({ client_id: 'tool', response_type: 'code', redirect_uri: 'http://127.0.0.1:9/cb', scope: 'openid', code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256' })
  let url = `${issuer}/auth?${q}`
  let asked = false
  let init: { method?: string; headers?: Record<string, string>; body?: string } = {}
  for (let i = 0; i < 10; i++) {
    const r = await b.fetch(url, init)
    init = {}
    const location = r.headers.get('location')
    if (location) {
      await r.arrayBuffer()
      const next = new URL(location, url)
      if (next.origin === 'http://127.0.0.1:9') return { tokens: await token({ grant_type: 'authorization_code', code: next.searchParams.get('code')!, redirect_uri: 'http://127.0.0.1:9/cb', code_verifier: verifier }), asked }
      url = next.href
      continue
    }
    const action = /<form method="post" action="([^"]+\/login)"/.exec(await r.text())?.[1]
    assert.ok(action, `a login form at ${url}`)
    asked = true
    url = new URL(action, url).href
    init = { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: issuer }, body: new URLSearchParams({ username: 'alice', password: PASSWORD }).toString() }
  }
  throw new Error('too many redirects')
}

const kids = (set: JSONWebKeySet) => set.keys.map((k) => k.kid!).toSorted()

describe('keys and state', () => {
  let firstKids: string[]
  let browser: Browser
  let refreshToken: string

  test('the first start makes the keys, in private files written whole', async () => {
    const set = await jwks()
    firstKids = kids(set)
    assert.equal(firstKids.length, 2)
    const auth = path.join(dataDir, 'auth')
    assert.equal(statSync(auth).mode & 0o777, 0o700)
    assert.equal(statSync(path.join(auth, 'idp-keys.json')).mode & 0o777, 0o600)
    assert.equal(statSync(path.join(auth, 'idp.sqlite')).mode & 0o777, 0o600)
    assert.deepEqual(readdirSync(auth).filter((f) => f.endsWith('.tmp')), [])
    const file = JSON.parse(readFileSync(path.join(auth, 'idp-keys.json'), 'utf8')) as { generations: Array<{ signing: Array<{ kid: string }> }> }
    assert.equal(file.generations.length, 1)
    assert.deepEqual(file.generations[0]!.signing.map((k) => k.kid).toSorted(), firstKids)
  })

  test('a restart keeps the keys, the sign-in session and the refresh tokens', async () => {
    browser = new Browser()
    const first = await signIn(browser)
    assert.ok(first.asked)
    refreshToken = first.tokens.refresh_token!
    await server!.close()
    server = await startServer(config(), undefined, { clock })
    assert.deepEqual(kids(await jwks()), firstKids)
    // the session survived: no password asked
    const again = await signIn(browser)
    assert.equal(again.asked, false)
    assert.ok(again.tokens.id_token)
    const refreshed = await token({ grant_type: 'refresh_token', refresh_token: refreshToken })
    assert.ok(refreshed.access_token, JSON.stringify(refreshed))
  })

  for (const p of PROTOCOLS) {
    test(`the JWKS over ${p}`, async () => {
      const r = await request(p, `${issuer}/jwks`)
      assert.equal(r.status, 200)
      assert.deepEqual(kids(JSON.parse(r.text) as JSONWebKeySet), firstKids)
    })
  }

  test('after keyRotation a new key signs, the old one stays published; once what it signed has expired it is dropped', async () => {
    const before = await signIn(new Browser())
    const oldKid = decodeProtectedHeader(before.tokens.id_token!).kid!
    assert.ok(firstKids.includes(oldKid))

    clock.advance(DAY + 60_000)
    const during = await jwks()
    assert.equal(during.keys.length, 4)
    for (const k of firstKids) assert.ok(kids(during).includes(k), 'the old keys are still published')
    const after = await signIn(new Browser())
    const newKid = decodeProtectedHeader(after.tokens.id_token!).kid!
    assert.ok(!firstKids.includes(newKid), 'a new key signs')
    assert.ok(kids(during).includes(newKid))
    // a token the old key signed still verifies with the published set
    await jwtVerify(before.tokens.id_token!, createLocalJWKSet(during), { issuer, audience: 'tool' })

    // the longest lifetime (the 12 h session and refresh tokens) after the rotation: the old keys are gone
    clock.advance(12 * 3_600_000 + 60_000)
    const later = await jwks()
    assert.equal(later.keys.length, 2)
    assert.ok(kids(later).includes(newKid))
    for (const k of firstKids) assert.ok(!kids(later).includes(k), 'the old keys are dropped')
    const file = JSON.parse(readFileSync(path.join(dataDir, 'auth', 'idp-keys.json'), 'utf8')) as { generations: unknown[] }
    assert.equal(file.generations.length, 1)
    assert.equal(statSync(path.join(dataDir, 'auth', 'idp-keys.json')).mode & 0o777, 0o600)
  })
})
