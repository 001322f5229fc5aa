// Helpers of the real-user-monitoring benchmark (bench/rum.sh), run with the pinned Node:
//   body                      prints the batch every beacon of the load carries: 10 events, valid for src/rum/schema.ts
//   burst URL N ADDRESS       sends N beacons one after the other as client ADDRESS (X-Forwarded-For); prints
//                             {"sent":N,"status":{"204":a,"429":b}}: the rate limit's check
//   count DBFILE              prints {"rows":n,"byKind":{...}} of a rum.sqlite (opened read-only, after its server stopped)
//   fill DATADIR N            fills DATADIR/rum/rum.sqlite (openSqliteRumStore) with N LCP vitals over 200 pages,
//                             random values, times over the last 7 days, by SqliteRumStore.insert in batches of 10,000
//   query DATADIR REPS        times store.percentiles({ metric: 'LCP', by: 'page' }) over everything and the same SQL
//                             (read from the store's own prepared statement) run directly with node:sqlite, REPS each,
//                             interleaved; prints one JSON line with every time and the medians
import { DatabaseSync } from 'node:sqlite'
import { performance } from 'node:perf_hooks'
import { isDeepStrictEqual } from 'node:util'

const [cmd, ...args] = process.argv.slice(2)

export const BATCH = {
  v: 1,
  pv: 'k3J9x2Qw0aZ_',
  cached: false,
  page: '/docs/intro',
  release: '2026.12.1',
  env: 'production',
  device: { w: 1280, dpr: 2, conn: '4g', saveData: false, mobile: false },
  events: [
    { t: 'nav', at: 0, type: 'navigate', protocol: 'h2', phases: { redirect: 0, dns: 12, tcp: 20, tls: 25, ttfb: 80, transfer: 15, dom: 220, load: 30 } },
    { t: 'vital', at: 80, name: 'TTFB', value: 80.2, rating: 'good' },
    { t: 'vital', at: 410, name: 'FCP', value: 410.7, rating: 'good' },
    { t: 'vital', at: 1840, name: 'LCP', value: 1840.5, rating: 'good', attr: { element: 'img.hero', url: '/hero.avif' } },
    { t: 'resource', at: 900, url: '/img/slow.jpg', initiator: 'img', duration: 3200, status: 200, size: 812000, failed: false },
    { t: 'resource', at: 950, url: 'https://cdn.example.com/lib.js', initiator: 'script', duration: 1400, status: 0, size: 0, failed: false },
    { t: 'api', at: 2500, method: 'POST', url: '/api/items', status: 500, duration: 130, outcome: 'error' },
    { t: 'api', at: 2700, method: 'GET', url: '/api/items', status: 200, duration: 45, outcome: 'ok' },
    { t: 'vital', at: 5200, name: 'INP', value: 96, rating: 'good', attr: { target: 'button.buy', type: 'pointer' } },
    { t: 'vital', at: 5300, name: 'CLS', value: 0.04, rating: 'good' },
  ],
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

if (cmd === 'body') {
  process.stdout.write(JSON.stringify(BATCH))
} else if (cmd === 'burst') {
  const [url, n, address] = args
  const status = {}
  const body = JSON.stringify(BATCH)
  for (let i = 0; i < Number(n); i++) {
    const r = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json', 'x-forwarded-for': address } })
    await r.arrayBuffer()
    status[r.status] = (status[r.status] ?? 0) + 1
  }
  console.log(JSON.stringify({ sent: Number(n), status }))
} else if (cmd === 'count') {
  const db = new DatabaseSync(args[0], { readOnly: true })
  // the beacons' rows: not the 'server' rows Edgebox writes for the HTML pages it serves (the checks' GET /)
  const rows = Number(db.prepare("SELECT COUNT(*) AS n FROM rum_events WHERE kind <> 'server'").get().n)
  const byKind = Object.fromEntries(db.prepare('SELECT kind, COUNT(*) AS n FROM rum_events GROUP BY kind ORDER BY kind').all().map((r) => [r.kind, Number(r.n)]))
  db.close()
  console.log(JSON.stringify({ rows, byKind }))
} else if (cmd === 'fill') {
  const { openSqliteRumStore, toRows } = await import('../../src/rum/store.ts')
  const [dataDir, n] = args
  const total = Number(n)
  const store = await openSqliteRumStore(dataDir)
  const now = Date.now()
  const week = 7 * 86_400_000
  const pages = Array.from({ length: 200 }, (_, i) => `/docs/page-${String(i).padStart(3, '0')}`)
  let seed = 42
  const rand = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32)
  const t0 = performance.now()
  for (let done = 0; done < total; ) {
    const rows = []
    const k = Math.min(10_000, total - done)
    for (let i = 0; i < k; i++) {
      // a skewed page popularity (a few pages get most views) and a long-tailed LCP
      const page = pages[Math.floor(200 * rand() ** 2)]
      const value = Math.round(400 + 6000 * rand() ** 3 + 300 * rand())
      // one row made as the collector makes it (toRows), from a one-vital batch
      const rating = value <= 2500 ? 'good' : value <= 4000 ? 'needs-improvement' : 'poor'
      const batch = { v: 1, pv: `pv${(done + i).toString(36)}`, cached: false, page, release: '2026.12.1', env: 'production', device: { mobile: rand() < 0.4 }, events: [{ t: 'vital', at: value, name: 'LCP', value, rating }] }
      rows.push(...toRows(batch, { time: now - Math.floor(week * rand()), userAgent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0 Safari/537.36', address: '10.0.0.0' }))
    }
    await store.insert(rows)
    done += k
  }
  const rows = await store.count()
  await store.close()
  console.log(JSON.stringify({ rows, fill_s: Number(((performance.now() - t0) / 1000).toFixed(1)) }))
} else if (cmd === 'query') {
  const { openSqliteRumStore, rumStoreFile } = await import('../../src/rum/store.ts')
  const [dataDir, reps = '5'] = args
  const store = await openSqliteRumStore(dataDir)
  // the store's own SQL: the `by: 'page'` statement it prepared (StatementSync#sourceSQL)
  const sql = store['sPercentiles']?.page?.sourceSQL
  if (typeof sql !== 'string') throw new Error('cannot read the store’s percentile SQL (SqliteRumStore.sPercentiles.page)')
  const db = new DatabaseSync(rumStoreFile(dataDir))
  const direct = db.prepare(sql)
  const q = { metric: 'LCP', by: 'page', since: 0, until: Number.MAX_SAFE_INTEGER }
  const storeMs = []
  const directMs = []
  let a, b
  for (let i = 0; i < Number(reps); i++) {
    let t = performance.now()
    a = await store.percentiles(q)
    storeMs.push(performance.now() - t)
    t = performance.now()
    b = direct.all(q.metric, q.since, q.until)
    directMs.push(performance.now() - t)
  }
  const same = isDeepStrictEqual(
    a,
    b.map((r) => ({ key: r.key, n: Number(r.n), p50: r.p50, p75: r.p75, p95: r.p95 })),
  )
  const rows = await store.count()
  db.close()
  await store.close()
  const r1 = (x) => Number(x.toFixed(1))
  console.log(
    JSON.stringify({
      rows,
      groups: a.length,
      same_result: same,
      top: a[0],
      store_ms: storeMs.map(r1),
      direct_ms: directMs.map(r1),
      store_median_ms: r1(median(storeMs)),
      direct_median_ms: r1(median(directMs)),
      sql: sql.replace(/\s+/g, ' ').trim(),
    }),
  )
} else {
  console.error('usage: rum-tool.mjs body | burst URL N ADDRESS | count DBFILE | fill DATADIR N | query DATADIR REPS')
  process.exit(2)
}
