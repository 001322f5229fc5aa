import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import type { Batch } from '../../src/rum/schema.ts'
import {
  ALL_KEY,
  MemoryRumStore,
  RUM_STORE_CLOSED,
  classifyBrowser,
  classifyDevice,
  firstFrame,
  fingerprint,
  nearestRank,
  normaliseMessage,
  openSqliteRumStore,
  rumStoreFile,
  toRows,
  type RumRow,
  type RumStore,
} from '../../src/rum/store.ts'

const tempDirs: string[] = []
const tempDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), 'edgebox-rum-store-'))
  tempDirs.push(dir)
  return dir
}
after(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true })
})

const T0 = 1_700_000_000_000
const HOUR = 3_600_000

const BASE: RumRow = {
  time: T0,
  offset: 0,
  pv: 'pv1',
  page: '/',
  release: null,
  env: null,
  cached: false,
  deviceClass: 'desktop',
  browser: 'chromium',
  country: null,
  address: '192.0.2.0',
  kind: 'nav',
  name: null,
  value: null,
  rating: null,
  message: null,
  stack: null,
  fingerprint: null,
  count: 1,
  url: null,
  status: null,
  duration: null,
  outcome: null,
  json: null,
}

const row = (over: Partial<RumRow> = {}): RumRow => ({ ...BASE, ...over })
const vital = (value: number, over: Partial<RumRow> = {}): RumRow => row({ kind: 'vital', name: 'LCP', value, rating: 'good', ...over })
const error = (message: string, over: Partial<RumRow> = {}): RumRow => row({ kind: 'error', name: 'error', message, fingerprint: fingerprint(message, over.stack ?? null), ...over })

const stores: Array<{ name: string; make: () => Promise<RumStore> }> = [
  { name: 'MemoryRumStore', make: async () => new MemoryRumStore() },
  { name: 'SqliteRumStore', make: async () => openSqliteRumStore(tempDir()) },
]

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

  test('one row per event with the batch context; a route moves later events to its page view', () => {
    const batch: Batch = {
      v: 1,
      pv: 'pv1',
      cached: true,
      page: '/a',
      release: 'r1',
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
    }
    assert.deepEqual(rows.map((r) => [r.kind, r.pv, r.page, r.offset]), [
      ['vital', 'pv1', '/a', 10],
      ['error', 'pv1', '/a', 20],
      ['route', 'pv1', '/a', 30],
      ['api', 'pv2', '/b', 40],
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
        { fingerprint: fingerprint('Item 1 not found', stack), message: 'Item 2 not found', count: 4, pageViews: 2, firstSeen: T0 + 5, lastSeen: T0 + 30 },
        { fingerprint: fingerprint('other'), message: 'other', count: 2, pageViews: 1, firstSeen: T0 + 20, lastSeen: T0 + 21 },
      ])
      const later = await store.errorGroups({ since: T0 + HOUR, until: T0 + 3 * HOUR })
      assert.deepEqual(later, [{ fingerprint: fingerprint('other'), message: 'other', count: 50, pageViews: 1, firstSeen: T0 + 2 * HOUR, lastSeen: T0 + 2 * HOUR }])
      assert.deepEqual(await store.errorGroups({ since: 0, until: T0 }), [])
      await store.close()
    })

    test('sweep by age: rows at least maxAge old go', async () => {
      const store = await make()
      const now = T0 + 10 * HOUR
      await store.insert([row({ time: now - HOUR - 1 }), row({ time: now - HOUR }), row({ time: now - HOUR + 1 }), row({ time: now })])
      assert.equal(await store.sweep(now, HOUR, 100), 2)
      assert.equal(await store.count(), 2)
      assert.equal(await store.sweep(now, HOUR, 100), 0)
      await store.close()
    })

    test('sweep by max rows: the oldest go first (by time, then insertion)', async () => {
      const store = await make()
      const now = T0 + HOUR
      // inserted out of time order; two share a time
      await store.insert([
        vital(3, { time: T0 + 3 }),
        vital(1, { time: T0 + 1 }),
        vital(21, { time: T0 + 2 }),
        vital(22, { time: T0 + 2 }),
        vital(4, { time: T0 + 4 }),
      ])
      assert.equal(await store.sweep(now, 10 * HOUR, 3), 2)
      const left = await store.percentiles({ metric: 'LCP', by: 'none', since: 0, until: now })
      // 1 and 21 went; 22, 3, 4 stay
      assert.deepEqual(left, [{ key: ALL_KEY, n: 3, p50: 4, p75: 22, p95: 22 }])
      assert.equal(await store.sweep(now, 10 * HOUR, 0), 3)
      assert.equal(await store.count(), 0)
      await store.close()
    })

    test('sweep by age and by rows together', async () => {
      const store = await make()
      const now = T0 + 10 * HOUR
      await store.insert([row({ time: T0 }), row({ time: now - 3 }), row({ time: now - 2 }), row({ time: now - 1 })])
      assert.equal(await store.sweep(now, HOUR, 2), 2)
      assert.equal(await store.count(), 2)
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
      await assert.rejects(store.sweep(T0, HOUR, 10), closed)
      await store.close()
    })
  })
}

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

  test('WAL journal, schema version 1, the documented table and indexes', async () => {
    const dataDir = tempDir()
    const store = await openSqliteRumStore(dataDir)
    await store.close()
    const db = new DatabaseSync(rumStoreFile(dataDir))
    try {
      assert.deepEqual({ ...db.prepare('PRAGMA journal_mode').get() }, { journal_mode: 'wal' })
      assert.deepEqual({ ...db.prepare('PRAGMA user_version').get() }, { user_version: 1 })
      const indexes = db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'rum_events' ORDER BY name").all().map((r) => r.name)
      assert.deepEqual(indexes, ['rum_errors', 'rum_time', 'rum_vitals'])
      const plan = db
        .prepare("EXPLAIN QUERY PLAN SELECT value FROM rum_events WHERE kind = 'vital' AND name = 'LCP' AND time >= 0 AND time < 1")
        .all()
        .map((r) => String(r.detail))
        .join(' ')
      assert.match(plan, /rum_vitals/)
    } finally {
      db.close()
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
    await assert.rejects(openSqliteRumStore(dataDir), (err: Error) => err.message.includes(file) && /version 99\b/.test(err.message) && /\(1\)/.test(err.message))
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
