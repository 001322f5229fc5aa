import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { parseCacheControl, targetedCacheControl, type CacheDirectives, type Headers } from '../../src/http/cache-control.ts'
import { formatHttpDate } from '../../src/http/date.ts'
import {
  currentAge,
  freshnessLifetime,
  moreRecent,
  parseAge,
  selectForUpdate,
  staleIfErrorAllowed,
  storability,
  updateStoredHeaders,
  usability,
  varyKey,
  withoutHopByHop,
  type StoredResponse,
} from '../../src/http/freshness.ts'

const T0 = Date.UTC(2025, 0, 1) // whole seconds
const S = 1000
const DAY = 86_400_000
const date = (ms: number) => formatHttpDate(ms)

/** The effective response directives, as a CDN would compute them. */
function effective(headers: Headers): CacheDirectives {
  return targetedCacheControl(headers, ['cdn-cache-control']) ?? parseCacheControl(headers['cache-control'])
}

function stored(headers: Headers, opts: { status?: number; requestTime?: number; responseTime?: number } = {}): StoredResponse {
  return { status: opts.status ?? 200, headers: { date: date(T0), ...headers }, requestTime: opts.requestTime ?? T0, responseTime: opts.responseTime ?? T0 }
}

test('storability: RFC 9111 §3 for a shared cache', () => {
  type Case = [string, { method?: string; req?: Headers; status?: number; res: Headers }, { storable: boolean; reason?: string; stripFields: string[] }]
  const ok = { storable: true, stripFields: [] }
  const cases: Case[] = [
    ['max-age', { res: { 'cache-control': 'max-age=60' } }, ok],
    ['lower-case method', { method: 'get', res: { 'cache-control': 'max-age=60' } }, ok],
    ['POST', { method: 'POST', res: { 'cache-control': 'max-age=60' } }, { storable: false, reason: 'method POST is not cacheable', stripFields: [] }],
    ['HEAD', { method: 'HEAD', res: { 'cache-control': 'max-age=60' } }, { storable: false, reason: 'HEAD responses only update stored responses', stripFields: [] }],
    ['1xx', { status: 103, res: {} }, { storable: false, reason: 'status 103 is not final', stripFields: [] }],
    ['206', { status: 206, res: { 'cache-control': 'max-age=60' } }, { storable: false, reason: 'partial content (206) is not stored', stripFields: [] }],
    ['304', { status: 304, res: { 'cache-control': 'max-age=60' } }, { storable: false, reason: '304 only updates a stored response', stripFields: [] }],
    ['no-store', { res: { 'cache-control': 'no-store, max-age=60' } }, { storable: false, reason: 'no-store in response', stripFields: [] }],
    ['request no-store', { req: { 'cache-control': 'no-store' }, res: { 'cache-control': 'max-age=60' } }, { storable: false, reason: 'no-store in request', stripFields: [] }],
    ['must-understand overrides no-store', { res: { 'cache-control': 'must-understand, no-store, max-age=60' } }, ok],
    ['must-understand, unknown status', { status: 299, res: { 'cache-control': 'must-understand, no-store, max-age=60' } }, { storable: false, reason: 'must-understand with status 299', stripFields: [] }],
    ['unknown status with max-age', { status: 299, res: { 'cache-control': 'max-age=60' } }, ok],
    ['private', { res: { 'cache-control': 'private, max-age=60' } }, { storable: false, reason: 'private', stripFields: [] }],
    ['private="set-cookie"', { res: { 'cache-control': 'private="Set-Cookie", max-age=60', 'set-cookie': 'a=b' } }, { storable: true, stripFields: ['set-cookie'] }],
    [
      'qualified private and no-cache, proxy fields',
      { res: { 'cache-control': 'private="x-a", no-cache="x-b, x-a"', 'proxy-authenticate': 'Basic' } },
      { storable: true, stripFields: ['x-a', 'x-b', 'proxy-authenticate'] },
    ],
    ['Authorization', { req: { authorization: 'Bearer x' }, res: { 'cache-control': 'max-age=60' } }, { storable: false, reason: 'authorization without public, s-maxage or must-revalidate', stripFields: [] }],
    ['Authorization + public', { req: { authorization: 'Bearer x' }, res: { 'cache-control': 'public, max-age=60' } }, ok],
    ['Authorization + s-maxage', { req: { authorization: 'Bearer x' }, res: { 'cache-control': 's-maxage=60' } }, ok],
    ['Authorization + must-revalidate', { req: { authorization: 'Bearer x' }, res: { 'cache-control': 'must-revalidate, max-age=60' } }, ok],
    ['302 without freshness', { status: 302, res: {} }, { storable: false, reason: 'no explicit freshness and status 302 is not heuristically cacheable', stripFields: [] }],
    ['302 + Expires', { status: 302, res: { expires: date(T0 + 60 * S) } }, ok],
    ['302 + invalid Expires', { status: 302, res: { expires: '0' } }, ok], // storable, but already stale
    ['302 + public', { status: 302, res: { 'cache-control': 'public' } }, ok],
    ['302 + no-cache only', { status: 302, res: { 'cache-control': 'no-cache' } }, { storable: false, reason: 'no explicit freshness and status 302 is not heuristically cacheable', stripFields: [] }],
    ['404 heuristic', { status: 404, res: {} }, ok],
    ['200 no-cache', { res: { 'cache-control': 'no-cache' } }, ok],
    ['Vary: *', { res: { 'cache-control': 'max-age=60', vary: 'accept, *' } }, { storable: false, reason: 'vary: *', stripFields: [] }],
    ['CDN-Cache-Control beats Cache-Control: no-store', { res: { 'cdn-cache-control': 'max-age=60', 'cache-control': 'no-store' } }, ok],
    ['CDN-Cache-Control: no-store beats Cache-Control', { res: { 'cdn-cache-control': 'no-store', 'cache-control': 'max-age=60' } }, { storable: false, reason: 'no-store in response', stripFields: [] }],
    ['malformed CDN-Cache-Control is ignored', { res: { 'cdn-cache-control': 'max-age=a', 'cache-control': 'no-store' } }, { storable: false, reason: 'no-store in response', stripFields: [] }],
    ['targeted field: Expires ignored (RFC 9213 §2.2)', { status: 302, res: { 'cdn-cache-control': 'none', expires: date(T0 + 60 * S) } }, { storable: false, reason: 'no explicit freshness and status 302 is not heuristically cacheable', stripFields: [] }],
  ]
  for (const [name, c, expected] of cases) {
    const res = { status: c.status ?? 200, headers: c.res }
    assert.deepEqual(storability({ method: c.method ?? 'GET', headers: c.req ?? {} }, res, effective(c.res)), expected, name)
  }
})

test('freshnessLifetime: RFC 9111 §4.2.1 and §4.2.2, shared cache', () => {
  const lm = (daysBefore: number) => date(T0 - daysBefore * DAY)
  type Case = [string, Headers, number, { status?: number; maxHeuristic?: number; responseTime?: number }?]
  const cases: Case[] = [
    ['max-age=0', { 'cache-control': 'max-age=0' }, 0],
    ['max-age', { 'cache-control': 'max-age=60' }, 60 * S],
    ['s-maxage beats max-age', { 'cache-control': 'max-age=60, s-maxage=120' }, 120 * S],
    ['s-maxage=0 beats max-age', { 'cache-control': 's-maxage=0, max-age=60' }, 0],
    ['max-age beats Expires', { 'cache-control': 'max-age=60', expires: date(T0 + 3600 * S) }, 60 * S],
    ['Expires - Date', { expires: date(T0 + 3600 * S) }, 3600 * S],
    ['Expires: 0', { expires: '0' }, 0],
    ['Expires garbage', { expires: 'tomorrow' }, 0],
    ['Expires before Date', { expires: date(T0 - 60 * S) }, 0],
    ['two Expires: the first', { expires: [date(T0 + 10 * S), date(T0 + 3600 * S)] }, 10 * S],
    ['Expires, no Date, response time', { date: undefined, expires: date(T0 + 30 * S) }, 20 * S, { responseTime: T0 + 10 * S }],
    ['Expires, no Date, no response time', { date: undefined, expires: date(T0 + 30 * S) }, 0],
    ['Expires, invalid Date, response time', { date: 'nope', expires: date(T0 + 30 * S) }, 30 * S, { responseTime: T0 }],
    ['heuristic 10%', { 'last-modified': lm(5) }, DAY / 2],
    ['heuristic 10 days -> 1 day', { 'last-modified': lm(10) }, DAY],
    ['heuristic capped at 1 day', { 'last-modified': lm(100) }, DAY],
    ['heuristic capped by option', { 'last-modified': lm(10) }, 3600 * S, { maxHeuristic: 3600 * S }],
    ['heuristic with 404', { 'last-modified': lm(1) }, DAY / 10, { status: 404 }],
    ['no heuristic for 302', { 'last-modified': lm(1) }, 0, { status: 302 }],
    ['heuristic for public 302', { 'cache-control': 'public', 'last-modified': lm(1) }, DAY / 10, { status: 302 }],
    ['no Last-Modified', {}, 0],
    ['Last-Modified after Date', { 'last-modified': date(T0 + 60 * S) }, 0],
    ['no Date: heuristic from response time', { date: undefined, 'last-modified': lm(1) }, DAY / 10, { responseTime: T0 }],
    ['CDN-Cache-Control max-age beats Cache-Control', { 'cdn-cache-control': 'max-age=600', 'cache-control': 'max-age=60, s-maxage=120' }, 600 * S],
    ['targeted: Expires ignored, heuristic', { 'cdn-cache-control': 'none', expires: date(T0 + 60 * S), 'last-modified': lm(1) }, DAY / 10],
    ['malformed CDN-Cache-Control ignored', { 'cdn-cache-control': 'max-age=a', 'cache-control': 'max-age=30' }, 30 * S],
    ['invalid max-age is stale', { 'cache-control': 'max-age=soon', expires: date(T0 + 3600 * S) }, 0],
  ]
  for (const [name, h, expected, o = {}] of cases) {
    const headers = { date: date(T0), ...h }
    assert.equal(freshnessLifetime({ status: o.status ?? 200, headers }, effective(headers), o), expected, name)
  }
})

test('parseAge: RFC 9111 §5.1', () => {
  const cases: Array<[string | string[] | undefined, number | undefined]> = [
    ['10', 10],
    ['0', 0],
    [' 10 ', 10],
    ['10, 20', 10],
    [['10', '20'], 10],
    [', 7', 7],
    ['abc', undefined],
    ['abc, 10', undefined],
    [['x', '10'], undefined],
    ['-1', undefined],
    ['+5', undefined],
    ['1.5', undefined],
    ['1e3', undefined],
    ['', undefined],
    [undefined, undefined],
    ['99999999999', 2147483648],
  ]
  for (const [input, expected] of cases) assert.equal(parseAge(input), expected, JSON.stringify(input))
})

test('currentAge: RFC 9111 §4.2.3', () => {
  type Case = [string, StoredResponse, number, number]
  const cases: Case[] = [
    ['resident time only', stored({}), T0 + 5 * S, 5],
    ['floors', stored({}), T0 + 1999, 1],
    ['Age + response_delay', stored({ age: '10' }, { requestTime: T0 - 2 * S }), T0 + 3 * S, 15],
    ['apparent age wins', stored({ date: date(T0 - 20 * S), age: '10' }), T0, 20],
    ['corrected age wins', stored({ date: date(T0 - 5 * S), age: '10' }), T0, 10],
    ['Date in the future', stored({ date: date(T0 + 60 * S) }), T0 + 1 * S, 1],
    ['Age: -1 ignored', stored({ age: '-1' }), T0 + 2 * S, 2],
    ['Age: abc ignored', stored({ age: 'abc' }), T0 + 2 * S, 2],
    ['no Date', stored({ date: undefined }), T0 + 4 * S, 4],
    ['now before response time', stored({}), T0 - 10 * S, 0],
  ]
  for (const [name, s, now, expected] of cases) assert.equal(currentAge(s, now), expected, name)
})

test('currentAge is never negative and grows 1:1 with now', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 10_000_000 }),
      fc.integer({ min: -100_000, max: 100_000 }),
      fc.option(fc.integer({ min: -5, max: 5_000_000 }).map(String)),
      fc.integer({ min: -100_000, max: 10_000_000 }),
      fc.integer({ min: 0, max: 100_000 }),
      (delay, dateSkewS, age, nowOffset, k) => {
        const responseTime = T0 + 1234
        const s: StoredResponse = {
          status: 200,
          headers: { date: date(T0 + dateSkewS * S), ...(age === null ? {} : { age }) },
          requestTime: responseTime - delay,
          responseTime,
        }
        const a = currentAge(s, responseTime + nowOffset)
        assert.ok(Number.isInteger(a) && a >= 0)
        const now = responseTime + Math.abs(nowOffset)
        assert.equal(currentAge(s, now + k * S), currentAge(s, now) + k)
      },
    ),
    { numRuns: 300 },
  )
})

test('freshnessLifetime is never negative', () => {
  const header = fc.option(fc.oneof(fc.string(), fc.integer({ min: -10 * DAY, max: 10 * DAY }).map((d) => date(T0 + d))), { nil: undefined })
  fc.assert(
    fc.property(fc.constantFrom(200, 204, 302, 404, 500), fc.string(), header, header, header, (status, cc, d, expires, lastModified) => {
      const headers: Headers = { 'cache-control': cc, date: d, expires, 'last-modified': lastModified }
      const lifetime = freshnessLifetime({ status, headers }, parseCacheControl(cc), { responseTime: T0 })
      assert.ok(lifetime >= 0 && Number.isFinite(lifetime))
    }),
    { numRuns: 300 },
  )
})

test('usability: RFC 9111 §4, §4.2.4, §5.2.1 and RFC 5861', () => {
  type Case = [string, Headers, string | undefined, number, { use: string; age: number; ttl: number }, { ignoreRequestDirectives?: boolean }?]
  const cases: Case[] = [
    ['fresh', { 'cache-control': 'max-age=60' }, undefined, 10, { use: 'fresh', age: 10, ttl: 50 }],
    ['stale at the lifetime', { 'cache-control': 'max-age=60' }, undefined, 60, { use: 'revalidate', age: 60, ttl: 0 }],
    ['max-age=0', { 'cache-control': 'max-age=0' }, undefined, 0, { use: 'revalidate', age: 0, ttl: 0 }],
    ['Age counts', { 'cache-control': 'max-age=60', age: '50' }, undefined, 5, { use: 'fresh', age: 55, ttl: 5 }],
    ['Age makes stale', { 'cache-control': 'max-age=60', age: '50' }, undefined, 10, { use: 'revalidate', age: 60, ttl: 0 }],
    ['Expires: 0', { expires: '0' }, undefined, 0, { use: 'revalidate', age: 0, ttl: 0 }],
    ['heuristic', { 'last-modified': date(T0 - 10 * DAY) }, undefined, 3600, { use: 'fresh', age: 3600, ttl: 82800 }],
    ['stale-while-revalidate window', { 'cache-control': 'max-age=60, stale-while-revalidate=30' }, undefined, 70, { use: 'stale-while-revalidate', age: 70, ttl: -10 }],
    ['stale-while-revalidate edge', { 'cache-control': 'max-age=60, stale-while-revalidate=30' }, undefined, 90, { use: 'stale-while-revalidate', age: 90, ttl: -30 }],
    ['after stale-while-revalidate', { 'cache-control': 'max-age=60, stale-while-revalidate=30' }, undefined, 91, { use: 'revalidate', age: 91, ttl: -31 }],
    ['s-maxage + stale-while-revalidate', { 'cache-control': 's-maxage=60, stale-while-revalidate=30' }, undefined, 70, { use: 'stale-while-revalidate', age: 70, ttl: -10 }],
    ['must-revalidate forbids swr', { 'cache-control': 'max-age=60, stale-while-revalidate=30, must-revalidate' }, undefined, 70, { use: 'revalidate', age: 70, ttl: -10 }],
    ['proxy-revalidate forbids swr', { 'cache-control': 'max-age=60, stale-while-revalidate=30, proxy-revalidate' }, undefined, 70, { use: 'revalidate', age: 70, ttl: -10 }],
    ['response no-cache', { 'cache-control': 'no-cache, max-age=60' }, undefined, 1, { use: 'revalidate', age: 1, ttl: 59 }],
    ['qualified no-cache', { 'cache-control': 'no-cache="set-cookie", max-age=60' }, undefined, 1, { use: 'fresh', age: 1, ttl: 59 }],
    ['request max-age=0', { 'cache-control': 'max-age=60' }, 'max-age=0', 0, { use: 'revalidate', age: 0, ttl: 60 }],
    ['request max-age=0, CDN mode', { 'cache-control': 'max-age=60' }, 'max-age=0', 0, { use: 'fresh', age: 0, ttl: 60 }, { ignoreRequestDirectives: true }],
    ['request no-cache', { 'cache-control': 'max-age=60' }, 'no-cache', 1, { use: 'revalidate', age: 1, ttl: 59 }],
    ['request no-cache, CDN mode', { 'cache-control': 'max-age=60' }, 'no-cache', 1, { use: 'fresh', age: 1, ttl: 59 }, { ignoreRequestDirectives: true }],
    ['request max-age exceeded', { 'cache-control': 'max-age=60' }, 'max-age=5', 10, { use: 'revalidate', age: 10, ttl: 50 }],
    ['request max-age met', { 'cache-control': 'max-age=60' }, 'max-age=10', 10, { use: 'fresh', age: 10, ttl: 50 }],
    ['min-fresh not met', { 'cache-control': 'max-age=60' }, 'min-fresh=55', 10, { use: 'revalidate', age: 10, ttl: 50 }],
    ['min-fresh met', { 'cache-control': 'max-age=60' }, 'min-fresh=50', 10, { use: 'fresh', age: 10, ttl: 50 }],
    ['max-stale', { 'cache-control': 'max-age=60' }, 'max-stale', 1000, { use: 'stale-while-revalidate', age: 1000, ttl: -940 }],
    ['max-stale=5 within', { 'cache-control': 'max-age=60' }, 'max-stale=5', 64, { use: 'stale-while-revalidate', age: 64, ttl: -4 }],
    ['max-stale=5 exceeded', { 'cache-control': 'max-age=60' }, 'max-stale=5', 66, { use: 'revalidate', age: 66, ttl: -6 }],
    ['max-stale, CDN mode', { 'cache-control': 'max-age=60' }, 'max-stale', 66, { use: 'revalidate', age: 66, ttl: -6 }, { ignoreRequestDirectives: true }],
    ['max-stale vs must-revalidate', { 'cache-control': 'max-age=60, must-revalidate' }, 'max-stale', 66, { use: 'revalidate', age: 66, ttl: -6 }],
    ['max-stale vs s-maxage', { 'cache-control': 's-maxage=60' }, 'max-stale', 66, { use: 'revalidate', age: 66, ttl: -6 }],
    ['CDN-Cache-Control over Cache-Control: no-store', { 'cdn-cache-control': 'max-age=60', 'cache-control': 'no-store' }, undefined, 30, { use: 'fresh', age: 30, ttl: 30 }],
  ]
  for (const [name, headers, reqCc, seconds, expected, opts] of cases) {
    const s = stored(headers)
    assert.deepEqual(usability(s, effective(s.headers), parseCacheControl(reqCc), T0 + seconds * S, opts), expected, name)
  }
})

test('staleIfErrorAllowed: RFC 5861 §4, RFC 9111 §4.2.4', () => {
  type Case = [string, string, string | undefined, number, boolean]
  const cases: Case[] = [
    ['fresh', 'max-age=60', undefined, 10, true],
    ['within stale-if-error', 'max-age=60, stale-if-error=300', undefined, 100, true],
    ['edge of stale-if-error', 'max-age=60, stale-if-error=300', undefined, 360, true],
    ['after stale-if-error', 'max-age=60, stale-if-error=300', undefined, 400, false],
    ['stale, nothing allows it', 'max-age=60', undefined, 100, false],
    ['must-revalidate', 'max-age=60, stale-if-error=300, must-revalidate', undefined, 100, false],
    ['proxy-revalidate', 'max-age=60, stale-if-error=300, proxy-revalidate', undefined, 100, false],
    ['no-cache', 'no-cache, max-age=60, stale-if-error=300', undefined, 10, false],
    ['s-maxage + stale-if-error', 's-maxage=60, stale-if-error=300', undefined, 100, true],
    ['s-maxage + request max-stale', 's-maxage=60', 'max-stale', 100, false],
    ['request stale-if-error', 'max-age=60', 'stale-if-error=100', 100, true],
    ['request stale-if-error exceeded', 'max-age=60', 'stale-if-error=10', 100, false],
    ['request max-stale', 'max-age=60', 'max-stale', 100, true],
    ['request max-stale=10', 'max-age=60', 'max-stale=10', 100, false],
  ]
  for (const [name, resCc, reqCc, seconds, expected] of cases) {
    const s = stored({ 'cache-control': resCc })
    assert.equal(staleIfErrorAllowed(s, parseCacheControl(resCc), parseCacheControl(reqCc), T0 + seconds * S), expected, name)
  }
})

test('varyKey: RFC 9111 §4.1', () => {
  const cases: Array<[string | string[] | undefined, Headers, string | null]> = [
    [undefined, { accept: 'x' }, ''],
    ['', {}, ''],
    ['Accept-Encoding', { 'accept-encoding': 'gzip,  br' }, 'accept-encoding:br,gzip'],
    ['accept-language, Accept-Encoding', { 'accept-encoding': 'gzip', 'accept-language': 'en' }, 'accept-encoding:gzip\naccept-language:en'],
    [['accept-language', 'accept-encoding'], { 'accept-encoding': 'gzip', 'accept-language': 'en' }, 'accept-encoding:gzip\naccept-language:en'],
    ['accept, Accept', { accept: 'text/html' }, 'accept:text/html'],
    ['accept-encoding', {}, 'accept-encoding'],
    ['accept-encoding', { 'accept-encoding': '' }, 'accept-encoding:'],
    ['accept', { accept: '  text/html ,\tapplication/json ; q=0.9  ' }, 'accept:application/json;q=0.9,text/html'],
    ['accept', { accept: ['text/html', 'application/json'] }, 'accept:application/json,text/html'],
    ['x-foo', { 'x-foo': '  a   "b  ,  c" ' }, 'x-foo:a   "b  ,  c"'],
    ['x-foo', { 'x-foo': ['a', 'b'] }, 'x-foo:a, b'],
    ['*', { accept: 'x' }, null],
    ['accept, *', { accept: 'x' }, null],
    [['accept', '*'], {}, null],
  ]
  for (const [vary, headers, expected] of cases) assert.equal(varyKey(vary, headers), expected, JSON.stringify([vary, headers]))
  // equivalent requests give the same key
  assert.equal(varyKey('accept', { accept: 'a, b' }), varyKey('accept', { accept: ['a', 'b'] }))
  assert.notEqual(varyKey('accept', { accept: 'a' }), varyKey('accept', {}))
})

test('moreRecent: RFC 9111 §4, the later Date wins, then the later response time', () => {
  const older = stored({ date: date(T0) }, { responseTime: T0 + 50 * S })
  const newer = stored({ date: date(T0 + 10 * S) }, { responseTime: T0 + 10 * S })
  assert.equal(moreRecent(newer, older), true, 'Date decides, not when it arrived')
  assert.equal(moreRecent(older, newer), false)
  const noDate = stored({ date: undefined }, { responseTime: T0 + 20 * S })
  assert.equal(moreRecent(noDate, newer), true, 'without Date, the response time stands in')
  const sameDateLater = stored({ date: date(T0) }, { responseTime: T0 + 60 * S })
  assert.equal(moreRecent(sameDateLater, older), true)
  assert.equal(moreRecent(older, stored({ date: date(T0) }, { responseTime: T0 + 50 * S })), true, 'a tie counts as more recent')
})

test('selectForUpdate: RFC 9111 §4.3.4, the 304\'s validators select the stored responses it updates', () => {
  const old = date(T0 - DAY) // a day before Date: a strong Last-Modified (RFC 9110 §8.8.2.2)
  const a = stored({ etag: '"a"', 'last-modified': old })
  const a2 = stored({ etag: '"a"', vary: 'Accept' }, { responseTime: T0 + S })
  const b = stored({ etag: '"b"' })
  const weak = stored({ etag: 'W/"w"' })
  const weakNewer = stored({ etag: 'W/"w"', date: date(T0 + 5 * S) })
  const dated = stored({ 'last-modified': old })
  const recent = stored({ 'last-modified': date(T0 - 10 * S) }) // within 60 s of Date: weak
  const bare = stored({})
  const d = { date: date(T0 + 100 * S) }
  // 1. a strong validator selects every stored response with it, and nothing when none has it
  assert.deepEqual(selectForUpdate([a, a2, b], { ...d, etag: '"a"' }), [a, a2])
  assert.deepEqual(selectForUpdate([a, b], { ...d, etag: '"c"' }), [], 'another strong ETag updates nothing')
  assert.deepEqual(selectForUpdate([weak], { ...d, etag: '"w"' }), [], 'a strong ETag does not select a weak one')
  assert.deepEqual(selectForUpdate([bare], { ...d, etag: '"a"' }), [], 'nor a response without validators')
  assert.deepEqual(selectForUpdate([dated, bare], { ...d, 'last-modified': old }), [dated], 'a strong Last-Modified')
  assert.deepEqual(selectForUpdate([a], { ...d, etag: '"c"', 'last-modified': old }), [], 'the same Last-Modified with another ETag: another representation')
  assert.deepEqual(selectForUpdate([dated], { ...d, 'last-modified': date(T0 - 2 * DAY) }), [], 'another Last-Modified')
  // 2. weak validators only: the most recent stored response that matches by weak comparison
  assert.deepEqual(selectForUpdate([weak, weakNewer, b], { ...d, etag: 'W/"w"' }), [weakNewer])
  assert.deepEqual(selectForUpdate([a], { ...d, etag: 'W/"a"' }), [a], 'weak comparison ignores W/')
  assert.deepEqual(selectForUpdate([recent], { date: date(T0), 'last-modified': date(T0 - 10 * S) }), [recent], 'a weak Last-Modified')
  assert.deepEqual(selectForUpdate([recent], { date: date(T0), 'last-modified': date(T0 - 20 * S) }), [])
  // 3. no validator: the only stored response, if it has none either
  assert.deepEqual(selectForUpdate([bare], d), [bare])
  assert.deepEqual(selectForUpdate([bare, stored({})], d), [], 'not when there are several')
  assert.deepEqual(selectForUpdate([a], d), [], 'not one with a validator')
  assert.deepEqual(selectForUpdate([], { ...d, etag: '"a"' }), [])
})

test('updateStoredHeaders: RFC 9111 §3.2 and §4.3.4', () => {
  const storedHeaders: Headers = {
    'content-length': '1000',
    'content-encoding': 'gzip',
    'content-type': 'text/html',
    etag: '"a"',
    'cache-control': 'max-age=60',
    date: date(T0),
    age: '5',
    'x-kept': '1',
  }
  const fresh304: Headers = {
    'content-length': '0',
    'content-encoding': 'br',
    'content-range': 'bytes 0-1/2',
    'cache-control': 'max-age=120',
    date: date(T0 + 60 * S),
    etag: '"a"',
    connection: 'x-hop',
    'x-hop': '1',
    'transfer-encoding': 'chunked',
    'keep-alive': 'timeout=5',
    'proxy-authenticate': 'Basic',
    'set-cookie': ['a=1', 'b=2'],
    'x-undefined': undefined,
  }
  const before = structuredClone(storedHeaders)
  assert.deepEqual(updateStoredHeaders(storedHeaders, fresh304), {
    'content-length': '1000',
    'content-encoding': 'gzip',
    'content-type': 'text/html',
    etag: '"a"',
    'cache-control': 'max-age=120',
    date: date(T0 + 60 * S),
    'x-kept': '1',
    'set-cookie': ['a=1', 'b=2'],
  })
  assert.deepEqual(storedHeaders, before) // not mutated
  assert.deepEqual(updateStoredHeaders({ age: '5', a: '1' }, { age: '2' }), { age: '2', a: '1' })
})

test('withoutHopByHop: RFC 9110 §7.6.1', () => {
  const headers: Headers = {
    connection: 'keep-alive, X-Custom',
    'keep-alive': 'timeout=5',
    'x-custom': '1',
    te: 'trailers',
    trailer: 'x-t',
    'transfer-encoding': 'chunked',
    upgrade: 'h2c',
    'proxy-connection': 'keep-alive',
    'proxy-authenticate': 'Basic',
    'proxy-authorization': 'Basic x',
    'content-type': 'text/html',
    'cache-control': 'max-age=60',
  }
  const out = withoutHopByHop(headers)
  assert.deepEqual(out, { 'content-type': 'text/html', 'cache-control': 'max-age=60' })
  assert.notEqual(out, headers)
  assert.equal(headers['x-custom'], '1')
  assert.deepEqual(withoutHopByHop({ connection: ['close', 'x-a'], 'x-a': '1', 'x-b': '2' }), { 'x-b': '2' })
  assert.deepEqual(withoutHopByHop({ a: '1' }), { a: '1' })
})
