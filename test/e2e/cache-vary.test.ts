import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, test } from 'node:test'
import { PROTOCOLS, request, startServer, type TestServer } from '../helpers/server.ts'
import { ManualClock } from '../helpers/clock.ts'
import { formatHttpDate } from '../../src/http/date.ts'

/**
 * Vary normalisation in the shared cache (RFC 9111 §4.1, docs/cache.md):
 * requests whose nominated fields differ only in order, whitespace, case or
 * q=1 select one stored variant; a different set of codings is another.
 * Edgebox and the origin's Date fields share a manual clock that stands
 * still, so every stored answer is 0 s old and its ttl exact.
 */
const clock = new ManualClock()

const hits = new Map<string, number>()
const origin = http.createServer((req, res) => {
  const path = req.url!
  hits.set(path, (hits.get(path) ?? 0) + 1)
  req.resume()
  res.writeHead(200, { Date: formatHttpDate(clock.now()), 'Content-Type': 'text/plain', 'Cache-Control': 'max-age=60', Vary: path === '/both' ? 'Accept-Language, Accept-Encoding' : 'Accept-Encoding' })
  res.end(`${path} for ${req.headers['accept-encoding']} / ${req.headers['accept-language']}`)
})

let srv: TestServer | undefined
before(async () => {
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r))
  const url = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`
  srv = await startServer({ sites: [{ routes: [{ path: '/', proxy: { upstreams: [url], retries: { attempts: 0 }, cache: true } }] }] }, undefined, { clock })
})
after(async () => {
  await srv?.close()
  origin.closeAllConnections()
  await new Promise((r) => origin.close(r))
})

for (const protocol of PROTOCOLS) {
  test(`${protocol}: Accept-Encoding "gzip, br" and "br,gzip" are one variant, "gzip" alone another`, async () => {
    const path = `/ae-${protocol}`
    const get = (ae: string) => request(protocol, srv!.url + path.slice(1), { headers: { 'accept-encoding': ae } })
    const first = await get('gzip, br')
    assert.equal(first.status, 200)
    assert.equal(first.text, `${path} for gzip, br / undefined`)
    assert.equal(first.headers['cache-status'], 'edgebox; fwd=miss; fwd-status=200; stored; ttl=60')
    const reordered = await get('br,gzip')
    assert.equal(reordered.text, `${path} for gzip, br / undefined`)
    assert.equal(reordered.headers['cache-status'], 'edgebox; hit; ttl=60')
    assert.equal(hits.get(path), 1)
    const gzip = await get('gzip')
    assert.equal(gzip.text, `${path} for gzip / undefined`)
    assert.equal(gzip.headers['cache-status'], 'edgebox; fwd=miss; fwd-status=200; stored; ttl=60')
    assert.equal(hits.get(path), 2)
    const caseAndWeight = await get('GZIP;q=1.0')
    assert.equal(caseAndWeight.text, `${path} for gzip / undefined`)
    assert.equal(caseAndWeight.headers['cache-status'], 'edgebox; hit; ttl=60')
    assert.equal(hits.get(path), 2)
  })
}

test('two nominated fields: each is normalised by its own syntax, and equal weights keep their order in Accept-Language', async () => {
  const get = (ae: string, al: string) => request('http/1.1', srv!.url + 'both', { headers: { 'accept-encoding': ae, 'accept-language': al } })
  assert.equal((await get('br, gzip', 'fr;q=0.5, en')).headers['cache-status'], 'edgebox; fwd=miss; fwd-status=200; stored; ttl=60')
  const same = await get('gzip,br', 'EN, fr;q=0.50')
  assert.equal(same.text, '/both for br, gzip / fr;q=0.5, en')
  assert.equal(same.headers['cache-status'], 'edgebox; hit; ttl=60')
  assert.equal(hits.get('/both'), 1)
  assert.equal((await get('gzip, br', 'en, de')).headers['cache-status'], 'edgebox; fwd=miss; fwd-status=200; stored; ttl=60')
  assert.equal((await get('gzip, br', 'de, en')).headers['cache-status'], 'edgebox; fwd=miss; fwd-status=200; stored; ttl=60', 'en, de and de, en may be answered differently')
  assert.equal(hits.get('/both'), 3)
})
