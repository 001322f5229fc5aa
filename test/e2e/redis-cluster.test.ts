import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, test } from 'node:test'
import { Redis } from 'ioredis'
import { pino } from 'pino'
import { connect } from '../../client/realtime.ts'
import { openRedis } from '../../src/core/redis.ts'
import { publishAll, until } from '../helpers/realtime-clients.ts'
import { startRedisCluster, type RedisCluster, type RedisServer } from '../helpers/redis.ts'
import { captureLog, request, startServer, type TestServer } from '../helpers/server.ts'

/**
 * Redis Cluster (docs/scale.md): two Edgebox nodes configured with the
 * nodes of a real three-master cluster share realtime channels and purges
 * through it. Then the bus itself under failures: the node its subscriber
 * is on dies, and the subscription moves to another node and says it
 * resumed; the whole cluster goes away and comes back, and the bus says so.
 * One cluster for the file; the failures come last.
 */

const KEY = 'publish-key-0123456789'
const TOKEN = 'purge-token-0123456789'
const silent = pino({ level: 'silent' })
const asked = new Map<string, number>()
const origin = http.createServer((req, res) => {
  const path = new URL(req.url!, 'http://x').pathname
  asked.set(path, (asked.get(path) ?? 0) + 1)
  res.writeHead(200, { 'cache-control': 'max-age=600', 'content-type': 'text/plain' })
  res.end(`${path} #${asked.get(path)}`)
})

let cluster: RedisCluster
const nodes: TestServer[] = []

before(async () => {
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r))
  // an ACL user of its own keys and channels, besides the default user the Edgebox nodes below connect as
  cluster = await startRedisCluster({ conf: ['user edgebox on >secret ~edgebox-test:* &edgebox-test:* +@all'] })
  const config = {
    redis: { url: 'redis://cluster', cluster: [...cluster.hosts], commandTimeout: '1s' },
    sites: [
      {
        routes: [
          { path: '/live/', realtime: { channels: { 'room:*': { history: { size: 100 } } }, publishKey: KEY } },
          { path: '/', proxy: { upstreams: [`http://127.0.0.1:${(origin.address() as AddressInfo).port}`], cache: { purge: { token: TOKEN } } } },
        ],
      },
    ],
  }
  nodes.push(await startServer(config), await startServer(config))
})

after(async () => {
  await Promise.all(nodes.map((n) => n.close()))
  await cluster?.close()
  origin.close()
})

test('a message published on one node reaches a subscriber on the other, in order, through the cluster', async () => {
  const [a, b] = nodes as [TestServer, TestServer]
  const client = connect(`${a.url}live/`, { transports: ['websocket'] })
  const got: Array<{ d: unknown; o: number }> = []
  try {
    client.subscribe('room:cluster', (d, { position }) => got.push({ d, o: position.o }))
    await until(() => client.position('room:cluster') !== undefined, 'subscribed on A')
    const sent = await publishAll(`${b.url}live/`, KEY, 'room:cluster', ['one', 'two', 'three'])
    assert.deepEqual(
      sent.map((p) => p.o),
      [1, 2, 3],
    )
    await until(() => got.length === 3, () => `the three messages on A: ${JSON.stringify(got)}`)
    assert.deepEqual(got, [
      { d: 'one', o: 1 },
      { d: 'two', o: 2 },
      { d: 'three', o: 3 },
    ])
    // A publishes next in the same channel: one order for both nodes
    const [next] = await publishAll(`${a.url}live/`, KEY, 'room:cluster', ['four'])
    assert.deepEqual([next!.e, next!.o], [sent[0]!.e, 4])
  } finally {
    client.close()
  }
})

const get = async (n: TestServer, path: string) => {
  const r = await request('http/1.1', n.url + path.slice(1))
  assert.equal(r.status, 200)
  return String(r.headers['cache-status'])
}

test('a PURGE on one node empties the other node’s cache through the cluster', async () => {
  const [a, b] = nodes as [TestServer, TestServer]
  for (const n of nodes) {
    await get(n, '/page')
    assert.match(await get(n, '/page'), /hit/, `stored on ${n.url}`)
  }
  const r = await request('http/1.1', `${a.url}page`, { method: 'PURGE', headers: { authorization: `Bearer ${TOKEN}` } })
  assert.equal(r.status, 200, r.text)
  let status = await get(b, '/page')
  const end = Date.now() + 3_000
  while (!/fwd=miss/.test(status) && Date.now() < end) {
    await new Promise((res) => setTimeout(res, 20))
    status = await get(b, '/page')
  }
  assert.match(status, /fwd=miss/, 'the other node asked the origin again')
})

test('an ACL user from the URL signs in on every node, for commands and pub/sub; a wrong password is refused and logged', { timeout: 20_000 }, async () => {
  const bus = openRedis({ url: 'redis://edgebox:secret@cluster', cluster: [...cluster.hosts], keyPrefix: 'edgebox-test:', commandTimeout: 1_000 }, silent)
  const { logger: log, text: lines } = captureLog('warn')
  const wrong = openRedis({ url: 'redis://edgebox:wrong@cluster', cluster: [...cluster.hosts], keyPrefix: 'edgebox-test:', commandTimeout: 1_000 }, log)
  try {
    assert.equal(await bus.whenUp(5_000), true)
    // keys in every slot range: each master let the user in
    for (let i = 0; i < 30; i++) assert.equal(await bus.command.set(`edgebox-test:acl:${i}`, 'v'), 'OK')
    await assert.rejects(bus.command.set('other:acl', 'v'), /NOPERM/, 'signed in as the ACL user, not the default one')
    const got: string[] = []
    await bus.subscribe('edgebox-test:acl', (m) => got.push(m)).ready
    assert.equal(await bus.publish('edgebox-test:acl', 'hello'), true)
    await until(() => got.length === 1, 'the message, through the subscriber signed in as the user')
    assert.equal(await wrong.whenUp(1_000), false)
    await until(() => lines.some((l) => /redis is unreachable/.test(l) && /WRONGPASS/.test(l)), () => `the refusal in the log: ${lines.join('')}`)
  } finally {
    await bus.close()
    await wrong.close()
  }
})

/** The node whose pub/sub has `channel` subscribed (classic PUBSUB CHANNELS answers for its own node only). */
async function subscribedOn(channel: string): Promise<RedisServer | undefined> {
  for (const n of cluster.nodes) {
    const r = new Redis(n.port, { lazyConnect: true, retryStrategy: () => null })
    r.on('error', () => undefined)
    try {
      if ((await r.pubsub('CHANNELS', channel)).length > 0) return n
    } catch {
      // a node that is down has no subscriber
    } finally {
      r.disconnect()
    }
  }
  return undefined
}

test('the node the subscriber is on dies: the subscription moves to another node, `resumed` is called, messages flow again', { timeout: 30_000 }, async () => {
  const bus = openRedis({ url: 'redis://cluster', cluster: [...cluster.hosts], keyPrefix: 'edgebox-test:', commandTimeout: 1_000 }, silent)
  const channel = `edgebox-test:probe:${randomUUID()}`
  const messages: string[] = []
  let resumed = 0
  try {
    assert.equal(await bus.whenUp(5_000), true)
    const sub = bus.subscribe(
      channel,
      (m) => messages.push(m),
      () => resumed++,
    )
    await sub.ready
    const first = await subscribedOn(channel)
    assert.ok(first, 'subscribed on one node')
    await first.kill()
    await until(() => resumed === 1, 'resumed after the subscriber moved')
    const now = await subscribedOn(channel)
    assert.ok(now && now !== first, 'subscribed on another node')
    // a publish may first meet the dead node's connection: it says false, and the next one goes elsewhere
    const end = Date.now() + 10_000
    while (!messages.includes('after') && Date.now() < end) {
      await bus.publish(channel, 'after')
      await new Promise((r) => setTimeout(r, 50))
    }
    assert.equal(messages[0], 'after')
    assert.equal(bus.up, true, 'the command side stayed up: two masters still answer')
    await first.start()
    await cluster.ok()
  } finally {
    await bus.close()
  }
})

test('the whole cluster goes away and comes back: `up` and onChange follow the command side, and subscribers are told they resumed', { timeout: 30_000 }, async () => {
  const bus = openRedis({ url: 'redis://cluster', cluster: [...cluster.hosts], keyPrefix: 'edgebox-test:', commandTimeout: 1_000 }, silent)
  const channel = `edgebox-test:probe:${randomUUID()}`
  const changes: boolean[] = []
  const messages: string[] = []
  let resumed = 0
  try {
    assert.equal(await bus.whenUp(5_000), true)
    bus.onChange((up) => changes.push(up))
    await bus.subscribe(
      channel,
      (m) => messages.push(m),
      () => resumed++,
    ).ready
    await Promise.all(cluster.nodes.map((n) => n.kill()))
    await until(() => !bus.up, 'down')
    assert.deepEqual(changes, [false])
    assert.equal(await bus.publish(channel, 'lost'), false, 'nothing can be sent')
    await Promise.all(cluster.nodes.map((n) => n.start()))
    await cluster.ok()
    assert.equal(await bus.whenUp(10_000), true, 'up again')
    assert.deepEqual(changes, [false, true])
    await until(() => resumed === 1, 'resumed')
    assert.equal(await bus.publish(channel, 'back'), true)
    await until(() => messages.length === 1, 'the message after the return')
    assert.deepEqual(messages, ['back'])
  } finally {
    await bus.close()
  }
})
