import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { after, before, test } from 'node:test'
import { pino } from 'pino'
import { openRedis, type RedisBus } from '../../src/core/redis.ts'
import { RedisEngine } from '../../src/realtime/redis-engine.ts'
import type { PresenceEvent } from '../../src/realtime/engine.ts'
import { startRedis, type RedisServer } from '../helpers/redis.ts'

/**
 * Presence across nodes on Redis (docs/realtime.md, docs/scale.md): names
 * are kept per node, each node saying it is alive; the names of a node
 * that dies without saying goodbye leave within the presence lifetime,
 * announced once by a node still alive, unless another node still has them.
 */

const TTL = 600
const silent = pino({ level: 'silent' })
let redis: RedisServer
const buses: RedisBus[] = []

before(async () => {
  redis = await startRedis()
})

after(async () => {
  for (const b of buses) await b.close()
  await redis.close()
})

async function node(namespace: string): Promise<{ bus: RedisBus; engine: RedisEngine }> {
  const bus = openRedis({ url: redis.url, keyPrefix: 'edgebox-test:', commandTimeout: 2_000 }, silent)
  buses.push(bus)
  assert.equal(await bus.whenUp(5_000), true)
  return { bus, engine: new RedisEngine(bus, { namespace, log: silent, presenceTtl: TTL }) }
}

async function until(pred: () => Promise<boolean> | boolean, what: string, ms = 5_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

test("a node that dies: its names leave within the presence lifetime, announced once; a name another node still has stays", async () => {
  const ns = randomUUID()
  const a = await node(ns)
  const b = await node(ns)
  const c = await node(ns)
  const heard: string[] = []
  const stop = b.engine.listenPresence('room', (e: PresenceEvent) => heard.push(`${e.t}:${e.who}`))
  const alsoHeard: string[] = []
  const stopC = c.engine.listenPresence('room', (e: PresenceEvent) => alsoHeard.push(`${e.t}:${e.who}`))
  await a.engine.join('room', 'alice')
  await a.engine.join('room', 'carol')
  await b.engine.join('room', 'bob')
  await b.engine.join('room', 'carol') // carol has a tab on node B too
  assert.deepEqual((await b.engine.members('room')).sort(), ['alice', 'bob', 'carol'])

  // node A dies: no leave, no heartbeat
  await a.engine.close()
  await a.bus.close()
  const died = Date.now()
  await until(async () => !(await b.engine.members('room')).includes('alice'), 'alice gone from the members')
  assert.ok(Date.now() - died < TTL + 1_000, `gone within the lifetime (${Date.now() - died} ms)`)
  await until(() => heard.includes('leave:alice') && alsoHeard.includes('leave:alice'), 'leave:alice heard on B and C')
  await new Promise((r) => setTimeout(r, TTL))
  assert.deepEqual(heard, ['join:alice', 'join:carol', 'join:bob', 'leave:alice'], 'carol stays: node B still has her; alice left once')
  assert.deepEqual((await c.engine.members('room')).sort(), ['bob', 'carol'])
  stop()
  stopC()
  await b.engine.close()
  await c.engine.close()
})

test('names of a live node stay past the lifetime: it keeps saying it is alive', async () => {
  const ns = randomUUID()
  const a = await node(ns)
  const b = await node(ns)
  await a.engine.join('room', 'dave')
  await new Promise((r) => setTimeout(r, TTL * 3))
  assert.deepEqual(await b.engine.members('room'), ['dave'])
  await a.engine.leave('room', 'dave')
  assert.deepEqual(await b.engine.members('room'), [])
  await a.engine.close()
  await b.engine.close()
})
