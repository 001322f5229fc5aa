import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { request, startServer, type TestServer } from '../helpers/server.ts'
import { startRedis, type RedisServer } from '../helpers/redis.ts'

/**
 * A route's rate limit counts the requests of every node sharing a Redis
 * (docs/scale.md): a client that spreads its requests over two nodes gets
 * the limit once, not once per node. With Redis away each node counts on
 * its own and keeps serving.
 */

let redis: RedisServer
let a: TestServer
let b: TestServer

before(async () => {
  redis = await startRedis()
  const config = {
    redis: redis.url,
    sites: [{ routes: [{ path: '/', redirect: { to: '/elsewhere' }, rateLimit: { requests: 4, per: '1m' } }] }],
  }
  a = await startServer(config)
  b = await startServer(config)
})

after(async () => {
  await Promise.all([a.close(), b.close()])
  await redis.close()
})

test('four requests a minute, spread over two nodes: the fifth is refused, on either node', async () => {
  const remaining = []
  for (const n of [a, b, a, b]) {
    const r = await request('http/1.1', n.url + 'x')
    assert.notEqual(r.status, 429)
    remaining.push(r.headers['ratelimit-remaining'])
  }
  assert.deepEqual(remaining, ['3', '2', '1', '0'])
  for (const n of [a, b]) {
    const r = await request('http/1.1', n.url + 'x')
    assert.equal(r.status, 429)
    assert.equal(r.headers['retry-after'], '15')
    assert.equal(r.headers['ratelimit-remaining'], '0')
  }
})

test('with Redis away, each node counts on its own and still answers', async () => {
  await redis.kill()
  try {
    const end = Date.now() + 5_000
    let r = await request('http/1.1', a.url + 'x')
    while (r.status === 429 && Date.now() < end) {
      await new Promise((res) => setTimeout(res, 20))
      r = await request('http/1.1', a.url + 'x')
    }
    assert.equal(r.status, 302, 'a fresh bucket on this node')
    assert.equal(r.headers['ratelimit-remaining'], '3')
  } finally {
    await redis.start()
  }
})
