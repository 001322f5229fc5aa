import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, test } from 'node:test'
import { request, startServer, tempDir, type TestServer } from '../helpers/server.ts'
import { startRedis, type RedisServer } from '../helpers/redis.ts'

/**
 * The CSRF token a page got from one Edgebox process passes on another
 * (docs/security.md, docs/scale.md): across nodes sharing a Redis, across a
 * restart on the same data folder, across a reload. Without a secret of its
 * own, a route signs with the deployment's secret.
 */

let app: http.Server
let upstream: string
let redis: RedisServer
const cleanups: Array<() => void> = []

before(async () => {
  app = http.createServer((req, res) => {
    req.resume()
    res.writeHead(200, { 'content-type': 'text/plain' }).end('done')
  })
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r))
  upstream = `http://127.0.0.1:${(app.address() as AddressInfo).port}`
  redis = await startRedis()
})

after(async () => {
  await redis.close()
  await new Promise((r) => app.close(r))
  for (const c of cleanups) c()
})

const config = (extra: Record<string, unknown> = {}) => ({
  ...extra,
  sites: [{ routes: [{ path: '/', proxy: { upstreams: [upstream] }, csrf: { token: true } }] }],
})

async function tokenFrom(srv: TestServer): Promise<string> {
  const page = await request('http/1.1', srv.url + 'form')
  const csrf = ([] as string[]).concat(page.headers['set-cookie'] ?? []).find((c) => c.startsWith('edgebox_csrf='))!
  return csrf.split(';')[0]!.slice('edgebox_csrf='.length)
}

async function submit(srv: TestServer, token: string): Promise<number> {
  const r = await request('http/1.1', srv.url + 'transfer', {
    method: 'POST',
    headers: { origin: srv.url.slice(0, -1), 'sec-fetch-site': 'same-origin', cookie: `edgebox_csrf=${token}`, 'x-csrf-token': token, 'content-type': 'text/plain' },
    body: 'x',
  })
  return r.status
}

function dataDir(): string {
  const d = tempDir()
  cleanups.push(d.cleanup)
  return d.dir
}

test('a token issued by node A passes on node B when they share a Redis; a node with its own secret refuses it', async () => {
  const a = await startServer(config({ redis: redis.url, dataDir: dataDir() }))
  const b = await startServer(config({ redis: redis.url, dataDir: dataDir() }))
  const alone = await startServer(config({ dataDir: dataDir() }))
  try {
    const token = await tokenFrom(a)
    assert.equal(await submit(b, token), 200)
    assert.equal(await submit(a, token), 200)
    assert.equal(await submit(alone, token), 403, 'another deployment: another secret')
  } finally {
    await Promise.all([a.close(), b.close(), alone.close()])
  }
})

test('a token outlives a restart on the same data folder, and a reload', async () => {
  const dir = dataDir()
  let srv = await startServer(config({ dataDir: dir }))
  let token: string
  try {
    token = await tokenFrom(srv)
    await srv.box.reload({ ...config({ dataDir: dir }), listen: srv.box.config.listen, log: srv.box.config.log })
    assert.equal(await submit(srv, token), 200, 'after a reload')
  } finally {
    await srv.close()
  }
  srv = await startServer(config({ dataDir: dir }))
  try {
    assert.equal(await submit(srv, token), 200, 'after a restart')
  } finally {
    await srv.close()
  }
})
