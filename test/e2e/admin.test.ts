import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { request, startServer, tempDir, type TestServer } from '../helpers/server.ts'

/**
 * The admin listener over real sockets: its own port on loopback, the API
 * for this machine's user without a login, refusals that name why, never on
 * a site's listener, and fixed at start (a reload cannot move it).
 */

let box: TestServer
let admin: string
let port: number
let cleanup: () => void

before(async () => {
  let dir: string
  ;({ dir, cleanup } = tempDir())
  box = await startServer({
    admin: { port: 0 },
    rum: { api: { port: 0, token: 'r'.repeat(40) } },
    sites: [{ rum: true, routes: [{ path: '/', static: { root: dir } }] }],
  })
  admin = box.box.admin!.url
  port = box.box.admin!.port
})

after(async () => {
  await box?.close()
  cleanup?.()
})

const call = (path: string, opts: { method?: string; headers?: Record<string, string> } = {}) => request('http/1.1', `${admin}${path.replace(/^\//, '')}`, opts)

test('GET /api/v1/config: the configuration in force as JSON, secrets redacted, not stored by caches', async () => {
  const r = await call('/api/v1/config')
  assert.equal(r.status, 200, r.text)
  assert.equal(r.headers['content-type'], 'application/json; charset=utf-8')
  assert.equal(r.headers['cache-control'], 'no-store')
  const { config } = JSON.parse(r.text) as { config: { admin: { port: number }; rum: { api: { token: string } }; sites: unknown[] } }
  assert.equal(config.admin.port, 0)
  assert.equal(config.rum.api.token, '<redacted>')
  assert.ok(!r.text.includes('r'.repeat(40)))
  assert.equal(config.sites.length, 1)
  const head = await call('/api/v1/config', { method: 'HEAD' })
  assert.equal(head.status, 200)
  assert.equal(head.text, '')
})

test('refused, each with its reason, and the next good request is answered', async () => {
  const cases: Array<[string, Parameters<typeof call>[1], number, RegExp]> = [
    ['a rebound name', { headers: { host: `attacker.example:${port}` } }, 403, /Host must be localhost/],
    ['through a proxy', { headers: { 'x-forwarded-for': '203.0.113.9' } }, 403, /through a proxy/],
    ['a POST without Origin', { method: 'POST' }, 403, /a POST needs Origin/],
    ['a POST from another origin', { method: 'POST', headers: { origin: 'https://attacker.example' } }, 403, /a POST needs Origin/],
  ]
  for (const [what, opts, status, why] of cases) {
    const r = await call('/api/v1/config', opts)
    assert.equal(r.status, status, `${what}: ${r.text}`)
    assert.match((JSON.parse(r.text) as { error: string }).error, why, what)
  }
  // a same-origin POST passes the door, and the path says it takes GET only
  const post = await call('/api/v1/config', { method: 'POST', headers: { origin: `http://127.0.0.1:${port}` } })
  assert.equal(post.status, 405)
  assert.equal(post.headers.allow, 'GET, HEAD')
  const missing = await call('/api/v1/nothing')
  assert.equal(missing.status, 404)
  assert.match(missing.text, /under \/api\/v1\//)
  assert.equal((await call('/api/v1/config')).status, 200)
})

test('never on a site listener: the site has only its public endpoints', async () => {
  assert.equal((await request('http/1.1', `${box.url}api/v1/config`)).status, 404)
})

test('a reload cannot move the admin listener; one that keeps it applies', async () => {
  const cfg = box.box.config
  await assert.rejects(box.box.reload({ ...cfg, admin: { host: '127.0.0.1', port: port + 1 } } as typeof cfg), /admin: the admin listener cannot change on reload/)
  await box.box.reload(cfg)
  assert.equal((await call('/api/v1/config')).status, 200)
})
