import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { after, before, test } from 'node:test'
import { pino } from 'pino'
import { openRedis, type RedisBus } from '../../src/core/redis.ts'
import type { Message } from '../../src/realtime/engine.ts'
import { RedisEngine } from '../../src/realtime/redis-engine.ts'
import { until } from '../helpers/realtime-clients.ts'
import { startRedis, type RedisServer } from '../helpers/redis.ts'

/**
 * The Redis engine when its two connections to Redis are not in the same
 * state: a node's subscriber connection and command connection reconnect
 * each on its own, so for a moment one may carry messages while the other
 * still fails. A real Redis, a real engine; the node under test reaches
 * Redis through a bus whose connections the test cuts and restores one at
 * a time (`faulty`), as a restart of Redis does in some order.
 */

const silent = pino({ level: 'silent' })
const H = { size: 100, age: 0 }

let redis: RedisServer | undefined
let bus: RedisBus | undefined

before(async () => {
  redis = await startRedis()
  bus = openRedis({ url: redis.url, keyPrefix: 'edgebox-test:', commandTimeout: 2_000 }, silent)
  assert.equal(await bus.whenUp(5_000), true, 'redis is up')
})

after(async () => {
  await bus?.close()
  await redis?.close()
})

interface Faulty {
  readonly bus: RedisBus
  /** Both connections away: commands fail at once, pub/sub messages are lost. */
  cut(): void
  /** The subscriber connection is back: pub/sub messages flow and every subscription is told it resumed. */
  subscriberBack(): void
  /** The command connection is back (after the subscriber's). */
  commandBack(): void
}

/** A bus over the shared one whose connections the test cuts and brings back. */
function faulty(real: RedisBus): Faulty {
  let commandDown = false
  let pubsubDown = false
  const changes = new Set<(up: boolean) => void>()
  const resumes = new Set<() => void>()
  const command = new Proxy(real.command, {
    get(target, prop) {
      const v: unknown = Reflect.get(target, prop, target)
      if (typeof v !== 'function') return v
      if (commandDown && prop !== 'defineCommand') return () => Promise.reject(new Error('Connection is closed.'))
      return (v as (...a: unknown[]) => unknown).bind(target)
    },
  })
  const fb: RedisBus = {
    command,
    keyPrefix: real.keyPrefix,
    nodeId: `faulty-${randomUUID()}`,
    get up() {
      return !commandDown && real.up
    },
    settings: real.settings,
    subscribe(channel, message, resumed) {
      const sub = real.subscribe(channel, (p) => void (pubsubDown || message(p)), resumed)
      if (resumed) resumes.add(resumed)
      return {
        ready: sub.ready,
        stop() {
          if (resumed) resumes.delete(resumed)
          sub.stop()
        },
      }
    },
    publish: (channel, payload) => (commandDown ? Promise.resolve(false) : real.publish(channel, payload)),
    onChange(fn) {
      changes.add(fn)
      return () => changes.delete(fn)
    },
    whenUp(ms) {
      if (fb.up) return Promise.resolve(true)
      return new Promise((resolve) => {
        const on = (up: boolean) => {
          if (!up) return
          clearTimeout(timer)
          changes.delete(on)
          resolve(true)
        }
        const timer = setTimeout(() => {
          changes.delete(on)
          resolve(false)
        }, ms)
        changes.add(on)
      })
    },
    close: async () => {},
  }
  const tell = (up: boolean) => {
    for (const fn of [...changes]) fn(up)
  }
  return {
    bus: fb,
    cut() {
      commandDown = true
      pubsubDown = true
      tell(false)
    },
    subscriberBack() {
      pubsubDown = false
      for (const fn of [...resumes]) fn()
    },
    commandBack() {
      commandDown = false
      tell(true)
    },
  }
}

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms))

test('subscriber connection back before the command connection: the catch-up waits for it, and nothing is delivered with a hole', { timeout: 20_000 }, async () => {
  const ns = randomUUID()
  const f = faulty(bus!)
  const a = new RedisEngine(f.bus, { namespace: ns, log: silent })
  const b = new RedisEngine(bus!, { namespace: ns, log: silent })
  const ch = 'catch-up:1'
  const got: number[] = []
  const stop = a.listen(ch, (m: Message) => got.push(m.d as number))
  try {
    await a.position(ch) // subscribed
    await b.publish(ch, 1, { history: H })
    await until(() => got.length === 1, () => `the first message (got ${JSON.stringify(got)})`, 5_000)
    f.cut()
    // published while this node hears nothing: only the stream has them
    await b.publish(ch, 2, { history: H })
    await b.publish(ch, 3, { history: H })
    // the subscriber connection returns first: the catch-up cannot read yet
    f.subscriberBack()
    await b.publish(ch, 4, { history: H })
    await settle(200)
    assert.deepEqual(got, [1], 'message 4 waits for 2 and 3: not delivered before them')
    f.commandBack()
    await until(() => got.length >= 4, () => `every message (got ${JSON.stringify(got)})`, 5_000)
    await settle(100)
    assert.deepEqual(got, [1, 2, 3, 4])
  } finally {
    stop()
    await a.close()
    await b.close()
  }
})

test('with Redis away, a subscriber at a Redis position stays there; one that began meanwhile resumes at the current position, not from the start of the history', { timeout: 20_000 }, async () => {
  const ns = randomUUID()
  const f = faulty(bus!)
  const a = new RedisEngine(f.bus, { namespace: ns, log: silent })
  const b = new RedisEngine(bus!, { namespace: ns, log: silent })
  const ch = 'away:1'
  const stop = a.listen(ch, () => {})
  try {
    for (let i = 1; i <= 3; i++) await b.publish(ch, i, { history: H })
    const p3 = await a.position(ch)
    assert.equal(p3.o, 3)
    f.cut()
    // a poll from a subscriber that has message 3: nothing is known here, it stays where it is (no jump to this node's own epoch)
    assert.deepEqual(await a.since(ch, p3, H), { gap: false, messages: [], position: p3 })
    // a subscriber that begins now is given this node's epoch
    const began = await a.position(ch)
    assert.notEqual(began.e, p3.e)
    await b.publish(ch, 4, { history: H })
    f.subscriberBack()
    f.commandBack()
    // back: it goes on from the channel's current position after a gap, and is not sent messages 1 to 4 again
    const s = await a.since(ch, began, H)
    assert.equal(s.gap, true)
    assert.deepEqual(s.position, { e: p3.e, o: 4 })
    assert.equal(s.oldest, 5)
  } finally {
    stop()
    await a.close()
    await b.close()
  }
})

test('a subscriber that polls while Redis is away is given what Redis had after its position once Redis returns, in order', { timeout: 20_000 }, async () => {
  const ns = randomUUID()
  const f = faulty(bus!)
  const a = new RedisEngine(f.bus, { namespace: ns, log: silent })
  const b = new RedisEngine(bus!, { namespace: ns, log: silent })
  const ch = 'away:poll'
  const got: number[] = []
  try {
    for (let i = 1; i <= 3; i++) await b.publish(ch, i, { history: H })
    const p3 = await b.position(ch)
    f.cut()
    // a long poll arrives: the channel is listened to anew, and its subscriber has message 3
    const stop = a.listen(ch, (m: Message) => got.push(m.d as number))
    try {
      assert.deepEqual(await a.since(ch, p3, H), { gap: false, messages: [], position: p3 })
      await b.publish(ch, 4, { history: H })
      await b.publish(ch, 5, { history: H })
      f.subscriberBack()
      f.commandBack()
      await b.publish(ch, 6, { history: H })
      await until(() => got.length >= 3, () => `4, 5 and 6 (got ${JSON.stringify(got)})`, 5_000)
      await settle(100)
      assert.deepEqual(got, [4, 5, 6])
    } finally {
      stop()
    }
  } finally {
    await a.close()
    await b.close()
  }
})

test('with Redis away, a node that publishes sends its subscribers from a Redis position to its own messages, from the first of this outage', { timeout: 20_000 }, async () => {
  const ns = randomUUID()
  const f = faulty(bus!)
  const a = new RedisEngine(f.bus, { namespace: ns, log: silent })
  const ch = 'away:2'
  const stop = a.listen(ch, () => {})
  try {
    await a.publish(ch, 'shared', { history: H })
    const p1 = await a.position(ch)
    f.cut()
    const first = await a.publish(ch, 'here 1', { history: H })
    await a.publish(ch, 'here 2', { history: H })
    assert.notEqual(first.message.e, p1.e, "published in this node's own epoch")
    const s = await a.since(ch, p1, H)
    assert.deepEqual(s, { gap: true, messages: [], position: { e: first.message.e, o: first.message.o + 1 }, oldest: first.message.o })
    // where the hub goes on from: both messages of this outage
    const held = await a.since(ch, { e: first.message.e, o: first.message.o - 1 }, H)
    assert.deepEqual(
      held.messages.map((m) => m.d),
      ['here 1', 'here 2'],
    )
  } finally {
    stop()
    f.subscriberBack()
    f.commandBack()
    await a.close()
  }
})
