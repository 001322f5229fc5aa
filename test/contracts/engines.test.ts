import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { Redis } from 'ioredis'
import { pino } from 'pino'
import type { Engine, Message } from '../../src/realtime/engine.ts'
import { MemoryEngine } from '../../src/realtime/memory-engine.ts'
import { RedisEngine } from '../../src/realtime/redis-engine.ts'
import { openRedis, type RedisBus } from '../../src/core/redis.ts'
import type { Clock } from '../../src/core/clock.ts'
import { ManualClock } from '../helpers/clock.ts'
import { startRedis, startRedisCluster, type RedisCluster, type RedisServer } from '../helpers/redis.ts'
import { captureLog } from '../helpers/server.ts'

/**
 * The contract every realtime engine passes (docs/realtime.md): offsets,
 * epochs, history bounds, gaps, exactly-once publishing by id, ordered
 * fan-out and presence. The Redis engine runs it against a real
 * redis-server and against a real Redis Cluster of three masters, where a
 * script whose keys were in several slots would fail (each engine in a
 * namespace of its own, so every test starts from new channels).
 */

let redis: RedisServer | undefined
let bus: RedisBus | undefined
let cluster: RedisCluster | undefined
let clusterBus: RedisBus | undefined
const silent = pino({ level: 'silent' })
/** What the engines on the cluster logged: a failed command (a CROSSSLOT among them) makes an engine fall back to memory and say so. */
const { logger: clusterLogger, text: clusterLog } = captureLog('warn')

const engines: Array<{ name: string; make(clock: Clock): Engine }> = [
  { name: 'memory', make: (clock) => new MemoryEngine({ clock }) },
  { name: 'redis', make: (clock) => new RedisEngine(bus!, { namespace: randomUUID(), clock, log: silent }) },
  { name: 'redis cluster', make: (clock) => new RedisEngine(clusterBus!, { namespace: randomUUID(), clock, log: clusterLogger }) },
]

before(async () => {
  redis = await startRedis()
  bus = openRedis({ url: redis.url, keyPrefix: 'edgebox-test:', commandTimeout: 2_000 }, silent)
  assert.equal(await bus.whenUp(5_000), true, 'redis is up')
  cluster = await startRedisCluster()
  clusterBus = openRedis({ url: 'redis://cluster', cluster: cluster.hosts, keyPrefix: 'edgebox-test:', commandTimeout: 2_000 }, silent)
  assert.equal(await clusterBus.whenUp(5_000), true, 'the cluster is up')
})

after(async () => {
  await bus?.close()
  await redis?.close()
  await clusterBus?.close()
  await cluster?.close()
})

const H = { size: 3, age: 0 }

for (const { name, make } of engines) {
  describe(`engine contract: ${name}`, () => {
    const clock = new ManualClock()

    test('a new channel starts at offset 0 of a fresh epoch; offsets then count 1, 2, 3 without holes', async () => {
      const e = make(clock)
      const p0 = await e.position('c')
      assert.equal(p0.o, 0)
      assert.match(p0.e, /^[A-Za-z0-9]{4,}$/)
      const offsets = []
      for (let i = 0; i < 4; i++) offsets.push((await e.publish('c', { i }, { history: H })).message.o)
      assert.deepEqual(offsets, [1, 2, 3, 4])
      assert.deepEqual(await e.position('c'), { e: p0.e, o: 4 })
      assert.notEqual((await e.position('other')).e, undefined)
      await e.close()
    })

    test('since a position returns the later messages in order; since the latest returns none', async () => {
      const e = make(clock)
      const { e: epoch } = await e.position('c')
      for (const d of ['a', 'b', 'c']) await e.publish('c', d, { history: H })
      const s = await e.since('c', { e: epoch, o: 1 }, H)
      assert.equal(s.gap, false)
      assert.deepEqual(s.messages.map((m) => [m.o, m.d]), [[2, 'b'], [3, 'c']])
      assert.deepEqual(s.position, { e: epoch, o: 3 })
      const none = await e.since('c', { e: epoch, o: 3 }, H)
      assert.deepEqual([none.gap, none.messages.length], [false, 0])
      const all = await e.since('c', { e: epoch, o: 0 }, H)
      assert.deepEqual(all.messages.map((m) => m.d), ['a', 'b', 'c'])
      await e.close()
    })

    test('a gap: another epoch, a position older than the history, or one in the future', async () => {
      const e = make(clock)
      const { e: epoch } = await e.position('c')
      for (let i = 1; i <= 5; i++) await e.publish('c', i, { history: H }) // keeps 3, 4, 5
      assert.equal((await e.since('c', { e: 'other', o: 4 }, H)).gap, true)
      const old = await e.since('c', { e: epoch, o: 1 }, H)
      assert.deepEqual([old.gap, old.messages.length, old.position.o], [true, 0, 5])
      assert.deepEqual((await e.since('c', { e: epoch, o: 2 }, H)).messages.map((m) => m.d), [3, 4, 5], 'offset 3 is still held: no gap')
      assert.equal((await e.since('c', { e: epoch, o: 9 }, H)).gap, true)
      await e.close()
    })

    test('messages older than the age bound leave the history', async () => {
      const e = make(clock)
      const limits = { size: 100, age: 10_000 }
      const { e: epoch } = await e.position('c')
      await e.publish('c', 'old', { history: limits })
      clock.advance(6_000)
      await e.publish('c', 'new', { history: limits })
      clock.advance(4_000)
      const kept = await e.since('c', { e: epoch, o: 0 }, limits)
      assert.deepEqual(kept.messages.map((m) => m.d), ['old', 'new'], 'exactly as old as the bound: still held')
      clock.advance(1)
      const s = await e.since('c', { e: epoch, o: 0 }, limits)
      assert.equal(s.gap, true, 'offset 1 expired')
      assert.deepEqual((await e.since('c', { e: epoch, o: 1 }, limits)).messages.map((m) => m.d), ['new'])
      await e.close()
    })

    test('a publish id already in the history is not published again', async () => {
      const e = make(clock)
      const seen: Message[] = []
      e.listen('c', (m) => seen.push(m))
      const first = await e.publish('c', 'hello', { id: 'p-1', history: H })
      const again = await e.publish('c', 'hello', { id: 'p-1', history: H })
      assert.equal(again.duplicate, true)
      assert.equal(again.message.o, first.message.o)
      assert.equal(seen.length, 1)
      assert.equal((await e.publish('c', 'x', { id: 'p-2', history: H })).message.o, 2)
      await e.close()
    })

    test('listeners get every message in publish order until they stop listening', async () => {
      const e = make(clock)
      const got: number[] = []
      const stop = e.listen('c', (m) => got.push(m.o))
      await Promise.all([1, 2, 3, 4, 5].map((i) => e.publish('c', i, { history: H })))
      stop()
      await e.publish('c', 6, { history: H })
      assert.deepEqual(got, [1, 2, 3, 4, 5])
      await e.close()
    })

    test('history size 0 keeps nothing: any earlier position is a gap', async () => {
      const e = make(clock)
      const none = { size: 0, age: 0 }
      const { e: epoch } = await e.position('c')
      await e.publish('c', 1, { history: none })
      await e.publish('c', 2, { history: none })
      assert.equal((await e.since('c', { e: epoch, o: 1 }, none)).gap, true)
      assert.equal((await e.since('c', { e: epoch, o: 2 }, none)).gap, false)
      await e.close()
    })

    test('presence: the first join and the last leave of a name are announced; members lists each name once', async () => {
      const e = make(clock)
      const events: string[] = []
      const stop = e.listenPresence('room', (ev) => events.push(`${ev.t}:${ev.who}`))
      await e.join('room', 'alice')
      await e.join('room', 'alice') // a second tab
      await e.join('room', 'bob')
      assert.deepEqual((await e.members('room')).sort(), ['alice', 'bob'])
      await e.leave('room', 'alice')
      assert.deepEqual((await e.members('room')).sort(), ['alice', 'bob'], 'alice still has a tab open')
      await e.leave('room', 'alice')
      await e.leave('room', 'carol') // never joined: nothing happens
      stop()
      await e.leave('room', 'bob')
      assert.deepEqual(events, ['join:alice', 'join:bob', 'leave:alice'])
      assert.deepEqual(await e.members('room'), [])
      await e.close()
    })
  })
}

test('on the cluster every script ran where its keys are: no engine fell back, and the channels are spread over the masters', async () => {
  // 40 more channels, each in a slot of its own: all three masters have some
  const e = new RedisEngine(clusterBus!, { namespace: randomUUID(), log: clusterLogger })
  for (let i = 0; i < 40; i++) await e.publish(`spread-${i}`, i, { history: H })
  await e.close()
  assert.deepEqual(clusterLog, [], 'no command failed')
  const perNode = []
  for (const n of cluster!.nodes) {
    const r = new Redis(n.port, { lazyConnect: true })
    try {
      perNode.push((await r.keys('edgebox-test:rt:*')).length)
    } finally {
      r.disconnect()
    }
  }
  assert.equal(perNode.filter((count) => count > 0).length, 3, `each master holds channels: ${perNode.join(', ')}`)
})
