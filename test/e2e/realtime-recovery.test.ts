import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { connect, type TransportName } from '../../client/realtime.ts'
import { request, startServer, type TestServer } from '../helpers/server.ts'
import { QUICK_RECOVERY, relay } from '../helpers/relay.ts'

/**
 * A network cut during a burst of messages, on each of the four transports:
 * the real client (client/realtime.ts) against the real hub, through a TCP
 * relay that the test cuts (every connection destroyed, new ones refused for
 * a while) in the middle of the burst. After reconnecting, the client must
 * have every message exactly once and in order.
 */

const KEY = 'publish-key-0123456789'
let srv: TestServer

before(async () => {
  srv = await startServer({
    log: { access: false },
    sites: [{ routes: [{ path: '/live/', realtime: { channels: { 'burst:*': { history: { size: 1000 } } }, publishKey: KEY, pollTimeout: '1s', keepAlive: '200ms' } }] }],
  })
})
after(() => srv.close())


const publish = (ch: string, from: number, to: number) =>
  request('http/1.1', `${srv.url}live/api/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
    body: JSON.stringify(Array.from({ length: to - from + 1 }, (_, i) => ({ ch, d: from + i }))),
  })

for (const transport of ['websocket', 'sse', 'long-poll', 'poll'] as TransportName[]) {
  test(`${transport}: a cut in the middle of a burst loses and repeats nothing`, { timeout: 30_000 }, async () => {
    const r = await relay(srv.port)
    const ch = `burst:${transport}`
    const got: number[] = []
    const client = connect(`http://127.0.0.1:${r.port}/live/`, {
      transports: [transport],
      ...QUICK_RECOVERY,
    })
    const states: string[] = []
    client.on('state', (s) => states.push(s.state))
    try {
      client.subscribe(ch, (d) => got.push(d as number))
      const t0 = Date.now()
      while (!states.includes('connected') && Date.now() - t0 < 5000) await new Promise((res) => setTimeout(res, 20))
      // the subscription is in place once the hub has confirmed a position
      while (client.position(ch) === undefined && Date.now() - t0 < 5000) await new Promise((res) => setTimeout(res, 20))
      assert.ok(client.position(ch), 'subscribed')

      for (let i = 1; i <= 100; i += 10) await publish(ch, i, i + 9)
      r.cut() // mid-burst
      for (let i = 101; i <= 200; i += 10) await publish(ch, i, i + 9)
      await new Promise((res) => setTimeout(res, 300))
      r.restore()
      for (let i = 201; i <= 300; i += 10) await publish(ch, i, i + 9)

      const end = Date.now() + 15_000
      while (got.length < 300 && Date.now() < end) await new Promise((res) => setTimeout(res, 25))
      assert.deepEqual(got, Array.from({ length: 300 }, (_, i) => i + 1), 'every message once, in order')
      assert.ok(states.includes('reconnecting'), `the cut was noticed (${states.join(' ')})`)
    } finally {
      client.close()
      await r.close()
    }
  })
}
