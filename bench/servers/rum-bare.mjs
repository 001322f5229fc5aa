// The bare comparator of the real-user-monitoring benchmark (bench/rum.sh, bench/README.md "Real-user monitoring
// benchmark"): node:http on 127.0.0.1:PORT, POST /_edgebox/rum/batch reads the body, JSON.parse, a minimal check,
// one row per event into the same `rum_events` table as Edgebox's store (src/rum/store.ts RUM_SCHEMA and ROW_COLUMNS, imported),
// WAL, synchronous=NORMAL, rows buffered and written in one transaction per 100 rows or 100 ms (as the collector:
// at once when 100 are waiting, else every 100 ms); answers 204. No scrubbing, no schema library, no rate limit, no
// access log: the ceiling for a Node server that stores the same rows with the same durability.
//
// usage: node bench/servers/rum-bare.mjs PORT DBFILE     (SIGTERM: writes what is queued, closes the file, exits)
import http from 'node:http'
import { ROW_COLUMNS, RUM_SCHEMA, RUM_SCHEMA_VERSION } from '../../src/rum/store.ts'
import { DatabaseSync } from 'node:sqlite'

const port = Number(process.argv[2] ?? 18911)
const file = process.argv[3]
if (!file) throw new Error('usage: rum-bare.mjs PORT DBFILE')

// the same table and columns as Edgebox's store: its own constants (the pinned Node runs TypeScript sources)
const COLUMNS = ROW_COLUMNS

const db = new DatabaseSync(file)
db.exec('PRAGMA journal_mode = WAL')
db.exec('PRAGMA synchronous = NORMAL')
db.exec(RUM_SCHEMA)
db.exec(`PRAGMA user_version = ${RUM_SCHEMA_VERSION}`)
const insert = db.prepare(`INSERT INTO rum_events (${COLUMNS}) VALUES (${COLUMNS.split(',').map(() => '?').join(', ')})`)

const FLUSH_ROWS = 100
const FLUSH_MS = 100
const MAX_BODY = 64 * 1024
let queue = []
function flush() {
  if (queue.length === 0) return
  const rows = queue
  queue = []
  db.exec('BEGIN')
  try {
    for (const r of rows) insert.run(...r)
    db.exec('COMMIT')
  } catch (err) {
    if (db.isTransaction) db.exec('ROLLBACK')
    console.error(`rum-bare: ${rows.length} rows dropped: ${err.message}`)
  }
}
const timer = setInterval(flush, FLUSH_MS)

/** One event as a row of the same 25 columns the store writes (null where the event has nothing). */
function row(b, e, time, address) {
  const r = eventRow(b, e, time, address)
  if (r !== null) r.push(b.device?.conn ?? null)
  return r
}

function eventRow(b, e, time, address) {
  const base = [time, e.at, b.pv, b.page, b.release ?? null, b.env ?? null, b.cached ? 1 : 0, b.device?.mobile ? 'mobile' : 'desktop', 'other', null, address]
  switch (e.t) {
    case 'vital':
      return [...base, 'vital', e.name, e.value, e.rating, null, null, null, 1, null, null, null, null, e.attr ? JSON.stringify({ attr: e.attr }) : null]
    case 'nav':
      return [...base, 'nav', null, null, null, null, null, null, 1, null, null, null, null, JSON.stringify({ type: e.type, protocol: e.protocol, phases: e.phases })]
    case 'resource':
      return [...base, 'resource', null, null, null, null, null, null, 1, e.url, e.status, e.duration, null, JSON.stringify({ initiator: e.initiator, size: e.size, failed: e.failed })]
    case 'error':
      return [...base, 'error', e.kind, null, null, e.message, e.stack ?? null, null, e.count, null, null, null, null, null]
    case 'api':
      return [...base, 'api', null, null, null, null, null, null, 1, e.url, e.status, e.duration, e.outcome, JSON.stringify({ method: e.method })]
    case 'route':
      return [...base, 'route', null, null, null, null, null, null, 1, e.to, null, null, null, JSON.stringify({ pv: e.pv, from: e.from })]
    default:
      return null
  }
}

const server = http.createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/_edgebox/rum/batch') {
    res.writeHead(404, { 'content-length': '0' }).end()
    return
  }
  const chunks = []
  let size = 0
  req.on('data', (c) => {
    size += c.length
    if (size <= MAX_BODY) chunks.push(c)
  })
  req.on('end', () => {
    let b
    try {
      if (size > MAX_BODY) throw new Error('too large')
      b = JSON.parse(Buffer.concat(chunks).toString('utf8'))
    } catch {
      res.writeHead(400, { 'content-length': '0' }).end()
      return
    }
    // the minimal check: version, page view, page, at most 100 events, each of a known kind
    if (b === null || typeof b !== 'object' || b.v !== 1 || typeof b.pv !== 'string' || typeof b.page !== 'string' || !Array.isArray(b.events) || b.events.length > 100) {
      res.writeHead(400, { 'content-length': '0' }).end()
      return
    }
    const time = Date.now()
    const xff = req.headers['x-forwarded-for']
    const address = typeof xff === 'string' ? xff : (req.socket.remoteAddress ?? null)
    const rows = []
    for (const e of b.events) {
      const r = e !== null && typeof e === 'object' && typeof e.at === 'number' ? row(b, e, time, address) : null
      if (r === null) {
        res.writeHead(400, { 'content-length': '0' }).end()
        return
      }
      rows.push(r)
    }
    for (const r of rows) queue.push(r)
    if (queue.length >= FLUSH_ROWS) flush()
    res.writeHead(204, { 'cache-control': 'no-store' }).end()
  })
})
server.keepAliveTimeout = 60_000
server.listen(port, '127.0.0.1', () => console.log(`rum-bare listening on 127.0.0.1:${port}, ${file}`))

function stop() {
  clearInterval(timer)
  server.close()
  server.closeAllConnections?.()
  flush()
  db.close()
  process.exit(0)
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
