import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { request, startServer, type TestServer } from '../helpers/server.ts'
import { ManualClock, waitFor } from '../helpers/clock.ts'
import { formatHttpDate } from '../../src/http/date.ts'

/**
 * The shared cache in front of a proxied origin (docs/cache.md), against a
 * real origin socket. Time is a manual clock shared by every server here and
 * the origins' Date fields: ages, ttls and stale windows are exact, and time
 * passes only where a test moves it.
 */

const clock = new ManualClock()
/** Starts an Edgebox on the manual clock. */
const start = (config: Parameters<typeof startServer>[0]) => startServer(config, undefined, { clock })

const hits = new Map<string, number>()
const seenHeaders = new Map<string, http.IncomingHttpHeaders>()
let failing = false
let version = 1

function count(path: string): number {
  return hits.get(path) ?? 0
}

const origin = http.createServer((req, res) => {
  const path = req.url!.split('?')[0]!
  hits.set(path, count(path) + 1)
  seenHeaders.set(path, req.headers)
  req.resume()
  res.setHeader('Date', formatHttpDate(clock.now()))
  const etag = `"v${version}"`
  const send = (headers: Record<string, string>, body = `body of ${path} v${version}`) => {
    if (req.headers['if-none-match'] === etag && !failing) {
      res.writeHead(304, { ETag: etag, ...headers })
      return res.end()
    }
    res.writeHead(200, { 'Content-Type': 'text/plain', ETag: etag, ...headers })
    res.end(body)
  }
  if (failing && path !== '/max-age') {
    res.writeHead(500)
    return res.end('down')
  }
  switch (path) {
    case '/max-age':
      return send({ 'Cache-Control': 'max-age=60' })
    case '/refreshed':
      return send({ 'Cache-Control': 'max-age=10', 'X-Origin-Answer': String(count(path)) })
    case '/no-store':
      return send({ 'Cache-Control': 'no-store' })
    case '/private':
      return send({ 'Cache-Control': 'private, max-age=60' })
    case '/s-maxage':
      return send({ 'Cache-Control': 'max-age=0, s-maxage=60' })
    case '/cdn':
      return send({ 'Cache-Control': 'no-store', 'CDN-Cache-Control': 'max-age=60' })
    case '/revalidate':
      return send({ 'Cache-Control': 'no-cache' })
    case '/vary':
      return send({ 'Cache-Control': 'max-age=60', Vary: 'Accept-Language' }, `lang=${req.headers['accept-language']}`)
    case '/swr':
      return send({ 'Cache-Control': 'max-age=1, stale-while-revalidate=30' })
    case '/sie':
      return send({ 'Cache-Control': 'max-age=1, stale-if-error=60' })
    case '/slow':
      return setTimeout(() => send({ 'Cache-Control': 'max-age=60' }), 200)
    case '/truncated':
      res.writeHead(200, { 'Content-Length': '1000', 'Cache-Control': 'max-age=60' })
      res.write('partial')
      return setTimeout(() => req.socket.destroy(), 20)
    case '/tagged':
      return send({ 'Cache-Control': 'max-age=60', 'Surrogate-Key': 'news front' })
    default:
      return send({})
  }
})

let srv: TestServer
let ignoring: TestServer
let purging: TestServer
const TOKEN = 'purge-token-0123456789'
before(async () => {
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r))
  const url = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`
  srv = await start({ sites: [{ routes: [{ path: '/', proxy: { upstreams: [url], cache: true, retries: { attempts: 0 } } }] }] })
  ignoring = await start({ sites: [{ routes: [{ path: '/', proxy: { upstreams: [url], cache: { ignoreRequestDirectives: true } } }] }] })
  purging = await start({ sites: [{ routes: [{ path: '/', proxy: { upstreams: [url], cache: { purge: { token: TOKEN } } } }] }] })
})
after(async () => {
  await srv.close()
  await ignoring.close()
  await purging.close()
  origin.closeAllConnections()
  await new Promise((r) => origin.close(r))
})

const get = (path: string, headers: Record<string, string> = {}, method = 'GET') => request('http/1.1', srv.url + path.slice(1), { method, headers })

describe('storing and serving', () => {
  test('a fresh response is stored, then served with Age and Cache-Status without asking the origin', async () => {
    const first = await get('/max-age')
    assert.equal(first.status, 200)
    assert.equal(first.headers['cache-status'], 'edgebox; fwd=miss; fwd-status=200; stored; ttl=60')
    const second = await get('/max-age')
    assert.equal(second.text, first.text)
    assert.equal(second.headers['cache-status'], 'edgebox; hit; ttl=60')
    assert.equal(second.headers.age, '0')
    clock.advance(5999) // Age is in whole seconds, rounded down (RFC 9111 §4.2.3)
    const third = await get('/max-age')
    assert.equal(third.headers['cache-status'], 'edgebox; hit; ttl=55')
    assert.equal(third.headers.age, '5')
    assert.equal(count('/max-age'), 1)
    clock.advance(1) // back on a whole second, as the origin's Date fields are
  })

  test('after a 304 refreshes a stored response, hits serve its updated fields with Age from the refresh (RFC 9111 §4.3.4)', async () => {
    assert.equal((await get('/refreshed')).headers['x-origin-answer'], '1')
    const hit = await get('/refreshed')
    assert.deepEqual([hit.headers['x-origin-answer'], hit.headers.age, hit.headers['cache-status']], ['1', '0', 'edgebox; hit; ttl=10'])
    clock.advance(12000)
    const refreshed = await get('/refreshed')
    assert.equal(refreshed.status, 200)
    assert.equal(refreshed.headers['x-origin-answer'], '2')
    assert.equal(refreshed.text, 'body of /refreshed v1')
    clock.advance(3000)
    const after = await get('/refreshed')
    assert.deepEqual([after.headers['x-origin-answer'], after.headers.age, after.headers['cache-status']], ['2', '3', 'edgebox; hit; ttl=7'])
    assert.equal(count('/refreshed'), 2)
  })

  test('no-store and private responses are never stored by this shared cache', async () => {
    for (const p of ['/no-store', '/private']) {
      const a = await get(p)
      await get(p)
      assert.match(String(a.headers['cache-status']), /^edgebox; fwd=miss; fwd-status=200; detail=".+"$/)
      assert.equal(count(p), 2)
    }
  })

  test('s-maxage counts for a shared cache, and CDN-Cache-Control beats Cache-Control (RFC 9213)', async () => {
    for (const p of ['/s-maxage', '/cdn']) {
      await get(p)
      const r = await get(p)
      assert.match(String(r.headers['cache-status']), /hit/)
      assert.equal(count(p), 1)
    }
  })

  test('no-cache responses are revalidated with If-None-Match; a 304 serves the stored body', async () => {
    await get('/revalidate')
    const r = await get('/revalidate')
    assert.equal(r.status, 200)
    assert.equal(r.text, 'body of /revalidate v1')
    assert.equal(seenHeaders.get('/revalidate')!['if-none-match'], '"v1"')
    assert.match(String(r.headers['cache-status']), /^edgebox; fwd=stale; fwd-status=304/)
  })

  test('Vary keeps one variant per request header value', async () => {
    const en = await get('/vary', { 'accept-language': 'en' })
    const fr = await get('/vary', { 'accept-language': 'fr' })
    const en2 = await get('/vary', { 'accept-language': 'en' })
    assert.equal(en.text, 'lang=en')
    assert.equal(fr.text, 'lang=fr')
    assert.equal(en2.text, 'lang=en')
    assert.match(String(en2.headers['cache-status']), /hit/)
    assert.equal(count('/vary'), 2)
  })

  test('HEAD, Range and the client\'s own conditionals are answered from the stored response', async () => {
    await get('/max-age')
    const before = count('/max-age')
    const head = await get('/max-age', {}, 'HEAD')
    assert.equal(head.status, 200)
    assert.equal(head.body.length, 0)
    const range = await get('/max-age', { range: 'bytes=0-3' })
    assert.equal(range.status, 206)
    assert.equal(range.text, 'body')
    assert.equal(range.headers['content-range'], `bytes 0-3/${'body of /max-age v1'.length}`)
    const notModified = await get('/max-age', { 'if-none-match': '"v1"' })
    assert.equal(notModified.status, 304)
    assert.equal(count('/max-age'), before)
  })

  test('concurrent misses for one key make one origin request', async () => {
    const all = await Promise.all(Array.from({ length: 8 }, () => get('/slow')))
    assert.ok(all.every((r) => r.status === 200 && r.text === 'body of /slow v1'))
    assert.equal(count('/slow'), 1)
  })

  test('a truncated origin body is never stored', async () => {
    await get('/truncated').catch(() => undefined)
    await get('/truncated').catch(() => undefined)
    assert.equal(count('/truncated'), 2)
  })

  test('an unsafe method invalidates the stored response (RFC 9111 §4.4)', async () => {
    await get('/max-age')
    const before = count('/max-age')
    await get('/max-age', {}, 'POST')
    const r = await get('/max-age')
    assert.match(String(r.headers['cache-status']), /fwd=miss/)
    assert.equal(count('/max-age'), before + 2)
  })
})

describe('request directives and staleness', () => {
  test('a reload (no-cache) revalidates; only-if-cached on a miss is 504', async () => {
    await get('/max-age')
    const r = await get('/max-age', { 'cache-control': 'no-cache' })
    assert.match(String(r.headers['cache-status']), /fwd=stale; fwd-status=304/)
    const o = await get('/never-stored', { 'cache-control': 'only-if-cached' })
    assert.equal(o.status, 504)
  })

  test('with ignoreRequestDirectives a client cannot force an origin fetch', async () => {
    await request('http/1.1', ignoring.url + 'cdn')
    const before = count('/cdn')
    const r = await request('http/1.1', ignoring.url + 'cdn', { headers: { 'cache-control': 'no-cache', pragma: 'no-cache' } })
    assert.match(String(r.headers['cache-status']), /hit/)
    assert.equal(count('/cdn'), before)
  })

  test('stale-while-revalidate serves the stale copy at once and refreshes it in the background', async () => {
    await get('/swr')
    const before = count('/swr')
    clock.advance(999)
    assert.equal((await get('/swr')).headers['cache-status'], 'edgebox; hit; ttl=1', 'fresh until max-age=1 is over')
    clock.advance(1)
    version = 2
    try {
      const stale = await get('/swr')
      assert.equal(stale.text, 'body of /swr v1')
      assert.equal(stale.headers['cache-status'], 'edgebox; hit; ttl=0; detail=stale-while-revalidate')
      assert.equal(stale.headers.age, '1')
      // the refresh is a real request: wait until the new copy is stored
      let fresh = stale
      await waitFor('the refreshed copy served', async () => (fresh = await get('/swr')).text === 'body of /swr v2')
      assert.equal(fresh.headers['cache-status'], 'edgebox; hit; ttl=1')
      assert.equal(count('/swr'), before + 1, 'one background request')
    } finally {
      version = 1
    }
  })

  test('stale-if-error serves the stored copy while the origin fails, within the stale-if-error window only', async () => {
    await get('/sie')
    clock.advance(1000)
    failing = true
    try {
      const r = await get('/sie')
      assert.equal(r.status, 200)
      assert.equal(r.text, 'body of /sie v1')
      assert.equal(r.headers['cache-status'], 'edgebox; hit; ttl=0; fwd=stale; fwd-status=500; detail=stale-if-error')
      clock.advance(60_000) // stale for 60 s: the edge of stale-if-error=60
      assert.equal((await get('/sie')).status, 200)
      clock.advance(1000)
      const late = await get('/sie')
      assert.equal(late.status, 500, 'past the window the error goes through')
      assert.equal(late.text, 'down')
    } finally {
      failing = false
    }
  })
})

describe('purge', () => {
  const p = (path: string, headers: Record<string, string> = {}, method = 'GET') => request('http/1.1', purging.url + path.slice(1), { method, headers })
  const auth = { authorization: `Bearer ${TOKEN}` }

  test('PURGE needs the token (401) and is not allowed where no token is configured (405)', async () => {
    const r = await p('/max-age', {}, 'PURGE')
    assert.equal(r.status, 401)
    assert.equal(r.headers['www-authenticate'], 'Bearer realm="edgebox purge"')
    assert.equal((await p('/max-age', { authorization: 'Bearer wrong-token-wrong-token' }, 'PURGE')).status, 401)
    const other = await get('/max-age', {}, 'PURGE')
    assert.equal(other.status, 405)
    assert.equal((await p('/max-age')).status, 200, 'still serving')
  })

  test('by URL, by prefix and by tag, answering how many entries went', async () => {
    await p('/max-age')
    assert.match(String((await p('/max-age')).headers['cache-status']), /hit/)
    let r = await p('/max-age', auth, 'PURGE')
    assert.deepEqual(JSON.parse(r.text), { purged: 1, what: 'url /max-age' })
    assert.match(String((await p('/max-age')).headers['cache-status']), /fwd=miss/)

    await p('/s-maxage')
    await p('/cdn')
    r = await p('/*', auth, 'PURGE')
    assert.equal(JSON.parse(r.text).purged, 3)

    await p('/tagged')
    await p('/max-age')
    r = await p('/', { ...auth, 'edgebox-purge-tag': 'news' }, 'PURGE')
    assert.deepEqual(JSON.parse(r.text), { purged: 1, what: 'tag news' })
    assert.match(String((await p('/tagged')).headers['cache-status']), /fwd=miss/)
    assert.match(String((await p('/max-age')).headers['cache-status']), /hit/)
  })
})

test('tiered caching: an edge Edgebox in front of a parent Edgebox in front of the origin', async () => {
  const originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`
  const parent = await start({ sites: [{ routes: [{ path: '/', proxy: { upstreams: [originUrl], cache: { name: 'parent' } } }] }] })
  const edge = await start({ sites: [{ routes: [{ path: '/', proxy: { upstreams: [parent.url.slice(0, -1)], cache: { name: 'edge', purge: { token: TOKEN } } } }] }] })
  try {
    const before = count('/s-maxage')
    const first = await request('http/1.1', edge.url + 's-maxage?tier=1')
    assert.equal(first.headers['cache-status'], 'parent; fwd=miss; fwd-status=200; stored; ttl=60, edge; fwd=miss; fwd-status=200; stored; ttl=60')
    assert.equal(first.headers.via, '1.1 edgebox, 1.1 edgebox')
    await request('http/1.1', edge.url + 's-maxage?tier=1', { method: 'PURGE', headers: { authorization: `Bearer ${TOKEN}` } })
    const second = await request('http/1.1', edge.url + 's-maxage?tier=1')
    assert.match(String(second.headers['cache-status']), /^parent; hit; ttl=\d+, edge; fwd=miss; fwd-status=200; stored; ttl=\d+$/)
    assert.equal(count('/s-maxage'), before + 1, 'the origin was asked once')
  } finally {
    await edge.close()
    await parent.close()
  }
})

test('a disk store keeps stored responses across a restart', async () => {
  const { tempDir } = await import('../helpers/server.ts')
  const t = tempDir()
  const originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`
  const config = { sites: [{ routes: [{ path: '/', proxy: { upstreams: [originUrl], cache: { disk: t.dir } } }] }] }
  try {
    let s = await start(config)
    const before = count('/s-maxage')
    const first = await request('http/1.1', s.url + 's-maxage?disk=1')
    assert.match(String(first.headers['cache-status']), /stored/)
    await s.close()
    s = await start(config)
    try {
      const again = await request('http/1.1', s.url + 's-maxage?disk=1')
      assert.equal(again.text, first.text)
      assert.match(String(again.headers['cache-status']), /^edgebox; hit/)
      assert.equal(count('/s-maxage'), before + 1, 'the origin was asked once, before the restart')
    } finally {
      await s.close()
    }
  } finally {
    t.cleanup()
  }
})

test('rangeMiss: a range on a miss is forwarded as a range by default, or served from the whole object fetched and stored', async () => {
  const originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`
  const whole = await start({ sites: [{ routes: [{ path: '/', proxy: { upstreams: [originUrl], cache: { rangeMiss: 'whole' } } }] }] })
  try {
    const before = count('/max-age')
    const r = await request('http/1.1', whole.url + 'max-age?range=1', { headers: { range: 'bytes=5-6' } })
    assert.equal(r.status, 206)
    assert.equal(r.text, 'of')
    assert.equal(seenHeaders.get('/max-age')!.range, undefined, 'the origin was asked for the whole object')
    const full = await request('http/1.1', whole.url + 'max-age?range=1')
    assert.equal(full.text, 'body of /max-age v1')
    assert.match(String(full.headers['cache-status']), /hit/)
    assert.equal(count('/max-age'), before + 1)
  } finally {
    await whole.close()
  }
  // the default forwards the range; the partial answer is not stored
  const r = await get('/plain-range', { range: 'bytes=0-3' })
  assert.equal(seenHeaders.get('/plain-range')!.range, 'bytes=0-3')
  assert.equal(r.status, 200) // this origin ignores Range; what matters is that it was asked with it
})

test('a 200 to HEAD freshens the stored GET response when its validators match, and drops it when they do not (RFC 9111 §4.3.5)', async () => {
  let etag = '"e1"'
  let edition = '1'
  const seen: string[] = []
  const o = http.createServer((req, res) => {
    seen.push(req.method!)
    res.setHeader('Date', formatHttpDate(clock.now()))
    // answers 200 whatever the conditionals say, as an origin without validation support would
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '5', ETag: etag, 'Cache-Control': 'max-age=1', 'X-Edition': edition })
    res.end(req.method === 'HEAD' ? undefined : 'hello')
  })
  await new Promise<void>((r) => o.listen(0, '127.0.0.1', r))
  const s = await start({ sites: [{ routes: [{ path: '/', proxy: { upstreams: [`http://127.0.0.1:${(o.address() as AddressInfo).port}`], cache: true } }] }] })
  const go = (method = 'GET') => request('http/1.1', s.url + 'h', { method })
  try {
    assert.match(String((await go()).headers['cache-status']), /fwd=miss; fwd-status=200; stored/)
    clock.advance(1000)
    edition = '2' // same representation (same ETag, same length), new metadata
    const head = await go('HEAD')
    assert.equal(head.status, 200)
    assert.equal(head.headers['cache-status'], 'edgebox; fwd=stale; fwd-status=200; ttl=1; detail="freshened by HEAD"')
    assert.equal(head.headers['x-edition'], '2')
    const hit = await go()
    assert.equal(hit.headers['cache-status'], 'edgebox; hit; ttl=1', 'fresh again from the HEAD response on')
    assert.equal(hit.headers['x-edition'], '2', 'the stored headers were updated from the HEAD response')
    assert.equal(hit.body.toString(), 'hello')
    assert.deepEqual(seen, ['GET', 'HEAD'])

    clock.advance(1000)
    etag = '"e2"' // another representation
    const changed = await go('HEAD')
    assert.match(String(changed.headers['cache-status']), /stored response dropped/)
    assert.equal(changed.headers.etag, '"e2"')
    assert.match(String((await go()).headers['cache-status']), /fwd=miss; fwd-status=200; stored/)
    assert.deepEqual(seen, ['GET', 'HEAD', 'HEAD', 'GET'])
  } finally {
    await s.close()
    o.closeAllConnections()
    await new Promise((r) => o.close(r))
  }
})
