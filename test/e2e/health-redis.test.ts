import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, test } from 'node:test'
import { pino } from 'pino'
import { redisBroadcast } from '../../src/core/broadcast.ts'
import { openRedis } from '../../src/core/redis.ts'
import { BalancedName } from '../../src/dns/gslb.ts'
import { parseName } from '../../src/dns/names.ts'
import { RegionMap } from '../../src/dns/regions.ts'
import { startRedis, type RedisServer } from '../helpers/redis.ts'
import { startServer, type TestServer } from '../helpers/server.ts'

/**
 * Upstream health checks shared by the nodes over Redis (`health.active.shared`,
 * docs/scale.md): one node probes at a time (the holder of a lease in Redis),
 * every node moves its upstreams' state with those outcomes, and when the
 * prober stops another takes over within the lease.
 */

const INTERVAL = 200
const silent = pino({ level: 'silent' })

interface Origin {
  readonly url: string
  probes: number
  healthy: boolean
  close(): void
}

async function origin(name: string): Promise<Origin> {
  const o = { url: '', probes: 0, healthy: true, close: () => {} }
  const server = http.createServer((req, res) => {
    if (req.url === '/health') {
      o.probes++
      return res.writeHead(o.healthy ? 200 : 503).end()
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end(name)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  o.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  o.close = () => server.close()
  return o
}

let redis: RedisServer
let one: Origin
let two: Origin
let a: TestServer
let b: TestServer

const config = (redisUrl: string) => ({
  redis: redisUrl,
  sites: [{ routes: [{ path: '/', proxy: { upstreams: [one.url, two.url], health: { active: { path: '/health', interval: `${INTERVAL}ms`, timeout: '150ms', rise: 1, fall: 1, shared: true } } } }] }],
})

before(async () => {
  redis = await startRedis()
  one = await origin('one')
  two = await origin('two')
  a = await startServer(config(redis.url))
  b = await startServer(config(redis.url))
})

after(async () => {
  await Promise.all([a?.close(), b?.close()])
  one?.close()
  two?.close()
  await redis?.close()
})

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Who answered `n` requests through a node. */
async function answers(node: TestServer, n: number): Promise<string[]> {
  const out: string[] = []
  for (let i = 0; i < n; i++) out.push(await (await fetch(`${node.url}x`)).text())
  return out
}

test('two nodes, one prober: the upstreams are probed at one node’s rate, and both nodes follow', { timeout: 30_000 }, async () => {
  const before = one.probes
  const started = Date.now()
  await pause(2_000)
  const expected = (Date.now() - started) / INTERVAL
  const probed = one.probes - before
  assert.ok(probed <= expected * 1.3 + 1, `${probed} probes in ${Date.now() - started} ms at one every ${INTERVAL} ms: one prober, not two`)
  assert.ok(probed >= expected * 0.5, `probing (${probed})`)
  // the upstream fails its checks: both nodes take it out at the prober's outcome
  one.healthy = false
  const end = Date.now() + 5_000
  let seen: string[] = []
  while (Date.now() < end) {
    seen = [...(await answers(a, 6)), ...(await answers(b, 6))]
    if (seen.every((s) => s === 'two')) break
    await pause(100)
  }
  assert.deepEqual(new Set(seen), new Set(['two']), 'neither node sends requests to the failing upstream')
  one.healthy = true
})

test('the prober stops: another node takes over within the lease, and the checks go on', { timeout: 30_000 }, async () => {
  // whichever node probes, stopping both one at a time leaves the checks with the other, then with none
  await a.close()
  const before = one.probes
  await pause(4_000)
  assert.ok(one.probes - before >= 3, `the other node probes once the lease is free (${one.probes - before} probes in 4 s)`)
  one.healthy = false
  const end = Date.now() + 5_000
  let seen: string[] = []
  while (Date.now() < end) {
    seen = await answers(b, 6)
    if (seen.every((s) => s === 'two')) break
    await pause(100)
  }
  assert.deepEqual(new Set(seen), new Set(['two']))
  one.healthy = true
})

test('shared health checks without the top-level redis are refused, naming the setting', async () => {
  await assert.rejects(
    startServer({ sites: [{ routes: [{ path: '/', proxy: { upstreams: [one.url], health: { active: { shared: true } } } }] }] }),
    (err: Error & { issues?: string[] }) => {
      assert.deepEqual(err.issues, ["sites[0].routes[0].proxy.health.active.shared: health checks shared by the nodes need the top-level redis (redis: 'redis://host:port')"])
      return true
    },
  )
})

test('a GSLB name whose check is shared: two nodes, one prober, and both take the edge out at its outcome', { timeout: 30_000 }, async () => {
  const edge = await origin('edge')
  const buses = [0, 1].map(() => openRedis({ url: redis.url, keyPrefix: 'edgebox-test:', commandTimeout: 2_000 }, silent))
  for (const bus of buses) assert.equal(await bus.whenUp(5_000), true)
  const regions = new RegionMap([{ name: 'default', networks: [], next: [] }])
  const port = Number(new URL(edge.url).port)
  const names = buses.map(
    (bus) =>
      new BalancedName(
        { owner: parseName('www.edge.test.'), ttl: 30, answers: 1, edges: [{ name: 'e', addresses: ['127.0.0.1'], weight: 1, region: 'default' }], check: { kind: 'http', port, path: '/health', scheme: 'http', expect: { min: 200, max: 399 }, interval: INTERVAL, timeout: 150, rise: 1, fall: 1, shared: true } },
        regions,
        silent,
        undefined,
        { bus, channel: redisBroadcast(bus) },
      ),
  )
  try {
    const started = Date.now()
    await pause(2_000)
    const expected = (Date.now() - started) / INTERVAL
    assert.ok(edge.probes <= expected * 1.3 + 2, `${edge.probes} probes in ${Date.now() - started} ms: one prober, not two`)
    assert.ok(edge.probes >= expected * 0.5, `probing (${edge.probes})`)
    assert.deepEqual(
      names.map((n) => n.status()[0]?.state),
      ['up', 'up'],
    )
    edge.healthy = false
    const end = Date.now() + 5_000
    while (Date.now() < end && !names.every((n) => n.status()[0]?.state === 'down')) await pause(100)
    assert.deepEqual(
      names.map((n) => n.status()[0]?.state),
      ['down', 'down'],
      'both nodes take the edge out',
    )
  } finally {
    await Promise.all(names.map((n) => n.close()))
    await Promise.all(buses.map((b) => b.close()))
    edge.close()
  }
})
