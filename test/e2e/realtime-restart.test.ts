import assert from 'node:assert/strict'
import { test } from 'node:test'
import { connect, type GapEvent, type TransportName } from '../../client/realtime.ts'
import { startServer, type TestServer } from '../helpers/server.ts'
import { publishAll, until } from '../helpers/realtime-clients.ts'
import { QUICK_RECOVERY, relay } from '../helpers/relay.ts'

/**
 * A restart of Edgebox with the memory engine, on each of the four
 * transports: the real client (client/realtime.ts) follows a channel, the
 * server stops, a new Edgebox starts on the same port and stores three
 * messages before the client is let back in. The client resumes with its
 * position from the old epoch: it must get one `gap` (old position -> the
 * new epoch before its first message), then those three messages, then live
 * ones; every publish the new server acknowledged reaches it.
 */

const KEY = 'publish-key-0123456789'
const CONFIG = {
  log: { access: false },
  sites: [{ routes: [{ path: '/live/', realtime: { channels: { 'room:*': { history: { size: 100 } } }, publishKey: KEY, pollTimeout: '1s', keepAlive: '200ms' } }] }],
}


const publish = (srv: TestServer, ch: string, data: unknown[]) => publishAll(`${srv.url}live/`, KEY, ch, data)

for (const transport of ['websocket', 'sse', 'long-poll', 'poll'] as TransportName[]) {
  test(`${transport}: after a restart, one gap, then every message of the new epoch from its first offset`, { timeout: 30_000 }, async () => {
    let srv = await startServer(CONFIG)
    const port = srv.port
    const r = await relay(port)
    const ch = `room:${transport}`
    const got: Array<{ d: unknown; e: string; o: number }> = []
    const gaps: GapEvent[] = []
    const client = connect(`http://127.0.0.1:${r.port}/live/`, {
      transports: [transport],
      ...QUICK_RECOVERY,
    })
    client.on('gap', (g) => gaps.push(g))
    try {
      client.subscribe(ch, (d, { position }) => got.push({ d, e: position.e, o: position.o }))
      await until(() => client.position(ch) !== undefined, 'subscribed')
      const [old] = await publish(srv, ch, ['before'])
      await until(() => got.length === 1, 'the message before the restart')

      // The client is kept out while the server restarts on the same port and takes three publishes.
      r.cut()
      await srv.close()
      srv = await startServer({ ...CONFIG, listen: [{ host: '127.0.0.1', port }] })
      const acks = await publish(srv, ch, ['after-1', 'after-2', 'after-3'])
      const epoch = acks[0]!.e
      assert.notEqual(epoch, old!.e, 'a new epoch')
      assert.deepEqual(
        acks.map((a) => a.o),
        [1, 2, 3],
      )
      r.restore()

      await until(() => gaps.length > 0, 'the gap')
      await publish(srv, ch, ['after-4'])
      await until(() => got.some((m) => m.d === 'after-4'), 'the live message')
      assert.deepEqual(got, [
        { d: 'before', e: old!.e, o: 1 },
        { d: 'after-1', e: epoch, o: 1 },
        { d: 'after-2', e: epoch, o: 2 },
        { d: 'after-3', e: epoch, o: 3 },
        { d: 'after-4', e: epoch, o: 4 },
      ])
      assert.deepEqual(gaps, [{ channel: ch, from: { e: old!.e, o: 1 }, to: { e: epoch, o: 0 }, restarted: true }])
    } finally {
      client.close()
      await r.close()
      await srv.close()
    }
  })
}
