import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { gzipSync } from 'node:zlib'
import { after, before, test } from 'node:test'
import { request, startServer, type TestServer } from '../helpers/server.ts'
import { ManualClock } from '../helpers/clock.ts'
import { formatHttpDate } from '../../src/http/date.ts'

/**
 * RFC 9111 requirements of a shared cache, one test each, through a proxy
 * route with the cache on (docs/cache.md, "RFC 9111 requirements and
 * tests"). Time is a manual clock shared by Edgebox and the origin's Date
 * fields.
 */

const clock = new ManualClock()
const S = 1000
const hits = new Map<string, number>()
const seen = new Map<string, http.IncomingHttpHeaders>()
const count = (path: string) => hits.get(path) ?? 0

type Answer = (req: http.IncomingMessage, res: http.ServerResponse, n: number) => void
const text = (headers: Record<string, string | string[]>, body: string): Answer => (_req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain', ...headers })
  res.end(body)
}

const answers: Record<string, Answer> = {
  '/fields': (_req, res) => {
    res.writeHead(200, {
      'Content-Type': 'text/plain',
      'Cache-Control': 'max-age=60',
      'X-Unknown-Field': 'kept',
      'Set-Cookie': 'a=1',
      Connection: 'X-Hop',
      'X-Hop': 'dropped',
      'Proxy-Authenticate': 'Basic realm="upstream proxy"',
    })
    res.end('fields')
  },
  '/trailers': (_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Cache-Control': 'max-age=60', Trailer: 'X-Checksum' })
    res.write('with ')
    res.addTrailers({ 'X-Checksum': 'abc' })
    res.end('trailers')
  },
  '/age': text({ 'Cache-Control': 'max-age=60', Age: '10' }, 'aged'),
  '/vary-change': (_req, res, n) => {
    // the origin changes which fields it varies on: the newer stored response must be the one used
    if (n === 1) return text({ 'Cache-Control': 'max-age=1', Vary: 'Accept-Language' }, 'old')(_req, res, n)
    text({ 'Cache-Control': 'max-age=60', Vary: 'Accept-Encoding' }, `new ${n}`)(_req, res, n)
  },
  '/changed': (_req, res, n) => text({ 'Cache-Control': 'max-age=1', ETag: `"v${n}"` }, `version ${n}`)(_req, res, n),
  '/validate': (req, res) => {
    if (req.headers['if-none-match'] === '"v1"') {
      res.writeHead(304, { ETag: '"v1"', 'Cache-Control': 'max-age=1' })
      return res.end()
    }
    text({ 'Cache-Control': 'max-age=1', ETag: '"v1"' }, 'validated body')(req, res, 0)
  },
  '/conditional-miss': (req, res) => {
    if (req.headers['if-none-match'] === '"client"') {
      res.writeHead(304, { ETag: '"client"' })
      return res.end()
    }
    text({ 'Cache-Control': 'max-age=60', ETag: '"server"' }, 'full')(req, res, 0)
  },
  '/other-etag': (req, res, n) => {
    // validated with "a", the origin answers 304 with another strong ETag: the stored "a" is not what it validated
    if (req.headers['if-none-match'] !== undefined) {
      res.writeHead(304, { ETag: '"b"', 'Cache-Control': 'max-age=1' })
      return res.end()
    }
    text({ 'Cache-Control': 'max-age=1', ETag: n === 1 ? '"a"' : '"b"' }, `version ${n}`)(req, res, n)
  },
  '/last-modified': (req, res, n) => {
    // a 304 carrying only Last-Modified (no ETag): it selects the stored response with the same Last-Modified
    const lm = formatHttpDate(n < 4 ? Date.UTC(2020, 0, 1) : Date.UTC(2021, 0, 1))
    if (req.headers['if-modified-since'] !== undefined) {
      res.writeHead(304, { 'Last-Modified': lm, 'Cache-Control': 'max-age=1' })
      return res.end()
    }
    text({ 'Cache-Control': 'max-age=1', 'Last-Modified': lm }, `modified ${n}`)(req, res, n)
  },
  '/no-validators': (req, res, n) => {
    // stored without validators; the client's own conditional reaches the origin, whose 304 names the client's tag
    if (req.headers['if-none-match'] === '"client"') {
      res.writeHead(304, { ETag: '"client"', 'Cache-Control': 'max-age=1' })
      return res.end()
    }
    text({ 'Cache-Control': 'max-age=1' }, `plain ${n}`)(req, res, n)
  },
  '/only-if-cached': text({ 'Cache-Control': 'max-age=1' }, 'cached'),
  '/vary-dropped': (req, res, n) => {
    // the origin varied on Accept-Encoding, then stops
    if (n === 1) return text({ 'Cache-Control': 'max-age=1', Vary: 'Accept-Encoding' }, 'varied 1')(req, res, n)
    text({ 'Cache-Control': 'max-age=60' }, `plain ${n}`)(req, res, n)
  },
  '/vary-omitted': (req, res, n) => {
    // the origin varies on Accept-Encoding but mistakenly omits Vary from its default response
    if (req.headers['accept-encoding'] === undefined) return text({ 'Cache-Control': 'max-age=60' }, `default ${n}`)(req, res, n)
    text({ 'Cache-Control': 'max-age=60', Vary: 'Accept-Encoding' }, `varied ${n}`)(req, res, n)
  },
  '/directives': text({ 'Cache-Control': 'max-age="60", community="UCI"' }, 'directives'),
  '/s-maxage-expires': text({ 'Cache-Control': 's-maxage=60', Expires: '0' }, 'expires ignored'),
  '/explicit-no-heuristic': (_req, res) =>
    text({ Expires: formatHttpDate(clock.now() - S), 'Last-Modified': formatHttpDate(clock.now() - 100 * 24 * 3600 * S) }, 'explicit')(_req, res, 0),
  '/pragma': text({ 'Cache-Control': 'max-age=60' }, 'pragma'),
  '/no-transform': text({ 'Cache-Control': 'max-age=60, no-transform' }, 'x'.repeat(2000)),
  '/not-found': (_req, res) => {
    res.writeHead(404, { 'Content-Type': 'text/plain', 'Cache-Control': 'max-age=60' })
    res.end('no such page')
  },
  '/unavailable': (_req, res) => {
    res.writeHead(503, { 'Content-Type': 'text/plain' })
    res.end('try later')
  },
}

const origin = http.createServer((req, res) => {
  const path = req.url!.split('?')[0]!
  hits.set(path, count(path) + 1)
  seen.set(path, req.headers)
  req.resume()
  res.setHeader('Date', formatHttpDate(clock.now()))
  const answer = answers[path]
  if (answer) return answer(req, res, count(path))
  res.writeHead(404)
  res.end()
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

const get = (path: string, headers: Record<string, string> = {}) => request('http/1.1', srv!.url + path.slice(1), { headers })

test('§3.1: every header field is stored, unknown ones included; Connection-named and proxy-specific fields are not', async () => {
  await get('/fields')
  const hit = await get('/fields')
  assert.equal(hit.headers['cache-status'], 'edgebox; hit; ttl=60')
  assert.equal(hit.headers['x-unknown-field'], 'kept')
  assert.deepEqual(hit.headers['set-cookie'], ['a=1'])
  assert.equal(hit.headers['x-hop'], undefined)
  assert.equal(hit.headers['proxy-authenticate'], undefined)
  assert.equal(count('/fields'), 1)
})

test('§3.1: trailer fields are never combined with the stored header fields', async () => {
  const miss = await get('/trailers')
  assert.equal(miss.text, 'with trailers')
  const hit = await get('/trailers')
  assert.equal(hit.headers['cache-status'], 'edgebox; hit; ttl=60')
  assert.equal(hit.text, 'with trailers')
  assert.equal(hit.headers['x-checksum'], undefined)
})

test('§4, §5.1: a hit carries one Age, the current_age, replacing the Age the origin sent', async () => {
  const miss = await get('/age')
  assert.equal(miss.headers.age, '10')
  clock.advance(5 * S)
  const hit = await get('/age')
  assert.equal(hit.headers.age, '15')
  assert.equal(hit.headers['cache-status'], 'edgebox; hit; ttl=45')
})

test('§4: when several stored responses match, the most recent one is used', async () => {
  const h = { 'accept-language': 'en', 'accept-encoding': 'gzip' }
  assert.equal((await get('/vary-change', h)).text, 'old')
  clock.advance(2 * S)
  const refetched = await get('/vary-change', h)
  assert.equal(refetched.text, 'new 2')
  const hit = await get('/vary-change', h)
  assert.equal(hit.text, 'new 2')
  assert.equal(hit.headers['cache-status'], 'edgebox; hit; ttl=60')
  assert.equal(count('/vary-change'), 2)
})

test('§4.3.1, §4.3.3: a stale response is validated with its ETag; a full response replaces it and is what the client gets', async () => {
  assert.equal((await get('/changed')).text, 'version 1')
  clock.advance(2 * S)
  const validated = await get('/changed')
  assert.equal(seen.get('/changed')!['if-none-match'], '"v1"')
  assert.equal(validated.text, 'version 2')
  assert.equal(validated.headers['cache-status'], 'edgebox; fwd=stale; fwd-status=200; stored; ttl=1')
  const hit = await get('/changed')
  assert.deepEqual([hit.text, hit.headers.etag, hit.headers['cache-status']], ['version 2', '"v2"', 'edgebox; hit; ttl=1'])
  assert.equal(count('/changed'), 2)
})

test('§4.3.2: a 304 that validates the stored response becomes a 200 for a client whose own entity tag does not match', async () => {
  await get('/validate')
  clock.advance(2 * S)
  const other = await get('/validate', { 'if-none-match': '"other"' })
  assert.equal(seen.get('/validate')!['if-none-match'], '"v1"', "the cache's own validator goes to the origin")
  assert.deepEqual([other.status, other.text], [200, 'validated body'])
  assert.equal(other.headers['cache-status'], 'edgebox; fwd=stale; fwd-status=304; ttl=1')
  const mine = await get('/validate', { 'if-none-match': '"v1"' })
  assert.deepEqual([mine.status, mine.headers['cache-status']], [304, 'edgebox; hit; ttl=1'])
  assert.equal(count('/validate'), 2)
})

test('§4.3.2: with nothing stored, the client\'s conditional goes to the origin and is not evaluated by the cache', async () => {
  const r = await get('/conditional-miss', { 'if-none-match': '"client"' })
  assert.equal(seen.get('/conditional-miss')!['if-none-match'], '"client"')
  assert.equal(r.status, 304)
  assert.equal((await get('/conditional-miss')).status, 200, 'the 304 was not stored')
  assert.equal(count('/conditional-miss'), 2)
})

test('§4.1: of several matching stored responses, one with a valid Vary is preferred to a more recent one without', async () => {
  const gzip = { 'accept-encoding': 'gzip' }
  assert.equal((await get('/vary-omitted', gzip)).text, 'varied 1')
  clock.advance(2 * S)
  assert.equal((await get('/vary-omitted')).text, 'default 2', 'no Accept-Encoding: only the response without Vary matches')
  const hit = await get('/vary-omitted', gzip)
  assert.deepEqual([hit.text, hit.headers['cache-status']], ['varied 1', 'edgebox; hit; ttl=58'])
  assert.equal(count('/vary-omitted'), 2)
})

test('§4.1: when a revalidation shows the origin no longer sends Vary, the stored responses with Vary go', async () => {
  const gzip = { 'accept-encoding': 'gzip' }
  assert.equal((await get('/vary-dropped', gzip)).text, 'varied 1')
  clock.advance(2 * S)
  const changed = await get('/vary-dropped', gzip)
  assert.deepEqual([changed.text, changed.headers['cache-status']], ['plain 2', 'edgebox; fwd=stale; fwd-status=200; stored; ttl=60'])
  const hit = await get('/vary-dropped', gzip)
  assert.deepEqual([hit.text, hit.headers['cache-status']], ['plain 2', 'edgebox; hit; ttl=60'])
  assert.equal(count('/vary-dropped'), 2)
})

test('§4.3.4: a 304 with another strong ETag updates nothing; the request is made again unconditionally', async () => {
  assert.equal((await get('/other-etag')).text, 'version 1')
  clock.advance(2 * S)
  const r = await get('/other-etag')
  assert.deepEqual([r.status, r.text, r.headers.etag], [200, 'version 3', '"b"'])
  assert.equal(r.headers['cache-status'], 'edgebox; fwd=stale; fwd-status=200; stored; ttl=1')
  assert.equal(seen.get('/other-etag')!['if-none-match'], undefined, 'the second request is unconditional')
  const hit = await get('/other-etag')
  assert.deepEqual([hit.text, hit.headers['cache-status']], ['version 3', 'edgebox; hit; ttl=1'])
  assert.equal(count('/other-etag'), 3)
})

test('§4.3.4: without an ETag, a 304 selects by Last-Modified: the same one freshens, another does not', async () => {
  assert.equal((await get('/last-modified')).text, 'modified 1')
  clock.advance(2 * S)
  const same = await get('/last-modified')
  assert.deepEqual([same.text, same.headers['cache-status']], ['modified 1', 'edgebox; fwd=stale; fwd-status=304; ttl=1'])
  clock.advance(2 * S)
  const again = await get('/last-modified') // n=3: the 304 still names 2020: freshens
  assert.equal(again.text, 'modified 1')
  clock.advance(2 * S)
  const other = await get('/last-modified') // n=4: the 304 names 2021, not the stored 2020: asked again (n=5)
  assert.deepEqual([other.text, other.headers['cache-status']], ['modified 5', 'edgebox; fwd=stale; fwd-status=200; stored; ttl=1'])
  assert.equal(seen.get('/last-modified')!['if-modified-since'], undefined)
  assert.equal(count('/last-modified'), 5)
})

test('§4.3.4: a 304 with an ETag never updates a stored response without one', async () => {
  assert.equal((await get('/no-validators')).text, 'plain 1')
  clock.advance(2 * S)
  const r = await get('/no-validators', { 'if-none-match': '"client"' })
  assert.deepEqual([r.status, r.text], [200, 'plain 3'])
  assert.equal(seen.get('/no-validators')!['if-none-match'], undefined)
  assert.equal(count('/no-validators'), 3)
})

test('§5.2.1.7: only-if-cached gets a fresh stored response, and a 504 when the stored response is stale; ignoreRequestDirectives ignores it', async () => {
  assert.equal((await get('/only-if-cached')).text, 'cached')
  const fresh = await get('/only-if-cached', { 'cache-control': 'only-if-cached' })
  assert.deepEqual([fresh.status, fresh.text, fresh.headers['cache-status']], [200, 'cached', 'edgebox; hit; ttl=1'])
  clock.advance(2 * S)
  const stale = await get('/only-if-cached', { 'cache-control': 'only-if-cached' })
  assert.equal(stale.status, 504)
  assert.equal(count('/only-if-cached'), 1, 'the origin was not asked')
  const lenient = await get('/only-if-cached', { 'cache-control': 'only-if-cached, max-stale=10' })
  assert.deepEqual([lenient.status, lenient.text], [200, 'cached'])
  const url = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`
  const cdn = await startServer({ sites: [{ routes: [{ path: '/', proxy: { upstreams: [url], retries: { attempts: 0 }, cache: { ignoreRequestDirectives: true } } }] }] }, undefined, { clock })
  try {
    assert.equal((await request('http/1.1', cdn.url + 'only-if-cached')).status, 200)
    clock.advance(2 * S)
    const ignored = await request('http/1.1', cdn.url + 'only-if-cached', { headers: { 'cache-control': 'only-if-cached' } })
    assert.equal(ignored.status, 200)
    assert.match(String(ignored.headers['cache-status']), /^edgebox; fwd=stale; fwd-status=200/)
  } finally {
    await cdn.close()
  }
})

test('§5.2: cache directives pass through both ways untouched; unknown ones are ignored, quoted arguments accepted', async () => {
  const miss = await get('/directives', { 'cache-control': 'no-transform, community="UCI"' })
  assert.equal(seen.get('/directives')!['cache-control'], 'no-transform, community="UCI"')
  assert.equal(miss.headers['cache-control'], 'max-age="60", community="UCI"')
  assert.equal(miss.headers['cache-status'], 'edgebox; fwd=miss; fwd-status=200; stored; ttl=60')
  const hit = await get('/directives')
  assert.equal(hit.headers['cache-control'], 'max-age="60", community="UCI"')
  assert.equal(hit.headers['cache-status'], 'edgebox; hit; ttl=60')
})

test('§5.3: with s-maxage a shared cache ignores Expires, even an invalid one', async () => {
  await get('/s-maxage-expires')
  const hit = await get('/s-maxage-expires')
  assert.equal(hit.headers['cache-status'], 'edgebox; hit; ttl=60')
  assert.equal(count('/s-maxage-expires'), 1)
})

test('§4.2.2: no heuristic freshness when an explicit expiration time is present', async () => {
  const miss = await get('/explicit-no-heuristic')
  assert.equal(miss.headers['cache-status'], 'edgebox; fwd=miss; fwd-status=200; stored; ttl=0')
  const next = await get('/explicit-no-heuristic')
  assert.match(String(next.headers['cache-status']), /^edgebox; fwd=stale; fwd-status=200/)
  assert.equal(count('/explicit-no-heuristic'), 2)
})

test('§5.4: Pragma: no-cache counts only without Cache-Control', async () => {
  await get('/pragma')
  const reload = await get('/pragma', { pragma: 'no-cache' })
  assert.match(String(reload.headers['cache-status']), /^edgebox; fwd=stale; fwd-status=200/)
  const ignored = await get('/pragma', { pragma: 'no-cache', 'cache-control': 'max-stale=0' })
  assert.equal(ignored.headers['cache-status'], 'edgebox; hit; ttl=60')
  assert.equal(count('/pragma'), 2)
})

test('§5.2.2.6: content is never transformed; a no-transform response reaches a gzip-accepting client as sent, miss and hit', async () => {
  for (const label of ['miss', 'hit']) {
    const r = await get('/no-transform', { 'accept-encoding': 'gzip' })
    assert.equal(r.headers['content-encoding'], undefined, label)
    assert.equal(r.text, 'x'.repeat(2000), label)
  }
  assert.ok(gzipSync('x'.repeat(2000)).length < 2000) // compressible: leaving it alone is a choice
  assert.equal(count('/no-transform'), 1)
})

test('negative caching: a 404 with max-age is stored like any response; a 503 without freshness is not', async () => {
  await get('/not-found')
  const hit = await get('/not-found')
  assert.deepEqual([hit.status, hit.text, hit.headers['cache-status']], [404, 'no such page', 'edgebox; hit; ttl=60'])
  assert.equal(count('/not-found'), 1)
  await get('/unavailable')
  const again = await get('/unavailable')
  assert.equal(again.status, 503)
  assert.equal(count('/unavailable'), 2)
})

test('§4.2.4, §5.2.2.2, §5.2.2.10: must-revalidate and s-maxage responses are never served stale, even when the origin cannot be reached', async () => {
  const down = http.createServer((req, res) => {
    req.resume()
    const cc = req.url === '/must-revalidate' ? 'max-age=1, must-revalidate' : req.url === '/s-maxage' ? 's-maxage=1' : 'max-age=1'
    res.writeHead(200, { 'Content-Type': 'text/plain', Date: formatHttpDate(clock.now()), 'Cache-Control': cc })
    res.end(`body of ${req.url}`)
  })
  await new Promise<void>((r) => down.listen(0, '127.0.0.1', r))
  const url = `http://127.0.0.1:${(down.address() as AddressInfo).port}`
  const lenient = await startServer({ sites: [{ routes: [{ path: '/', proxy: { upstreams: [url], retries: { attempts: 0 }, cache: { staleIfUnreachable: '1h' } } }] }] }, undefined, { clock })
  try {
    for (const p of ['must-revalidate', 's-maxage', 'plain']) assert.equal((await request('http/1.1', lenient.url + p)).status, 200)
    down.closeAllConnections()
    await new Promise((r) => down.close(r))
    clock.advance(5 * S)
    const plain = await request('http/1.1', lenient.url + 'plain')
    assert.equal(plain.status, 200, 'a disconnected cache may serve this one stale')
    assert.match(String(plain.headers['cache-status']), /detail=stale-if-unreachable/)
    for (const p of ['must-revalidate', 's-maxage']) {
      const r = await request('http/1.1', lenient.url + p)
      assert.equal(r.status, 502, `${p}: an error, not the stale response`)
      assert.notEqual(r.text, `body of /${p}`)
    }
  } finally {
    await lenient.close()
    if (down.listening) await new Promise((r) => down.close(r))
  }
})
