import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import pg from 'pg'
import { pino } from 'pino'
import { openPostgres, type Postgres } from '../../src/core/postgres.ts'
import type { Batch } from '../../src/rum/schema.ts'
import {
  ALL_KEY,
  HISTOGRAM_EDGES,
  INSERT_COLUMNS,
  ROW_COLUMNS,
  MAX_SIZE_ROUNDS,
  MemoryRumStore,
  ROW_OVERHEAD,
  RUM_STORE_CLOSED,
  SCHEMA_V1,
  UNKNOWN_KEY,
  compareText,
  classifyBrowser,
  classifyDevice,
  firstFrame,
  fingerprint,
  nearestRank,
  normaliseMessage,
  openSqliteRumStore,
  rumStoreFile,
  toRows,
  topFrame,
  type RumRow,
  type RumStore,
} from '../../src/rum/store.ts'
import { openPostgresRumStore, RUM_PG_MIGRATIONS, RUM_ROW_OVERHEAD, RUM_SWEEP_LOCK } from '../../src/rum/pg-store.ts'
import { startPostgres, type PostgresServer } from '../helpers/postgres.ts'
import { rumRow, rumStores, T0 } from '../helpers/rum.ts'

const { stores, tempDir, cleanup } = rumStores('edgebox-rum-store-')
after(cleanup)

/**
 * The PostgreSQL store runs the same contract: one server for this file
 * (started when a test first needs it), a database of its own for each
 * store, so no test sees another's rows.
 */
let postgresServer: Promise<PostgresServer> | null = null
let databases = 0
/** The pools not ended yet: ended after the file. */
const pools = new Set<Postgres>()
after(async () => {
  await Promise.all([...pools].map((p) => p.close()))
  if (postgresServer) await (await postgresServer).close()
})

/** A database of its own on the file's server, and the process's kind of pool on it. */
async function freshDatabase(): Promise<{ postgres: Postgres; url: string; server: PostgresServer }> {
  postgresServer ??= startPostgres()
  const server = await postgresServer
  const url = await server.database(`rum_${++databases}`)
  const postgres = await openPostgres({ url, max: 4, connectTimeout: 5_000 }, pino({ level: 'silent' }))
  pools.add(postgres)
  return { postgres, url, server }
}

/** Ends a pool now rather than after the file (the test server takes 50 connections). */
async function endPool(postgres: Postgres): Promise<void> {
  if (pools.delete(postgres)) await postgres.close()
}

/** A PostgresRumStore in a fresh database; closing it also ends its pool. */
async function openFreshPostgresStore(): Promise<RumStore> {
  const { postgres } = await freshDatabase()
  const store = await openPostgresRumStore(postgres)
  return new Proxy(store, {
    get(target, prop) {
      if (prop === 'close') return async () => {
        await target.close()
        await endPool(postgres)
      }
      const value: unknown = Reflect.get(target, prop)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
}

stores.push({ name: 'PostgresRumStore', make: openFreshPostgresStore })

const HOUR = 3_600_000

const row = rumRow
const vital = (value: number, over: Partial<RumRow> = {}): RumRow => row({ kind: 'vital', name: 'LCP', value, rating: 'good', ...over })
const error = (message: string, over: Partial<RumRow> = {}): RumRow => row({ kind: 'error', name: 'error', message, fingerprint: fingerprint(message, over.stack ?? null), ...over })
const PHASES = { redirect: 0, dns: 12, tcp: 20, tls: 25, ttfb: 80, transfer: 15, dom: 220, load: 30 }
const nav = (phases: Record<string, number> | null, over: Partial<RumRow> = {}): RumRow => row({ kind: 'nav', json: phases === null ? null : JSON.stringify({ type: 'navigate', protocol: 'h2', phases }), ...over })
const api = (method: string, url: string, duration: number, status: number, outcome: string, over: Partial<RumRow> = {}): RumRow => row({ kind: 'api', url, duration, status, outcome, json: JSON.stringify({ method }), ...over })
const server = (pv: string, status: number, duration: number, over: Partial<RumRow> = {}): RumRow =>
  row({ kind: 'server', pv, status, duration, json: JSON.stringify({ method: 'GET', route: 'sites[0].routes[0]', handler: 'static', protocol: 'h1', edge: 1.25 }), ...over })
const MIN = 60_000
/** How many rows sweeping with maxSize 0 deletes from n rows: the oldest 10% (rounded up) a round, at most MAX_SIZE_ROUNDS rounds. */
const sizeRounds = (n: number): number => {
  let gone = 0
  for (let round = 0; round < MAX_SIZE_ROUNDS && n > 0; round++) {
    const k = Math.ceil(n / 10)
    gone += k
    n -= k
  }
  return gone
}
const NO_SIZE_LIMIT = Number.MAX_SAFE_INTEGER


// ---------------------------------------------------------------------------
// The pure parts: percentile definition, fingerprints, classifiers, toRows.
// ---------------------------------------------------------------------------

describe('nearest rank', () => {
  test('p75 of 1..100 is 75; the rank is ceil(p/100 * n), from 1', () => {
    const hundred = Array.from({ length: 100 }, (_, i) => i + 1)
    assert.equal(nearestRank(hundred, 75), 75)
    assert.equal(nearestRank(hundred, 50), 50)
    assert.equal(nearestRank(hundred, 95), 95)
    assert.equal(nearestRank([1, 2, 3], 50), 2)
    assert.equal(nearestRank([7], 95), 7)
    assert.equal(nearestRank([1, 2, 3, 4], 75), 3)
    assert.equal(nearestRank([1, 2, 3, 4, 5], 75), 4)
    assert.ok(Number.isNaN(nearestRank([], 50)))
  })
})

describe('fingerprints', () => {
  test('messages are normalised: numbers and quoted strings replaced', () => {
    assert.equal(normaliseMessage(`Cannot read properties of undefined (reading 'map')`), 'Cannot read properties of undefined (reading <s>)')
    assert.equal(normaliseMessage('Request 42 failed after 1.5s at 0x1f'), 'Request <n> failed after <n>s at <n>')
    assert.equal(normaliseMessage('  "a"   and  `b` '), '<s> and <s>')
  })

  test('the first frame: url:function, no line, column or query', () => {
    assert.equal(firstFrame('TypeError: x is not a function\n    at f (https://example.com/app.min.js:1:2345)\n    at g (https://example.com/b.js:1:1)'), 'https://example.com/app.min.js:f')
    assert.equal(firstFrame('Error: boom\n    at https://example.com/app.js?v=[redacted]:10:3'), 'https://example.com/app.js:')
    assert.equal(firstFrame('Error\n    at async Object.load (file:///srv/x.js:1:2)'), 'file:///srv/x.js:Object.load')
    assert.equal(firstFrame('f@https://example.com/app.js:1:2\n@https://example.com/app.js:3:4'), 'https://example.com/app.js:f')
    assert.equal(firstFrame('no frames here'), '')
  })

  test('16 hex digits; same normalised message and frame group, lines do not matter', () => {
    const a = fingerprint('Item 12 not found', 'Error\n    at load (https://x.example/app.js:1:200)')
    assert.match(a, /^[0-9a-f]{16}$/)
    assert.equal(fingerprint('Item 99 not found', 'Error\n    at load (https://x.example/app.js:7:9)'), a)
    assert.notEqual(fingerprint('Item 12 not found', 'Error\n    at save (https://x.example/app.js:1:200)'), a)
    assert.notEqual(fingerprint('Item 12 not found', 'Error\n    at load (https://x.example/other.js:1:200)'), a)
    assert.notEqual(fingerprint('Item 12 gone', 'Error\n    at load (https://x.example/app.js:1:200)'), a)
    assert.equal(fingerprint('m'), fingerprint('m', null))
  })
})

describe('classifiers and toRows', () => {
  test('browser engine family from the User-Agent', () => {
    const cases: Array<[string | undefined, string]> = [
      ['Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36', 'chromium'],
      ['Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0', 'chromium'],
      ['Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0', 'firefox'],
      ['Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15', 'safari'],
      ['Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/126.0 Mobile/15E148 Safari/604.1', 'safari'],
      ['Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70.0 Safari/537.36 Edge/18.17763', 'other'],
      ['curl/8.0', 'other'],
      [undefined, 'other'],
    ]
    for (const [ua, family] of cases) assert.equal(classifyBrowser(ua), family, ua)
  })

  test('device class: device.mobile, else Mobi in the User-Agent, else desktop, unknown without either', () => {
    assert.equal(classifyDevice({ device: { mobile: true } }, 'Desktop UA'), 'mobile')
    assert.equal(classifyDevice({ device: { mobile: false } }, 'Mobile Safari'), 'desktop')
    assert.equal(classifyDevice({}, 'Mozilla/5.0 (Linux; Android 14) Mobile Safari'), 'mobile')
    assert.equal(classifyDevice({ device: {} }, 'Mozilla/5.0 (X11)'), 'desktop')
    assert.equal(classifyDevice({}, undefined), 'unknown')
  })

  test('one row per event with the batch context, all of them the batch\'s page view (a route row names the view it moves to)', () => {
    const batch: Batch = {
      v: 1,
      pv: 'pv1',
      cached: true,
      page: '/a',
      release: 'r1',
      device: { conn: '4g' },
      events: [
        { t: 'vital', at: 10, name: 'INP', value: 120, rating: 'good', attr: { target: 'button' } },
        { t: 'error', at: 20, kind: 'unhandledrejection', message: 'boom 1', count: 3 },
        { t: 'route', at: 30, pv: 'pv2', from: '/a', to: '/b' },
        { t: 'api', at: 40, method: 'GET', url: '/api', status: 200, duration: 9, outcome: 'ok' },
      ],
    }
    const rows = toRows(batch, { time: T0, userAgent: 'Firefox/128.0', address: '2001:db8:1:2::7' })
    assert.equal(rows.length, 4)
    for (const r of rows) {
      assert.equal(r.time, T0)
      assert.equal(r.release, 'r1')
      assert.equal(r.env, null)
      assert.equal(r.cached, true)
      assert.equal(r.browser, 'firefox')
      assert.equal(r.deviceClass, 'desktop')
      assert.equal(r.address, '2001:db8:1::')
      assert.equal(r.country, null)
      assert.equal(r.conn, '4g')
    }
    assert.deepEqual(rows.map((r) => [r.kind, r.pv, r.page, r.offset]), [
      ['vital', 'pv1', '/a', 10],
      ['error', 'pv1', '/a', 20],
      ['route', 'pv1', '/a', 30],
      ['api', 'pv1', '/a', 40],
    ])
    assert.equal(rows[0]!.name, 'INP')
    assert.equal(rows[0]!.value, 120)
    assert.deepEqual(JSON.parse(rows[0]!.json!), { attr: { target: 'button' } })
    assert.equal(rows[1]!.name, 'unhandledrejection')
    assert.equal(rows[1]!.count, 3)
    assert.equal(rows[1]!.fingerprint, fingerprint('boom 1'))
    assert.equal(rows[2]!.url, '/b')
    assert.deepEqual(JSON.parse(rows[2]!.json!), { pv: 'pv2', from: '/a' })
    assert.deepEqual([rows[3]!.url, rows[3]!.status, rows[3]!.duration, rows[3]!.outcome], ['/api', 200, 9, 'ok'])
    assert.equal(toRows({ ...batch, events: [] }, { time: T0 }).length, 0)
    assert.equal(toRows(batch, { time: T0 })[0]!.address, null)
    assert.equal(toRows({ ...batch, device: undefined }, { time: T0 })[0]!.conn, null)
  })

  test('the top frame of a stack, as written; text ordered by code point', () => {
    assert.equal(topFrame('TypeError: x\n    at f (https://example.com/src/app.ts:10:3)\n    at g (b.js:1:1)'), 'at f (https://example.com/src/app.ts:10:3)')
    assert.equal(topFrame('f@https://example.com/app.js:1:2\n@https://example.com/app.js:3:4'), 'f@https://example.com/app.js:1:2')
    assert.equal(topFrame('no frames'), null)
    assert.equal(topFrame(null), null)
    // UTF-8 order (SQLite's BINARY), not UTF-16's: U+FF5E sorts before U+1F600
    assert.ok(compareText('\uff5e', '\u{1f600}') < 0)
    assert.ok(compareText('a', 'ab') < 0)
    assert.equal(compareText('x', 'x'), 0)
  })
})

// ---------------------------------------------------------------------------
// Contract: every RumStore behaves the same.
// ---------------------------------------------------------------------------

for (const { name, make } of stores) {
  describe(`rum store contract: ${name}`, () => {
    test('insert and count; an empty insert is harmless', async () => {
      const store = await make()
      assert.equal(await store.count(), 0)
      await store.insert([])
      await store.insert([row(), vital(1), error('x')])
      await store.insert([row({ kind: 'route', url: '/b', json: '{"pv":"pv2"}' })])
      assert.equal(await store.count(), 4)
      await store.close()
    })

    test('percentiles by none, page and device: nearest rank, within [since, until), of the metric asked', async () => {
      const store = await make()
      const rows: RumRow[] = []
      for (let i = 1; i <= 100; i++) rows.push(vital(i, { page: '/a', deviceClass: i % 2 ? 'mobile' : 'desktop' }))
      for (const v of [10, 20, 30]) rows.push(vital(v, { page: '/b', deviceClass: 'mobile' }))
      // not counted: another metric, before since, at until, not a vital
      rows.push(vital(5000, { name: 'INP' }), vital(5000, { time: T0 - 1 }), vital(5000, { time: T0 + HOUR }), row({ kind: 'nav', value: 5000 }))
      await store.insert(rows)
      const window = { metric: 'LCP' as const, since: T0, until: T0 + HOUR }

      const all = await store.percentiles({ ...window, by: 'none' })
      // 1..100 and 10, 20, 30: 103 values
      const sorted = [...Array.from({ length: 100 }, (_, i) => i + 1), 10, 20, 30].sort((a, b) => a - b)
      assert.deepEqual(all, [{ key: ALL_KEY, n: 103, p50: nearestRank(sorted, 50), p75: nearestRank(sorted, 75), p95: nearestRank(sorted, 95) }])

      const byPage = await store.percentiles({ ...window, by: 'page' })
      assert.deepEqual(byPage, [
        { key: '/a', n: 100, p50: 50, p75: 75, p95: 95 },
        { key: '/b', n: 3, p50: 20, p75: 30, p95: 30 },
      ])

      const byDevice = await store.percentiles({ ...window, by: 'device' })
      const odd = [...Array.from({ length: 50 }, (_, i) => 2 * i + 1), 10, 20, 30].sort((a, b) => a - b)
      assert.deepEqual(byDevice, [
        { key: 'mobile', n: 53, p50: nearestRank(odd, 50), p75: nearestRank(odd, 75), p95: nearestRank(odd, 95) },
        { key: 'desktop', n: 50, p50: 50, p75: 76, p95: 96 },
      ])

      const inp = await store.percentiles({ ...window, metric: 'INP', by: 'none' })
      assert.deepEqual(inp, [{ key: ALL_KEY, n: 1, p50: 5000, p75: 5000, p95: 5000 }])
      assert.deepEqual(await store.percentiles({ ...window, metric: 'CLS', by: 'page' }), [])
      await store.close()
    })

    test('percentiles keep fractional values (CLS)', async () => {
      const store = await make()
      await store.insert([0.01, 0.25, 0.1, 0.05].map((v) => vital(v, { name: 'CLS' })))
      assert.deepEqual(await store.percentiles({ metric: 'CLS', by: 'none', since: T0, until: T0 + 1 }), [{ key: ALL_KEY, n: 4, p50: 0.05, p75: 0.1, p95: 0.25 }])
      await store.close()
    })

    test('error groups: by fingerprint, counts summed, distinct page views, first and last seen', async () => {
      const store = await make()
      const stack = 'TypeError: x\n    at f (https://example.com/app.js:1:2)'
      await store.insert([
        error('Item 1 not found', { time: T0 + 10, pv: 'p1', stack, count: 2 }),
        error('Item 2 not found', { time: T0 + 5, pv: 'p1', stack: 'TypeError: x\n    at f (https://example.com/app.js:9:9)' }),
        error('Item 3 not found', { time: T0 + 30, pv: 'p2', stack }),
        error('other', { time: T0 + 20, pv: 'p3', count: 1 }),
        error('other', { time: T0 + 2 * HOUR, pv: 'p4', count: 50 }),
        // a row without a fingerprint gets one
        error('other', { time: T0 + 21, pv: 'p3', fingerprint: null }),
        vital(1),
      ])
      const groups = await store.errorGroups({ since: T0, until: T0 + HOUR })
      assert.deepEqual(groups, [
        { fingerprint: fingerprint('Item 1 not found', stack), message: 'Item 2 not found', count: 4, pageViews: 2, firstSeen: T0 + 5, lastSeen: T0 + 30, topFrame: 'at f (https://example.com/app.js:1:2)', releases: [] },
        { fingerprint: fingerprint('other'), message: 'other', count: 2, pageViews: 1, firstSeen: T0 + 20, lastSeen: T0 + 21, topFrame: null, releases: [] },
      ])
      const later = await store.errorGroups({ since: T0 + HOUR, until: T0 + 3 * HOUR })
      assert.deepEqual(later, [{ fingerprint: fingerprint('other'), message: 'other', count: 50, pageViews: 1, firstSeen: T0 + 2 * HOUR, lastSeen: T0 + 2 * HOUR, topFrame: null, releases: [] }])
      assert.deepEqual(await store.errorGroups({ since: 0, until: T0 }), [])
      await store.close()
    })

    test('percentiles by browser, country, network and connection type; rows without the value are unknown', async () => {
      const store = await make()
      await store.insert([
        ...[100, 200, 300, 400].map((v) => vital(v, { browser: 'chromium', country: 'DE', address: '192.0.2.0', conn: '4g' })),
        vital(50, { browser: 'firefox', country: null, address: '2001:db8::', conn: '3g' }),
        ...[700, 900].map((v) => vital(v, { browser: 'safari', country: null, address: null, conn: null })),
      ])
      const q = { metric: 'LCP' as const, since: T0, until: T0 + HOUR }
      assert.deepEqual(await store.percentiles({ ...q, by: 'browser' }), [
        { key: 'chromium', n: 4, p50: 200, p75: 300, p95: 400 },
        { key: 'safari', n: 2, p50: 700, p75: 900, p95: 900 },
        { key: 'firefox', n: 1, p50: 50, p75: 50, p95: 50 },
      ])
      assert.deepEqual(await store.percentiles({ ...q, by: 'country' }), [
        { key: 'DE', n: 4, p50: 200, p75: 300, p95: 400 },
        { key: UNKNOWN_KEY, n: 3, p50: 700, p75: 900, p95: 900 },
      ])
      assert.deepEqual(await store.percentiles({ ...q, by: 'network' }), [
        { key: '192.0.2.0', n: 4, p50: 200, p75: 300, p95: 400 },
        { key: UNKNOWN_KEY, n: 2, p50: 700, p75: 900, p95: 900 },
        { key: '2001:db8::', n: 1, p50: 50, p75: 50, p95: 50 },
      ])
      assert.deepEqual(await store.percentiles({ ...q, by: 'conn' }), [
        { key: '4g', n: 4, p50: 200, p75: 300, p95: 400 },
        { key: UNKNOWN_KEY, n: 2, p50: 700, p75: 900, p95: 900 },
        { key: '3g', n: 1, p50: 50, p75: 50, p95: 50 },
      ])
      await store.close()
    })

    test('percentiles over time buckets: grouped by floor(time / bucket), the earliest bucket first', async () => {
      const store = await make()
      // T0 is 20 s into its minute
      const B0 = 1_699_999_980_000
      assert.equal(Math.floor(T0 / MIN) * MIN, B0)
      await store.insert([
        vital(20, { page: '/a' }),
        vital(5, { page: '/b', time: T0 + 39_999 }),
        vital(10, { page: '/a', time: T0 + 1 }),
        vital(30, { page: '/a', time: B0 + MIN }),
        vital(31, { page: '/a', time: B0 + 3 * MIN + 59_999 }),
        vital(99, { page: '/a', time: T0 + HOUR }),
      ])
      const q = { metric: 'LCP' as const, since: T0, until: T0 + HOUR, bucket: MIN }
      assert.deepEqual(await store.percentiles({ ...q, by: 'page' }), [
        { bucket: B0, key: '/a', n: 2, p50: 10, p75: 20, p95: 20 },
        { bucket: B0, key: '/b', n: 1, p50: 5, p75: 5, p95: 5 },
        { bucket: B0 + MIN, key: '/a', n: 1, p50: 30, p75: 30, p95: 30 },
        { bucket: B0 + 3 * MIN, key: '/a', n: 1, p50: 31, p75: 31, p95: 31 },
      ])
      assert.deepEqual(await store.percentiles({ ...q, by: 'none', bucket: HOUR }), [{ bucket: 1_699_999_200_000, key: ALL_KEY, n: 5, p50: 20, p75: 30, p95: 31 }])
      await store.close()
    })

    test('histograms: counts per fixed bin, every bin listed, edges inclusive below', async () => {
      const store = await make()
      await store.insert([
        ...[0, 499, 500, 2500, 3999.5, 4000, 12000].map((v) => vital(v)),
        ...[0.05, 0.1, 0.0999, 0.3, 1.5].map((v) => vital(v, { name: 'CLS' })),
        vital(1000, { time: T0 + HOUR }),
        vital(1000, { name: 'INP' }),
      ])
      const q = { since: T0, until: T0 + HOUR }
      const lcp = await store.histogram({ ...q, metric: 'LCP' })
      const lcpCounts = [2, 1, 0, 0, 0, 1, 0, 1, 1, 0, 0, 0, 0, 1]
      assert.deepEqual(lcp, {
        metric: 'LCP',
        n: 7,
        bins: HISTOGRAM_EDGES.LCP.map((from, i) => ({ from, to: HISTOGRAM_EDGES.LCP[i + 1] ?? null, count: lcpCounts[i] })),
      })
      assert.deepEqual(lcp.bins.slice(-2), [{ from: 8000, to: 10000, count: 0 }, { from: 10000, to: null, count: 1 }])
      const cls = await store.histogram({ ...q, metric: 'CLS' })
      assert.equal(cls.n, 5)
      assert.deepEqual(cls.bins.map((b) => b.count), [0, 2, 1, 0, 0, 0, 1, 0, 0, 1])
      assert.deepEqual(cls.bins[1], { from: 0.05, to: 0.1, count: 2 })
      const ttfb = await store.histogram({ ...q, metric: 'TTFB' })
      assert.equal(ttfb.n, 0)
      assert.deepEqual(ttfb.bins.map((b) => b.count), HISTOGRAM_EDGES.TTFB.map(() => 0))
      await store.close()
    })

    test('a histogram of one group: only the rows whose page, device, country or connection is the key (unknown: none)', async () => {
      const store = await make()
      await store.insert([
        vital(400, { deviceClass: 'mobile', country: 'DE', page: '/a' }),
        vital(600, { deviceClass: 'mobile', page: '/b' }),
        vital(2600, { deviceClass: 'mobile', conn: '3g', page: '/a' }),
        vital(450, { deviceClass: 'desktop', country: 'DE', conn: '4g', page: '/a' }),
        vital(9000, { deviceClass: 'mobile', time: T0 + HOUR }),
      ])
      const q = { since: T0, until: T0 + HOUR, metric: 'LCP' as const }
      const counts = async (by: 'device' | 'country' | 'conn' | 'page', key: string) => {
        const h = await store.histogram({ ...q, of: { by, key } })
        return [h.n, h.bins.filter((b) => b.count > 0).map((b) => [b.from, b.count])]
      }
      assert.deepEqual(await counts('device', 'mobile'), [3, [[0, 1], [500, 1], [2500, 1]]])
      assert.deepEqual(await counts('device', 'desktop'), [1, [[0, 1]]])
      assert.deepEqual(await counts('country', 'DE'), [2, [[0, 2]]])
      assert.deepEqual(await counts('country', UNKNOWN_KEY), [2, [[500, 1], [2500, 1]]])
      assert.deepEqual(await counts('conn', '3g'), [1, [[2500, 1]]])
      assert.deepEqual(await counts('page', '/a'), [3, [[0, 2], [2500, 1]]])
      assert.deepEqual(await counts('page', '/nowhere'), [0, []])
      await store.close()
    })

    test('the timing breakdown: each phase\'s median per page, and the dominant phase', async () => {
      const store = await make()
      await store.insert([
        nav({ redirect: 0, dns: 10, tcp: 20, tls: 30, ttfb: 100, transfer: 5, dom: 200, load: 40 }, { page: '/a' }),
        nav({ redirect: 0, dns: 20, tcp: 20, tls: 30, ttfb: 300, transfer: 15, dom: 100, load: 40 }, { page: '/a' }),
        nav({ redirect: 0, dns: 30, tcp: 20, tls: 30, ttfb: 500, transfer: 25, dom: 150, load: 40 }, { page: '/a' }),
        // a tie: the first phase in order dominates
        nav({ redirect: 0, dns: 0, tcp: 0, tls: 0, ttfb: 50, transfer: 0, dom: 50, load: 0 }, { page: '/b' }),
        // one phase only; the others have no median
        nav({ ttfb: 10 }, { page: '/d' }),
        // not counted: no phases, outside the window, another kind
        nav(null, { page: '/c' }),
        nav(PHASES, { page: '/a', time: T0 - 1 }),
        row({ kind: 'resource', page: '/a', json: JSON.stringify({ phases: PHASES }) }),
      ])
      const q = { since: T0, until: T0 + HOUR }
      const none = { redirect: null, dns: null, tcp: null, tls: null, ttfb: null, transfer: null, dom: null, load: null }
      const expected = [
        { page: '/a', n: 3, medians: { redirect: 0, dns: 20, tcp: 20, tls: 30, ttfb: 300, transfer: 15, dom: 150, load: 40 }, dominant: 'ttfb' },
        { page: '/b', n: 1, medians: { redirect: 0, dns: 0, tcp: 0, tls: 0, ttfb: 50, transfer: 0, dom: 50, load: 0 }, dominant: 'ttfb' },
        { page: '/d', n: 1, medians: { ...none, ttfb: 10 }, dominant: 'ttfb' },
      ]
      assert.deepEqual(await store.breakdown(q), expected)
      assert.deepEqual(await store.breakdown({ ...q, page: '/b' }), [expected[1]])
      assert.deepEqual(await store.breakdown({ ...q, page: '/c' }), [])
      await store.insert([nav({ ...PHASES, dom: 10, ttfb: 900 }, { page: '/e' })])
      assert.equal((await store.breakdown({ ...q, page: '/e' }))[0]!.dominant, 'ttfb')
      await store.close()
    })

    test('API calls: the slowest by p75, the most failing by failures (outcome not ok, or 5xx)', async () => {
      const store = await make()
      await store.insert([
        api('GET', '/api/items', 100, 200, 'ok'),
        api('GET', '/api/items', 200, 200, 'ok'),
        api('GET', '/api/items', 300, 503, 'error'),
        api('GET', '/api/items', 400, 0, 'network'),
        api('POST', '/api/items', 50, 201, 'ok'),
        api('POST', '/api/items', 70, 500, 'ok'),
        api('GET', '/api/slow', 5000, 200, 'ok'),
        api('GET', '/api/abort', 10, 0, 'abort'),
        // not counted: outside the window, another kind
        api('GET', '/api/slow', 9000, 500, 'error', { time: T0 + HOUR }),
        row({ kind: 'resource', url: '/api/items', duration: 9999, status: 500 }),
      ])
      const q = { since: T0, until: T0 + HOUR }
      const slow = { method: 'GET', url: '/api/slow', count: 1, failures: 0, p75: 5000 }
      const items = { method: 'GET', url: '/api/items', count: 4, failures: 2, p75: 300 }
      const posts = { method: 'POST', url: '/api/items', count: 2, failures: 1, p75: 70 }
      const abort = { method: 'GET', url: '/api/abort', count: 1, failures: 1, p75: 10 }
      assert.deepEqual(await store.apiCalls({ ...q, sort: 'slowest', limit: 10 }), [slow, items, posts, abort])
      assert.deepEqual(await store.apiCalls({ ...q, sort: 'slowest', limit: 2 }), [slow, items])
      assert.deepEqual(await store.apiCalls({ ...q, sort: 'failing', limit: 10 }), [items, posts, abort])
      assert.deepEqual(await store.apiCalls({ ...q, sort: 'failing', limit: 1 }), [items])
      assert.deepEqual(await store.apiCalls({ since: 0, until: T0, sort: 'slowest', limit: 10 }), [])
      await store.close()
    })

    test('error groups: the top frame of the latest stack and the releases that reported it; a limit', async () => {
      const store = await make()
      const old = 'TypeError: x\n    at f (https://example.com/app.js:1:2)'
      const mapped = 'TypeError: x\n    at f (https://example.com/src/app.ts:12:5)'
      await store.insert([
        error('x', { time: T0 + 1, release: 'r2', stack: old, pv: 'a' }),
        error('x', { time: T0 + 3, release: 'r1', stack: mapped, fingerprint: fingerprint('x', old), pv: 'b' }),
        error('x', { time: T0 + 3, release: null, stack: null, fingerprint: fingerprint('x', old), pv: 'b' }),
        error('x', { time: T0 + 2, release: 'r2', stack: old, pv: 'c' }),
        error('y', { time: T0 + 5, release: 'r3' }),
      ])
      const groups = await store.errorGroups({ since: T0, until: T0 + HOUR })
      assert.deepEqual(groups, [
        { fingerprint: fingerprint('x', old), message: 'x', count: 4, pageViews: 3, firstSeen: T0 + 1, lastSeen: T0 + 3, topFrame: 'at f (https://example.com/src/app.ts:12:5)', releases: ['r1', 'r2'] },
        { fingerprint: fingerprint('y'), message: 'y', count: 1, pageViews: 1, firstSeen: T0 + 5, lastSeen: T0 + 5, topFrame: null, releases: ['r3'] },
      ])
      assert.deepEqual(await store.errorGroups({ since: T0, until: T0 + HOUR, limit: 1 }), [groups[0]])
      await store.close()
    })

    test('page views side by side: the browser\'s view beside Edgebox\'s server row, joined on the page-view id', async () => {
      const store = await make()
      await store.insert([
        server('pvA', 200, 12.5, { page: '/a', time: T0 + 100 }),
        vital(1000, { pv: 'pvA', page: '/a', time: T0 + 2000 }),
        nav(PHASES, { pv: 'pvA', page: '/a', time: T0 + 2000 }),
        vital(80, { pv: 'pvA', page: '/a', name: 'TTFB', time: T0 + 2000 }),
        // a later LCP of the same page view replaces the first
        vital(1200, { pv: 'pvA', page: '/a', time: T0 + 2500 }),
        // an error of the page view is not part of the join
        error('boom', { pv: 'pvA', page: '/a', time: T0 + 2500 }),
        server('pvB', 500, 3, { page: '/b', time: T0 + 50 }),
        nav(PHASES, { pv: 'pvC', page: '/c', time: T0 + 10 }),
        vital(900, { pv: 'pvC', page: '/c', name: 'FCP', time: T0 + 10 }),
        vital(700, { pv: 'pvD', page: '/d', time: T0 + 5 }),
        server('pvE', 200, 1, { page: '/e', time: T0 + HOUR }),
      ])
      const a = {
        pv: 'pvA',
        page: '/a',
        server: { method: 'GET', route: 'sites[0].routes[0]', handler: 'static', protocol: 'h1', edge: 1.25, time: T0 + 100, status: 200, duration: 12.5 },
        browser: { time: T0 + 2000, TTFB: 80, FCP: null, LCP: 1200, INP: null, CLS: null, nav: { type: 'navigate', protocol: 'h2', phases: PHASES } },
      }
      const b = { pv: 'pvB', page: '/b', server: { method: 'GET', route: 'sites[0].routes[0]', handler: 'static', protocol: 'h1', edge: 1.25, time: T0 + 50, status: 500, duration: 3 }, browser: null }
      const c = { pv: 'pvC', page: '/c', server: null, browser: { time: T0 + 10, TTFB: null, FCP: 900, LCP: null, INP: null, CLS: null, nav: { type: 'navigate', protocol: 'h2', phases: PHASES } } }
      const q = { since: T0, until: T0 + HOUR }
      assert.deepEqual(await store.pageViews({ ...q, limit: 10 }), [a, b, c])
      assert.deepEqual(await store.pageViews({ ...q, limit: 2 }), [a, b])
      // one page view, whenever its rows came
      assert.deepEqual(await store.pageViews({ since: 0, until: 1, pv: 'pvA', limit: 10 }), [a])
      assert.deepEqual(await store.pageViews({ ...q, pv: 'pvD', limit: 10 }), [{ pv: 'pvD', page: '/d', server: null, browser: { time: T0 + 5, TTFB: null, FCP: null, LCP: 700, INP: null, CLS: null, nav: null } }])
      assert.deepEqual(await store.pageViews({ ...q, pv: 'nope', limit: 10 }), [])
      await store.close()
    })

    test('sweep by age: rows at least maxAge old go', async () => {
      const store = await make()
      const now = T0 + 10 * HOUR
      await store.insert([row({ time: now - HOUR - 1 }), row({ time: now - HOUR }), row({ time: now - HOUR + 1 }), row({ time: now })])
      assert.deepEqual(await store.sweep(now, { maxAge: HOUR, maxSize: NO_SIZE_LIMIT }), { byAge: 2, bySize: 0 })
      assert.equal(await store.count(), 2)
      assert.deepEqual(await store.sweep(now, { maxAge: HOUR, maxSize: NO_SIZE_LIMIT }), { byAge: 0, bySize: 0 })
      await store.close()
    })

    test('sweep by size: the oldest 10% a round while over maxSize, at most MAX_SIZE_ROUNDS rounds', async () => {
      const store = await make()
      const now = T0 + HOUR
      // 300 rows, inserted out of time order, values their time
      const times = Array.from({ length: 300 }, (_, i) => (i * 7919) % 300)
      await store.insert(times.map((t) => vital(t, { time: T0 + t, message: 'x'.repeat(200) })))
      const before = await store.size()
      assert.ok(before > 0)
      assert.deepEqual(await store.sweep(now, { maxAge: 10 * HOUR, maxSize: NO_SIZE_LIMIT }), { byAge: 0, bySize: 0 })
      const gone = sizeRounds(300)
      assert.equal(gone, 268)
      assert.deepEqual(await store.sweep(now, { maxAge: 10 * HOUR, maxSize: 0 }), { byAge: 0, bySize: gone })
      const left = 300 - gone
      assert.equal(await store.count(), left)
      // the ones left are the newest
      assert.equal(left, 32)
      assert.deepEqual(await store.percentiles({ metric: 'LCP', by: 'none', since: T0 + 268, until: now }), [{ key: ALL_KEY, n: 32, p50: 283, p75: 291, p95: 298 }])
      assert.ok((await store.size()) < before)
      // the next sweep goes on, to the end
      assert.deepEqual(await store.sweep(now, { maxAge: 10 * HOUR, maxSize: 0 }), { byAge: 0, bySize: left })
      assert.equal(await store.count(), 0)
      await store.close()
    })

    test('sweep by size: ties in time go in insertion order; age first, then size', async () => {
      const store = await make()
      const now = T0 + 10 * HOUR
      // 300 rows of one time (values in insertion order), and one old row
      await store.insert([vital(-1, { time: T0 }), ...Array.from({ length: 300 }, (_, i) => vital(i, { time: now - 5 }))])
      assert.deepEqual(await store.sweep(now, { maxAge: HOUR, maxSize: 0 }), { byAge: 1, bySize: 268 })
      // the last 32 inserted are left: 268..299
      assert.deepEqual(await store.percentiles({ metric: 'LCP', by: 'none', since: 0, until: now }), [{ key: ALL_KEY, n: 32, p50: 283, p75: 291, p95: 298 }])
      await store.close()
    })

    test('a closed store rejects every method; close again is harmless', async () => {
      const store = await make()
      await store.insert([row()])
      await store.close()
      const closed = { message: RUM_STORE_CLOSED }
      await assert.rejects(store.insert([row()]), closed)
      await assert.rejects(store.count(), closed)
      await assert.rejects(store.percentiles({ metric: 'LCP', by: 'none', since: 0, until: T0 }), closed)
      await assert.rejects(store.errorGroups({ since: 0, until: T0 }), closed)
      await assert.rejects(store.sweep(T0, { maxAge: HOUR, maxSize: 0 }), closed)
      const w = { since: 0, until: T0 }
      await assert.rejects(store.histogram({ ...w, metric: 'LCP' }), closed)
      await assert.rejects(store.breakdown(w), closed)
      await assert.rejects(store.apiCalls({ ...w, sort: 'slowest', limit: 1 }), closed)
      await assert.rejects(store.pageViews({ ...w, limit: 1 }), closed)
      await assert.rejects(store.size(), closed)
      await store.close()
    })
  })
}

test('the memory store counts a row\'s size as ROW_OVERHEAD plus the characters of its text', async () => {
  const store = new MemoryRumStore()
  assert.equal(await store.size(), 0)
  // pv1, /, 192.0.2.0, nav: 16 characters
  await store.insert([row()])
  assert.equal(await store.size(), ROW_OVERHEAD + 16)
  await store.insert([row({ message: 'abcd', conn: '4g' })])
  assert.equal(await store.size(), 2 * ROW_OVERHEAD + 16 + 16 + 6)
  await store.close()
})

test('the memory, SQLite and PostgreSQL stores give the same answers to the same questions over the same rows', async () => {
  const memory = new MemoryRumStore()
  const others: Array<[string, RumStore]> = [
    ['SQLite', await openSqliteRumStore(tempDir())],
    ['PostgreSQL', await openFreshPostgresStore()],
  ]
  // a seeded mix of every kind, pages, devices, times and values
  let seed = 7
  const rand = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!
  const rows: RumRow[] = []
  for (let i = 0; i < 2000; i++) {
    const over: Partial<RumRow> = {
      time: T0 + Math.floor(rand() * 3 * HOUR),
      pv: `pv${Math.floor(rand() * 300)}`,
      page: pick(['/', '/a', '/b', '/\u00e9t\u00e9', '/\u{1f600}']),
      deviceClass: pick(['mobile', 'desktop', 'unknown'] as const),
      browser: pick(['chromium', 'firefox', 'safari', 'other'] as const),
      country: pick(['DE', 'FR', null]),
      address: pick(['192.0.2.0', '198.51.100.0', null]),
      conn: pick(['4g', '3g', null]),
      release: pick(['r1', 'r2', null]),
    }
    const k = Math.floor(rand() * 6)
    if (k === 0) rows.push(vital(Math.round(rand() * 8000) / 4, { ...over, name: pick(['LCP', 'FCP', 'TTFB', 'INP']) }))
    else if (k === 1) rows.push(vital(Math.round(rand() * 100) / 200, { ...over, name: 'CLS' }))
    else if (k === 2) rows.push(nav(Object.fromEntries(Object.keys(PHASES).map((p) => [p, Math.floor(rand() * 300)])), over))
    else if (k === 3) rows.push(api(pick(['GET', 'POST']), pick(['/api/a', '/api/b', '/api/c']), Math.floor(rand() * 2000), pick([200, 404, 500, 0]), pick(['ok', 'error', 'network']), over))
    else if (k === 4) rows.push(error(`Item ${i} ${pick(['not found', 'gone'])}`, { ...over, stack: pick([null, 'E\n    at f (https://x.example/a.js:1:2)', 'E\n    at g (https://x.example/a.js:3:4)']) }))
    else rows.push(server(over.pv!, pick([200, 500]), Math.floor(rand() * 100), over))
  }
  await memory.insert(rows)
  for (const [, store] of others) await store.insert(rows)
  for (const [since, until] of [[T0, T0 + HOUR], [T0 + HOUR, T0 + 3 * HOUR], [0, T0 + 4 * HOUR]] as const) {
    const w = { since, until }
    for (const [name, store] of others) {
      for (const metric of ['LCP', 'FCP', 'TTFB', 'INP', 'CLS'] as const) {
        for (const by of ['page', 'device', 'browser', 'country', 'network', 'conn', 'none'] as const) {
          assert.deepEqual(await store.percentiles({ ...w, metric, by }), await memory.percentiles({ ...w, metric, by }), `${name}: ${metric} by ${by}`)
          assert.deepEqual(await store.percentiles({ ...w, metric, by, bucket: 600_000 }), await memory.percentiles({ ...w, metric, by, bucket: 600_000 }), `${name}: ${metric} by ${by} in buckets`)
        }
        assert.deepEqual(await store.histogram({ ...w, metric }), await memory.histogram({ ...w, metric }), `${name}: ${metric} histogram`)
        assert.deepEqual(await store.histogram({ ...w, metric, of: { by: 'page', key: '/\u00e9t\u00e9' } }), await memory.histogram({ ...w, metric, of: { by: 'page', key: '/\u00e9t\u00e9' } }), `${name}: ${metric} histogram of a page`)
      }
      assert.deepEqual(await store.breakdown(w), await memory.breakdown(w), name)
      assert.deepEqual(await store.breakdown({ ...w, page: '/a' }), await memory.breakdown({ ...w, page: '/a' }), name)
      for (const sort of ['slowest', 'failing'] as const) assert.deepEqual(await store.apiCalls({ ...w, sort, limit: 5 }), await memory.apiCalls({ ...w, sort, limit: 5 }), `${name}: ${sort}`)
      assert.deepEqual(await store.errorGroups(w), await memory.errorGroups(w), name)
      assert.deepEqual(await store.errorGroups({ ...w, limit: 3 }), await memory.errorGroups({ ...w, limit: 3 }), name)
      assert.deepEqual(await store.pageViews({ ...w, limit: 50 }), await memory.pageViews({ ...w, limit: 50 }), name)
      assert.deepEqual(await store.pageViews({ ...w, pv: 'pv7', limit: 50 }), await memory.pageViews({ ...w, pv: 'pv7', limit: 50 }), name)
      assert.deepEqual(await store.pageViewEvents('pv7', 1000), await memory.pageViewEvents('pv7', 1000), name)
    }
    if (since === 0) {
      // the mix gave every question something to answer
      assert.ok((await memory.percentiles({ ...w, metric: 'LCP', by: 'page', bucket: 600_000 })).length > 20)
      assert.equal((await memory.breakdown(w)).length, 5)
      assert.equal((await memory.apiCalls({ ...w, sort: 'failing', limit: 5 })).length, 5)
      assert.ok((await memory.errorGroups(w)).some((g) => g.topFrame !== null && g.releases.length === 2))
      assert.ok((await memory.pageViews({ ...w, limit: 50 })).some((v) => v.server !== null && v.browser !== null))
    }
  }
  const sweeps = [
    { now: T0 + 3 * HOUR, limits: { maxAge: HOUR, maxSize: NO_SIZE_LIMIT } },
    { now: T0 + 3 * HOUR, limits: { maxAge: HOUR, maxSize: 0 } },
  ]
  for (const { now, limits } of sweeps) {
    const expected = await memory.sweep(now, limits)
    for (const [name, store] of others) assert.deepEqual(await store.sweep(now, limits), expected, name)
  }
  const left = await memory.percentiles({ since: 0, until: T0 + 4 * HOUR, metric: 'LCP', by: 'page' })
  for (const [name, store] of others) assert.deepEqual(await store.percentiles({ since: 0, until: T0 + 4 * HOUR, metric: 'LCP', by: 'page' }), left, name)
  await memory.close()
  for (const [, store] of others) await store.close()
})

// ---------------------------------------------------------------------------
// SQLite only: the file.
// ---------------------------------------------------------------------------

describe('SqliteRumStore: the file', () => {
  test('rows survive close and reopen', async () => {
    const dataDir = tempDir()
    const first = await openSqliteRumStore(dataDir)
    await first.insert([vital(1), vital(2), error('kept')])
    await first.close()
    const second = await openSqliteRumStore(dataDir)
    assert.equal(await second.count(), 3)
    assert.deepEqual(await second.percentiles({ metric: 'LCP', by: 'none', since: T0, until: T0 + 1 }), [{ key: ALL_KEY, n: 2, p50: 1, p75: 2, p95: 2 }])
    assert.equal((await second.errorGroups({ since: T0, until: T0 + 1 }))[0]!.message, 'kept')
    await second.close()
  })

  test('the file is 0600 and the rum folder 0700, at <dataDir>/rum/rum.sqlite', async () => {
    const dataDir = tempDir()
    const store = await openSqliteRumStore(dataDir)
    await store.insert([row()])
    const file = join(dataDir, 'rum', 'rum.sqlite')
    assert.equal(store.file, file)
    assert.equal(rumStoreFile(dataDir), file)
    assert.equal(statSync(file).mode & 0o777, 0o600)
    assert.equal(statSync(join(dataDir, 'rum')).mode & 0o777, 0o700)
    await store.close()
  })

  test('WAL journal, schema version 2, the documented table and indexes, each query on an index', async () => {
    const dataDir = tempDir()
    const store = await openSqliteRumStore(dataDir)
    await store.close()
    const db = new DatabaseSync(rumStoreFile(dataDir))
    try {
      assert.deepEqual({ ...db.prepare('PRAGMA journal_mode').get() }, { journal_mode: 'wal' })
      assert.deepEqual({ ...db.prepare('PRAGMA user_version').get() }, { user_version: 2 })
      const indexes = db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'rum_events' ORDER BY name").all().map((r) => r.name)
      assert.deepEqual(indexes, ['rum_errors', 'rum_pv', 'rum_time', 'rum_vitals'])
      const columns = db.prepare('PRAGMA table_info(rum_events)').all().map((r) => r.name)
      assert.deepEqual(columns, ['id', ...INSERT_COLUMNS.split(', '), 'conn'])
      const plan = (sql: string) =>
        db
          .prepare(`EXPLAIN QUERY PLAN ${sql}`)
          .all()
          .map((r) => String(r.detail))
          .join(' ')
      assert.match(plan("SELECT value FROM rum_events WHERE kind = 'vital' AND name = 'LCP' AND time >= 0 AND time < 1"), /rum_vitals/)
      // nav, api and server rows: kind = ? AND name IS NULL AND a time range, on the same index
      assert.match(plan("SELECT url, duration FROM rum_events WHERE kind = 'api' AND name IS NULL AND time >= 0 AND time < 1"), /USING INDEX rum_vitals \(kind=\? AND name=\? AND time>\? AND time<\?\)/)
      assert.match(plan("SELECT * FROM rum_events WHERE pv = 'x' AND kind IN ('server', 'nav', 'vital') ORDER BY id"), /rum_pv/)
      assert.match(plan('SELECT id FROM rum_events WHERE time <= 5 ORDER BY time, id LIMIT 10'), /rum_time/)
    } finally {
      db.close()
    }
  })

  test('a version 1 file is brought to version 2: the conn column and the page-view index added, its rows kept', async () => {
    const dataDir = tempDir()
    // a file as a version 1 Edgebox left it
    const first = await openSqliteRumStore(dataDir)
    await first.close()
    const file = rumStoreFile(dataDir)
    rmSync(file)
    rmSync(`${file}-wal`, { force: true })
    rmSync(`${file}-shm`, { force: true })
    const v1 = new DatabaseSync(file)
    v1.exec(SCHEMA_V1)
    v1.exec('PRAGMA user_version = 1')
    v1.prepare(`INSERT INTO rum_events (${INSERT_COLUMNS}) VALUES (${INSERT_COLUMNS.split(',').map(() => '?').join(', ')})`).run(T0, 1200, 'old', '/a', null, null, 0, 'desktop', 'chromium', null, '192.0.2.0', 'vital', 'LCP', 1200, 'good', null, null, null, 1, null, null, null, null, null)
    v1.close()
    const store = await openSqliteRumStore(dataDir)
    await store.insert([vital(800, { conn: '4g' })])
    assert.equal(await store.count(), 2)
    assert.deepEqual(await store.percentiles({ metric: 'LCP', by: 'conn', since: T0, until: T0 + 1 }), [
      { key: '4g', n: 1, p50: 800, p75: 800, p95: 800 },
      { key: UNKNOWN_KEY, n: 1, p50: 1200, p75: 1200, p95: 1200 },
    ])
    await store.close()
    const db = new DatabaseSync(file)
    try {
      assert.deepEqual({ ...db.prepare('PRAGMA user_version').get() }, { user_version: 2 })
      assert.ok(db.prepare('PRAGMA table_info(rum_events)').all().some((r) => r.name === 'conn'))
      assert.ok(db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'rum_pv'").get())
    } finally {
      db.close()
    }
  })

  test('a migration that fails is undone whole: the file stays at version 1, without the column', async () => {
    const dataDir = tempDir()
    const first = await openSqliteRumStore(dataDir)
    await first.close()
    const file = rumStoreFile(dataDir)
    for (const f of [file, `${file}-wal`, `${file}-shm`]) rmSync(f, { force: true })
    const v1 = new DatabaseSync(file)
    v1.exec(SCHEMA_V1)
    // a table where version 2 puts its index: the ALTER TABLE before it must be rolled back
    v1.exec('CREATE TABLE rum_pv (x)')
    v1.exec('PRAGMA user_version = 1')
    v1.close()
    await assert.rejects(openSqliteRumStore(dataDir), (err: Error) => err.message.includes(file) && /rum_pv/.test(err.message))
    const db = new DatabaseSync(file)
    try {
      assert.deepEqual({ ...db.prepare('PRAGMA user_version').get() }, { user_version: 1 })
      assert.ok(!db.prepare('PRAGMA table_info(rum_events)').all().some((r) => r.name === 'conn'))
    } finally {
      db.close()
    }
  })

  test('size is the pages in use: (page_count - freelist_count) * page_size', async () => {
    const dataDir = tempDir()
    const store = await openSqliteRumStore(dataDir)
    await store.insert(Array.from({ length: 500 }, (_, i) => vital(i, { message: 'm'.repeat(500) })))
    const full = await store.size()
    const db = new DatabaseSync(rumStoreFile(dataDir))
    const measure = () => {
      const pages = Number(db.prepare('PRAGMA page_count').get()!.page_count)
      const free = Number(db.prepare('PRAGMA freelist_count').get()!.freelist_count)
      return (pages - free) * Number(db.prepare('PRAGMA page_size').get()!.page_size)
    }
    try {
      assert.equal(full, measure())
      assert.ok(full > 250_000, String(full))
      await store.sweep(T0 + 1, { maxAge: 1, maxSize: 0 })
      const emptied = await store.size()
      assert.equal(emptied, measure())
      assert.ok(emptied < full / 10, `${emptied} of ${full}`)
    } finally {
      db.close()
      await store.close()
    }
  })

  test('a file with a newer schema version is refused, naming the file and both versions, and left as it was', async () => {
    const dataDir = tempDir()
    const first = await openSqliteRumStore(dataDir)
    await first.close()
    const file = rumStoreFile(dataDir)
    const db = new DatabaseSync(file)
    db.exec('PRAGMA user_version = 99')
    db.close()
    await assert.rejects(openSqliteRumStore(dataDir), (err: Error) => err.message.includes(file) && /version 99\b/.test(err.message) && /\(2\)/.test(err.message))
    const check = new DatabaseSync(file)
    try {
      assert.deepEqual({ ...check.prepare('PRAGMA user_version').get() }, { user_version: 99 })
    } finally {
      check.close()
    }
  })

  test('insert is all or none', async () => {
    const store = await openSqliteRumStore(tempDir())
    await store.insert([row()])
    // a row the table refuses (NOT NULL kind) after a good one
    await assert.rejects(store.insert([row(), row({ kind: null as unknown as 'nav' })]))
    assert.equal(await store.count(), 1)
    await store.close()
  })
})

// ---------------------------------------------------------------------------
// PostgreSQL only: the database.
// ---------------------------------------------------------------------------

describe('PostgresRumStore: the database', () => {
  /** A client of its own on a database (its own session: not the store's pool). */
  async function connect(url: string): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    return client
  }
  const one = async (client: pg.Client, sql: string, values: unknown[] = []): Promise<Record<string, unknown>> => (await client.query(sql, values)).rows[0] as Record<string, unknown>

  test('migration rum 1 makes the documented table, indexes and ledger, text in code-point order; a second node runs it not again and sees the first one\'s rows', async () => {
    const { postgres, url } = await freshDatabase()
    const first = await openPostgresRumStore(postgres)
    // another node: a pool of its own on the same database
    const node2 = await openPostgres({ url, max: 2, connectTimeout: 5_000 }, pino({ level: 'silent' }))
    pools.add(node2)
    const second = await openPostgresRumStore(node2)
    await first.insert([vital(1), vital(2)])
    assert.equal(await second.count(), 2)
    assert.deepEqual(await second.percentiles({ metric: 'LCP', by: 'none', since: T0, until: T0 + 1 }), [{ key: ALL_KEY, n: 2, p50: 1, p75: 2, p95: 2 }])
    const client = await connect(url)
    try {
      assert.deepEqual((await client.query("SELECT store, version FROM edgebox_migrations WHERE store = 'rum'")).rows, [{ store: 'rum', version: 1 }])
      assert.equal(RUM_PG_MIGRATIONS.length, 1)
      const columns = (await client.query("SELECT column_name, data_type, collation_name FROM information_schema.columns WHERE table_name = 'rum_events' ORDER BY ordinal_position")).rows as Array<{ column_name: string; data_type: string; collation_name: string | null }>
      assert.deepEqual(columns.map((c) => c.column_name), ['id', ...ROW_COLUMNS.split(', '), 'method', 'phases'])
      for (const c of columns.filter((c) => c.data_type === 'text')) assert.equal(c.collation_name, 'C', c.column_name)
      const indexes = (await client.query("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'rum_events' ORDER BY indexname")).rows as Array<{ indexname: string; indexdef: string }>
      assert.deepEqual(indexes.map((i) => i.indexname), ['rum_errors', 'rum_events_pkey', 'rum_pv', 'rum_time', 'rum_vitals'])
      assert.match(indexes[0]!.indexdef, /\(fingerprint, "time", id\) WHERE \(kind = 'error'::text\)$/)
      assert.match(indexes[4]!.indexdef, /\(kind, name, "time"\)$/)
      const triggers = (await client.query("SELECT tgname FROM pg_trigger WHERE tgrelid = 'rum_events'::regclass AND NOT tgisinternal ORDER BY tgname")).rows.map((r) => r.tgname)
      assert.deepEqual(triggers, ['rum_totals_delete', 'rum_totals_insert', 'rum_totals_truncate', 'rum_totals_update'])
    } finally {
      await client.end()
      await first.close()
      await second.close()
    }
  })

  test('a database a newer Edgebox migrated is refused, naming PostgreSQL and both versions', async () => {
    const { postgres, url } = await freshDatabase()
    await (await openPostgresRumStore(postgres)).close()
    const client = await connect(url)
    try {
      await client.query("INSERT INTO edgebox_migrations (store, version) VALUES ('rum', 2)")
    } finally {
      await client.end()
    }
    await assert.rejects(openPostgresRumStore(postgres), (err: Error) => /PostgreSQL \(postgres:\/\/edgebox@127\.0\.0\.1:\d+\/rum_\d+\)/.test(err.message) && /schema version 2, newer than this Edgebox knows \(1\)/.test(err.message))
  })

  test('insert is all or none: a row the table refuses fails the whole batch, naming PostgreSQL, and nothing of it is counted', async () => {
    const store = await openFreshPostgresStore()
    await store.insert([row()])
    const size = await store.size()
    // a row the table refuses (NOT NULL kind) after good ones
    await assert.rejects(store.insert([vital(1), row(), row({ kind: null as unknown as 'nav' })]), /^Error: the RUM store's PostgreSQL \(postgres:\/\/edgebox@127\.0\.0\.1:\d+\/rum_\d+\) failed: null value in column "kind"/)
    // a time that is not a whole number of ms, after good ones
    await assert.rejects(store.insert([vital(1), vital(2, { time: T0 + 0.5 })]), /PostgreSQL .* failed: invalid input syntax for type bigint: "1700000000000.5"/)
    assert.equal(await store.count(), 1)
    assert.equal(await store.size(), size)
    assert.deepEqual(await store.pageViewEvents('pv1', 10), [row()])
    await store.close()
  })

  test('one statement per insert, however many rows, its rows given ids in their order', async () => {
    const { postgres } = await freshDatabase()
    const store = await openPostgresRumStore(postgres)
    const sent: string[] = []
    const query = postgres.pool.query.bind(postgres.pool)
    postgres.pool.query = ((config: { text: string }, ...rest: unknown[]) => {
      sent.push(config.text)
      return (query as (...args: unknown[]) => unknown)(config, ...rest)
    }) as typeof postgres.pool.query
    const rows = Array.from({ length: 3000 }, (_, i) => vital(i, { pv: 'many', offset: i, message: i % 2 ? 'x'.repeat(i % 50) : null }))
    await store.insert(rows)
    assert.equal(sent.length, 1)
    assert.match(sent[0]!, /^INSERT INTO rum_events .*\sFROM unnest\(/s)
    assert.deepEqual(await store.pageViewEvents('many', 5000), rows)
    await store.close()
  })

  test('text is ordered by code point in a database whose own collation is not (ICU en-US: a, B, é, f)', async () => {
    const server = (await freshDatabase()).server
    const admin = await connect(`postgres://postgres@127.0.0.1:${server.port}/postgres`)
    try {
      await admin.query("CREATE DATABASE rum_icu OWNER edgebox TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.utf8'")
    } finally {
      await admin.end()
    }
    const url = `postgres://edgebox:edgebox@127.0.0.1:${server.port}/rum_icu`
    const check = await connect(url)
    try {
      // the database orders its own text otherwise
      assert.deepEqual((await check.query("SELECT x FROM (VALUES ('f'), ('\u00e9'), ('B'), ('a')) v(x) ORDER BY x")).rows.map((r) => r.x), ['a', 'B', '\u00e9', 'f'])
    } finally {
      await check.end()
    }
    const postgres = await openPostgres({ url, max: 2, connectTimeout: 5_000 }, pino({ level: 'silent' }))
    pools.add(postgres)
    const store = await openPostgresRumStore(postgres)
    const pages = ['f', '\u00e9', 'B', 'a', '\u{1f600}', '\uff5e']
    await store.insert(pages.map((p) => vital(100, { page: `/${p}`, pv: p === 'B' ? 'pvB' : `pv-${p.codePointAt(0)}` })))
    const byPage = await store.percentiles({ metric: 'LCP', by: 'page', since: T0, until: T0 + 1 })
    assert.deepEqual(byPage.map((r) => r.key), ['/B', '/a', '/f', '/\u00e9', '/\uff5e', '/\u{1f600}'])
    assert.deepEqual(byPage.map((r) => r.key), [...byPage.map((r) => r.key)].sort(compareText))
    await store.close()
    await endPool(postgres)
  })

  test('a NUL in text is stored as U+FFFD, the rest of its batch with it; the fingerprint is the text\'s as sent', async () => {
    const store = await openFreshPostgresStore()
    await store.insert([vital(1), error('boom\0here', { fingerprint: null, stack: 'E\n    at f (https://x.example/a.js:1:2)', json: '{"attr":"\\u0000"}' }), row({ kind: 'api', json: '{"method":"GE\\u0000T"}', url: '/a\0b', duration: 5, status: 200, outcome: 'ok' })])
    assert.equal(await store.count(), 3)
    const [group] = await store.errorGroups({ since: T0, until: T0 + 1 })
    assert.equal(group!.fingerprint, fingerprint('boom\0here', 'E\n    at f (https://x.example/a.js:1:2)'))
    assert.equal(group!.message, 'boom\ufffdhere')
    // the json text is kept as sent: its escape is six characters, not a NUL
    assert.equal((await store.pageViewEvents('pv1', 10))[1]!.json, '{"attr":"\\u0000"}')
    assert.deepEqual(await store.apiCalls({ since: T0, until: T0 + 1, sort: 'slowest', limit: 5 }), [{ method: 'GE\ufffdT', url: '/a\ufffdb', count: 1, failures: 0, p75: 5 }])
    await store.close()
  })

  test('size: RUM_ROW_OVERHEAD and the UTF-8 bytes of each row\'s text; near what the table and its indexes take', async () => {
    const { postgres, url } = await freshDatabase()
    const store = await openPostgresRumStore(postgres)
    assert.equal(await store.size(), 0)
    const texts = (r: RumRow): number => [r.pv, r.page, r.release, r.env, r.deviceClass, r.browser, r.country, r.address, r.conn, r.kind, r.name, r.rating, r.message, r.stack, r.fingerprint, r.url, r.outcome, r.json].reduce((n, t) => n + (t === null ? 0 : Buffer.byteLength(t)), 0)
    const typical = (i: number): RumRow[] => [
      vital(1000 + i, { pv: `pv${i}`, page: `/docs/${i % 40}`, rating: 'good', json: '{"attr":{"element":"img.hero"}}', release: 'r1', country: 'DE', conn: '4g' }),
      vital(0.01, { pv: `pv${i}`, page: `/docs/${i % 40}`, name: 'CLS', rating: 'good', release: 'r1', country: 'DE', conn: '4g' }),
      nav(PHASES, { pv: `pv${i}`, page: `/docs/${i % 40}`, release: 'r1', country: 'DE', conn: '4g' }),
      api('GET', `/api/items/${i % 7}`, 80, 200, 'ok', { pv: `pv${i}`, page: `/docs/${i % 40}`, release: 'r1', country: 'DE', conn: '4g' }),
      ...(i % 5 ? [] : [error(`Item ${i} not found`, { pv: `pv${i}`, page: `/docs/${i % 40}`, stack: 'TypeError: x\n    at f (https://example.com/assets/app.js:1:2345)\n    at g (https://example.com/assets/app.js:1:99)' })]),
    ]
    const rows = Array.from({ length: 1500 }, (_, i) => typical(i)).flat()
    await store.insert(rows)
    // the method column (api rows' GET) counts too
    const expected = rows.reduce((n, r) => n + RUM_ROW_OVERHEAD + texts(r) + (r.kind === 'api' ? 3 : 0), 0)
    assert.equal(await store.size(), expected)
    const client = await connect(url)
    try {
      await client.query('VACUUM rum_events')
      const disk = Number((await one(client, "SELECT pg_total_relation_size('rum_events') AS n")).n)
      assert.ok(Math.abs(disk - expected) / disk < 0.25, `estimate ${expected}, on disk ${disk}`)
    } finally {
      await client.end()
    }
    // a sweep's rows leave the estimate at once; PostgreSQL's files keep their size
    await store.sweep(T0 + 1, { maxAge: 1, maxSize: NO_SIZE_LIMIT })
    assert.equal(await store.size(), 0)
    await store.close()
  })

  test('the ledger follows every statement on the table, an operator\'s too: DELETE, UPDATE, TRUNCATE', async () => {
    const { postgres, url } = await freshDatabase()
    const store = await openPostgresRumStore(postgres)
    await store.insert([vital(1, { message: 'abcd' }), vital(2, { message: 'ef' }), vital(3)])
    const size = await store.size()
    const client = await connect(url)
    try {
      await client.query("DELETE FROM rum_events WHERE message = 'abcd'")
      assert.equal(await store.count(), 2)
      assert.equal(await store.size(), size - RUM_ROW_OVERHEAD - 4 - Buffer.byteLength(rumRow().pv + rumRow().page + 'desktopchromium192.0.2.0vitalLCPgood'))
      await client.query("UPDATE rum_events SET message = 'efghij' WHERE message = 'ef'")
      assert.equal(await store.count(), 2)
      assert.equal(await store.size(), size - RUM_ROW_OVERHEAD - Buffer.byteLength(rumRow().pv + rumRow().page + 'desktopchromium192.0.2.0vitalLCPgood'))
      await client.query('TRUNCATE rum_events')
      assert.equal(await store.count(), 0)
      assert.equal(await store.size(), 0)
      await store.insert([vital(4)])
      await store.insert([vital(5)])
      assert.equal(await store.count(), 2)
      // a sweep folds the ledger into one row
      assert.ok(Number((await one(client, 'SELECT count(*) AS n FROM rum_totals')).n) > 1)
      await store.sweep(T0, { maxAge: HOUR, maxSize: NO_SIZE_LIMIT })
      assert.deepEqual((await client.query('SELECT rows::int, bytes::int FROM rum_totals')).rows, [{ rows: 2, bytes: await store.size() }])
    } finally {
      await client.end()
      await store.close()
    }
  })

  test('one node sweeps at a time: while another holds the sweep lock, a sweep deletes nothing; then it sweeps', async () => {
    const { postgres, url } = await freshDatabase()
    const store = await openPostgresRumStore(postgres)
    await store.insert(Array.from({ length: 30 }, (_, i) => vital(i, { time: T0 + i })))
    const other = await connect(url)
    try {
      assert.equal((await one(other, 'SELECT pg_try_advisory_lock(hashtext($1)) AS ok', [RUM_SWEEP_LOCK])).ok, true)
      assert.deepEqual(await store.sweep(T0 + HOUR, { maxAge: HOUR - 10, maxSize: 0 }), { byAge: 0, bySize: 0 })
      assert.equal(await store.count(), 30)
      await other.query('SELECT pg_advisory_unlock(hashtext($1))', [RUM_SWEEP_LOCK])
      assert.deepEqual(await store.sweep(T0 + HOUR, { maxAge: HOUR - 10, maxSize: NO_SIZE_LIMIT }), { byAge: 11, bySize: 0 })
      // the store let the lock go: another session takes it
      assert.equal((await one(other, 'SELECT pg_try_advisory_lock(hashtext($1)) AS ok', [RUM_SWEEP_LOCK])).ok, true)
    } finally {
      await other.end()
      await store.close()
    }
  })

  test('a sweep of more rows than one statement deletes (10,000 a statement) deletes them all, oldest first', async () => {
    const store = await openFreshPostgresStore()
    await store.insert(Array.from({ length: 25_000 }, (_, i) => vital(i, { time: T0 + i })))
    assert.deepEqual(await store.sweep(T0 + 24_000 + HOUR, { maxAge: HOUR, maxSize: NO_SIZE_LIMIT }), { byAge: 24_001, bySize: 0 })
    assert.deepEqual(await store.percentiles({ metric: 'LCP', by: 'none', since: 0, until: T0 + HOUR }), [{ key: ALL_KEY, n: 999, p50: 24_500, p75: 24_750, p95: 24_950 }])
    await store.close()
  })

  test('every query reads the table through its indexes: no row of rum_events read by a sequential scan', async () => {
    const { postgres, url } = await freshDatabase()
    const store = await openPostgresRumStore(postgres)
    // ten hours of every kind, a page view a second; the questions are about one minute
    const rows: RumRow[] = []
    for (let s = 0; s < 36_000; s++) {
      const over = { time: T0 + s * 1000, pv: `pv${s}`, page: `/p${s % 20}` }
      rows.push(vital(s % 3000, over), nav(PHASES, over), api('GET', '/api/x', s % 500, 200, 'ok', over), server(`pv${s}`, 200, 5, over))
      if (s % 10 === 0) rows.push(error(`e${s % 7}`, over))
    }
    await store.insert(rows)
    const admin = await connect(url)
    try {
      await admin.query('ANALYZE rum_events')
      const w = { since: T0 + 5 * HOUR, until: T0 + 5 * HOUR + MIN }
      assert.equal((await store.percentiles({ ...w, metric: 'LCP', by: 'page' })).length, 20)
      assert.equal((await store.percentiles({ ...w, metric: 'LCP', by: 'none', bucket: 10_000 })).length, 6)
      assert.equal((await store.histogram({ ...w, metric: 'LCP', of: { by: 'page', key: '/p1' } })).n, 3)
      assert.equal((await store.breakdown(w)).length, 20)
      assert.equal((await store.apiCalls({ ...w, sort: 'slowest', limit: 5 })).length, 1)
      assert.equal((await store.errorGroups(w)).length, 6)
      assert.equal((await store.pageViews({ ...w, limit: 10 })).length, 10)
      assert.equal((await store.pageViewEvents('pv7', 10)).length, 4)
      assert.deepEqual(await store.sweep(T0 + HOUR + 10_000, { maxAge: HOUR, maxSize: NO_SIZE_LIMIT }), { byAge: 46, bySize: 0 })
      assert.equal(await store.count(), rows.length - 46)
      await store.close()
      // a session's statistics reach pg_stat_user_tables when it ends
      await endPool(postgres)
      const started = Date.now()
      let stats: Record<string, unknown> = {}
      for (;;) {
        await admin.query('SELECT pg_stat_clear_snapshot()')
        stats = await one(admin, "SELECT seq_tup_read::int, idx_scan::int FROM pg_stat_user_tables WHERE relname = 'rum_events'")
        if ((stats.idx_scan as number) > 0 || Date.now() - started > 10_000) break
        await new Promise((r) => setTimeout(r, 100))
      }
      // (the migration's CREATE INDEX counts a sequential scan each, of the empty table: no row read)
      assert.equal(stats.seq_tup_read, 0, JSON.stringify(stats))
      const used = (await admin.query("SELECT indexrelname FROM pg_stat_user_indexes WHERE relname = 'rum_events' AND idx_scan > 0 ORDER BY indexrelname")).rows.map((r) => r.indexrelname)
      assert.deepEqual(used, ['rum_errors', 'rum_events_pkey', 'rum_pv', 'rum_time', 'rum_vitals'])
    } finally {
      await admin.end()
    }
  })
})
