import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, test } from 'node:test'
import { startEdgebox, type Edgebox } from '../../src/server/app.ts'
import { captureLog, request, tempDir } from '../helpers/server.ts'
import { startRedis, type RedisServer } from '../helpers/redis.ts'

/**
 * Purges reach every node sharing a Redis (docs/scale.md): two edges cache
 * one origin; a PURGE on one (by URL, prefix or tag) or a purge through the
 * admin API empties both. With Redis away, a purge still empties the node
 * it was made on, and says in the log that the others were not told.
 */

const TOKEN = 'purge-token-0123456789'
const asked = new Map<string, number>()
const origin = http.createServer((req, res) => {
  const path = new URL(req.url!, 'http://x').pathname
  asked.set(path, (asked.get(path) ?? 0) + 1)
  res.writeHead(200, { 'cache-control': 'max-age=600', 'surrogate-key': path.startsWith('/news/') ? 'news' : 'other', 'content-type': 'text/plain' })
  res.end(`${path} #${asked.get(path)}`)
})

let redis: RedisServer
const nodes: Array<{ box: Edgebox; url: string; lines: string[] }> = []
const dirs: Array<{ cleanup(): void }> = []

async function node(redisUrl: string): Promise<{ box: Edgebox; url: string; lines: string[] }> {
  const { logger: log, text: lines } = captureLog('info')
  const originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`
  const data = tempDir()
  dirs.push(data)
  const box = await startEdgebox(
    {
      redis: redisUrl,
      dataDir: data.dir,
      listen: [{ host: '127.0.0.1', port: 0 }],
      log: { access: false },
      admin: { host: '127.0.0.1', port: 0 },
      sites: [{ routes: [{ path: '/', proxy: { upstreams: [originUrl], cache: { purge: { token: TOKEN } } } }] }],
    },
    { log },
  )
  return { box, url: box.urls[0]!, lines }
}

before(async () => {
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r))
  redis = await startRedis()
  nodes.push(await node(redis.url), await node(redis.url))
})

after(async () => {
  await Promise.all(nodes.map((n) => n.box.close()))
  await redis.close()
  origin.close()
  for (const d of dirs) d.cleanup()
})

const get = async (n: { url: string }, path: string) => {
  const r = await request('http/1.1', n.url + path.slice(1))
  assert.equal(r.status, 200)
  return String(r.headers['cache-status'])
}

const purge = (n: { url: string }, path: string, headers: Record<string, string> = {}) =>
  request('http/1.1', n.url + path.slice(1), { method: 'PURGE', headers: { authorization: `Bearer ${TOKEN}`, ...headers } })

/** Waits until `path` is a miss on node `n` (the purge arrived), at most 3 s. */
async function missOn(n: { url: string }, path: string): Promise<void> {
  const end = Date.now() + 3_000
  for (;;) {
    const status = await get(n, path)
    if (/fwd=miss/.test(status)) return
    if (Date.now() > end) throw new Error(`${path} is still stored on the other node: ${status}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

async function storedOnBoth(path: string): Promise<void> {
  for (const n of nodes) {
    await get(n, path)
    assert.match(await get(n, path), /hit/, `${path} stored on ${n.url}`)
  }
}

test('a PURGE on one node empties the other nodes too: by URL, by prefix, by tag', async () => {
  const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]]
  await storedOnBoth('/page')
  assert.equal((await purge(a, '/page')).status, 200)
  await missOn(b, '/page')

  await storedOnBoth('/assets/app.js')
  await storedOnBoth('/assets/app.css')
  assert.equal(JSON.parse((await purge(b, '/assets/*')).text).purged, 2)
  await missOn(a, '/assets/app.js')
  await missOn(a, '/assets/app.css')

  await storedOnBoth('/news/today')
  await storedOnBoth('/other')
  assert.equal((await purge(a, '/', { 'edgebox-purge-tag': 'news' })).status, 200)
  await missOn(b, '/news/today')
  assert.match(await get(b, '/other'), /hit/, 'only the tag went')
})

test("the admin API's purge reaches the other nodes too", async () => {
  const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]]
  await storedOnBoth('/admin-purged')
  const r = await request('http/1.1', `${a.box.admin!.url}api/v1/cache/purge`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: a.box.admin!.url.slice(0, -1) },
    body: JSON.stringify({ route: 'sites[0].routes[0]', url: '/admin-purged', host: new URL(a.url).host }),
  })
  assert.equal(r.status, 200, r.text)
  await missOn(b, '/admin-purged')
})

test('with Redis away, a purge empties this node, the others keep theirs, and the log says so', async () => {
  const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]]
  await storedOnBoth('/during-outage')
  await redis.kill()
  try {
    const r = await purge(a, '/during-outage')
    assert.equal(r.status, 200)
    assert.deepEqual(JSON.parse(r.text), { purged: 1, what: 'url /during-outage' })
    assert.match(await get(a, '/during-outage'), /fwd=miss/, 'gone here')
    assert.match(await get(b, '/during-outage'), /hit/, 'still stored on the other node')
    const end = Date.now() + 3_000
    while (!a.lines.some((l) => l.includes('cache purge applied on this node only'))) {
      if (Date.now() > end) throw new Error(`no log line: ${a.lines.join('')}`)
      await new Promise((r) => setTimeout(r, 20))
    }
    assert.equal((await request('http/1.1', b.url + 'page')).status, 200, 'both still serve')
  } finally {
    await redis.start()
  }
})
