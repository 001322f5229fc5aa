import assert from 'node:assert/strict'
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { openSqliteRumStore } from '../../src/rum/store.ts'
import { TRANSPARENT_GIF } from '../../src/rum/collector.ts'
import { PROTOCOLS, request, startServer, tempDir, type TestServer } from '../helpers/server.ts'

/**
 * The collector of real-user monitoring over real sockets: a good batch and
 * a good GIF beacon are stored (scrubbed, the address truncated); every bad
 * beacon is refused with a precise status and reason, nothing of it stored,
 * and the next good one is stored.
 */

let box: TestServer
let dataDir: string
let cleanup: () => void

const good = (pv: string, message = 'x is not a function') => ({
  v: 1,
  pv,
  page: '/docs/intro?token=abc',
  release: 'r1',
  events: [
    { t: 'vital', at: 1200, name: 'LCP', value: 1180.5, rating: 'good' },
    { t: 'error', at: 2100, kind: 'error', message: `${message} for ann@example.com`, stack: 'TypeError: x\n    at f (https://example.com/app.js:1:20)', count: 2 },
  ],
})

before(async () => {
  let root: string
  ;({ dir: root, cleanup } = tempDir())
  dataDir = path.join(root, 'data')
  mkdirSync(path.join(root, 'www'))
  writeFileSync(path.join(root, 'www', 'index.html'), '<!doctype html><title>t</title>')
  box = await startServer({ dataDir, sites: [{ rum: true, origins: ['https://partner.example'], routes: [{ path: '/', static: { root: path.join(root, 'www') } }] }] })
})

after(async () => {
  await box?.close()
  cleanup?.()
})

/** The rows stored so far (the server closed first, so every queued row is written). */
async function storedRows(): Promise<Array<Record<string, unknown>>> {
  const store = await openSqliteRumStore(dataDir)
  try {
    const groups = await store.errorGroups({ since: 0, until: Date.now() + 60_000 })
    const lcp = await store.percentiles({ metric: 'LCP', by: 'page', since: 0, until: Date.now() + 60_000 })
    return [...groups.map((g) => ({ ...g })), ...lcp.map((p) => ({ ...p }))]
  } finally {
    await store.close()
  }
}

const post = (body: string, headers: Record<string, string> = {}) => request('http/1.1', `${box.url}_edgebox/rum/batch`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body })

test('bad beacons: a precise status and reason each, and the next good one is still taken', async () => {
  const cases: Array<[string, string, number, RegExp]> = [
    ['truncated JSON', '{"v":1,"pv":"a","page":"/","events":[', 400, /not JSON|JSON/],
    ['wrong types', JSON.stringify({ ...good('p1'), events: [{ t: 'vital', at: 'soon', name: 'LCP', value: 1, rating: 'good' }] }), 400, /events\[0\]\.at/],
    ['an unknown event kind', JSON.stringify({ ...good('p1'), events: [{ t: 'mystery', at: 1 }] }), 400, /events\[0\]/],
    ['a huge array', JSON.stringify({ ...good('p1'), events: Array.from({ length: 101 }, () => good('p1').events[0]) }), 400, /events/],
    ['deep nesting', `{"v":1,"pv":"a","page":"/","events":[],"device":${'['.repeat(40)}${']'.repeat(40)}}`, 400, /deeper/],
    ['an unknown field', JSON.stringify({ ...good('p1'), extra: 1 }), 400, /extra|unrecognized/i],
  ]
  for (const [what, body, status, why] of cases) {
    const r = await post(body)
    assert.equal(r.status, status, `${what}: ${r.text}`)
    assert.match(r.text, why, what)
  }
  // a string of megabytes: the body is over the limit before it is read whole
  const huge = await post(JSON.stringify({ ...good('p1'), page: '/' + 'a'.repeat(3 * 1024 * 1024) }))
  assert.equal(huge.status, 413)
  // a GIF request with a 100 KB query
  const gif = await request('http/1.1', `${box.url}_edgebox/rum/beacon.gif?d=${'A'.repeat(100 * 1024)}`)
  assert.equal(gif.status, 414, `${gif.status} ${gif.text}`)
  // and then a good one, which is stored
  assert.equal((await post(JSON.stringify(good('after-bad')))).status, 204)
})

for (const protocol of PROTOCOLS) {
  test(`${protocol}: a batch (204) and a GIF beacon (the 43-byte GIF, never cached) are accepted`, async () => {
    const r = await request(protocol, `${box.url}_edgebox/rum/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(good(`batch-${protocol.replace(/\W/g, '')}`)) })
    assert.equal(r.status, 204)
    const d = Buffer.from(JSON.stringify(good(`gif-${protocol.replace(/\W/g, '')}`))).toString('base64url')
    const g = await request(protocol, `${box.url}_edgebox/rum/beacon.gif?d=${d}`)
    assert.equal(g.status, 200)
    assert.equal(g.headers['content-type'], 'image/gif')
    assert.equal(g.headers['cache-control'], 'no-store')
    assert.equal(g.body.length, 43)
    assert.deepEqual(g.body, TRANSPARENT_GIF)
  })
}

test('the SDK is served on the site: /_edgebox/rum/sdk.js, the script build', async () => {
  const r = await request('http/1.1', `${box.url}_edgebox/rum/sdk.js`)
  assert.equal(r.status, 200)
  assert.equal(r.headers['content-type'], 'text/javascript; charset=utf-8')
  assert.match(String(r.headers.etag), /^"[A-Za-z0-9_-]{22}"$/)
  assert.match(r.text, /EdgeboxRum/)
})

test('cross-origin beacons: the site origins only (CORS), others refused', async () => {
  const pre = await request('http/1.1', `${box.url}_edgebox/rum/batch`, { method: 'OPTIONS', headers: { origin: 'https://partner.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' } })
  assert.equal(pre.status, 204)
  assert.equal(pre.headers['access-control-allow-origin'], 'https://partner.example')
  const ok = await post(JSON.stringify(good('partner')), { origin: 'https://partner.example' })
  assert.equal(ok.status, 204)
  assert.equal(ok.headers['access-control-allow-origin'], 'https://partner.example')
  const evil = await post(JSON.stringify(good('evil')), { origin: 'https://evil.example' })
  assert.equal(evil.status, 403)
  assert.match(evil.text, /origin https:\/\/evil\.example may not report here/)
})

test('what is stored: scrubbed, grouped, with nothing of the refused beacons', async () => {
  await box.close()
  const rows = await storedRows()
  const groups = rows.filter((r) => 'fingerprint' in r) as Array<{ message: string; count: number; pageViews: number }>
  assert.equal(groups.length, 1, JSON.stringify(groups))
  // the email was scrubbed before storage; the pages views are the good beacons': after-bad, 2 batches, 2 GIFs, partner
  assert.doesNotMatch(groups[0]!.message, /ann@example\.com/)
  assert.equal(groups[0]!.pageViews, 6)
  assert.equal(groups[0]!.count, 12)
  const pages = rows.filter((r) => 'p75' in r) as Array<{ key: string; n: number }>
  // the page's query value was scrubbed too
  assert.deepEqual(pages.map((p) => [p.key, p.n]), [['/docs/intro?token=[redacted]', 6]])
})
