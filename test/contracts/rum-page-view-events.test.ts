import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { DatabaseSync } from 'node:sqlite'
import { PAGE_VIEW_EVENTS_SQL, RUM_STORE_CLOSED, fingerprint, openSqliteRumStore, rumStoreFile, type RumRow, type RumStore } from '../../src/rum/store.ts'
import { rumRow, rumStores, T0 } from '../helpers/rum.ts'

/**
 * `pageViewEvents(pv, limit)`, the same on every RumStore: every row of one
 * page view, every kind, in the order the rows were stored (not by time),
 * each column as it was inserted, at most `limit`; nothing of other page
 * views; [] for an id no row has; a closed store refuses.
 */

const { stores, tempDir, cleanup } = rumStores('edgebox-rum-pv-events-')
after(cleanup)

const row = (over: Partial<RumRow>): RumRow => rumRow({ pv: 'pvA', page: '/shop', ...over })

const MAPPED = 'TypeError: cannot read the price "x"\n    at parsePrice (/lab/src/shop.ts:17:47)'
const RAW = 'TypeError: cannot read the price "x"\n    at a (http://127.0.0.1:8080/lab/shop.min.js:1:120)'

/** Page view A's rows, every kind, their times out of order (a later batch may carry an earlier receive time), every column set somewhere. */
const A: RumRow[] = [
  row({ time: T0 + 50, kind: 'server', status: 200, duration: 3.5, json: JSON.stringify({ method: 'GET', route: 'sites[0].routes[0]', handler: 'static', protocol: 'h1', edge: 0.75 }), address: null }),
  row({ time: T0 + 10, offset: 12.5, kind: 'vital', name: 'TTFB', value: 41.25, rating: 'good', release: 'r1', env: 'prod', cached: true, deviceClass: 'mobile', browser: 'firefox', country: 'DE', conn: '4g' }),
  row({ time: T0 + 10, offset: 80, kind: 'nav', json: JSON.stringify({ type: 'navigate', protocol: 'h2', phases: { dns: 1, ttfb: 40, dom: 90 } }) }),
  row({ time: T0 + 20, offset: 900, kind: 'error', name: 'error', message: 'cannot read the price "x"', stack: MAPPED, fingerprint: fingerprint('cannot read the price "x"', MAPPED), count: 2, json: JSON.stringify({ rawStack: RAW }) }),
  row({ time: T0 + 20, offset: 950, kind: 'api', url: '/api/cart', status: 503, duration: 120, outcome: 'error', json: JSON.stringify({ method: 'POST' }) }),
  row({ time: T0 + 30, offset: 1000, kind: 'resource', url: '/img/slow.jpg', status: 200, duration: 1500, json: JSON.stringify({ initiator: 'img', size: 2048, failed: false }) }),
  row({ time: T0 + 30, offset: 1100, kind: 'route', url: '/shop/cart', json: JSON.stringify({ pv: 'pvC', from: '/shop' }) }),
]
const B: RumRow[] = [row({ pv: 'pvB', page: '/b', kind: 'vital', name: 'LCP', value: 700, rating: 'good' }), row({ pv: 'pvB', page: '/b', kind: 'nav' })]
/** An error row stored without a fingerprint gets one (both stores make it on insert). */
const NO_PRINT = row({ time: T0 + 40, kind: 'error', name: 'unhandledrejection', message: 'nope', stack: null, fingerprint: null })

/** A and B interleaved, as batches of two page views arrive. */
const INSERTS: RumRow[][] = [[A[0]!, B[0]!], [A[1]!, A[2]!], [B[1]!, A[3]!, A[4]!], [A[5]!, A[6]!, NO_PRINT]]
const A_STORED: RumRow[] = [...A, { ...NO_PRINT, fingerprint: fingerprint('nope', null) }]


for (const { name, make } of stores) {
  describe(`rum store contract, pageViewEvents: ${name}`, () => {
    test('every row of the page view, every kind, in the order stored, each column as inserted; no other page view', async () => {
      const store = await make()
      try {
        for (const rows of INSERTS) await store.insert(rows)
        assert.deepEqual(await store.pageViewEvents('pvA', 100), A_STORED)
        assert.deepEqual(await store.pageViewEvents('pvB', 100), B)
        // the route's new page view has no row of its own yet
        assert.deepEqual(await store.pageViewEvents('pvC', 100), [])
      } finally {
        await store.close()
      }
    })

    test('at most `limit` rows, the first ones stored; 0 or a negative limit: none; a fraction counts whole rows', async () => {
      const store = await make()
      try {
        for (const rows of INSERTS) await store.insert(rows)
        assert.deepEqual(await store.pageViewEvents('pvA', 3), A_STORED.slice(0, 3))
        assert.deepEqual(await store.pageViewEvents('pvA', 1), A_STORED.slice(0, 1))
        assert.deepEqual(await store.pageViewEvents('pvA', 2.7), A_STORED.slice(0, 2))
        assert.deepEqual(await store.pageViewEvents('pvA', 0), [])
        assert.deepEqual(await store.pageViewEvents('pvA', -5), [])
      } finally {
        await store.close()
      }
    })

    test('an id no row has, or one that only looks alike: []', async () => {
      const store = await make()
      try {
        for (const rows of INSERTS) await store.insert(rows)
        for (const pv of ['nope', 'pva', 'pvA ', 'pv', '%', "pvA' OR '1'='1"]) assert.deepEqual(await store.pageViewEvents(pv, 100), [], pv)
      } finally {
        await store.close()
      }
    })

    test('the answer is a copy: changing it changes nothing stored', async () => {
      const store = await make()
      try {
        await store.insert([A[0]!])
        const first = await store.pageViewEvents('pvA', 10)
        ;(first[0] as { status: number | null }).status = 500
        first.push(A[1]!)
        assert.deepEqual(await store.pageViewEvents('pvA', 10), [A[0]])
      } finally {
        await store.close()
      }
    })

    test('a closed store refuses', async () => {
      const store = await make()
      await store.close()
      await assert.rejects(store.pageViewEvents('pvA', 10), { message: RUM_STORE_CLOSED })
    })
  })
}

describe('SqliteRumStore, pageViewEvents', () => {
  test('the rows are in the file: a store opened again answers the same', async () => {
    const dir = tempDir()
    const first = await openSqliteRumStore(dir)
    for (const rows of INSERTS) await first.insert(rows)
    await first.close()
    const again = await openSqliteRumStore(dir)
    try {
      assert.deepEqual(await again.pageViewEvents('pvA', 100), A_STORED)
    } finally {
      await again.close()
    }
  })

  test('the query reads the rum_pv index, in its order: no scan of the table, no sort', async () => {
    const dir = tempDir()
    const store = await openSqliteRumStore(dir)
    await store.close()
    const db = new DatabaseSync(rumStoreFile(dir), { readOnly: true })
    try {
      const plan = (db.prepare(`EXPLAIN QUERY PLAN ${PAGE_VIEW_EVENTS_SQL}`).all('pvA', 10) as Array<{ detail: string }>).map((r) => r.detail)
      assert.ok(plan.some((d) => /USING INDEX rum_pv \(pv=\?\)/.test(d)), plan.join('\n'))
      assert.ok(!plan.some((d) => /TEMP B-TREE|^SCAN rum_events$/.test(d)), plan.join('\n'))
    } finally {
      db.close()
    }
  })
})
