import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import dgram from 'node:dgram'
import { cpSync, mkdirSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, before, test } from 'node:test'
import dnsPacket from 'dns-packet'
import { connect, type GapEvent } from '../../client/realtime.ts'
import { freePort } from '../helpers/pebble.ts'
import { startRedis, type RedisServer } from '../helpers/redis.ts'
import { QUICK_RECOVERY, relay } from '../helpers/relay.ts'
import { tempDir } from '../helpers/server.ts'

/**
 * The loopback cluster of docs/deploy.md, from its own files
 * (deploy/cluster/*.config.mts, copied into a CommonJS project as a user
 * copies them), through the real command: one Redis, an
 * origin, two parent caches, three edges and the DNS global load balancer,
 * each on its own loopback address. Objects are fetched from the origin
 * once however many edges ask (the parents are chosen by consistent
 * hashing); an edge killed under load leaves the DNS answers within its
 * health threshold, its realtime clients go on from another edge without
 * losing a message, and no request gets a 5xx.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const BIN = path.join(ROOT, 'bin', 'edgebox.js')
/** Where the recipe's files are copied, as a user copies them into a project (docs/deploy.md). */
let CLUSTER: string
const EDGES = ['127.0.0.11', '127.0.0.12', '127.0.0.13']
const OBJECTS = 12

let redis: RedisServer
let port: number
let dnsPort: number
let work: { dir: string; cleanup(): void }
const nodes = new Map<string, { child: ChildProcess; out: () => string }>()

function start(name: string, config: string, env: Record<string, string> = {}): Promise<void> {
  const child = spawn(process.execPath, [BIN, '--config', config], {
    cwd: CLUSTER,
    env: { ...process.env, CI: 'true', PORT: String(port), DNS_PORT: String(dnsPort), REDIS_URL: redis.url, DATA: path.join(work.dir, 'data'), WWW: path.join(work.dir, 'www'), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()))
  nodes.set(name, { child, out: () => out })
  return new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      if (/listening on http:\/\//.test(out)) {
        clearInterval(timer)
        resolve()
      } else if (child.exitCode !== null) {
        clearInterval(timer)
        reject(new Error(`${name} exited:\n${out}`))
      }
    }, 20)
  })
}

before(async () => {
  work = tempDir()
  // in a project of the user's: its package.json is CommonJS, as `npm init -y` makes it (the files must load all the same)
  CLUSTER = path.join(work.dir, 'cluster')
  cpSync(path.join(ROOT, 'deploy', 'cluster'), CLUSTER, { recursive: true })
  writeFileSync(path.join(work.dir, 'package.json'), JSON.stringify({ name: 'my-site', version: '1.0.0', type: 'commonjs' }))
  mkdirSync(path.join(work.dir, 'www', 'objects'), { recursive: true })
  for (let i = 1; i <= OBJECTS; i++) writeFileSync(path.join(work.dir, 'www', 'objects', `${i}.txt`), `object ${i}\n`)
  redis = await startRedis()
  port = await freePort()
  dnsPort = await freePort()
  await start('origin', 'origin.config.mts')
  await Promise.all([1, 2].map((n) => start(`parent-${n}`, 'parent.config.mts', { PARENT: String(n) })))
  await Promise.all([1, 2, 3].map((n) => start(`edge-${n}`, 'edge.config.mts', { EDGE: String(n) })))
  await start('dns', 'dns.config.mts')
})

after(async () => {
  await Promise.all(
    [...nodes.values()].map(
      ({ child }) =>
        new Promise<void>((r) => {
          if (child.exitCode !== null || child.signalCode !== null) return r()
          child.once('exit', () => r())
          child.kill('SIGTERM')
        }),
    ),
  )
  await redis.close()
  work.cleanup()
})

/** The A records the GSLB gives for www.cluster.test, and their TTL. */
function resolve(): Promise<{ addresses: string[]; ttl: number }> {
  return new Promise((done, fail) => {
    const s = dgram.createSocket('udp4')
    const timer = setTimeout(() => {
      s.close()
      fail(new Error('no DNS answer'))
    }, 2_000)
    s.on('message', (m) => {
      clearTimeout(timer)
      s.close()
      const answers = dnsPacket.decode(m).answers ?? []
      const a = answers.filter((x) => x.type === 'A') as Array<{ data: string; ttl?: number }>
      done({ addresses: a.map((x) => x.data).sort(), ttl: a[0]?.ttl ?? 0 })
    })
    s.send(dnsPacket.encode({ type: 'query', id: 1, questions: [{ type: 'A', name: 'www.cluster.test' }] }), dnsPort, '127.0.0.40')
  })
}

/** A GET to one edge's address for the name the GSLB answers for (every edge gets the same Host, as behind a real name). */
function get(host: string, p: string): Promise<{ status: number; text: string; cache: string }> {
  return new Promise((done, fail) => {
    const req = http.get({ host, port, path: p, agent: false, timeout: 3_000, headers: { host: `www.cluster.test:${port}` } }, (res) => {
      let text = ''
      res.on('data', (d: Buffer) => (text += d.toString()))
      res.on('end', () => done({ status: res.statusCode!, text, cache: String(res.headers['cache-status'] ?? '') }))
    })
    req.on('timeout', () => req.destroy(new Error('timed out')))
    req.on('error', fail)
  })
}

/** How many times the origin was asked for a path (its access log lines). */
const originAsked = (p: string) => nodes.get('origin')!.out().split('\n').filter((l) => l.includes(`"path":"${p}"`)).length

test('every edge serves every object, and the origin is asked once per object: the parents share the objects by consistent hashing', async () => {
  for (let i = 1; i <= OBJECTS; i++) {
    for (const edge of EDGES) {
      const r = await get(edge, `/objects/${i}.txt`)
      assert.equal(r.status, 200)
      assert.equal(r.text, `object ${i}\n`)
    }
  }
  // the access log is written in batches (at least once a second): wait for every object's line
  const all = () => Array.from({ length: OBJECTS }, (_, i) => originAsked(`/objects/${i + 1}.txt`))
  const deadline = Date.now() + 5_000
  while (all().some((c) => c === 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  await new Promise((r) => setTimeout(r, 1_200)) // and a batch more, for any second request to show
  for (let i = 1; i <= OBJECTS; i++) assert.equal(originAsked(`/objects/${i}.txt`), 1, `object ${i}: asked of the origin once for three edges`)
  // each object went to one parent whichever edge asked, and each parent has some: the objects are spread
  const paths = [1, 2].map((n) => new Set(nodes.get(`parent-${n}`)!.out().match(/\/objects\/\d+\.txt/g) ?? []))
  assert.ok(paths.every((p) => p.size > 0), `objects per parent: ${paths.map((p) => p.size).join(', ')}`)
  assert.equal(paths[0]!.size + paths[1]!.size, OBJECTS, 'no object on both parents')
})

test('the GSLB names every healthy edge', async () => {
  const { addresses, ttl } = await resolve()
  assert.deepEqual(addresses, EDGES)
  assert.equal(ttl, 5)
})

test('an edge killed under load: the GSLB drops it within its health threshold, realtime clients go on from another edge with nothing lost, and no request gets a 5xx', { timeout: 60_000 }, async () => {
  // a realtime client on edge 1 (through a relay: where a client's next connection goes after a DNS change)
  const r = await relay(port, EDGES[0])
  const got: Array<{ d: unknown; o: number }> = []
  const gaps: GapEvent[] = []
  const client = connect(`http://127.0.0.1:${r.port}/live/`, { transports: ['websocket'], ...QUICK_RECOVERY })
  client.on('gap', (g) => gaps.push(g))
  client.subscribe('room:failover', (d, { position }) => got.push({ d, o: position.o }))
  const publish = async (edge: string, d: unknown) => {
    const body = JSON.stringify({ ch: 'room:failover', d })
    const status = await new Promise<number>((done, fail) => {
      const req = http.request({ host: edge, port, path: '/live/api/publish', method: 'POST', agent: false, headers: { 'content-type': 'application/json', authorization: 'Bearer cluster-demo-publish-key', 'content-length': Buffer.byteLength(body) } }, (res) => {
        res.resume()
        res.on('end', () => done(res.statusCode!))
      })
      req.on('error', fail)
      req.end(body)
    })
    assert.equal(status, 200)
  }
  const until = async (pred: () => boolean, what: string, ms = 10_000) => {
    const end = Date.now() + ms
    while (!pred()) {
      if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`)
      await new Promise((res) => setTimeout(res, 20))
    }
  }
  try {
    await until(() => client.position('room:failover') !== undefined, 'subscribed')
    for (let i = 1; i <= 3; i++) await publish(EDGES[2]!, i)
    await until(() => got.length === 3, 'three messages before the kill')

    // load: a client that resolves the name (keeping the answer for its TTL) and asks the edges it names in turn
    const errors: string[] = []
    let served = 0
    let stop = false
    let killedAt = 0
    let droppedAt = 0
    const load = (async () => {
      let answer = await resolve()
      let fetched = Date.now()
      let k = 0
      while (!stop) {
        if (Date.now() - fetched >= answer.ttl * 1000) {
          answer = await resolve()
          fetched = Date.now()
        }
        const edge = answer.addresses[k++ % answer.addresses.length]!
        try {
          const res = await get(edge, '/objects/1.txt')
          if (res.status >= 500) errors.push(`${edge}: ${res.status}`)
          else served++
        } catch (err) {
          // a connection refused by the dead edge, while the answer naming it is still within its TTL
          if (droppedAt === 0 || Date.now() - droppedAt < answer.ttl * 1000 + 1_000) continue
          errors.push(`${edge}: ${(err as Error).message} after the DNS TTL`)
        }
      }
    })()
    await new Promise((res) => setTimeout(res, 500))
    nodes.get('edge-1')!.child.kill('SIGKILL')
    killedAt = Date.now()
    r.cut()
    // published while the client is cut off, on another edge
    for (let i = 4; i <= 6; i++) await publish(EDGES[1]!, i)
    // the GSLB drops edge 1: interval 1 s, fall 2
    for (;;) {
      const { addresses } = await resolve()
      if (!addresses.includes(EDGES[0]!)) break
      assert.ok(Date.now() - killedAt < 5_000, 'the GSLB still names the dead edge 5 s after it died')
      await new Promise((res) => setTimeout(res, 100))
    }
    droppedAt = Date.now()
    assert.deepEqual((await resolve()).addresses, EDGES.slice(1))
    // the client's next connection goes to edge 2
    r.retarget(port, EDGES[1])
    r.restore()
    await until(() => got.length === 6, 'the three messages published while it was away')
    // run past the DNS TTL
    await new Promise((res) => setTimeout(res, 6_000))
    stop = true
    await load
    assert.deepEqual(errors, [])
    assert.ok(served > 50, `served ${served}`)
    assert.deepEqual(
      got.map((m) => m.d),
      [1, 2, 3, 4, 5, 6],
    )
    assert.deepEqual(
      got.map((m) => m.o),
      [1, 2, 3, 4, 5, 6],
      'one epoch, no hole',
    )
    assert.deepEqual(gaps, [])
  } finally {
    client.close()
    await r.close()
  }
})
