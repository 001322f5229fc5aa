import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { after, before, describe, test } from 'node:test'
import { REMOVALS_EVERY_MS } from '../../src/auth/idp/removals.ts'
import { UserStore } from '../../src/auth/users.ts'
import { startEdgebox, type Edgebox } from '../../src/server/app.ts'
import { ManualClock, waitFor } from '../helpers/clock.ts'
import { Browser } from '../helpers/oidc.ts'
import { freePort } from '../helpers/pebble.ts'
import { request, captureLog } from '../helpers/server.ts'

/**
 * A user removed with `edgebox user remove` loses every sign-in within a
 * check of the provider (docs/idp.md, "Users"): the provider ends their
 * sessions, grants and tokens, and tells each client of those sessions by
 * back-channel logout, so Edgebox's relying party ends its sessions at once
 * rather than at the next refresh. One Edgebox: the provider on
 * id.localhost, an app behind `auth` on app.localhost (its client has a
 * back-channel logout URI), and a tool client whose back-channel endpoint is
 * down. The checks run on a manual clock, which starts at the real time:
 * the relying party reads its clock to check the logout token's `iat`,
 * which oidc-provider sets from the real one.
 */

const PASSWORDS = { alice: 'alice has a long password', bob: 'bob keeps his sessions', dave: 'dave comes back as someone else' } as const
const DAVE_AGAIN = 'a new dave with a new password'
const CLIENT_SECRET = 'the app client secret of the removal tests'
const TOOL_SECRET = 'the tool client secret of the removal tests'
const TOOL_REDIRECT = 'http://127.0.0.1:9/cb'

const clock = new ManualClock(Date.now())
let box: Edgebox
let dataDir: string
let issuer: string
let app: string
let upstream: http.Server
const captured = captureLog('debug')
const logLines = captured.text
/** Secrets the tests saw: none may be in a log line. */
const secrets = new Set<string>([...Object.values(PASSWORDS), DAVE_AGAIN, CLIENT_SECRET, TOOL_SECRET])

before(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'edgebox-idp-removal-'))
  const users = await UserStore.open(dataDir)
  for (const [username, password] of Object.entries(PASSWORDS)) await users.add({ username, password })
  users.close()
  upstream = http.createServer((req, res) => res.setHeader('content-type', 'application/json').end(JSON.stringify({ path: req.url, user: req.headers['x-auth-request-user'] ?? null })))
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
  const port = await freePort()
  // nothing listens there: the tool's back-channel endpoint is down
  const deadPort = await freePort()
  issuer = `http://id.localhost:${port}`
  app = `http://app.localhost:${port}`
  const log = captured.logger
  box = await startEdgebox(
    {
      listen: [{ host: '127.0.0.1', port }],
      dataDir,
      log: { access: false, level: 'silent' },
      auth: { providers: { local: { issuer, clientId: 'app', clientSecret: CLIENT_SECRET, scopes: ['openid', 'profile'] } } },
      sites: [
        {
          hosts: ['id.localhost'],
          routes: [
            {
              path: '/',
              idp: {
                issuer,
                loginLimits: { perAddress: { attempts: 1000, per: '15m' }, perAccount: { attempts: 100, per: '15m' } },
                clients: [
                  {
                    clientId: 'app',
                    clientSecret: CLIENT_SECRET,
                    redirectUris: [`${app}/_edgebox/auth/callback`],
                    postLogoutRedirectUris: [`${app}/_edgebox/auth/signed-out`],
                    backchannelLogoutUri: `${app}/_edgebox/auth/backchannel-logout`,
                  },
                  { clientId: 'tool', clientSecret: TOOL_SECRET, redirectUris: [TOOL_REDIRECT], backchannelLogoutUri: `http://down.localhost:${deadPort}/backchannel-logout` },
                ],
              },
            },
          ],
        },
        { hosts: ['app.localhost'], auth: true, routes: [{ path: '/', proxy: { upstreams: [`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`] } }] },
      ],
    },
    { log, clock },
  )
})

after(async () => {
  await box?.close()
  upstream?.closeAllConnections()
  upstream?.close()
  rmSync(dataDir, { recursive: true, force: true })
})

/** Answers the provider's password page as `name`; null on any other page (or after `seen` recorded a refusal). */
function password(name: string, pw: string, seen?: { refused: boolean }) {
  return async (res: Response, url: string): Promise<{ url: string; body: string } | null> => {
    if (!(res.headers.get('content-type') ?? '').includes('html')) return null
    const html = await res.clone().text()
    if (html.includes('Wrong username or password') && seen) {
      seen.refused = true
      return null
    }
    const action = /<form method="post" action="([^"]+\/login)"/.exec(html)?.[1]
    return action ? { url: new URL(action, url).href, body: new URLSearchParams({ username: name, password: pw }).toString() } : null
  }
}

/** A browser signed in to the app as `name`. */
async function signedIn(name: keyof typeof PASSWORDS, pw: string = PASSWORDS[name]): Promise<Browser> {
  const b = new Browser()
  const r = await b.navigate(`${app}/hello`, password(name, pw))
  assert.equal(r.res.status, 200, r.text.slice(0, 300))
  assert.equal((JSON.parse(r.text) as { user: string }).user, name)
  for (const v of b.cookies(app).values()) secrets.add(v)
  for (const v of b.cookies(issuer).values()) secrets.add(v)
  return b
}

/** The status of the app's `/_edgebox/auth/userinfo` for this browser's session. */
async function whoami(b: Browser): Promise<number> {
  const r = await b.fetch(`${app}/_edgebox/auth/userinfo`, { headers: { accept: 'application/json', 'sec-fetch-mode': 'cors' } })
  await r.arrayBuffer()
  return r.status
}

/** The tool client's code flow in a browser already signed in at the provider (no password asked): its tokens. */
async function toolTokens(b: Browser): Promise<Record<string, string>> {
  const verifier = randomBytes(32).toString('base64url')
  const q = new URLSearchParams({ client_id: 'tool', response_type: 'code', redirect_uri: TOOL_REDIRECT, scope: 'openid', code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256' })
  let url = `${issuer}/auth?${q}`
  for (let i = 0; i < 10; i++) {
    const res = await b.fetch(url)
    await res.arrayBuffer()
    const location = res.headers.get('location')
    assert.ok(location, `${url} answered ${res.status}, not a redirect`)
    const next = new URL(location, url)
    if (next.href.startsWith(TOOL_REDIRECT)) return token({ grant_type: 'authorization_code', code: next.searchParams.get('code')!, redirect_uri: TOOL_REDIRECT, code_verifier: verifier })
    url = next.href
  }
  throw new Error('too many redirects')
}

async function token(form: Record<string, string>): Promise<Record<string, string>> {
  const r = await request('http/1.1', `http://127.0.0.1:${new URL(issuer).port}/token`, {
    method: 'POST',
    headers: { host: new URL(issuer).host, authorization: `Basic ${Buffer.from(`tool:${encodeURIComponent(TOOL_SECRET)}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
  })
  const json = JSON.parse(r.text) as Record<string, string>
  for (const k of ['access_token', 'refresh_token', 'id_token']) if (json[k]) secrets.add(json[k])
  return json
}

/** The provider's rows (sessions, grants, tokens) of `account`, by model, read from idp.sqlite. */
function rowsOf(account: string): Record<string, number> {
  const db = new DatabaseSync(path.join(dataDir, 'auth', 'idp.sqlite'), { readOnly: true })
  try {
    const rows = db.prepare(`SELECT model, count(*) AS n FROM oidc WHERE json_extract(payload, '$.accountId') = ? GROUP BY model`).all(account) as { model: string; n: number }[]
    return Object.fromEntries(rows.map((r) => [r.model, Number(r.n)]))
  } finally {
    db.close()
  }
}

/** Every provider session's ID and `sid`s, into `secrets`. */
function rememberSessionIds(): void {
  const db = new DatabaseSync(path.join(dataDir, 'auth', 'idp.sqlite'), { readOnly: true })
  try {
    for (const r of db.prepare(`SELECT id, payload FROM oidc WHERE model = 'Session'`).all() as { id: string; payload: string }[]) {
      secrets.add(r.id)
      const p = JSON.parse(r.payload) as { uid?: string; authorizations?: Record<string, { sid?: string; grantId?: string }> }
      if (p.uid) secrets.add(p.uid)
      for (const a of Object.values(p.authorizations ?? {})) for (const v of [a.sid, a.grantId]) if (v) secrets.add(v)
    }
  } finally {
    db.close()
  }
}

/** Moves the manual clock to the real time and past the next check. */
function tick(): void {
  clock.advance(Math.max(0, Date.now() - clock.now()) + REMOVALS_EVERY_MS)
}

const endedLines = (user: string) => logLines.filter((l) => l.includes('identity provider: sessions of a') && l.includes(`"user":"${user}"`))

describe('a removed user', () => {
  test('loses every sign-in: both browsers at the app, by back-channel logout; another user keeps theirs', async () => {
    const [a1, a2, b] = [await signedIn('alice'), await signedIn('alice'), await signedIn('bob')]
    // alice's first browser signed in to the tool too: its back-channel endpoint is down
    const tool = await toolTokens(a1)
    assert.ok(tool.refresh_token)
    for (const br of [a1, a2, b]) assert.equal(await whoami(br), 200)
    assert.equal(rowsOf('alice').Session, 2)
    rememberSessionIds()

    // nothing changed: a check ends nothing
    tick()
    await new Promise((r) => setTimeout(r, 100))
    for (const br of [a1, a2, b]) assert.equal(await whoami(br), 200)
    assert.equal(endedLines('alice').length, 0)

    // what `edgebox user remove alice` does, from another process
    const users = await UserStore.open(dataDir)
    try {
      assert.ok(users.remove('alice'))
    } finally {
      users.close()
    }
    tick()
    await waitFor('both of alice’s sessions at the app end', async () => (await whoami(a1)) === 401 && (await whoami(a2)) === 401, 3000)
    assert.equal(await whoami(b), 200)

    // one line for alice: two sessions, the app told twice, the tool's endpoint failed (logged, not retried)
    await waitFor('the line about alice', () => endedLines('alice').length === 1, 3000)
    const line = JSON.parse(endedLines('alice')[0]!) as Record<string, unknown>
    assert.equal(line.reason, 'removed')
    assert.equal(line.sessions, 2)
    assert.equal(line.notified, 2)
    assert.equal(line.failed, 1)
    assert.ok(logLines.some((l) => l.includes('back-channel logout failed') && l.includes('"client":"tool"')))

    // the provider forgot her sessions, grants and tokens: the tool's refresh token is refused
    assert.deepEqual(rowsOf('alice'), {})
    assert.ok((rowsOf('bob').Session ?? 0) >= 1)
    const refreshed = await token({ grant_type: 'refresh_token', refresh_token: tool.refresh_token! })
    assert.equal(refreshed.error, 'invalid_grant')

    // later checks do not end (or tell) anything again
    tick()
    await new Promise((r) => setTimeout(r, 100))
    assert.equal(endedLines('alice').length, 1)
    assert.equal(await whoami(b), 200)

    // the app sends her browser to sign in (the provider has no session for it), and the sign-in is refused
    const back = await a1.navigate(`${app}/again`)
    assert.ok(back.url.startsWith(`${issuer}/interaction/`), back.url)
    assert.match(back.text, /action="[^"]+\/login"/)
    const seen = { refused: false }
    await a1.navigate(`${app}/again`, password('alice', PASSWORDS.alice, seen))
    assert.ok(seen.refused)
  })

  test('removed and added again under the same name: the old sessions end, the new user’s sign-in stays', async () => {
    const old = await signedIn('dave')
    rememberSessionIds()
    // a sign-in's time is kept in whole seconds: the new user is made in a later second than it
    const second = Math.floor(Date.now() / 1000)
    while (Math.floor(Date.now() / 1000) === second) await new Promise((r) => setTimeout(r, 20))
    const users = await UserStore.open(dataDir)
    try {
      assert.ok(users.remove('dave'))
      await users.add({ username: 'dave', password: DAVE_AGAIN })
    } finally {
      users.close()
    }
    tick()
    await waitFor('the old dave’s session at the app ends', async () => (await whoami(old)) === 401, 3000)
    await waitFor('the line about dave', () => endedLines('dave').length === 1, 3000)
    assert.equal((JSON.parse(endedLines('dave')[0]!) as { reason: string }).reason, 'added again')

    const fresh = await signedIn('dave', DAVE_AGAIN)
    tick()
    await new Promise((r) => setTimeout(r, 100))
    assert.equal(await whoami(fresh), 200)
    assert.equal(endedLines('dave').length, 1)
    assert.equal(rowsOf('dave').Session, 1)
  })

  test('no password, token, cookie value or session ID in any log line', () => {
    assert.ok(logLines.length > 5)
    for (const line of logLines) for (const s of secrets) assert.ok(!line.includes(s), `a log line holds a secret: ${line}`)
  })
})
