import assert from 'node:assert/strict'
import { readdirSync, readFileSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import pg from 'pg'
import { pino } from 'pino'
import type { BodyLimits } from '../../src/core/body.ts'
import { systemClock } from '../../src/core/clock.ts'
import type { Context } from '../../src/core/context.ts'
import type { Endpoint } from '../../src/core/endpoints.ts'
import { openPostgres, type Postgres } from '../../src/core/postgres.ts'
import { createCollector, type Collector } from '../../src/rum/collector.ts'
import { openPostgresRumStore } from '../../src/rum/pg-store.ts'
import { fingerprint, type RumRow, type RumStore } from '../../src/rum/store.ts'
import { startPostgres, type PostgresServer } from '../helpers/postgres.ts'
import { rumRow, T0 } from '../helpers/rum.ts'
import { captureLog, type CapturedLog } from '../helpers/server.ts'

/**
 * Real-user monitoring's collector over the PostgreSQL store, with a real
 * PostgreSQL that crashes (`kill`, SIGKILL) and comes back (`start`), and
 * one behind a connection that stops answering (a network partition).
 * Beacons are answered all along; the rows that could not be written are
 * dropped and counted, never half written; one warning names PostgreSQL;
 * and once the database answers again, the pool makes new connections and
 * the next beacons are stored.
 *
 * The configuration's `postgres` is not wired to the collector in
 * src/server/app.ts yet: the collector is made here as app.ts makes it,
 * and beacons are handed to its GIF endpoint (the same checks, scrubbing,
 * queue and writes as over HTTP).
 */

let server: PostgresServer
let databases = 0
const pools: Postgres[] = []
/** Rejections no one handled while the tests ran: the collector must let none escape. */
const unhandled: unknown[] = []
const onUnhandled = (reason: unknown): void => void unhandled.push(reason)

before(async () => {
  server = await startPostgres()
  process.on('unhandledRejection', onUnhandled)
})

after(async () => {
  process.off('unhandledRejection', onUnhandled)
  await Promise.all(pools.map((p) => p.close().catch(() => undefined)))
  if (server) await kill().catch(() => undefined)
  await server?.close()
})

/*
 * The crash and the restart: the helper's kill() and start() (SIGKILL to the
 * postmaster, then a new one on the same port), with what this machine
 * needs besides (test/helpers/postgres.ts, reported):
 * - the backends die with the postmaster, as on a machine that crashed: a
 *   backend left running an INSERT would go on writing after its
 *   postmaster is gone, while the next one recovers;
 * - kill() waits for its child's 'exit', which the helper's stderr reader
 *   can unhook when the dying cluster logs: it is waited for at most 1 s
 *   once every process of the cluster is gone;
 * - where nothing reaps orphans (this machine's PID 1 does not), a killed
 *   postmaster stays a zombie whose PID looks alive, so the next one
 *   refuses its lock files: they go.
 */

/** A running process's parent (/proc/<pid>/stat); null once it has ended (a zombie too). */
function parentOf(pid: number): number | null {
  try {
    const [state, parent] = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
    return state === 'Z' || state === 'X' ? null : Number(parent)
  } catch {
    return null
  }
}

/** The file's cluster: its folder, and the PIDs of its postmaster and every process the postmaster started. */
function cluster(): { dir: string; pids: number[] } {
  for (const name of readdirSync(tmpdir()).filter((n) => n.startsWith('edgebox-pg-'))) {
    const dir = path.join(tmpdir(), name)
    let lines: string[]
    try {
      lines = readFileSync(path.join(dir, 'data', 'postmaster.pid'), 'utf8').split('\n')
    } catch {
      continue
    }
    if (Number(lines[3]) !== server.port) continue
    const postmaster = Number(lines[0])
    const children = readdirSync('/proc').filter((d) => /^\d+$/.test(d) && parentOf(Number(d)) === postmaster).map(Number)
    return { dir, pids: [postmaster, ...children] }
  }
  throw new Error(`no cluster of port ${server.port} in ${tmpdir()}`)
}

/** PostgreSQL crashes: kill(), its backends with it; back once every process is gone. */
async function kill(): Promise<void> {
  const { dir, pids } = cluster()
  const killing = server.kill()
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // gone already
    }
  }
  while (pids.some((pid) => parentOf(pid) !== null)) await new Promise((r) => setTimeout(r, 10))
  await Promise.race([killing, new Promise((r) => setTimeout(r, 1_000))])
  rmSync(path.join(dir, 'data', 'postmaster.pid'), { force: true })
  rmSync(path.join(dir, `.s.PGSQL.${server.port}.lock`), { force: true })
}

/** PostgreSQL starts again on the same port, recovering what it had written. */
const restart = (): Promise<void> => server.start()

/** A CONNECT_TIMEOUT short enough for tests, long enough for a loaded machine. */
const CONNECT_TIMEOUT = 1_000
const LIMITS: BodyLimits = { maxBodySize: 1 << 20, bodyIdleTimeout: 10_000, bodyMinRate: 0, bodyRateGrace: 5_000, bodyBuffer: 1 << 20, bodyTempMax: 1 << 24 }
const STACK = 'TypeError: x is not a function\n    at f (https://shop.example/app.js:1:20)'

/** A fresh database on `port` (the server's, or a proxy's), and the process's kind of pool on it. */
async function database(port = server.port): Promise<{ postgres: Postgres; url: string }> {
  const name = `rum_e2e_${++databases}`
  await server.database(name)
  const url = `postgres://edgebox:edgebox@127.0.0.1:${port}/${name}`
  const postgres = await openPostgres({ url, max: 4, connectTimeout: CONNECT_TIMEOUT }, pino({ level: 'silent' }))
  pools.push(postgres)
  return { postgres, url }
}

interface Box {
  readonly store: RumStore
  readonly collector: Collector
  readonly log: CapturedLog
  /** Hands a beacon to the GIF endpoint, as a browser's image request; the status it was answered with. */
  beacon(pv: string): number
}

/** A collector over a PostgreSQL store, as src/server/app.ts makes one, warnings captured. */
async function collectorOn(postgres: Postgres, opts: { insertTimeout?: number } = {}): Promise<Box> {
  const store = await openPostgresRumStore(postgres, opts)
  const log = captureLog('warn')
  const collector = createCollector({ store, log: log.logger, clock: systemClock, limits: LIMITS, perMinute: 10_000 })
  const gif = collector.endpointsFor({ allows: () => false } as never).find((e) => e.path === '/_edgebox/rum/beacon.gif')!
  return { store, collector, log, beacon: (pv) => gifBeacon(gif, pv) }
}

/** A page view's beacon: an LCP and an error with the reader's email in it (scrubbed before it is stored); two rows. */
function gifBeacon(gif: Endpoint, pv: string): number {
  const batch = {
    v: 1,
    pv,
    page: '/checkout',
    release: 'r7',
    events: [
      { t: 'vital', at: 1200, name: 'LCP', value: 1180.5, rating: 'good' },
      { t: 'error', at: 2100, kind: 'error', message: 'x is not a function for ann@example.com', stack: STACK, count: 1 },
    ],
  }
  let status = 0
  const ctx = {
    method: 'GET',
    query: `?d=${Buffer.from(JSON.stringify(batch)).toString('base64url')}`,
    clientAddress: '203.0.113.9',
    origin: 'https://shop.example',
    header: () => undefined,
    send: (code: number) => void (status = code),
  }
  void gif.handle(ctx as unknown as Context)
  return status
}
const ROWS_PER_BEACON = 2

/** The warnings the collector logged about rows it could not store. */
const storeWarnings = (log: CapturedLog) => log.lines.filter((l) => /^monitoring rows could not be stored; dropped/.test(String(l.msg)))

/** Edgebox's own row of a page view (src/rum/page-view.ts makes these), queued with the beacons' rows. */
const serverRow = (pv: string): RumRow => rumRow({ kind: 'server', pv, page: '/checkout', status: 200, duration: 3, json: JSON.stringify({ method: 'GET', route: 'sites[0].routes[0]', handler: 'static' }) })

/** How long a promise took to settle, and how. */
async function timed<T>(work: Promise<T>): Promise<{ ms: number; error: Error | null }> {
  const started = performance.now()
  try {
    await work
    return { ms: performance.now() - started, error: null }
  } catch (err) {
    return { ms: performance.now() - started, error: err as Error }
  }
}

test('PostgreSQL crashes and comes back: beacons are answered throughout, the rows meanwhile dropped and counted, then stored again', async () => {
  const { postgres, url } = await database()
  const target = url.replace('edgebox:edgebox@', 'edgebox@')
  const box = await collectorOn(postgres)
  const { collector, store } = box

  // stored: the beacons' rows and Edgebox's own
  for (const pv of ['a1', 'a2', 'a3']) assert.equal(box.beacon(pv), 200)
  assert.equal(collector.record([serverRow('a1')]), true)
  await collector.flush()
  assert.equal(collector.stats.stored, 3 * ROWS_PER_BEACON + 1)
  assert.equal(collector.stats.dropped, 0)
  assert.equal(await store.count(), 3 * ROWS_PER_BEACON + 1)
  const [group] = await store.errorGroups({ since: 0, until: Date.now() + 60_000 })
  assert.equal(group!.message, 'x is not a function for [email]')
  assert.equal(group!.fingerprint, fingerprint('x is not a function for [email]', STACK))
  assert.equal(group!.pageViews, 3)

  await kill()
  // the beacons are still answered: the page is never slowed or failed by its monitoring
  for (const pv of ['b1', 'b2']) assert.equal(box.beacon(pv), 200)
  assert.equal(collector.record([serverRow('b1')]), true)
  const write = await timed(collector.flush())
  assert.equal(write.error, null, 'nothing is thrown out of the collector')
  assert.ok(write.ms < CONNECT_TIMEOUT + 1_000, `the failed write took ${write.ms} ms`)
  assert.equal(collector.stats.dropped, 2 * ROWS_PER_BEACON + 1)
  assert.equal(collector.stats.stored, 3 * ROWS_PER_BEACON + 1)
  assert.equal(collector.stats.accepted, 5)
  // one warning, naming PostgreSQL and where it is
  const warnings = storeWarnings(box.log)
  assert.equal(warnings.length, 1, JSON.stringify(box.log.lines))
  assert.match(String(warnings[0]!.why), new RegExp(`^the RUM store's PostgreSQL \\(${target.replace(/[/.]/g, '\\$&')}\\) failed: `))
  assert.equal(warnings[0]!.rows, 2 * ROWS_PER_BEACON + 1)

  // the collector's own timer keeps writing (every 100 ms) while PostgreSQL is down; its failures are counted too, and none escapes
  assert.equal(box.beacon('b3'), 200)
  const deadline = Date.now() + 5_000
  while (collector.stats.dropped < 3 * ROWS_PER_BEACON + 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  assert.equal(collector.stats.dropped, 3 * ROWS_PER_BEACON + 1)

  // every query of the store fails promptly too, naming PostgreSQL (the query API answers 500 with it)
  const window = { since: 0, until: Date.now() + 60_000 }
  const calls: Array<[string, () => Promise<unknown>]> = [
    ['count', () => store.count()],
    ['size', () => store.size()],
    ['percentiles', () => store.percentiles({ ...window, metric: 'LCP', by: 'page' })],
    ['errorGroups', () => store.errorGroups(window)],
    ['pageViews', () => store.pageViews({ ...window, limit: 10 })],
    ['sweep', () => store.sweep(Date.now(), { maxAge: 86_400_000, maxSize: 1 << 30 })],
  ]
  for (const [what, call] of calls) {
    const r = await timed(call())
    assert.match(String(r.error?.message), /^the RUM store's PostgreSQL \(postgres:\/\/edgebox@127\.0\.0\.1:\d+\/rum_e2e_\d+\) failed: /, what)
    assert.ok(r.ms < CONNECT_TIMEOUT + 1_000, `${what} took ${r.ms} ms`)
  }

  await restart()
  // the pool makes new connections: the next beacons are stored, the dropped ones are not there
  for (const pv of ['c1', 'c2']) assert.equal(box.beacon(pv), 200)
  await collector.flush()
  assert.equal(collector.stats.stored, 5 * ROWS_PER_BEACON + 1)
  assert.equal(await store.count(), 5 * ROWS_PER_BEACON + 1)
  const views = (await store.pageViews({ ...window, pv: 'b1', limit: 10 })).length + (await store.pageViews({ ...window, pv: 'c2', limit: 10 })).length
  assert.equal(views, 1, 'b1 was dropped, c2 stored')
  assert.equal((await store.errorGroups(window))[0]!.pageViews, 5)
  await collector.close()
  assert.deepEqual(unhandled, [])
})

test('a store opened while PostgreSQL is down fails promptly, naming PostgreSQL; opened once it is back', async () => {
  const { postgres } = await database()
  await kill()
  try {
    // the pool's idle connection (from openPostgres's check) is dropped once its reset is read: the open then needs a new one
    // (were it taken first, migrate's checked-out client would emit an unheard 'error': src/core/postgres.ts, reported)
    while (postgres.pool.idleCount > 0) await new Promise((r) => setTimeout(r, 10))
    const r = await timed(openPostgresRumStore(postgres))
    assert.match(String(r.error?.message), /^cannot open the RUM store on PostgreSQL \(postgres:\/\/edgebox@127\.0\.0\.1:\d+\/rum_e2e_\d+\): /)
    assert.ok(r.ms < CONNECT_TIMEOUT + 1_000, `${r.ms} ms`)
  } finally {
    await restart()
  }
  const store = await openPostgresRumStore(postgres)
  await store.insert([rumRow()])
  assert.equal(await store.count(), 1)
  await store.close()
})

test('a batch cut by a crash in the middle of its insert is stored whole or not at all', async (t) => {
  const { postgres, url } = await database()
  const store = await openPostgresRumStore(postgres)
  await store.insert([rumRow({ pv: 'before' })])
  const rows = Array.from({ length: 60_000 }, (_, i) => rumRow({ kind: 'error', name: 'error', pv: `big${i % 500}`, time: T0 + i, message: `m${i}`, stack: STACK }))
  const insert = timed(store.insert(rows))
  // kill once PostgreSQL is running the INSERT
  const watcher = new pg.Client({ connectionString: url })
  await watcher.connect()
  const deadline = Date.now() + 10_000
  let running = false
  while (!running && Date.now() < deadline) {
    running = (await watcher.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'INSERT INTO rum_events%'")).rows[0].n > 0
  }
  await watcher.end().catch(() => undefined)
  assert.ok(running, 'the INSERT was seen running')
  await kill()
  const result = await insert
  await restart()
  const count = await store.count()
  const counted = Number((await postgres.pool.query('SELECT count(*)::int AS n FROM rum_events')).rows[0].n)
  assert.equal(counted, count, 'the ledger agrees with the table')
  t.diagnostic(`the insert ${result.error ? `failed (${result.error.message})` : 'was answered'}; ${count - 1} of its ${rows.length} rows stored`)
  if (result.error) {
    assert.match(result.error.message, /^the RUM store's PostgreSQL \(.*\) failed: /)
    assert.ok(count === 1 || count === 1 + rows.length, `${count} rows: a half-written batch`)
  } else assert.equal(count, 1 + rows.length)
  await store.close()
})

test('a crash in the middle of a sweep: the sweep rejects naming PostgreSQL, nothing escapes, and the next sweep (new connection) goes on', async () => {
  const { postgres, url } = await database()
  const store = await openPostgresRumStore(postgres)
  const rows = Array.from({ length: 60_000 }, (_, i) => rumRow({ pv: `old${i % 500}`, time: T0 + i, json: JSON.stringify({ pad: 'x'.repeat(200) }) }))
  await store.insert(rows)
  const sweep = timed(store.sweep(T0 + 86_400_000, { maxAge: 1_000, maxSize: 1 << 30 }))
  const watcher = new pg.Client({ connectionString: url })
  await watcher.connect()
  const deadline = Date.now() + 10_000
  let running = false
  while (!running && Date.now() < deadline) {
    running = (await watcher.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'DELETE FROM rum_events%'")).rows[0].n > 0
  }
  await watcher.end().catch(() => undefined)
  assert.ok(running, 'the sweep was seen deleting')
  await kill()
  const result = await sweep
  assert.match(String(result.error?.message), /^the RUM store's PostgreSQL \(postgres:\/\/edgebox@127\.0\.0\.1:\d+\/rum_e2e_\d+\) failed: /)
  await restart()
  // each chunk was its own transaction: what was deleted before the crash stays deleted, the ledger agrees, and the next sweep ends the work
  const left = await store.count()
  assert.equal(Number((await postgres.pool.query('SELECT count(*)::int AS n FROM rum_events')).rows[0].n), left)
  assert.equal(left % 10_000, 0, `${left}: whole chunks`)
  assert.deepEqual(await store.sweep(T0 + 86_400_000, { maxAge: 1_000, maxSize: 1 << 30 }), { byAge: left, bySize: 0 })
  assert.equal(await store.count(), 0)
  await store.close()
  assert.deepEqual(unhandled, [])
})

/**
 * A TCP proxy to PostgreSQL whose `stall` makes it swallow every byte
 * both ways, connections kept open: a database that stops answering
 * without closing anything (a network partition, a hung host).
 */
async function stallingProxy(target: number): Promise<{ port: number; stall(): void; resume(): void; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>()
  let stalled = false
  const proxy = net.createServer((client) => {
    const upstream = net.connect(target, '127.0.0.1')
    sockets.add(client).add(upstream)
    client.on('data', (chunk) => void (stalled || upstream.write(chunk)))
    upstream.on('data', (chunk) => void (stalled || client.write(chunk)))
    const drop = () => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.on('error', drop).on('close', drop)
    upstream.on('error', drop).on('close', drop)
  })
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r))
  return {
    port: (proxy.address() as net.AddressInfo).port,
    stall: () => void (stalled = true),
    resume: () => void (stalled = false),
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy()
        proxy.close(() => r())
      }),
  }
}

test('PostgreSQL stops answering: an insert fails after insertTimeout, a new connection after connectTimeout; rows dropped and counted; stored again once it answers', async () => {
  const proxy = await stallingProxy(server.port)
  try {
    const { postgres } = await database(proxy.port)
    const box = await collectorOn(postgres, { insertTimeout: 500 })
    const { collector, store } = box
    box.beacon('s1')
    await collector.flush()
    assert.equal(await store.count(), ROWS_PER_BEACON)

    proxy.stall()
    box.beacon('s2')
    // the write goes out on the pool's open connection and gets no answer: it fails after insertTimeout, its connection dropped
    const write = await timed(collector.flush())
    assert.equal(write.error, null)
    assert.ok(write.ms >= 450 && write.ms < 2_500, `the write took ${write.ms} ms`)
    assert.equal(collector.stats.dropped, ROWS_PER_BEACON)
    assert.match(String(storeWarnings(box.log)[0]?.why), /^the RUM store's PostgreSQL \(.*\) failed: Query read timeout$/)
    // a query needs a new connection, which is never answered: it fails after connectTimeout
    const read = await timed(store.count())
    assert.match(String(read.error?.message), /^the RUM store's PostgreSQL \(postgres:\/\/edgebox@127\.0\.0\.1:\d+\/rum_e2e_\d+\) failed: .*timeout/i)
    assert.ok(read.ms >= CONNECT_TIMEOUT - 50 && read.ms < CONNECT_TIMEOUT + 1_500, `the read took ${read.ms} ms`)

    proxy.resume()
    box.beacon('s3')
    await collector.flush()
    assert.equal(collector.stats.dropped, ROWS_PER_BEACON)
    assert.equal(collector.stats.stored, 2 * ROWS_PER_BEACON)
    // the timed-out insert never reached the table: s1 and s3 only
    assert.equal(await store.count(), 2 * ROWS_PER_BEACON)
    assert.deepEqual((await store.pageViews({ since: 0, until: Date.now() + 60_000, pv: 's2', limit: 1 })), [])
    await collector.close()
    assert.deepEqual(unhandled, [])
  } finally {
    await proxy.close()
  }
})
