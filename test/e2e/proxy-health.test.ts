import assert from 'node:assert/strict'
import http from 'node:http'
import net from 'node:net'
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { Writable } from 'node:stream'
import { after, describe, test } from 'node:test'
import { pino } from 'pino'
import { closedPort, request, startServer, tempDir, type TestServer } from '../helpers/server.ts'
import { ManualClock, waitFor } from '../helpers/clock.ts'
import { createHealth, healthSchema } from '../../src/modules/proxy/health.ts'
import type { Upstream } from '../../src/modules/proxy/balancers/types.ts'

/**
 * Proxy health: active HTTP probes, passive outlier ejection, 503 when
 * nothing is healthy (docs/proxy.md, "Health"). Time is a manual clock:
 * probes and ejections happen when a test moves it, so counts and durations
 * are checked exactly; the probes themselves are real requests.
 */

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

/**
 * One probe round (ACTIVE.interval): every probe answered and the next one
 * scheduled (`before` timers pending on the clock, ejections included),
 * then time moves one interval, and the probes that fell due have answered
 * in turn (`after` timers pending: fewer when an ejection ended).
 */
async function probeRound(clock: ManualClock, before: number, after = before): Promise<void> {
  await waitFor(`${before} timers pending before the round`, () => clock.pending() === before)
  clock.advance(100)
  await waitFor(`the probes of the round answered (${after} timers pending)`, () => clock.pending() === after)
}

/** The first probes, due at start. */
async function firstProbes(clock: ManualClock, upstreams: number): Promise<void> {
  clock.advance(0)
  await waitFor('the first probes answered', () => clock.pending() === upstreams)
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
    const clock = new ManualClock()
    const srv = await startServer(
      {
        log: { access: true, format: 'json', file: logFile },
        sites: [{ routes: [{ path: '/', proxy: { upstreams: [a.url, b.url], health: { active: ACTIVE } } }] }],
      },
      undefined,
      { clock },
    )
    cleanups.push(t.cleanup, a.stop, b.stop)
    try {
      assert.equal(a.probes + b.probes, 0, 'no probe before the clock moves')
      await firstProbes(clock, 2)
      assert.deepEqual([a.probes, b.probes], [1, 1])
      assert.deepEqual((await names(srv, 4)).sort(), ['a', 'a', 'b', 'b'], 'both serve while healthy')
      clock.advance(99)
      assert.equal(clock.pending(), 2, 'no probe due before the interval')
      clock.advance(1)
      assert.equal(clock.pending(), 0, 'both probes started at the interval')
      await waitFor('the second probes answered', () => clock.pending() === 2)
      assert.deepEqual([a.probes, b.probes], [2, 2], 'one probe per upstream per interval')

      a.probeStatus = 500
      await probeRound(clock, 2)
      assert.deepEqual((await names(srv, 4)).sort(), ['a', 'a', 'b', 'b'], 'one failed probe: still in (fall is 2)')
      await probeRound(clock, 2)
      const hits = a.hits
      assert.deepEqual(await names(srv, 6), ['b', 'b', 'b', 'b', 'b', 'b'], 'taken out after the second; all traffic on b, no 5xx')
      await probeRound(clock, 2)
      await probeRound(clock, 2)
      assert.deepEqual(await names(srv, 4), ['b', 'b', 'b', 'b'], 'probing goes on; a stays out')
      assert.equal(a.hits, hits, 'no request reached a while it was out')
      assert.equal(a.probes, 6)

      a.probeStatus = 200
      await probeRound(clock, 2)
      assert.deepEqual(await names(srv, 4), ['b', 'b', 'b', 'b'], 'one good probe: still out (rise is 2)')
      await probeRound(clock, 2)
      assert.deepEqual((await names(srv, 4)).sort(), ['a', 'a', 'b', 'b'], 'back after the second')
    } finally {
      await srv.close()
    }
    // The access log names the upstream that answered each request (its file is written asynchronously).
    const complete = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').slice(0, -1) : [])
    await waitFor('26 access log lines', () => complete().length >= 26)
    const lines = complete().map((l) => JSON.parse(l) as { upstream?: string; status: number })
    assert.equal(lines.length, 26)
    assert.ok(lines.every((l) => l.status === 200 && (l.upstream === a.url || l.upstream === b.url)))
    assert.ok(lines.some((l) => l.upstream === a.url) && lines.some((l) => l.upstream === b.url))
  })

  test('an upstream that stops entirely: traffic moves to the other one, no 5xx for idempotent requests; it returns when it restarts', async () => {
    const a = await backend('a')
    const b = await backend('b')
    const clock = new ManualClock()
    const srv = await startServer({ sites: [{ routes: [{ path: '/', proxy: { upstreams: [a.url, b.url], health: { active: ACTIVE } } }] }] }, undefined, { clock })
    cleanups.push(b.stop)
    try {
      await firstProbes(clock, 2)
      await a.stop()
      // Before the probes notice, refused connections are retried on b: no 5xx (fewer failures than passive ejection needs).
      assert.deepEqual(await names(srv, 4), ['b', 'b', 'b', 'b'])
      await probeRound(clock, 2)
      await probeRound(clock, 2)
      const hits = a.hits
      assert.deepEqual(await names(srv, 6), ['b', 'b', 'b', 'b', 'b', 'b'])
      for (const method of ['HEAD', 'OPTIONS', 'DELETE']) {
        const r = await request('http/1.1', srv.url + 'x', { method })
        assert.equal(r.status, 200, method)
      }

      await a.start()
      cleanups.push(a.stop)
      await probeRound(clock, 2)
      assert.deepEqual(await names(srv, 4), ['b', 'b', 'b', 'b'], 'one good probe after the restart: still out')
      await probeRound(clock, 2)
      assert.deepEqual((await names(srv, 4)).sort(), ['a', 'a', 'b', 'b'], 'back after `rise` good probes')
      assert.equal(a.hits, hits + 2)
    } finally {
      await srv.close()
    }
  })

  test('no healthy upstream: 503 with Retry-After, then service resumes', async () => {
    const a = await backend('a')
    cleanups.push(a.stop)
    const dead = `http://127.0.0.1:${await closedPort()}`
    const clock = new ManualClock()
    const srv = await startServer({ sites: [{ routes: [{ path: '/', proxy: { upstreams: [a.url, dead], health: { active: { ...ACTIVE, fall: 1 } } } }] }] }, undefined, { clock })
    try {
      await firstProbes(clock, 2)
      assert.deepEqual(await names(srv, 2), ['a', 'a'], 'the dead upstream is out after one failed probe (fall 1)')
      a.probeStatus = 503
      assert.equal((await get(srv)).status, 200, 'until the next probe, a serves')
      await probeRound(clock, 2)
      const last = await get(srv)
      assert.equal(last.status, 503)
      assert.equal(last.retryAfter, '5')
      assert.match(last.text, /no healthy upstream/)
      a.probeStatus = 200
      await probeRound(clock, 2)
      assert.equal((await get(srv)).status, 503, 'one good probe: still out (rise is 2)')
      await probeRound(clock, 2)
      assert.equal((await get(srv)).status, 200)
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
    assert.deepEqual(d.active, { path: '/', interval: 5000, timeout: 2000, rise: 2, fall: 3, expect: { min: 200, max: 399 }, shared: false })
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
    const clock = new ManualClock()
    const srv = await startServer(
      { sites: [{ routes: [{ path: '/', proxy: { upstreams: [a.url, b.url], health: { passive: { consecutiveFailures: 3, ejectFor: '400ms' } } } }] }] },
      undefined,
      { clock },
    )
    /** Requests until one reaches a (at most `n`), after which a was re-ejected or served. */
    const untilA = async (n: number) => {
      for (let i = 0; i < n; i++) if ((await get(srv)).text === 'a') return true
      return false
    }
    try {
      a.trafficStatus = 500
      const codes: number[] = []
      while (a.hits < 3) codes.push((await get(srv)).status)
      assert.equal(codes.filter((c) => c === 500).length, 3, '5xx answers pass through to the client until the ejection')
      assert.deepEqual(await names(srv, 6), ['b', 'b', 'b', 'b', 'b', 'b'], 'a ejected')
      assert.equal(a.hits, 3)

      // Back after ejectFor (400 ms), not before, on probation: one more 500 ejects it again, now for twice as long.
      clock.advance(399)
      assert.deepEqual(await names(srv, 4), ['b', 'b', 'b', 'b'], 'still out 1 ms before ejectFor')
      clock.advance(1)
      assert.ok(await untilA(2), 'a back after ejectFor')
      assert.equal(a.hits, 4)
      assert.deepEqual(await names(srv, 6), ['b', 'b', 'b', 'b', 'b', 'b'], 're-ejected after a single failure')

      a.trafficStatus = 200
      clock.advance(799)
      assert.deepEqual(await names(srv, 4), ['b', 'b', 'b', 'b'], 'the second ejection lasts twice as long (800 ms)')
      clock.advance(1)
      assert.ok((await names(srv, 2)).includes('a'), 'a back after 800 ms')
      // Healthy again: its failure count starts over.
      a.trafficStatus = 500
      let before = a.hits
      for (let i = 0; i < 12 && a.hits < before + 3; i++) await get(srv)
      assert.equal(a.hits, before + 3, 'two failures after a success do not eject: a gets a third request')
      assert.deepEqual(await names(srv, 4), ['b', 'b', 'b', 'b'], 'the third one does, for 1600 ms: no time served since the last return')
      clock.advance(1599)
      assert.deepEqual(await names(srv, 4), ['b', 'b', 'b', 'b'])
      clock.advance(1)
      a.trafficStatus = 200
      assert.ok((await names(srv, 2)).includes('a'), 'a back after 1600 ms')

      // Serving well for three ejectFor periods takes the doubling down three steps: the next ejection is 400 ms again.
      clock.advance(1200)
      a.trafficStatus = 500
      before = a.hits
      for (let i = 0; i < 12 && a.hits < before + 3; i++) await get(srv)
      assert.deepEqual(await names(srv, 4), ['b', 'b', 'b', 'b'], 'ejected again after 3 failures')
      clock.advance(399)
      assert.deepEqual(await names(srv, 4), ['b', 'b', 'b', 'b'])
      clock.advance(1)
      assert.ok(await untilA(2), 'back after 400 ms: the doubling decayed')
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
    const clock = new ManualClock()
    const health = createHealth(targets, cfg, log, undefined, clock)
    try {
      assert.deepEqual(
        health.status().map((s) => [s.healthy, s.reason]),
        [
          [true, 'ok'],
          [true, 'ok'],
        ],
      )
      await firstProbes(clock, 2)
      a.probeStatus = 500
      await probeRound(clock, 2)
      assert.equal(targets[0]!.healthy, false, 'down after one failed probe (fall 1)')
      assert.match(health.status()[0]!.reason, /^health check failed: probe answered 500, expected 200-399$/)
      const down = lines.find((l) => l.msg === 'upstream unhealthy')!
      assert.equal(down.level, 40)
      assert.equal(down.upstream, a.url)
      assert.match(down.reason!, /1 failed health checks in a row/)
      a.probeStatus = 200
      await probeRound(clock, 2)
      assert.equal(targets[0]!.healthy, true, 'up after one good probe (rise 1)')
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
      // The ejection runs its course while probes pass (ejection timer + two probe timers pending).
      await probeRound(clock, 3)
      assert.equal(targets[1]!.healthy, false, 'still ejected at 100 ms')
      assert.match(health.status()[1]!.reason, /^ejected: /)
      await probeRound(clock, 3, 2)
      assert.equal(targets[1]!.healthy, true, 'back after 200 ms')
      assert.ok(lines.some((l) => l.msg === 'upstream healthy again' && l.upstream === b.url && l.reason === 'ejection of 200 ms over'))
      // A stopped upstream's probe names the cause.
      await b.stop()
      await probeRound(clock, 2)
      assert.equal(targets[1]!.healthy, false)
      assert.match(health.status()[1]!.reason, /connection refused/)
    } finally {
      await health.close()
    }
  })
})
