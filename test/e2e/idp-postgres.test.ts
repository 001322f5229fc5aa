import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { pino } from 'pino'
import { idpSchema } from '../../src/auth/idp/schema.ts'
import { createIdp } from '../../src/auth/idp/service.ts'
import { totpCode } from '../../src/auth/idp/totp.ts'
import { PgUserDirectory } from '../../src/auth/pg-users.ts'
import { Context, type ResponseHooks } from '../../src/core/context.ts'
import { createForwarding } from '../../src/core/forwarding.ts'
import { originPolicy } from '../../src/core/origin.ts'
import { openPostgres, type Postgres } from '../../src/core/postgres.ts'
import type { Handler } from '../../src/core/types.ts'
import { WireTrace } from '../../src/core/wire-trace.ts'
import { parseRequestTarget } from '../../src/http/target.ts'
import { ManualClock, waitFor } from '../helpers/clock.ts'
import { Browser } from '../helpers/oidc.ts'
import { freePort } from '../helpers/pebble.ts'
import { startPostgres, type PostgresServer } from '../helpers/postgres.ts'
import { captureLog, request } from '../helpers/server.ts'

/**
 * The built-in provider on two nodes that share one PostgreSQL (docs/idp.md,
 * docs/scale.md), each with a data folder of its own: two `idp` handlers
 * made by createIdp with the same `postgres`, behind one listener that
 * hands each request to the other node than the last (no affinity at all),
 * or to the node a test names (`x-test-node`). A sign-in, its second
 * factor, its tokens and their refresh work across the nodes; a code or a
 * TOTP code is good once across them; and with PostgreSQL killed a sign-in
 * gets a page that says the provider cannot reach its database, while the
 * rest keeps answering (a key rotation that falls due meanwhile waits), and
 * signing in works again once it is back. Both nodes read one manual clock.
 */

const PASSWORDS = { alice: 'alice has a long password', bob: 'bob uses two factors always', carol: 'carol is about to be removed' } as const
const BOB_SECRET = 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP'
const SECRET = 'the tool client secret, long enough'
const REDIRECT = 'http://127.0.0.1:9/cb'
const LIMITS = { maxBodySize: 1 << 20, bodyIdleTimeout: 10_000, bodyMinRate: 0, bodyRateGrace: 10_000, bodyBuffer: 1 << 16, bodyTempMax: 1 << 26 }

let pgServer: PostgresServer
let issuer: string
let front: http.Server
/** The client's back-channel logout endpoint: the logout tokens it was sent. */
let backchannel: http.Server
const logoutTokens: string[] = []
const nodes: Handler[] = []
const pools: Postgres[] = []
const dirs: string[] = []
/** Which node answered each request, in order: [node, path]. */
const served: Array<[number, string]> = []
let turn = 0
const captured = captureLog('info')
const clock = new ManualClock()
const DAY = 24 * 3_600_000

before(async () => {
  pgServer = await startPostgres()
  const url = await pgServer.database('idp_nodes')
  const admin = await openPostgres({ url, max: 2, connectTimeout: 1_000 }, pino({ level: 'silent' }))
  pools.push(admin)
  const users = await PgUserDirectory.open(admin)
  await users.add({ username: 'alice', password: PASSWORDS.alice })
  await users.add({ username: 'bob', password: PASSWORDS.bob })
  await users.setTotpSecret('bob', BOB_SECRET)
  await users.add({ username: 'carol', password: PASSWORDS.carol })
  backchannel = http.createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => (body += c.toString()))
    req.on('end', () => {
      logoutTokens.push(new URLSearchParams(body).get('logout_token') ?? '')
      res.writeHead(200).end()
    })
  })
  await new Promise<void>((resolve) => backchannel.listen(0, '127.0.0.1', resolve))
  const backchannelUri = `http://127.0.0.1:${(backchannel.address() as net.AddressInfo).port}/logout`

  const port = await freePort()
  issuer = `http://127.0.0.1:${port}`
  const cfg = idpSchema.parse({ issuer, keyRotation: '1d', clients: [{ clientId: 'tool', clientSecret: SECRET, redirectUris: [REDIRECT], backchannelLogoutUri: backchannelUri }] })
  // both nodes start at the same moment on an empty database: one makes the keys, both use them
  const started = await Promise.all(
    [0, 1].map(async (n) => {
      const dataDir = mkdtempSync(path.join(tmpdir(), `edgebox-idp-pg-node${n}-`))
      dirs.push(dataDir)
      const postgres = await openPostgres({ url, max: 4, connectTimeout: 1_000 }, captured.logger)
      pools.push(postgres)
      const deps = { configPath: 'sites[0].routes[0].idp', baseDir: dataDir, dataDir, prefix: '/', log: captured.logger.child({ node: n }), limits: LIMITS, origins: originPolicy([]), clock, trace: new WireTrace(), ownCookies: [], postgres }
      return createIdp(cfg, deps)
    }),
  )
  nodes.push(...started)

  const hooks: ResponseHooks = { filters: [], finished() {}, streamIdleTimeout: 30_000, forwarding: createForwarding({ trustedProxies: [], clientAddressHeader: 'x-forwarded-for' }) }
  front = http.createServer((req, res) => {
    const asked = req.headers['x-test-node']
    const n = asked === undefined ? turn++ % 2 : Number(asked)
    served.push([n, (req.url ?? '').split('?')[0]!])
    const ctx = new Context(req, res, hooks, 'http/1.1', performance.now())
    ctx.target = parseRequestTarget(req.method ?? 'GET', req.url ?? '/')
    Promise.resolve(nodes[n]!.handle(ctx)).catch((err: unknown) => ctx.fail(err))
  })
  await new Promise<void>((resolve) => front.listen(port, '127.0.0.1', resolve))
})

after(async () => {
  front?.closeAllConnections()
  front?.close()
  backchannel?.close()
  await Promise.all(nodes.map((n) => n.close?.()))
  await Promise.all(pools.map((p) => p.close()))
  await pgServer?.close()
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

/**
 * Kills the server (SIGKILL, as a crash) and waits until its port refuses
 * connections. The helper's `kill` is not awaited: its wait for the
 * process's exit can miss it when the dying server writes to stderr first
 * (a ready-check still listening there drops the exit listener), and the
 * port going dark is what this test is about.
 */
async function killPostgres(): Promise<void> {
  void pgServer.kill()
  for (let i = 0; i < 100; i++) {
    const refused = await new Promise<boolean>((resolve) => {
      const s = net.connect(pgServer.port, '127.0.0.1')
      s.once('connect', () => (s.destroy(), resolve(false)))
      s.once('error', () => resolve(true))
    })
    if (refused) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error('PostgreSQL still answers after being killed')
}

/** Starts the killed server again; the killed postmaster can take a moment to be gone, and until then its lock file keeps a new one from starting. */
async function restart(): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await pgServer.start()
    } catch (err) {
      if (attempt === 20 || !/lock file .* already exists/.test((err as Error).message)) throw err
      await new Promise((r) => setTimeout(r, 250))
    }
  }
}

const basic = `Basic ${Buffer.from(`tool:${encodeURIComponent(SECRET)}`).toString('base64')}`

/** A token request to node `node`. */
function tokenAt(node: number, form: Record<string, string>): Promise<{ status: number; body: Record<string, string> }> {
  return request('http/1.1', `${issuer}/token`, {
    method: 'POST',
    headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded', 'x-test-node': String(node) },
    body: new URLSearchParams(form).toString(),
  }).then((r) => ({ status: r.status, body: JSON.parse(r.text) as Record<string, string> }))
}

/** A code flow's start: the authorization URL and its PKCE verifier. */
function authorization(): { url: string; verifier: string } {
  const verifier = randomBytes(32).toString('base64url')
  const q = new URLSearchParams({ client_id: 'tool', response_type: 'code', redirect_uri: REDIRECT, scope: 'openid', code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256' })
  return { url: `${issuer}/auth?${q}`, verifier }
}

const form = (b: Browser, url: string, fields: Record<string, string>) =>
  b.fetch(new URL(url, issuer).href, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: issuer }, body: new URLSearchParams(fields).toString() })

/**
 * Signs in as `username` in `b`, answering the pages on the way (the
 * password, then `code` when a second factor is asked for); resolves with
 * the authorization code and its verifier, or with the page the sign-in
 * stopped at.
 */
async function signIn(b: Browser, username: keyof typeof PASSWORDS, code?: string): Promise<{ code: string; verifier: string } | { page: { status: number; text: string } }> {
  const start = authorization()
  let res = await b.fetch(start.url)
  let at = start.url
  for (let i = 0; i < 12; i++) {
    const location = res.headers.get('location')
    if (location) {
      await res.arrayBuffer()
      const next = new URL(location, at)
      if (next.href.startsWith(REDIRECT)) return { code: next.searchParams.get('code')!, verifier: start.verifier }
      at = next.href
      res = await b.fetch(at)
      continue
    }
    const text = await res.text()
    const login = /<form method="post" action="([^"]+\/login)"/.exec(text)?.[1]
    const totp = /<form method="post" action="([^"]+\/totp)"/.exec(text)?.[1]
    if (res.status === 200 && login && !text.includes('role="alert"')) res = await form(b, login, { username, password: PASSWORDS[username] })
    else if (res.status === 200 && totp && code !== undefined && !text.includes('role="alert"')) res = await form(b, totp, { code })
    else return { page: { status: res.status, text } }
  }
  throw new Error('too many steps')
}

describe('two nodes, one PostgreSQL', () => {
  test('nodes started at the same moment publish the same keys, made once', async () => {
    const jwks = await Promise.all([0, 1].map((n) => request('http/1.1', `${issuer}/jwks`, { headers: { 'x-test-node': String(n) } })))
    assert.equal(jwks[0]!.status, 200)
    assert.deepEqual(JSON.parse(jwks[0]!.text), JSON.parse(jwks[1]!.text))
    assert.equal((JSON.parse(jwks[0]!.text) as { keys: unknown[] }).keys.length, 2)
    assert.equal((await pools[0]!.pool.query('SELECT count(*)::int AS n FROM idp_keys')).rows[0].n, 1)
    assert.equal(captured.text.filter((l) => l.includes('new signing keys made')).length, 1)
    const ready = captured.lines.filter((l) => l.msg === 'identity provider: ready')
    assert.equal(ready.length, 2)
    for (const l of ready) assert.match(String(l.storage), /^postgres:\/\/edgebox@127\.0\.0\.1:\d+\/idp_nodes$/)
  })

  test('a sign-in whose every request goes to the other node: the session, the code, the tokens and their refresh are one state', async () => {
    const b = new Browser()
    const from = served.length
    const got = await signIn(b, 'alice')
    assert.ok('code' in got, JSON.stringify(got))
    const hops = served.slice(from)
    assert.ok(hops.length >= 4, 'the authorization request, the login page, the form, the resume')
    for (let i = 1; i < hops.length; i++) assert.notEqual(hops[i]![0], hops[i - 1]![0], 'each request on the other node')
    const lastNode = hops.at(-1)![0]
    const tokens = await tokenAt(1 - lastNode, { grant_type: 'authorization_code', code: got.code, redirect_uri: REDIRECT, code_verifier: got.verifier })
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body))
    const info = await request('http/1.1', `${issuer}/me`, { headers: { authorization: `Bearer ${tokens.body.access_token}`, 'x-test-node': String(lastNode) } })
    assert.equal(info.status, 200)
    assert.equal((JSON.parse(info.text) as { sub: string }).sub, 'alice')
    const refreshed = await tokenAt(lastNode, { grant_type: 'refresh_token', refresh_token: tokens.body.refresh_token! })
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body))
    // the refresh token was rotated on one node: the old one is refused on the other
    const again = await tokenAt(1 - lastNode, { grant_type: 'refresh_token', refresh_token: tokens.body.refresh_token! })
    assert.equal(again.status, 400)
    assert.equal(again.body.error, 'invalid_grant')
    // the session is every node's: a second sign-in in this browser asks for no password, wherever it lands
    const second = await signIn(b, 'alice')
    assert.ok('code' in second)
  })

  test('an authorization code used on one node is refused on the other', async () => {
    const got = await signIn(new Browser(), 'alice')
    assert.ok('code' in got)
    const exchange = { grant_type: 'authorization_code', code: got.code, redirect_uri: REDIRECT, code_verifier: got.verifier }
    const first = await tokenAt(0, exchange)
    assert.equal(first.status, 200, JSON.stringify(first.body))
    const replay = await tokenAt(1, exchange)
    assert.equal(replay.status, 400)
    assert.equal(replay.body.error, 'invalid_grant')
    // the replay revoked what the code gave (RFC 6749 §4.1.2), on every node
    const info = await request('http/1.1', `${issuer}/me`, { headers: { authorization: `Bearer ${first.body.access_token}`, 'x-test-node': '0' } })
    assert.equal(info.status, 401)
  })

  test('one authorization code sent to both nodes at the same moment gives tokens once', async () => {
    const b = new Browser()
    for (let round = 0; round < 5; round++) {
      const got = await signIn(b, 'alice')
      assert.ok('code' in got)
      const exchange = { grant_type: 'authorization_code', code: got.code, redirect_uri: REDIRECT, code_verifier: got.verifier }
      const both = await Promise.all([tokenAt(0, exchange), tokenAt(1, exchange)])
      assert.deepEqual(
        both.map((r) => r.status).toSorted(),
        [200, 400],
        `round ${round}: ${JSON.stringify(both.map((r) => r.body))}`,
      )
      assert.equal(both.find((r) => r.status === 400)!.body.error, 'invalid_grant')
    }
  })

  test('a TOTP code accepted in a sign-in on one node is refused in another sign-in on the other', async () => {
    const code = totpCode(BOB_SECRET, clock.now())
    const first = await signIn(new Browser(), 'bob', code)
    assert.ok('code' in first, JSON.stringify(first))
    const second = await signIn(new Browser(), 'bob', code)
    assert.ok('page' in second)
    assert.equal(second.page.status, 200)
    assert.match(second.page.text, /That code is not right\./)
  })
})

describe('removed users, two nodes', () => {
  test('a user removed from the shared store: both nodes check at the same moment, one ends the session and tells the client once', async () => {
    const got = await signIn(new Browser(), 'carol')
    assert.ok('code' in got)
    const users = await PgUserDirectory.open(pools[0]!)
    assert.equal(await users.remove('carol'), true)
    const told = logoutTokens.length
    // both nodes' watchers fall due in the same tick
    clock.advance(5_000)
    const ended = () => captured.lines.filter((l) => l.msg === 'identity provider: sessions of a removed user ended' && l.user === 'carol')
    await waitFor('the session ended', () => ended().length > 0)
    await waitFor('the client told', () => logoutTokens.length > told)
    // both checks done: no second logout token, no second session ended
    clock.advance(5_000)
    await new Promise((r) => setTimeout(r, 500))
    assert.equal(ended().length, 1, 'ended by one node')
    assert.equal(logoutTokens.length - told, 1, 'one logout token')
    assert.deepEqual([ended()[0]!.sessions, ended()[0]!.notified], [1, 1])
    const claims = JSON.parse(Buffer.from(logoutTokens.at(-1)!.split('.')[1]!, 'base64url').toString()) as { sub: string }
    assert.equal(claims.sub, 'carol')
  })
})

describe('PostgreSQL unreachable', () => {
  const jwksAt = async (node: number) => {
    const r = await request('http/1.1', `${issuer}/jwks`, { headers: { 'x-test-node': String(node) } })
    assert.equal(r.status, 200)
    return (JSON.parse(r.text) as { keys: { kid: string }[] }).keys.map((k) => k.kid)
  }

  test('a sign-in gets a page that says so (503), discovery and keys still answer; once it is back, the sign-in goes on', async () => {
    const b = new Browser()
    // a sign-in that reached its login page before the database went away
    const start = authorization()
    let res = await b.fetch(start.url)
    const interaction = new URL(res.headers.get('location')!, issuer).href
    res = await b.fetch(interaction)
    const login = /<form method="post" action="([^"]+\/login)"/.exec(await res.text())![1]!
    await killPostgres()
    try {
      for (const node of [0, 1]) {
        const posted = await request('http/1.1', new URL(login, issuer).href, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', origin: issuer, cookie: [...b.cookies(issuer)].map(([k, v]) => `${k}=${v}`).join('; '), 'x-test-node': String(node) },
          body: new URLSearchParams({ username: 'alice', password: PASSWORDS.alice }).toString(),
        })
        assert.equal(posted.status, 503, posted.text.slice(0, 300))
        assert.equal(posted.headers['retry-after'], '30')
        assert.match(posted.text, /<title>Sign-in unavailable/)
        assert.match(posted.text, /cannot reach the database that keeps accounts and sign-ins/)
        // a new sign-in: oidc-provider's own error page (renderError), the same words
        const fresh = await request('http/1.1', authorization().url, { headers: { accept: 'text/html', 'x-test-node': String(node) } })
        assert.equal(fresh.status, 503)
        assert.match(fresh.text, /cannot reach the database that keeps accounts and sign-ins/)
        // what needs no database still answers
        assert.equal((await request('http/1.1', `${issuer}/.well-known/openid-configuration`, { headers: { 'x-test-node': String(node) } })).status, 200)
        assert.equal((await jwksAt(node)).length, 2)
        // a client's requests: 503 too, in oidc-provider's JSON
        const token = await tokenAt(node, { grant_type: 'authorization_code', code: 'whatever', redirect_uri: REDIRECT, code_verifier: 'x'.repeat(43) })
        assert.deepEqual([token.status, token.body.error], [503, 'server_error'])
        const userinfo = await request('http/1.1', `${issuer}/me`, { headers: { authorization: 'Bearer some-access-token-value-of-43-characters-x', 'x-test-node': String(node) } })
        assert.deepEqual([userinfo.status, (JSON.parse(userinfo.text) as { error: string }).error], [503, 'server_error'])
      }
      const logged = captured.lines.filter((l) => l.msg === 'identity provider: a sign-in step failed')
      assert.ok(logged.length >= 2)
      assert.match(String(logged.at(-1)!.description), /^the identity provider's PostgreSQL \(postgres:\/\/edgebox@127\.0\.0\.1:\d+\/idp_nodes\) cannot be reached: /)
      assert.ok(!captured.text.some((l) => l.includes('edgebox:edgebox@')), 'the password of the URL is never logged')
    } finally {
      await restart()
    }
    // the interaction was kept: the same form goes through now
    const after = await form(b, login, { username: 'alice', password: PASSWORDS.alice })
    assert.equal(after.status, 303, await after.text())
    const got = await signIn(b, 'alice')
    assert.ok('code' in got, JSON.stringify(got))
    const tokens = await tokenAt(0, { grant_type: 'authorization_code', code: got.code, redirect_uri: REDIRECT, code_verifier: got.verifier })
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body))
  })

  test('a key rotation that falls due while it is down waits: the keys in use keep answering; once it is back, one new generation for both nodes', async () => {
    const before = await jwksAt(0)
    await killPostgres()
    try {
      clock.advance(DAY)
      for (let i = 0; i < 3; i++) for (const node of [0, 1]) assert.deepEqual(await jwksAt(node), before)
      const warned = captured.lines.filter((l) => l.msg === 'identity provider: the keys could not be brought up to date; the current ones are used meanwhile')
      assert.equal(warned.length, 2, 'once per node, not per request')
      assert.match(String(warned[0]!.description), /cannot be reached/)
    } finally {
      await restart()
    }
    // tried again after a while, not at every request
    assert.deepEqual(await jwksAt(0), before)
    clock.advance(30_000)
    const [a, b] = [await jwksAt(0), await jwksAt(1)]
    assert.equal(a.length, 4, 'the new generation, and the old one still published')
    assert.deepEqual(a, b)
    for (const kid of before) assert.ok(a.includes(kid))
    assert.equal((await pools[0]!.pool.query('SELECT jsonb_array_length(doc->\'generations\') AS n FROM idp_keys')).rows[0].n, 2)
    assert.equal(captured.text.filter((l) => l.includes('signing keys rotated')).length, 1, 'rotated by one node')
    // a sign-in on either node is signed with the new key
    const got = await signIn(new Browser(), 'alice')
    assert.ok('code' in got, JSON.stringify(got))
    const tokens = await tokenAt(1, { grant_type: 'authorization_code', code: got.code, redirect_uri: REDIRECT, code_verifier: got.verifier })
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body))
    const kid = (JSON.parse(Buffer.from(tokens.body.id_token!.split('.')[0]!, 'base64url').toString()) as { kid: string }).kid
    assert.ok(a.includes(kid) && !before.includes(kid))
  })
})
