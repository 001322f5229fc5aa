import assert from 'node:assert/strict'
import http from 'node:http'
import net from 'node:net'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { Writable } from 'node:stream'
import { after, describe, test } from 'node:test'
import { pino } from 'pino'
import { closedPort, request, startServer, tempDir, type TestServer } from '../helpers/server.ts'
import { createHealth, healthSchema } from '../../src/modules/proxy/health.ts'
import type { Upstream } from '../../src/modules/proxy/balancers/types.ts'

/** Proxy health: active HTTP probes, passive outlier ejection, 503 when nothing is healthy (docs/proxy.md, "Health"). */

interface Backend {
  name: string
  url: string
  port: number
  /** Status the probe path (/healthz) answers. */
  probeStatus: number
  /** Status every other path answers. */
  trafficStatus: number
  probes: number
  hits: number
  stop(): Promise<void>
  /** Listens again on the same port. */
  start(): Promise<void>
}

async function backend(name: string): Promise<Backend> {
  const b: Backend = {
    name,
    url: '',
    port: 0,
    probeStatus: 200,
    trafficStatus: 200,
    probes: 0,
    hits: 0,
    stop: () =>
      new Promise((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
    start: () => new Promise<void>((r) => server.listen(b.port, '127.0.0.1', r)),
  }
  const server = http.createServer((req, res) => {
    req.resume()
    if (req.url === '/healthz') {
      b.probes++
      res.writeHead(b.probeStatus, { 'Content-Type': 'text/plain' })
      return res.end(b.probeStatus < 400 ? 'ok' : 'sick')
    }
    b.hits++
    res.writeHead(b.trafficStatus, { 'Content-Type': 'text/plain' })
    res.end(name)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  b.port = (server.address() as net.AddressInfo).port
  b.url = `http://127.0.0.1:${b.port}`
  return b
}


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Polls `check` every 25 ms until it is true; fails after `ms`. */
async function until(what: string, check: () => boolean | Promise<boolean>, ms = 3000): Promise<void> {
  const end = Date.now() + ms
  for (;;) {
    if (await check()) return
    if (Date.now() > end) assert.fail(`timed out after ${ms} ms waiting for: ${what}`)
    await sleep(25)
  }
}

async function get(srv: TestServer, p = 'x'): Promise<{ status: number; text: string; retryAfter: string | undefined }> {
  const r = await request('http/1.1', srv.url + p)
  return { status: r.status, text: r.text, retryAfter: r.headers['retry-after'] as string | undefined }
}

/** `n` GETs in a row; the body is the name of the upstream that answered. */
async function names(srv: TestServer, n: number): Promise<string[]> {
  const out: string[] = []
  for (let i = 0; i < n; i++) {
    const r = await get(srv)
    assert.ok(r.status < 500, `no 5xx expected, got ${r.status} ${r.text}`)
    out.push(r.text)
  }
  return out
}

const cleanups: Array<() => Promise<void> | void> = []
after(async () => {
  for (const c of cleanups.reverse()) await c()
})

const ACTIVE = { path: '/healthz', interval: '100ms', timeout: '300ms', rise: 2, fall: 2 }

describe('active health checks', () => {
  test('an upstream whose probe fails is taken out after `fall` probes and comes back after `rise`', async () => {
    const a = await backend('a')
    const b = await backend('b')
    const t = tempDir()
    const logFile = path.join(t.dir, 'access.log')
    const srv = await startServer({
      log: { access: true, format: 'json', file: logFile },
      sites: [{ routes: [{ path: '/', proxy: { upstreams: [a.url, b.url], health: { active: ACTIVE } } }] }],
    })
    cleanups.push(t.cleanup, a.stop, b.stop)
    try {
      await until('both upstreams probed', () => a.probes >= 1 && b.probes >= 1)
      assert.deepEqual((await names(srv, 4)).sort(), ['a', 'a', 'b', 'b'], 'both serve while healthy')

      a.probeStatus = 500
      const probesAtFailure = a.probes
      await until('a taken out', async () => (await names(srv, 4)).every((n) => n === 'b'))
      assert.ok(a.probes - probesAtFailure >= 2, 'not before `fall` failed probes')
      const hits = a.hits
      assert.deepEqual(await names(srv, 6), ['b', 'b', 'b', 'b', 'b', 'b'], 'all traffic on b, no 5xx')
      await sleep(250)
      assert.deepEqual(await names(srv, 4), ['b', 'b', 'b', 'b'], 'probing goes on; a stays out')
      assert.equal(a.hits, hits, 'no request reached a while it was out')

      a.probeStatus = 200
      const probesAtRecovery = a.probes
      await until('a back', async () => (await names(srv, 4)).includes('a'))
      assert.ok(a.probes - probesAtRecovery >= 2, 'not before `rise` good probes')
    } finally {
      await srv.close()
    }
    // The access log names the upstream that answered each request.
    const lines = readFileSync(logFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { upstream?: string; status: number })
    assert.ok(lines.length > 10)
    assert.ok(lines.every((l) => l.status === 200 && (l.upstream === a.url || l.upstream === b.url)))
    assert.ok(lines.some((l) => l.upstream === a.url) && lines.some((l) => l.upstream === b.url))
  })

  test('an upstream that stops entirely: traffic moves to the other one, no 5xx for idempotent requests; it returns when it restarts', async () => {
    const a = await backend('a')
    const b = await backend('b')
    const srv = await startServer({ sites: [{ routes: [{ path: '/', proxy: { upstreams: [a.url, b.url], health: { active: ACTIVE } } }] }] })
    cleanups.push(b.stop)
    try {
      await until('both probed', () => a.probes >= 1 && b.probes >= 1)
      await a.stop()
      // Until the probes notice, refused connections are retried on b; then a is out.
      const seen: string[] = []
      const end = Date.now() + 600
      while (Date.now() < end) seen.push(...(await names(srv, 2)))
      assert.ok(seen.length >= 6)
      assert.deepEqual(await names(srv, 6), ['b', 'b', 'b', 'b', 'b', 'b'])
      for (const method of ['HEAD', 'OPTIONS', 'DELETE']) {
        const r = await request('http/1.1', srv.url + 'x', { method })
        assert.equal(r.status, 200, method)
      }

      await a.start()
      cleanups.push(a.stop)
      await until('a back after restart', async () => (await names(srv, 4)).includes('a'))
    } finally {
      await srv.close()
    }
  })

  test('no healthy upstream: 503 with Retry-After, then service resumes', async () => {
    const a = await backend('a')
    cleanups.push(a.stop)
    const dead = `http://127.0.0.1:${await closedPort()}`
    const srv = await startServer({ sites: [{ routes: [{ path: '/', proxy: { upstreams: [a.url, dead], health: { active: { ...ACTIVE, fall: 1 } } } }] }] })
    try {
      await until('dead upstream out', async () => (await names(srv, 2)).every((n) => n === 'a'))
      a.probeStatus = 503
      let last = await get(srv)
      await until('503 from Edgebox', async () => (last = await get(srv)).status === 503)
      assert.equal(last.retryAfter, '5')
      assert.match(last.text, /no healthy upstream/)
      assert.equal((await get(srv)).status, 503)
      a.probeStatus = 200
      await until('a back', async () => (await get(srv)).status === 200)
    } finally {
      await srv.close()
    }
  })

  test('probe configuration is validated', async () => {
    assert.equal(healthSchema.safeParse({ active: { path: 'healthz' } }).success, false)
    assert.equal(healthSchema.safeParse({ active: { expect: '399-200' } }).success, false)
    assert.equal(healthSchema.safeParse({ active: { rise: 0 } }).success, false)
    assert.equal(healthSchema.safeParse({ passive: { ejectFor: '10s', maxEjectFor: '1s' } }).success, false)
    const d = healthSchema.parse({ active: {} })
    assert.deepEqual(d.active, { path: '/', interval: 5000, timeout: 2000, rise: 2, fall: 3, expect: { min: 200, max: 399 } })
    assert.deepEqual(d.passive, { consecutiveFailures: 5, ejectFor: 10_000, maxEjectFor: 300_000 })
    assert.equal(healthSchema.parse({}).active, undefined, 'probing is opt-in')
    assert.deepEqual(healthSchema.parse({ active: { expect: '204' } }).active?.expect, { min: 204, max: 204 })
    await assert.rejects(startServer({ sites: [{ routes: [{ path: '/', proxy: { upstreams: ['http://127.0.0.1:1'], health: { active: { interval: 'soon' } } } }] }] }))
  })
})

describe('passive outlier ejection', () => {
  test('an upstream answering 5xx is ejected after N failures in a row, returns after ejectFor, and is re-ejected at once (for longer) if still failing', async () => {
    const a = await backend('a')
    const b = await backend('b')
    cleanups.push(a.stop, b.stop)
    const srv = await startServer({
      sites: [{ routes: [{ path: '/', proxy: { upstreams: [a.url, b.url], health: { passive: { consecutiveFailures: 3, ejectFor: '400ms' } } } }] }],
    })
    try {
      a.trafficStatus = 500
      const codes: number[] = []
      while (a.hits < 3) codes.push((await get(srv)).status)
      assert.equal(codes.filter((c) => c === 500).length, 3, '5xx answers pass through to the client until the ejection')
      const ejectedAt = Date.now()
      assert.deepEqual(await names(srv, 6), ['b', 'b', 'b', 'b', 'b', 'b'], 'a ejected')
      assert.equal(a.hits, 3)

      // Back after ejectFor, on probation: one more 500 ejects it again, now for twice as long.
      await until('a back', async () => (await get(srv)).text === 'a', 2000)
      const backAfter = Date.now() - ejectedAt
      assert.ok(backAfter >= 350, `returned after ${backAfter} ms`)
      const reejectedAt = Date.now()
      assert.equal(a.hits, 4)
      assert.deepEqual(await names(srv, 6), ['b', 'b', 'b', 'b', 'b', 'b'], 're-ejected after a single failure')

      a.trafficStatus = 200
      await sleep(500)
      assert.deepEqual(await names(srv, 4), ['b', 'b', 'b', 'b'], 'second ejection lasts longer than the first (800 ms)')
      await until('a back again', async () => (await names(srv, 2)).includes('a'), 2000)
      assert.ok(Date.now() - reejectedAt >= 750)
      // Healthy again: its failure count starts over.
      a.trafficStatus = 500
      const before = a.hits
      for (let i = 0; i < 12 && a.hits < before + 3; i++) await get(srv)
      assert.equal(a.hits, before + 3, 'two failures after a success do not eject: a gets a third request')
      assert.deepEqual(await names(srv, 4), ['b', 'b', 'b', 'b'], 'the third one does')
    } finally {
      await srv.close()
    }
  })

  test('connection failures eject too; passive ejection never takes out the last healthy upstream', async () => {
    const dead = `http://127.0.0.1:${await closedPort()}`
    const b = await backend('b')
    cleanups.push(b.stop)
    const srv = await startServer({
      sites: [
        {
          routes: [
            { path: '/two/', proxy: { upstreams: [dead, b.url], retries: { attempts: 0 }, health: { passive: { consecutiveFailures: 2, ejectFor: '10s' } } } },
            { path: '/one/', proxy: { upstreams: [dead], retries: { attempts: 0 }, health: { passive: { consecutiveFailures: 2 } } } },
          ],
        },
      ],
    })
    try {
      const codes: number[] = []
      for (let i = 0; i < 10; i++) codes.push((await get(srv, 'two/x')).status)
      assert.deepEqual(
        codes.filter((c) => c === 502),
        [502, 502],
        'two refused connections, then the dead upstream is ejected',
      )
      assert.deepEqual(codes.slice(-6), [200, 200, 200, 200, 200, 200])

      // Alone, the dead upstream stays in: clients keep getting the real error (502), not a blanket 503.
      for (let i = 0; i < 4; i++) assert.equal((await get(srv, 'one/x')).status, 502)
    } finally {
      await srv.close()
    }
  })
})

describe('the health tracker', () => {
  test('status() and the log explain each transition', async () => {
    const a = await backend('a')
    const b = await backend('b')
    cleanups.push(a.stop, b.stop)
    const lines: Array<{ level: number; msg: string; upstream?: string; reason?: string }> = []
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(JSON.parse(chunk.toString()))
        cb()
      },
    })
    const log = pino({ level: 'info' }, sink)
    const mk = (u: Backend): Upstream & { url: URL } => ({ id: u.url, url: new URL(u.url), weight: 1, active: 0, healthy: true })
    const targets = [mk(a), mk(b)]
    const cfg = healthSchema.parse({ active: { ...ACTIVE, fall: 1, rise: 1 }, passive: { consecutiveFailures: 2, ejectFor: '200ms' } })
    const health = createHealth(targets, cfg, log)
    try {
      assert.deepEqual(
        health.status().map((s) => [s.healthy, s.reason]),
        [
          [true, 'ok'],
          [true, 'ok'],
        ],
      )
      a.probeStatus = 500
      await until('a down', () => !targets[0]!.healthy)
      assert.match(health.status()[0]!.reason, /^health check failed: probe answered 500, expected 200-399$/)
      const down = lines.find((l) => l.msg === 'upstream unhealthy')!
      assert.equal(down.level, 40)
      assert.equal(down.upstream, a.url)
      assert.match(down.reason!, /1 failed health checks in a row/)
      a.probeStatus = 200
      await until('a up', () => targets[0]!.healthy)
      assert.ok(lines.some((l) => l.msg === 'upstream healthy again' && l.upstream === a.url && l.level === 30))

      health.observe(targets[1]!, 'timeout')
      assert.equal(targets[1]!.healthy, true)
      health.observe(targets[1]!, '5xx')
      assert.equal(targets[1]!.healthy, false)
      assert.match(health.status()[1]!.reason, /^ejected: 2 failed attempts in a row \(last: 5xx\), for 200 ms$/)
      // The only healthy one left is spared.
      health.observe(targets[0]!, 'error')
      health.observe(targets[0]!, 'error')
      assert.equal(targets[0]!.healthy, true)
      assert.ok(lines.some((l) => l.msg.includes('last healthy one')))
      await until('b returns', () => targets[1]!.healthy, 1000)
      // A stopped upstream's probe names the cause.
      await b.stop()
      await until('b down', () => !targets[1]!.healthy)
      assert.match(health.status()[1]!.reason, /connection refused/)
    } finally {
      await health.close()
    }
  })
})
