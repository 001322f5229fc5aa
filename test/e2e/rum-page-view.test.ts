import assert from 'node:assert/strict'
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { accessLines } from '../helpers/access-log.ts'
import { PROTOCOLS, request, startServer, tempDir, type TestServer } from '../helpers/server.ts'

/**
 * The page-view id of real-user monitoring: each HTML answer of a site with
 * `rum` carries `Server-Timing: pv;desc="<id>"`, a new id each time, and the
 * access log line carries the same id; other answers and other sites do not.
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
