import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { DatabaseSync } from 'node:sqlite'
import { test } from 'node:test'
import { DEFAULT_BUSY_TIMEOUT_MS } from '../../src/core/data-dir.ts'
import { RUM_STORE_OPENED_CHANNEL, rumStoreFile, type SqliteRumStore } from '../../src/rum/store.ts'
import { startEdgebox, type Edgebox } from '../../src/server/app.ts'
import { ManualClock } from '../helpers/clock.ts'
import { captureLog, request, tempDir, type CapturedLog, type Reply } from '../helpers/server.ts'

/**
 * Real-user monitoring when its store fails, over real sockets, each case
 * with an Edgebox and a data folder of its own: the store locked by another
 * process, a full disk (SQLite's own SQLITE_FULL, from a page cap on the
 * store's connections), a queue that overflows meanwhile, and bad input.
 * Beacons are answered all along and the site's page is served; the rows
 * that could not be written are dropped and counted, never half written;
 * one warning; and once the store can be written again, the next beacon is
 * stored. The counters are read from the query API's `stats`, the rows from
 * the store's file.
 */

const TOKEN = 'faults-token-0123456789abcdef0123456789'
const PROJECT = '42'
const KEY = '0123456789abcdef0123456789abcdef'
const PAGE = '<!doctype html><title>faults</title><p>still served'
const STORE_WARNING = /^monitoring rows could not be stored; dropped/

interface Box {
  readonly edgebox: Edgebox
  /** The site's base URL (ends in /). */
  readonly site: string
  /** The query API's base URL (ends in /). */
  readonly api: string
  /** The RUM store's file. */
  readonly file: string
  /** The warnings Edgebox logged. */
  readonly log: CapturedLog
  close(): Promise<void>
}

/** An Edgebox with a site with `rum` serving one HTML page, the query API on, in a data folder of its own. */
async function start(opts: { queue?: number; clock?: ManualClock; sentry?: boolean } = {}): Promise<Box> {
  const { dir: root, cleanup } = tempDir('edgebox-rum-faults-')
  mkdirSync(path.join(root, 'www'))
  writeFileSync(path.join(root, 'www', 'index.html'), PAGE)
  const dataDir = path.join(root, 'data')
  const log = captureLog('warn')
  let edgebox: Edgebox
  try {
    edgebox = await startEdgebox(
      {
        listen: [{ host: '127.0.0.1', port: 0 }],
        log: { access: false, level: 'silent' },
        dataDir,
        rum: { api: { port: 0, token: TOKEN }, ...(opts.queue === undefined ? {} : { queue: opts.queue }) },
        sites: [{ rum: opts.sentry ? { sentry: { project: PROJECT, key: KEY } } : true, routes: [{ path: '/', static: { root: path.join(root, 'www') } }] }],
      },
      { baseDir: root, log: log.logger, ...(opts.clock ? { clock: opts.clock } : {}) },
    )
  } catch (err) {
    cleanup()
    throw err
  }
  return {
    edgebox,
    site: edgebox.urls[0]!,
    api: edgebox.rumApi!.url,
    file: rumStoreFile(dataDir),
    log,
    async close() {
      await edgebox.close()
      cleanup()
    },
  }
}

/** The collector's counters, from the query API. */
interface Stats {
  accepted: number
  refused: Record<string, number>
  ignored: number
  dropped: number
  stored: number
  queued: number
}

async function stats(box: Box): Promise<Stats> {
  const r = await request('http/1.1', `${box.api}stats`, { headers: { authorization: `Bearer ${TOKEN}` } })
  assert.equal(r.status, 200, r.text)
  return JSON.parse(r.text) as Stats
}

/** Polls until `check` holds (bounded), then gives the counters it held on. */
async function statsUntil(box: Box, what: string, check: (s: Stats) => boolean): Promise<Stats> {
  const deadline = Date.now() + 10_000
  for (;;) {
    const s = await stats(box)
    if (check(s)) return s
    if (Date.now() > deadline) throw new Error(`the counters never showed ${what}: ${JSON.stringify(s)}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** The rows in the store's file, counted by page view (`server`: Edgebox's own rows for its pages, whatever their page view). */
function rowsByView(file: string): Record<string, number> {
  const db = new DatabaseSync(file, { readOnly: true })
  try {
    const out: Record<string, number> = {}
    for (const r of db.prepare("SELECT CASE kind WHEN 'server' THEN 'server' ELSE pv END AS view, COUNT(*) AS n FROM rum_events GROUP BY view ORDER BY view").all()) {
      out[String(r.view)] = Number(r.n)
    }
    return out
  } finally {
    db.close()
  }
}

/** A batch of `n` events for page view `pv` (one row each); `pad`: each an error whose message is that long, to take room. */
function beacon(pv: string, n = 2, pad = 0): string {
  const events =
    pad > 0
      ? Array.from({ length: n }, (_, i) => ({ t: 'error', at: 10 + i, kind: 'error', message: `Error ${i}: ${'lorem ipsum '.repeat(pad / 12).slice(0, pad)}`, count: 1 }))
      : Array.from({ length: n }, (_, i) => ({ t: 'vital', at: 100 + i, name: 'LCP', value: 1000 + i, rating: 'good' }))
  return JSON.stringify({ v: 1, pv, page: '/', release: 'r1', events })
}

const post = (box: Box, body: string): Promise<Reply> => request('http/1.1', `${box.site}_edgebox/rum/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })

/** The site's HTML page, checked whole. */
async function page(box: Box): Promise<void> {
  const r = await request('http/1.1', box.site)
  assert.equal(r.status, 200)
  assert.equal(r.text, PAGE)
}

/** The store warnings logged so far. */
const storeWarnings = (box: Box) => box.log.lines.filter((l) => STORE_WARNING.test(String(l.msg)))

/**
 * Another process holding the store's write lock: `BEGIN EXCLUSIVE` (in WAL
 * mode, https://sqlite.org/wal.html, the one writer's lock; readers go on
 * reading) until `release`, as `sqlite3 rum.sqlite 'BEGIN EXCLUSIVE'` or a
 * tool writing to the file would.
 */
async function holdLock(file: string): Promise<{ release(): Promise<void> }> {
  const script = `const { DatabaseSync } = require('node:sqlite')
const db = new DatabaseSync(process.argv[1])
db.exec('BEGIN EXCLUSIVE')
process.stdout.write('locked\\n')
process.stdin.once('data', () => { db.exec('ROLLBACK'); db.close(); process.stdout.write('released\\n') })`
  const child = spawn(process.execPath, ['-e', script, file], { stdio: ['pipe', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stderr.on('data', (d: Buffer) => (err += d.toString()))
  const said = (word: string) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the lock holder never said ${word}: ${err}`)), 10_000)
      const onData = (d: Buffer) => {
        out += d.toString()
        if (out.includes(`${word}\n`)) {
          clearTimeout(timer)
          child.stdout.off('data', onData)
          resolve()
        }
      }
      child.stdout.on('data', onData)
      child.once('exit', (code) => reject(new Error(`the lock holder exited (${code}) before saying ${word}: ${err}`)))
    })
  await said('locked')
  return {
    async release() {
      const released = said('released')
      child.stdin.end('release\n')
      await released
      await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r(null)))
    },
  }
}

test('a store locked by another process: beacons answered 204 and pages served at once; the rows dropped and counted, none half written; one warning; the next beacon after the lock is stored', async () => {
  const box = await start()
  let lock: { release(): Promise<void> } | null = null
  try {
    assert.equal((await post(box, beacon('before-lock'))).status, 204)
    await statsUntil(box, 'the first beacon stored', (s) => s.stored === 2)

    lock = await holdLock(box.file)
    // the longest the event loop (the server's: it runs in this process) is held while the lock is
    const stall = monitorEventLoopDelay({ resolution: 10 })
    stall.enable()
    // five rounds, each written (and failing) apart: two beacons, four page views
    for (let round = 1; round <= 5; round++) {
      const answers = await Promise.all([post(box, beacon(`locked-${round}a`)), post(box, beacon(`locked-${round}b`)), page(box), page(box), page(box), page(box)])
      assert.equal(answers[0].status, 204, answers[0].text)
      assert.equal(answers[1].status, 204, answers[1].text)
      // each page view leaves Edgebox's own row: 4 beacon rows and 4 server rows a round, dropped once the store has been locked a second
      await statsUntil(box, `round ${round}'s rows dropped`, (s) => s.dropped === round * 8 && s.queued === 0)
    }
    // twenty more page views while the lock is still held: all answered
    await Promise.all(Array.from({ length: 20 }, () => page(box)))
    const s = await statsUntil(box, 'the page views\' rows dropped', (x) => x.dropped === 60 && x.queued === 0)
    stall.disable()
    // with SQLite's usual 2 s wait, each failing write would have held every request that long
    assert.ok(stall.max / 1e6 < DEFAULT_BUSY_TIMEOUT_MS, `the event loop was held ${stall.max / 1e6} ms`)
    assert.equal(s.stored, 2)
    assert.equal(s.accepted, 11)
    assert.deepEqual(rowsByView(box.file), { 'before-lock': 2 }, 'nothing written while locked')
    const warnings = storeWarnings(box)
    assert.equal(warnings.length, 1, JSON.stringify(box.log.lines))
    assert.match(String(warnings[0]!.why), /database is locked/)
    assert.equal(warnings[0]!.level, 40)

    await lock.release()
    lock = null
    assert.equal((await post(box, beacon('after-lock'))).status, 204)
    const after = await statsUntil(box, 'the beacon after the lock stored', (x) => x.stored === 4)
    assert.equal(after.dropped, 60)
    assert.deepEqual(rowsByView(box.file), { 'after-lock': 2, 'before-lock': 2 })
  } finally {
    await lock?.release()
    await box.close()
  }
})

test('a full disk (SQLITE_FULL): beacons answered 204, pages served; no beacon half written, every row stored or counted as dropped; one warning; once there is room, the next beacon is stored', async () => {
  // the store's connections as Edgebox opens them, to cap their file like a full disk would
  const opened: SqliteRumStore[] = []
  const onOpen = (message: unknown) => opened.push((message as { store: SqliteRumStore }).store)
  subscribe(RUM_STORE_OPENED_CHANNEL, onOpen)
  let box: Box
  try {
    box = await start()
  } finally {
    unsubscribe(RUM_STORE_OPENED_CHANNEL, onOpen)
  }
  const stores = opened.filter((s) => s.file === box.file)
  try {
    assert.ok(stores.length >= 1)
    assert.equal((await post(box, beacon('before-full'))).status, 204)
    await statsUntil(box, 'the first beacon stored', (s) => s.stored === 2)

    // no page past the file's size now: the little room left inside its pages, then SQLITE_FULL
    for (const s of stores) s.limitPages(1)
    // beacons of 25 errors of 2 KB each: 50 KB, more than the room left, so some of their rows fit before the write fails
    let pages = 0
    for (let round = 1; round <= 3; round++) {
      const answers = await Promise.all([post(box, beacon(`full-${round}`, 25, 2000)), page(box), page(box)])
      pages += 2
      assert.equal(answers[0].status, 204, answers[0].text)
      await statsUntil(box, `round ${round}'s beacon dropped`, (s) => s.dropped >= round * 25 && s.queued === 0 && s.stored + s.dropped === 2 + round * 25 + pages)
    }
    const s = await stats(box)
    const rows = rowsByView(box.file)
    // all or none: not one row of a dropped beacon; Edgebox's small page rows may still have fitted
    assert.deepEqual(Object.keys(rows).filter((k) => k.startsWith('full-')), [])
    assert.equal(rows['before-full'], 2)
    assert.equal(s.stored, 2 + (rows.server ?? 0), 'what the counters call stored is what the file has')
    assert.equal(s.accepted, 4)
    const warnings = storeWarnings(box)
    assert.equal(warnings.length, 1, JSON.stringify(box.log.lines))
    assert.match(String(warnings[0]!.why), /database or disk is full/)

    // room again: the next beacon is stored, and so is Edgebox's row for the next page
    for (const st of stores) st.limitPages(null)
    await Promise.all([post(box, beacon('after-full', 25, 2000)), page(box)])
    const after = await statsUntil(box, 'the beacon after the full disk stored', (x) => x.stored === s.stored + 26)
    assert.equal(after.dropped, s.dropped)
    assert.deepEqual(rowsByView(box.file), { 'after-full': 25, 'before-full': 2, server: (rows.server ?? 0) + 1 })
  } finally {
    for (const st of stores) if (st.file === box.file) st.limitPages(null)
    await box.close()
  }
})

/** What the collector's 100 ms timer does: write the queue; then a turn, for the write's outcome to be counted. */
async function tick(clock: ManualClock): Promise<void> {
  clock.advance(100)
  await new Promise((r) => setImmediate(r))
}

test('a lock held for a moment costs no rows: a write the lock refuses puts its rows back for the next try', async () => {
  const clock = new ManualClock()
  const box = await start({ clock })
  let lock: { release(): Promise<void> } | null = null
  try {
    assert.equal((await post(box, beacon('before', 2))).status, 204)
    await tick(clock)
    await statsUntil(box, 'the first beacon stored', (s) => s.stored === 2)

    lock = await holdLock(box.file)
    // 100 rows: written at once, refused by the lock; a page view's row joins them
    assert.equal((await post(box, beacon('brief', 100))).status, 204)
    await page(box)
    await tick(clock)
    let s = await statsUntil(box, 'the page view\'s row queued', (x) => x.queued === 101)
    assert.equal(s.dropped, 0)
    assert.equal(s.stored, 2)

    await lock.release()
    lock = null
    await tick(clock)
    s = await statsUntil(box, 'the waiting rows stored', (x) => x.stored === 103)
    assert.equal(s.dropped, 0)
    assert.equal(s.queued, 0)
    assert.deepEqual(rowsByView(box.file), { before: 2, brief: 100, server: 1 })
    assert.deepEqual(storeWarnings(box), [])
  } finally {
    await lock?.release()
    await box.close()
  }
})

test('a queue that overflows while the store is locked: what does not fit is dropped and counted, answers and pages unhurt; after a second locked, the queue too; only the timer tries the store again', async () => {
  const clock = new ManualClock()
  // rum.queue at its least: 100 rows
  const box = await start({ queue: 100, clock })
  let lock: { release(): Promise<void> } | null = null
  try {
    assert.equal((await post(box, beacon('before', 2))).status, 204)
    await tick(clock)
    await statsUntil(box, 'the first beacon stored', (s) => s.stored === 2)

    lock = await holdLock(box.file)
    // 100 rows: the queue is full, written at once, refused by the lock: back in the queue
    assert.equal((await post(box, beacon('q-full', 100))).status, 204)
    // no room: a beacon's 60 rows and a page view's row are dropped, and both answered
    assert.equal((await post(box, beacon('q-over', 60))).status, 204)
    await page(box)
    let s = await statsUntil(box, 'the overflow dropped', (x) => x.dropped === 61)
    assert.equal(s.queued, 100)
    assert.equal(s.accepted, 2, 'the overflowing beacon is not counted as accepted')
    // the timer tries again every 100 ms; once the store has been locked a second, the queue's rows are dropped and counted
    for (let ms = 100; ms < 1_000; ms += 100) await tick(clock)
    s = await stats(box)
    assert.deepEqual([s.queued, s.dropped], [100, 61], 'still waiting within the second')
    await tick(clock)
    s = await statsUntil(box, 'the queue dropped', (x) => x.dropped === 161 && x.queued === 0)
    // 60 + 40 rows: the queue full again, but the store's last write failed: no write until the timer's
    assert.equal((await post(box, beacon('q-60', 60))).status, 204)
    assert.equal((await post(box, beacon('q-40', 40))).status, 204)
    s = await stats(box)
    assert.deepEqual([s.queued, s.dropped], [100, 161])
    await tick(clock)
    s = await statsUntil(box, 'the queue dropped again', (x) => x.dropped === 261 && x.queued === 0)
    assert.equal(s.stored, 2)
    const warnings = storeWarnings(box)
    assert.equal(warnings.length, 1, JSON.stringify(box.log.lines))
    assert.match(String(warnings[0]!.why), /database is locked/)

    await lock.release()
    lock = null
    assert.equal((await post(box, beacon('after', 2))).status, 204)
    await tick(clock)
    s = await statsUntil(box, 'the beacon after the lock stored', (x) => x.stored === 4)
    assert.equal(s.dropped, 261)
    assert.equal(s.accepted, 5)
    assert.deepEqual(rowsByView(box.file), { after: 2, before: 2 })
  } finally {
    await lock?.release()
    await box.close()
  }
})

test('bad input: each refused with its status and counted by reason, Sentry items of other types skipped and counted, nothing of them stored; the next good beacon and envelope are', async () => {
  const box = await start({ sentry: true })
  try {
    const good = JSON.parse(beacon('bad-input-base', 1)) as Record<string, unknown>
    const batch: Array<[string, string, number, RegExp]> = [
      ['truncated JSON', '{"v":1,"pv":"a","page":"/","events":[', 400, /JSON/],
      ['wrong types', JSON.stringify({ ...good, events: [{ t: 'vital', at: 'soon', name: 'LCP', value: 1, rating: 'good' }] }), 400, /events\[0\]\.at/],
      ['a huge array', JSON.stringify({ ...good, events: Array.from({ length: 101 }, () => ({ t: 'vital', at: 1, name: 'LCP', value: 1, rating: 'good' })) }), 400, /events/],
      ['deep nesting', `{"v":1,"pv":"a","page":"/","events":[],"device":${'['.repeat(40)}${']'.repeat(40)}}`, 400, /deeper/],
      ['a megabyte string', JSON.stringify({ ...good, page: '/' + 'a'.repeat(1024 * 1024) }), 413, /./],
    ]
    for (const [what, body, status, why] of batch) {
      const r = await post(box, body)
      assert.equal(r.status, status, `${what}: ${r.text}`)
      assert.match(r.text, why, what)
    }
    // a GIF beacon's data one character too long (the GIF's limit is 8 KiB): 400; a 100 KB query never gets past the request line's limit: 414 URI Too Long (RFC 9112 §3)
    const longGif = await request('http/1.1', `${box.site}_edgebox/rum/beacon.gif?d=${'A'.repeat(8 * 1024 + 1)}`)
    assert.equal(longGif.status, 400, longGif.text)
    const hugeGif = await request('http/1.1', `${box.site}_edgebox/rum/beacon.gif?d=${'A'.repeat(100 * 1024)}`)
    assert.equal(hugeGif.status, 414, hugeGif.text)
    assert.match(hugeGif.text, /request target is longer/)

    const envelopeUrl = (key: string) => `${box.site}_edgebox/rum/sentry/api/${PROJECT}/envelope/?sentry_version=7&sentry_key=${key}`
    const send = (body: string, key = KEY) => request('http/1.1', envelopeUrl(key), { method: 'POST', headers: { 'content-type': 'text/plain;charset=UTF-8' }, body })
    const event = JSON.stringify({ event_id: 'fc6d8c0c43fc4630ad850ee518f1b9d0', platform: 'javascript', exception: { values: [{ type: 'Error', value: 'must not be stored' }] } })
    const badLength = await send(`{}\n${JSON.stringify({ type: 'event', length: 5000 })}\n${event}\n`)
    assert.equal(badLength.status, 400, badLength.text)
    assert.match(badLength.text, /length 5000 runs past the end/)
    const wrongKey = await send(`{}\n{"type":"event"}\n${event}\n`, 'f'.repeat(32))
    assert.equal(wrongKey.status, 401, wrongKey.text)
    assert.match(wrongKey.text, /not this project's/)
    const others = await send(`{}\n{"type":"mystery_item"}\n{"a":1}\n{"type":"replay_event"}\n{"replay_id":"x"}\n{"type":"session"}\n{"sid":"s"}\n`)
    assert.equal(others.status, 200, others.text)

    const s = await stats(box)
    assert.deepEqual(s.refused, { invalid: 6, 'too large': 1, key: 1 })
    assert.equal(s.ignored, 3)
    assert.equal(s.accepted, 0)
    assert.equal(s.dropped, 0)
    assert.equal(s.queued, 0)
    assert.deepEqual(rowsByView(box.file), {}, 'nothing of them stored')

    assert.equal((await post(box, beacon('after-bad', 2))).status, 204)
    const ok = await send(`{}\n{"type":"event"}\n${event.replace('must not be stored', 'after the bad ones')}\n`)
    assert.equal(ok.status, 200, ok.text)
    const after = await statsUntil(box, 'the good beacon and envelope stored', (x) => x.stored === 3)
    assert.equal(after.accepted, 2)
    assert.deepEqual(Object.keys(rowsByView(box.file)).filter((k) => k !== 'after-bad').length, 1, 'the envelope\'s one row')
    assert.equal(rowsByView(box.file)['after-bad'], 2)
  } finally {
    await box.close()
  }
})
