import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { Redis } from 'ioredis'
import { startServer, type TestServer } from '../helpers/server.ts'
import { startRedis, startSentinel, type RedisServer, type SentinelServer } from '../helpers/redis.ts'
import { publishAll } from '../helpers/realtime-clients.ts'

/**
 * Redis Sentinel (docs/scale.md): two nodes find the master through a
 * sentinel and share a channel; the master dies, the sentinel promotes its
 * replica, and the nodes go on with it, in the same channel (the replica
 * has its history).
 */

const KEY = 'publish-key-0123456789'
let master: RedisServer
let replica: RedisServer
let sentinel: SentinelServer
let a: TestServer
let b: TestServer

before(async () => {
  // the replica's first sync starts at once (Redis waits 5 s by default to batch replicas)
  master = await startRedis({ conf: ['repl-diskless-sync-delay 0'] })
  replica = await startRedis({ conf: [`replicaof 127.0.0.1 ${master.port}`] })
  sentinel = await startSentinel(master.port)
  const config = {
    redis: { url: 'redis://mymaster', sentinel: { name: 'mymaster', hosts: [`127.0.0.1:${sentinel.port}`] }, commandTimeout: '500ms' },
    sites: [{ routes: [{ path: '/live/', realtime: { channels: { 'room:*': { history: { size: 100 } } }, publishKey: KEY } }] }],
  }
  a = await startServer(config)
  b = await startServer(config)
})

after(async () => {
  await Promise.all([a?.close(), b?.close()])
  await sentinel?.close()
  await replica?.close()
  await master?.close()
})

const publish = async (srv: TestServer, d: unknown) => (await publishAll(`${srv.url}live/`, KEY, 'room:s', [d]))[0]!

test('through the sentinel, two nodes share a channel; after a failover they share it on the promoted replica', { timeout: 60_000 }, async () => {
  const first = await publish(a, 1)
  const second = await publish(b, 2)
  assert.equal(second.e, first.e, 'one channel on both nodes')
  assert.equal(second.o, first.o + 1)
  // the replica has the channel before the master goes
  const r = new Redis(replica.port)
  try {
    const synced = Date.now() + 15_000
    while (!/master_link_status:up/.test(await r.info('replication')) || (await r.keys('edgebox:rt:*')).length === 0) {
      assert.ok(Date.now() < synced, 'the replica synced')
      await new Promise((res) => setTimeout(res, 100))
    }
  } finally {
    r.disconnect()
  }
  await master.kill()
  const deadline = Date.now() + 30_000
  while ((await sentinel.master()) !== `127.0.0.1:${replica.port}`) {
    assert.ok(Date.now() < deadline, 'the sentinel promoted the replica')
    await new Promise((r) => setTimeout(r, 200))
  }
  // both nodes reach the new master (a publish in between may be served by a node alone and handed over later)
  let next = await publish(a, 3)
  while (next.e !== first.e && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200))
    next = await publish(a, 'again')
  }
  assert.equal(next.e, first.e, 'the same channel, its history kept by the replica')
  let last = await publish(b, 4)
  while (last.e !== first.e && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200))
    last = await publish(b, 'again')
  }
  assert.equal(last.e, first.e)
  assert.ok(last.o > next.o, 'B publishes after A, in the same order')
})
