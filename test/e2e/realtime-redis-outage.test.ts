import assert from 'node:assert/strict'
import { test } from 'node:test'
import { connect, type GapEvent, type RealtimeClient, type TransportName } from '../../client/realtime.ts'
import { startServer, type TestServer } from '../helpers/server.ts'
import { publishAll, until as untilWithin } from '../helpers/realtime-clients.ts'
import { QUICK_RECOVERY } from '../helpers/relay.ts'
import { startRedis } from '../helpers/redis.ts'

/**
 * Redis killed (SIGKILL) and restarted in the middle of a burst published
 * on node B, with a subscriber on A and one on B (docs/scale.md, "When
 * Redis goes away"). While it is away, B's publishes still succeed and reach
 * B's subscribers (under B's own epoch, announced as a gap); when it
 * returns, B hands them to Redis and A gets them too. Every subscriber ends
 * with every message once, in the order it was published.
 */

const KEY = 'publish-key-0123456789'
const COUNT = 150

function config(url: string) {
  return {
    redis: url,
    sites: [{ routes: [{ path: '/live/', realtime: { channels: { 'burst:*': { history: { size: 1000 } } }, publishKey: KEY, pollTimeout: '1s', keepAlive: '200ms' } }] }],
  }
}

const publish = async (srv: TestServer, ch: string, d: unknown) => void (await publishAll(`${srv.url}live/`, KEY, ch, [d]))

const until = (pred: () => boolean, what: () => string) => untilWithin(pred, what, 15_000)

function follow(srv: TestServer, transport: TransportName, ch: string): { client: RealtimeClient; got: number[]; gaps: GapEvent[] } {
  const got: number[] = []
  const gaps: GapEvent[] = []
  const client = connect(`${srv.url}live/`, { transports: [transport], ...QUICK_RECOVERY })
  client.on('gap', (g) => gaps.push(g))
  client.subscribe(ch, (d) => got.push(d as number))
  return { client, got, gaps }
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i)

test('Redis killed and restarted during a burst: every message reaches every node once, in order', { timeout: 60_000 }, async () => {
  const redis = await startRedis({ persist: true })
  const a = await startServer(config(redis.url))
  const b = await startServer(config(redis.url))
  const ch = 'burst:1'
  const onA = follow(a, 'websocket', ch)
  const onB = follow(b, 'sse', ch)
  try {
    await until(() => onA.client.position(ch) !== undefined && onB.client.position(ch) !== undefined, () => 'both subscribed')
    for (let i = 0; i < COUNT; i++) {
      if (i === COUNT / 3) await redis.kill()
      if (i === (2 * COUNT) / 3) await redis.start()
      await publish(b, ch, i)
    }
    await until(() => onA.got.length >= COUNT && onB.got.length >= COUNT, () => `every message on both nodes (A has ${onA.got.length}, B ${onB.got.length})`)
    // a moment for anything repeated to show up
    await new Promise((r) => setTimeout(r, 300))
    assert.deepEqual(onA.got, range(COUNT), 'A: every message once, in order')
    assert.deepEqual(onB.got, range(COUNT), 'B: every message once, in order')
    // B's subscriber was told when its messages came from B alone, and again when they came from Redis
    assert.ok(onB.gaps.length >= 1, 'B signals the switch to its own epoch')
    assert.ok(onB.gaps.every((g) => g.channel === ch))
  } finally {
    onA.client.close()
    onB.client.close()
    await Promise.all([a.close(), b.close()])
    await redis.close()
  }
})

test('Redis restarted empty: subscribers are told of the gap, and nothing is repeated', { timeout: 60_000 }, async () => {
  const redis = await startRedis({ persist: false })
  const a = await startServer(config(redis.url))
  const b = await startServer(config(redis.url))
  const ch = 'burst:2'
  const onA = follow(a, 'long-poll', ch)
  try {
    await until(() => onA.client.position(ch) !== undefined, () => 'subscribed')
    for (let i = 0; i < 20; i++) await publish(b, ch, i)
    await until(() => onA.got.length === 20, () => 'the first twenty')
    await redis.kill()
    await redis.start()
    // B's publishes go to its outbox until its connection is back, then to the new, empty Redis
    for (let i = 20; i < 40; i++) await publish(b, ch, i)
    await until(() => onA.got.length >= 40, () => `the next twenty (A has ${JSON.stringify(onA.got)}, gaps ${JSON.stringify(onA.gaps)})`)
    await new Promise((r) => setTimeout(r, 300))
    assert.deepEqual(onA.got, range(40))
    assert.ok(onA.gaps.length >= 1, "the channel's history was lost with Redis: a gap is said")
  } finally {
    onA.client.close()
    await Promise.all([a.close(), b.close()])
    await redis.close()
  }
})
