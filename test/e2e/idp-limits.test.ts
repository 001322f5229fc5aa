import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire, syncBuiltinESMExports } from 'node:module'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { UserStore } from '../../src/auth/users.ts'
import { ManualClock } from '../helpers/clock.ts'
import { Browser } from '../helpers/oidc.ts'
import { startServer, type TestServer } from '../helpers/server.ts'

/**
 * The built-in provider's login limits (docs/idp.md, "Limits"): 1,000 wrong
 * passwords against one account from one address are refused by the token
 * buckets without computing a password hash each; the account stays locked
 * for every address while its bucket is empty, and once the window has
 * passed (a manual clock) the real user signs in from elsewhere. Client
 * addresses come from X-Forwarded-For, Edgebox trusting the loopback proxy.
 */

const PASSWORD = 'vera keeps a long password'
const ATTACKER = '203.0.113.66'
const REAL_USER = '198.51.100.7'

let server: TestServer
let dataDir: string
let issuer: string
const clock = new ManualClock()

before(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'edgebox-idp-limits-'))
  const users = await UserStore.open(dataDir)
  await users.add({ username: 'vera', password: PASSWORD })
  users.close()
  const { freePort } = await import('../helpers/pebble.ts')
  const port = await freePort()
  issuer = `http://127.0.0.1:${port}`
  server = await startServer(
    {
      listen: [{ host: '127.0.0.1', port }],
      dataDir,
      trustedProxies: ['127.0.0.1'],
      sites: [{ routes: [{ path: '/', idp: { issuer, clients: [{ clientId: 'tool', clientSecret: 'the tool client secret, long enough', redirectUris: ['http://127.0.0.1:9/cb'] }] } }] }],
    },
    undefined,
    { clock },
  )
})

after(async () => {
  await server?.close()
  rmSync(dataDir, { recursive: true, force: true })
})

/** A browser from `address` (as a trusted proxy says) at the login page of a new sign-in: the form's action. */
async function loginForm(b: Browser, address: string): Promise<string> {
  const q = new URLSearchParams({
    client_id: 'tool',
    response_type: 'code',
    redirect_uri: 'http://127.0.0.1:9/cb',
    scope: 'openid',
    state: randomBytes(8).toString('hex'),
    code_challenge: createHash('sha256').update(randomBytes(32).toString('base64url')).digest('base64url'),
    code_challenge_method: 'S256',
  })
  const auth = await b.fetch(`${issuer}/auth?${q}`, { headers: { 'x-forwarded-for': address } })
  assert.equal(auth.status, 303)
  const page = await b.fetch(new URL(auth.headers.get('location')!, issuer).href, { headers: { 'x-forwarded-for': address } })
  const action = /<form method="post" action="([^"]+\/login)"/.exec(await page.text())![1]!
  return new URL(action, issuer).href
}

function post(b: Browser, url: string, address: string, username: string, password: string): Promise<Response> {
  return b.fetch(url, { method: 'POST', headers: { 'x-forwarded-for': address, 'content-type': 'application/x-www-form-urlencoded', origin: issuer }, body: new URLSearchParams({ username, password }).toString() })
}

/** Counts scrypt computations (users.ts reads node:crypto's live export) while `fn` runs. */
async function countingScrypt<T>(fn: () => Promise<T>): Promise<{ result: T; calls: number }> {
  const crypto = createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto')
  const real = crypto.scrypt
  let calls = 0
  crypto.scrypt = ((...args: Parameters<typeof real>) => {
    calls++
    return (real as (...a: unknown[]) => void)(...args)
  }) as typeof real
  syncBuiltinESMExports()
  try {
    return { result: await fn(), calls }
  } finally {
    crypto.scrypt = real
    syncBuiltinESMExports()
  }
}

test('1,000 wrong passwords against one account: refused by the limits before hashing; the real user signs in from elsewhere after the window', async () => {
  const attacker = new Browser()
  const action = await loginForm(attacker, ATTACKER)
  const { result: statuses, calls } = await countingScrypt(async () => {
    const out: number[] = []
    // ten at a time, as a client with several connections would
    for (let i = 0; i < 1000; i += 10) {
      const batch = await Promise.all(Array.from({ length: 10 }, (_, j) => post(attacker, action, ATTACKER, 'vera', `guess number ${i + j} is wrong`)))
      for (const r of batch) {
        out.push(r.status)
        await r.arrayBuffer()
      }
    }
    return out
  })
  const refused = statuses.filter((s) => s === 429).length
  // the account's bucket holds 10 attempts; everything after is refused without a hash
  assert.equal(statuses.length, 1000)
  assert.ok(refused >= 990, `${refused} of 1000 refused`)
  assert.ok(calls <= 10, `${calls} password hashes computed`)

  // the answer: 429, Retry-After, the reason on the page, the form to try again later
  const limited = await post(attacker, action, ATTACKER, 'vera', 'one more guess')
  assert.equal(limited.status, 429)
  assert.match(limited.headers.get('retry-after')!, /^[1-9][0-9]*$/)
  assert.equal(limited.headers.get('cache-control'), 'no-store')
  const html = await limited.text()
  assert.match(html, /<p id="form-error" class="error" role="alert">Too many sign-in attempts\. Wait [0-9]+ (seconds|minutes), then try again\.<\/p>/)
  assert.match(html, /<form method="post" action="[^"]+\/login" class="stack">/)

  // the per-account bucket holds every address back while it is empty (even with the right password)
  const user = new Browser()
  const early = await post(user, await loginForm(user, REAL_USER), REAL_USER, 'vera', PASSWORD)
  assert.equal(early.status, 429)

  // the window passes: the real user, from another address, signs in
  clock.advance(15 * 60_000 + 1000)
  const later = new Browser()
  const ok = await post(later, await loginForm(later, REAL_USER), REAL_USER, 'vera', PASSWORD)
  assert.equal(ok.status, 303)
  let location = new URL(ok.headers.get('location')!, issuer).href
  for (let i = 0; i < 5 && !location.startsWith('http://127.0.0.1:9/cb'); i++) {
    const r = await later.fetch(location, { headers: { 'x-forwarded-for': REAL_USER } })
    location = new URL(r.headers.get('location')!, location).href
  }
  assert.ok(new URL(location).searchParams.get('code'), location)
})

test('per address: one address trying many accounts is held back at its own limit, other addresses are not', async () => {
  clock.advance(15 * 60_000 + 1000)
  const b = new Browser()
  const from = '192.0.2.10'
  const action = await loginForm(b, from)
  const statuses: number[] = []
  for (let i = 0; i < 31; i++) {
    const r = await post(b, action, from, `someone-${i}`, 'not a real password')
    statuses.push(r.status)
    await r.arrayBuffer()
  }
  assert.deepEqual(statuses.slice(0, 30), Array(30).fill(200))
  assert.equal(statuses[30], 429)
  // another address, another account: not held back
  const other = new Browser()
  const r = await post(other, await loginForm(other, '192.0.2.11'), '192.0.2.11', 'someone-else', 'not a real password')
  assert.equal(r.status, 200)
  assert.match(await r.text(), /Wrong username or password/)
})
