import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { connect, type GapEvent, type TransportName } from '../../client/realtime.ts'
import { startServer, type TestServer } from '../helpers/server.ts'
import { publishAll, until } from '../helpers/realtime-clients.ts'
import { QUICK_RECOVERY, relay } from '../helpers/relay.ts'
import { startRedis, type RedisServer } from '../helpers/redis.ts'

/**
 * Three Edgebox nodes sharing one Redis (docs/scale.md): the real client
 * (client/realtime.ts) follows a channel on one node while back ends
 * publish on the others; it moves to another node and resumes there; Redis
 * is killed and restarted in the middle of a burst. What it must see: every
 * message once, in one order on every node, and a gap only where one is
 * said.
 */

const KEY = 'publish-key-0123456789'
let redis: RedisServer
const nodes: TestServer[] = []

function config(url: string) {
  return {
    redis: url,
    sites: [{ routes: [{ path: '/live/', realtime: { channels: { 'room:*': { history: { size: 1000 } } }, publishKey: KEY, pollTimeout: '1s', keepAlive: '200ms' } }] }],
  }
}

before(async () => {
  redis = await startRedis({ persist: true })
  for (let i = 0; i < 3; i++) nodes.push(await startServer(config(redis.url)))
})

after(async () => {
  await Promise.all(nodes.map((n) => n.close()))
  await redis.close()
})

const publish = (srv: TestServer, ch: string, data: unknown[]) => publishAll(`${srv.url}live/`, KEY, ch, data)

for (const transport of ['websocket', 'sse', 'long-poll', 'poll'] as TransportName[]) {
  test(`${transport}: published on B and C, received on A; moved to C, it resumes there with nothing lost or repeated`, { timeout: 30_000 }, async () => {
    const [a, b, c] = nodes as [TestServer, TestServer, TestServer]
    const r = await relay(a.port)
    const ch = `room:${transport}`
    const got: Array<{ d: unknown; e: string; o: number }> = []
    const gaps: GapEvent[] = []
    const client = connect(`http://127.0.0.1:${r.port}/live/`, { transports: [transport], ...QUICK_RECOVERY })
    client.on('gap', (g) => gaps.push(g))
    try {
      client.subscribe(ch, (d, { position }) => got.push({ d, e: position.e, o: position.o }))
      await until(() => client.position(ch) !== undefined, 'subscribed')
      // publishes on two other nodes at once: one order (Redis's) for everyone
      await Promise.all([publish(b, ch, ['b1', 'b2', 'b3']), publish(c, ch, ['c1', 'c2', 'c3'])])
      await until(() => got.length === 6, 'the six messages on A')
      assert.deepEqual(
        got.map((m) => m.o),
        [1, 2, 3, 4, 5, 6],
      )
      assert.deepEqual(got.filter((m) => String(m.d).startsWith('b')).map((m) => m.d), ['b1', 'b2', 'b3'])
      assert.deepEqual(got.filter((m) => String(m.d).startsWith('c')).map((m) => m.d), ['c1', 'c2', 'c3'])

      // A goes away for this client; meanwhile B publishes; the client comes back to C
      r.cut()
      await publish(b, ch, ['while-away-1', 'while-away-2'])
      r.retarget(c.port)
      r.restore()
      await until(() => got.length === 8, 'the two messages published while it was away')
      await publish(a, ch, ['live-on-a'])
      await until(() => got.length === 9, 'the live message')
      assert.deepEqual(
        got.map((m) => m.o),
        [1, 2, 3, 4, 5, 6, 7, 8, 9],
      )
      assert.deepEqual(got.slice(6).map((m) => m.d), ['while-away-1', 'while-away-2', 'live-on-a'])
      assert.equal(new Set(got.map((m) => m.e)).size, 1, 'one epoch throughout')
      assert.deepEqual(gaps, [])
    } finally {
      client.close()
      await r.close()
    }
  })
}
