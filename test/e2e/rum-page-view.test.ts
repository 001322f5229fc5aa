import assert from 'node:assert/strict'
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { accessLines } from '../helpers/access-log.ts'
import { openSqliteRumStore } from '../../src/rum/store.ts'
import { PROTOCOLS, request, startServer, tempDir, type TestServer } from '../helpers/server.ts'

/**
 * The page-view id of real-user monitoring: each HTML answer of a site with
 * `rum` carries `Server-Timing: pv;desc="<id>"`, a new id each time, and the
 * access log line carries the same id; other answers and other sites do not.
 * Each such answer also leaves Edgebox's own row of the page view (kind
 * `server`) in the store, with the access log's duration.
 */

let box: TestServer
let bare: TestServer
let root: string
let cleanup: () => void
let logFile: string

before(async () => {
  ;({ dir: root, cleanup } = tempDir())
  mkdirSync(path.join(root, 'www'))
  writeFileSync(path.join(root, 'www', 'index.html'), '<!doctype html><title>t</title>')
  writeFileSync(path.join(root, 'www', 'app.css'), 'body{}')
  logFile = path.join(root, 'access.log')
  box = await startServer({
    log: { access: true, format: 'json', file: logFile },
    sites: [
      { hosts: ['monitored.localhost'], rum: true, routes: [{ path: '/', static: { root: path.join(root, 'www') } }] },
      { default: true, routes: [{ path: '/', static: { root: path.join(root, 'www') } }] },
    ],
  })
  bare = await startServer({ serverTiming: false, sites: [{ rum: true, routes: [{ path: '/', static: { root: path.join(root, 'www') } }] }] })
})

after(async () => {
  await box?.close()
  await bare?.close()
  cleanup?.()
})

for (const protocol of PROTOCOLS) {
  test(`${protocol}: an HTML answer gets a new page-view id beside the edge timing; a stylesheet and another site get none`, async () => {
    const host = { host: 'monitored.localhost' }
    const a = await request(protocol, `${box.url}`, { headers: host })
    const b = await request(protocol, `${box.url}index.html`, { headers: host })
    const ids = [a, b].map((r) => {
      assert.equal(r.status, 200)
      const m = /^edge;dur=[\d.]+, pv;desc="([A-Za-z0-9_-]{12})"$/.exec(String(r.headers['server-timing']))
      assert.ok(m, String(r.headers['server-timing']))
      return m[1]!
    })
    assert.notEqual(ids[0], ids[1])
    const css = await request(protocol, `${box.url}app.css`, { headers: host })
    assert.doesNotMatch(String(css.headers['server-timing']), /pv;/)
    const other = await request(protocol, `${box.url}`)
    assert.doesNotMatch(String(other.headers['server-timing']), /pv;/)
    // the access log line of each HTML answer names its id
    const lines = (await accessLines(logFile, (ls) => ids.every((id) => ls.some((l) => (l as { pv?: string }).pv === id)))) as Array<{ path?: string; pv?: string }>
    assert.deepEqual(lines.filter((l) => ids.includes(l.pv ?? '')).map((l) => l.path).sort(), ['/', '/index.html'])
  })
}

test('with serverTiming off, the field carries the page-view id alone', async () => {
  const r = await request('http/1.1', bare.url)
  assert.match(String(r.headers['server-timing']), /^pv;desc="[A-Za-z0-9_-]{12}"$/)
})

test('each answer with a page-view id leaves one server row: its path without the query, status, the access log\'s duration, route, protocol and edge time', async () => {
  const dataDir = path.join(root, 'data-server-rows')
  const rowsLog = path.join(root, 'access-rows.log')
  const srv = await startServer({
    dataDir,
    log: { access: true, format: 'json', file: rowsLog },
    sites: [{ rum: true, routes: [{ path: '/', static: { root: path.join(root, 'www') } }] }],
  })
  const ids: Record<string, string> = {}
  try {
    for (const protocol of PROTOCOLS) {
      const r = await request(protocol, `${srv.url}index.html?q=secret&utm=1`)
      ids[protocol] = /pv;desc="([A-Za-z0-9_-]{12})"/.exec(String(r.headers['server-timing']))![1]!
      const edge = Number(/^edge;dur=([\d.]+)/.exec(String(r.headers['server-timing']))![1])
      ids[`${protocol} edge`] = String(edge)
    }
    // a stylesheet gets no id, and no row
    assert.equal((await request('http/1.1', `${srv.url}app.css`)).status, 200)
    // a batch may not claim to be Edgebox's own row
    const forged = await request('http/1.1', `${srv.url}_edgebox/rum/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ v: 1, pv: 'forged', page: '/', events: [{ t: 'server', at: 0 }] }) })
    assert.equal(forged.status, 400)
    assert.match(forged.text, /events\[0\]\.t/)
  } finally {
    await srv.close()
  }
  const lines = (await accessLines(rowsLog, (ls) => ls.filter((l) => (l as { pv?: string }).pv).length >= 2)) as Array<{ pv?: string; ms?: number; path?: string }>
  const store = await openSqliteRumStore(dataDir)
  try {
    for (const protocol of PROTOCOLS) {
      const pv = ids[protocol]!
      const views = await store.pageViews({ since: 0, until: Date.now() + 60_000, pv, limit: 10 })
      assert.equal(views.length, 1, protocol)
      const v = views[0]!
      assert.equal(v.page, '/index.html', protocol)
      assert.equal(v.browser, null)
      const line = lines.find((l) => l.pv === pv)!
      assert.equal(line.path, '/index.html')
      assert.deepEqual(
        { ...v.server, time: 0 },
        { time: 0, status: 200, duration: line.ms, method: 'GET', route: 'sites[0].routes[0]', handler: 'static', cache: v.server!.cache, protocol: protocol === 'h2c' ? 'h2' : 'h1', edge: Number(ids[`${protocol} edge`]) },
        protocol,
      )
    }
    // two HTML answers, two server rows: nothing for the stylesheet or the forged batch
    const all = await store.pageViews({ since: 0, until: Date.now() + 60_000, limit: 10 })
    assert.deepEqual(all.map((v) => v.pv).sort(), [ids['http/1.1'], ids.h2c].sort())
    assert.equal(await store.count(), 2)
  } finally {
    await store.close()
  }
})

test('with serverTiming off, the server row still has the time to the headers as edge', async () => {
  const dataDir = path.join(root, 'data-no-timing')
  const srv = await startServer({ dataDir, serverTiming: false, sites: [{ rum: true, routes: [{ path: '/', static: { root: path.join(root, 'www') } }] }] })
  let pv: string
  try {
    const r = await request('http/1.1', srv.url)
    pv = /^pv;desc="([A-Za-z0-9_-]{12})"$/.exec(String(r.headers['server-timing']))![1]!
  } finally {
    await srv.close()
  }
  const store = await openSqliteRumStore(dataDir)
  try {
    const [v] = await store.pageViews({ since: 0, until: Date.now() + 60_000, pv, limit: 1 })
    assert.equal(v!.page, '/')
    assert.equal(typeof v!.server!.edge, 'number')
    assert.ok((v!.server!.edge as number) >= 0)
    assert.ok((v!.server!.duration as number) >= (v!.server!.edge as number))
  } finally {
    await store.close()
  }
})
