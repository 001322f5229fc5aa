import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { pino } from 'pino'
import { MemoryRateLimitStore, type SharedRateLimitStore } from '../../src/core/rate-limit-store.ts'
import { RedisRateLimitStore } from '../../src/core/redis-rate-limit-store.ts'
import { openRedis, type RedisBus } from '../../src/core/redis.ts'
import { startRedis, startRedisCluster, type RedisCluster, type RedisServer } from '../helpers/redis.ts'
import { captureLog } from '../helpers/server.ts'

/**
 * The contract of the rate limiter's token buckets (docs/security.md):
 * capacity, refill, what is left, when the next token comes. The Redis
 * store runs it against a real redis-server and a real Redis Cluster of
 * three masters, and also shows the point of it: two nodes take from one
 * bucket, never the same token twice.
 */

let redis: RedisServer
let cluster: RedisCluster
const buses: RedisBus[] = []
const silent = pino({ level: 'silent' })
/** What the stores on the cluster logged: a failed command makes a store count in memory and say so. */
const { logger: clusterLogger, text: clusterLog } = captureLog('warn')

async function bus(): Promise<RedisBus> {
  const b = openRedis({ url: redis.url, keyPrefix: `t${randomUUID().slice(0, 8)}:`, commandTimeout: 2_000 }, silent)
  buses.push(b)
  assert.equal(await b.whenUp(5_000), true)
  return b
}

async function clusterBus(): Promise<RedisBus> {
  const b = openRedis({ url: 'redis://cluster', cluster: cluster.hosts, keyPrefix: `t${randomUUID().slice(0, 8)}:`, commandTimeout: 2_000 }, silent)
  buses.push(b)
  assert.equal(await b.whenUp(5_000), true)
  return b
}

before(async () => {
  redis = await startRedis()
  cluster = await startRedisCluster()
})

after(async () => {
  for (const b of buses) await b.close()
  await redis.close()
  await cluster.close()
})

const stores: Array<{ name: string; make(): Promise<SharedRateLimitStore> }> = [
  { name: 'memory', make: async () => new MemoryRateLimitStore() },
  { name: 'redis', make: async () => new RedisRateLimitStore(await bus(), silent) },
  { name: 'redis cluster', make: async () => new RedisRateLimitStore(await clusterBus(), clusterLogger) },
]

const T0 = 1_800_000_000_000

for (const { name, make } of stores) {
  describe(`rate-limit store contract: ${name}`, () => {
    test('a full bucket gives `capacity` tokens, then refuses with the time to the next one', async () => {
      const s = await make()
      const perMs = 2 / 1000 // 2 a second
      const got = []
      for (let i = 0; i < 4; i++) got.push(await s.take('k', T0, 3, perMs))
      assert.deepEqual(
        got.map((t) => [t.allowed, t.remaining]),
        [
          [true, 2],
          [true, 1],
          [true, 0],
          [false, 0],
        ],
      )
      assert.equal(got[3]!.retryAfterMs, 500, 'one token comes in 500 ms')
      assert.equal(got[2]!.fullInMs, 1500, 'three tokens to refill at 2/s')
    })

    test('tokens come back with time, never beyond the capacity', async () => {
      const s = await make()
      const perMs = 1 / 1000
      for (let i = 0; i < 5; i++) await s.take('k', T0, 5, perMs)
      assert.equal((await s.take('k', T0, 5, perMs)).allowed, false)
      const later = await s.take('k', T0 + 2_000, 5, perMs)
      assert.deepEqual([later.allowed, later.remaining], [true, 1])
      const much = await s.take('k', T0 + 60_000, 5, perMs)
      assert.deepEqual([much.allowed, much.remaining], [true, 4], 'refilled to 5, one taken')
    })

    test('keys are separate buckets', async () => {
      const s = await make()
      assert.equal((await s.take('a', T0, 1, 0.001)).allowed, true)
      assert.equal((await s.take('a', T0, 1, 0.001)).allowed, false)
      assert.equal((await s.take('b', T0, 1, 0.001)).allowed, true)
    })
  })
}

test('two nodes on one Redis take from one bucket: of 60 concurrent takes with capacity 20, exactly 20 are allowed', async () => {
  const shared = await bus()
  const other = openRedis({ ...shared.settings }, silent)
  buses.push(other)
  assert.equal(await other.whenUp(5_000), true)
  const a = new RedisRateLimitStore(shared, silent)
  const b = new RedisRateLimitStore(other, silent)
  const takes = await Promise.all(Array.from({ length: 60 }, (_, i) => (i % 2 ? a : b).take('login', T0, 20, 0.000001)))
  assert.equal(takes.filter((t) => t.allowed).length, 20)
})

test('two nodes on one Redis Cluster take from one bucket: exactly 20 of 60 allowed, and no take was counted in memory', async () => {
  const first = await clusterBus()
  const second = openRedis({ ...first.settings }, silent)
  buses.push(second)
  assert.equal(await second.whenUp(5_000), true)
  const a = new RedisRateLimitStore(first, clusterLogger)
  const b = new RedisRateLimitStore(second, clusterLogger)
  const takes = await Promise.all(Array.from({ length: 60 }, (_, i) => (i % 2 ? a : b).take('login', T0, 20, 0.000001)))
  assert.equal(takes.filter((t) => t.allowed).length, 20)
  assert.deepEqual(clusterLog, [], 'no command failed (the contract above included)')
})

test('with Redis away, a node counts in its own memory and goes on answering', async () => {
  const own = await startRedis()
  const b = openRedis({ url: own.url, keyPrefix: 'x:', commandTimeout: 500 }, silent)
  try {
    assert.equal(await b.whenUp(5_000), true)
    const s = new RedisRateLimitStore(b, silent)
    assert.equal((await s.take('k', T0, 2, 0.000001)).remaining, 1)
    await own.kill()
    const end = Date.now() + 3_000
    while (b.up && Date.now() < end) await new Promise((r) => setTimeout(r, 10))
    const local = [await s.take('k', T0, 2, 0.000001), await s.take('k', T0, 2, 0.000001), await s.take('k', T0, 2, 0.000001)]
    assert.deepEqual(
      local.map((t) => t.allowed),
      [true, true, false],
      'a fresh bucket in memory, still limited',
    )
  } finally {
    await b.close()
    await own.close()
  }
})
