import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { freePort } from '../helpers/pebble.ts'
import { Browser, signInAs, startEchoApp, startTestProvider, type TestProvider } from '../helpers/oidc.ts'
import { startRedis, type RedisServer } from '../helpers/redis.ts'
import { startServer, type TestServer } from '../helpers/server.ts'

/**
 * Single sign-on across processes (docs/scale.md): a login started through
 * one Edgebox comes back through another and is accepted there once; the
 * session is valid on both; a sign-out through one ends it on the other.
 * Two real Edgebox servers in front of one provider: sharing a data folder
 * (as the workers of one machine do), and on one Redis with data folders of
 * their own (as nodes do). The callback is sent to the other server by
 * rewriting its origin, as a load balancer would route it.
 */

let idp: TestProvider
let app: Awaited<ReturnType<typeof startEchoApp>>
let redis: RedisServer
const folders: string[] = []
const folder = () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'edgebox-auth-shared-'))
  folders.push(dir)
  return dir
}
const ports: number[] = []

before(async () => {
  app = await startEchoApp()
  redis = await startRedis()
  for (let i = 0; i < 4; i++) ports.push(await freePort())
  idp = await startTestProvider({
    accounts: { alice: { email: 'alice@example.com', email_verified: true, name: 'Alice', groups: ['staff'] } },
    clients: [{ client_id: 'edgebox', client_secret: 'a client secret for the tests', redirect_uris: ports.map((p) => `http://127.0.0.1:${p}/_edgebox/auth/callback`) }],
  })
})

after(async () => {
  await idp?.close()
  app?.close()
  await redis?.close()
  for (const dir of folders) rmSync(dir, { recursive: true, force: true })
})

function node(port: number, over: { dataDir: string; redis?: string; idleTimeout?: string }) {
  return startServer({
    listen: [{ host: '127.0.0.1', port }],
    dataDir: over.dataDir,
    ...(over.redis ? { redis: over.redis } : {}),
    auth: {
      providers: { test: { issuer: idp.issuer, clientId: 'edgebox', clientSecret: 'a client secret for the tests', scopes: ['openid', 'email', 'profile'] } },
      ...(over.idleTimeout ? { sessions: { idleTimeout: over.idleTimeout } } : {}),
    },
    sites: [{ routes: [{ path: '/open/', proxy: { upstreams: [app.origin] } }, { path: '/', proxy: { upstreams: [app.origin] }, auth: true }] }],
  })
}

/**
 * Signs in through `a`, with the provider's answer (the callback) routed to
 * `b`; returns the browser and the callback URL it used.
 */
async function loginAcross(a: TestServer, b: TestServer): Promise<{ browser: Browser; callback: string; landed: Response }> {
  const browser = new Browser()
  let callback = ''
  // the load balancer sends the callback to the other server
  const toB = (next: URL) => {
    if (next.pathname !== '/_edgebox/auth/callback') return next
    const there = new URL(next.pathname + next.search, b.url)
    callback = there.href
    return there
  }
  const { res } = await browser.navigate(`${a.url}reports`, signInAs('alice'), toB)
  assert.notEqual(callback, '', 'the login came back through the callback')
  return { browser, callback, landed: res }
}

/** The status of a gated page for this browser, not following redirects (200: signed in; 302: sent to sign in). */
const gated = async (browser: Browser, server: TestServer) => {
  const res = await browser.fetch(`${server.url}reports`)
  await res.arrayBuffer()
  return res.status
}

for (const mode of ['a shared data folder (workers)', 'one Redis (nodes)'] as const) {
  describe(`single sign-on across two Edgebox processes: ${mode}`, () => {
    let a: TestServer
    let b: TestServer
    before(async () => {
      const onRedis = mode === 'one Redis (nodes)'
      const shared = folder()
      const base = onRedis ? 2 : 0
      a = await node(ports[base]!, { dataDir: onRedis ? folder() : shared, ...(onRedis ? { redis: redis.url } : {}), idleTimeout: '10s' })
      b = await node(ports[base + 1]!, { dataDir: onRedis ? folder() : shared, ...(onRedis ? { redis: redis.url } : {}), idleTimeout: '10s' })
    })
    after(async () => {
      await Promise.all([a?.close(), b?.close()])
    })

    test('a login started on one comes back on the other, is valid on both, and its callback is refused on a replay to either', async () => {
      const { browser, callback, landed } = await loginAcross(a, b)
      assert.equal(landed.status, 200, 'signed in through the other server')
      assert.equal(await gated(browser, a), 200, 'the session is valid where the login started')
      assert.equal(await gated(browser, b), 200)
      for (const server of [a, b]) {
        const replay = await browser.fetch(new URL(new URL(callback).pathname + new URL(callback).search, server.url).href)
        assert.equal(replay.status, 400)
        assert.match(await replay.text(), /expired or was already used/)
      }
    })

    test('a sign-out through one ends the session on the other', async () => {
      const { browser } = await loginAcross(a, b)
      // both processes have the session in memory now
      assert.equal(await gated(browser, a), 200)
      assert.equal(await gated(browser, b), 200)
      const cookies = new Map(browser.cookies(a.url))
      const out = await browser.fetch(`${b.url}_edgebox/auth/logout`, { method: 'POST', headers: { origin: b.url.slice(0, -1), 'sec-fetch-site': 'same-origin' } })
      await out.arrayBuffer()
      assert.equal(out.status, 200, 'signed out (a page that goes on to the provider)')
      // the old cookie, replayed to the other process, no longer opens the page there
      const replayer = new Browser()
      for (const [k, v] of cookies) replayer.cookies(a.url).set(k, v)
      if (mode === 'one Redis (nodes)') assert.equal(await gated(replayer, a), 302, 'told at once, over Redis')
      else {
        // no broadcast between these two (workers have one through their primary): the store check ends it, once per second here
        const end = Date.now() + 5_000
        let status = await gated(replayer, a)
        while (status !== 302 && Date.now() < end) {
          await new Promise((r) => setTimeout(r, 200))
          status = await gated(replayer, a)
        }
        assert.equal(status, 302, 'the session ends on the other process at its next store check')
      }
    })
  })
}

test("sessions.store 'redis' without the top-level redis is refused at start, naming the setting", async () => {
  await assert.rejects(
    startServer({
      dataDir: folder(),
      auth: { providers: { test: { issuer: idp.issuer, clientId: 'edgebox', clientSecret: 'a client secret for the tests' } }, sessions: { store: 'redis' } },
      sites: [{ routes: [{ path: '/', proxy: { upstreams: [app.origin] }, auth: true }] }],
    }),
    { name: 'ConfigError', message: "auth.sessions.store: the redis store needs the top-level redis (redis: 'redis://host:port')" },
  )
})

test('with the store of logins unreachable (Redis down), a login answers 503 with Retry-After, and nothing else fails', { timeout: 30_000 }, async () => {
  const own = await startRedis()
  const box = await node(await freePort(), { dataDir: folder(), redis: own.url })
  try {
    await own.kill()
    const res = await new Browser().fetch(`${box.url}reports`)
    assert.equal(res.status, 503)
    assert.equal(res.headers.get('retry-after'), '30')
    assert.equal(res.headers.get('cache-control'), 'no-store')
    assert.match(await res.text(), /cannot reach the store that keeps sign-ins/)
    // the callback too: a state it cannot look up is not "expired", it is unavailable
    const back = await new Browser().fetch(`${box.url}_edgebox/auth/callback?state=abc&code=x`)
    assert.equal(back.status, 503)
    // and the next request, to a route without a gate, is served
    assert.equal((await fetch(`${box.url}open/x`)).status, 200)
  } finally {
    await box.close()
    await own.close()
  }
})
