import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { parseCacheControl, targetedCacheControl, type CacheDirectives, type Headers } from '../../src/http/cache-control.ts'

test('parseCacheControl reads RFC 9111 §5.2 directives', () => {
  const cases: Array<[string | string[] | undefined, CacheDirectives]> = [
    [undefined, {}],
    ['', {}],
    ['max-age=60', { maxAge: 60 }],
    ['MAX-AGE=60, Public', { maxAge: 60, public: true }],
    ['max-age="60"', { maxAge: 60 }], // §5.2: accept both forms
    ['s-maxage=120, max-age=60', { sMaxage: 120, maxAge: 60 }],
    ['max-age=0', { maxAge: 0 }],
    ['max-age=007', { maxAge: 7 }],
    // §1.2.2: capped at 2^31
    ['max-age=99999999999999999999999', { maxAge: 2147483648 }],
    ['max-age=2147483647', { maxAge: 2147483647 }],
    // §4.2.1: invalid freshness information -> stale
    ['max-age=abc', { maxAge: 0 }],
    ['max-age=-1', { maxAge: 0 }],
    ['max-age=1.5', { maxAge: 0 }],
    ['max-age', { maxAge: 0 }],
    ['max-age=', { maxAge: 0 }],
    ['s-maxage=x', { sMaxage: 0 }],
    // duplicates: most restrictive
    ['max-age=60, max-age=30', { maxAge: 30 }],
    ['max-age=30, max-age=60', { maxAge: 30 }],
    [['max-age=60', 'max-age=10'], { maxAge: 10 }],
    ['min-fresh=5, min-fresh=10', { minFresh: 10 }],
    ['max-stale', { maxStale: true }],
    ['max-stale, max-stale=10', { maxStale: 10 }],
    ['max-stale=10, max-stale', { maxStale: 10 }],
    ['max-stale=10, max-stale=5', { maxStale: 5 }],
    ['max-stale=abc', {}],
    ['stale-while-revalidate=30, stale-if-error=600', { staleWhileRevalidate: 30, staleIfError: 600 }],
    ['stale-while-revalidate=abc, stale-if-error=-1', {}],
    ['stale-while-revalidate=30, stale-while-revalidate=10', { staleWhileRevalidate: 10 }],
    // qualified no-cache / private: field names lower-cased
    ['no-cache', { noCache: true }],
    ['no-cache="Set-Cookie, X-Foo"', { noCache: ['set-cookie', 'x-foo'] }],
    ['no-cache=set-cookie', { noCache: ['set-cookie'] }],
    ['no-cache=""', { noCache: true }],
    ['private', { private: true }],
    ['private="set-cookie"', { private: ['set-cookie'] }],
    ['private="set-cookie", private', { private: true }],
    ['private, private="set-cookie"', { private: true }],
    ['private="a", private="B, a"', { private: ['a', 'b'] }],
    ['no-cache="a, b", max-age=5', { noCache: ['a', 'b'], maxAge: 5 }],
    // flags
    [
      'no-store, must-revalidate, proxy-revalidate, must-understand, no-transform, immutable, only-if-cached',
      { noStore: true, mustRevalidate: true, proxyRevalidate: true, mustUnderstand: true, noTransform: true, immutable: true, onlyIfCached: true },
    ],
    ['no-store=1', { noStore: true }], // restrictive: counts anyway
    ['public="yes", immutable=1, must-understand=x', {}], // permissive: ignored with an argument
    // list syntax
    ['  , ,max-age=5,, ', { maxAge: 5 }],
    ['community="UCI", private', { private: true }], // §5.2.3 example
    ['foo=bar, max-age=1, "junk", =5', { maxAge: 1 }],
    ['max-age = 60', { maxAge: 60 }],
    [['public', 'no-cache="a, b'], { public: true, noCache: ['a', 'b'] }], // unbalanced quote stays in its line
  ]
  for (const [input, expected] of cases) assert.deepEqual(parseCacheControl(input), expected, JSON.stringify(input))
})

test('parseCacheControl never throws and returns only known, sane values', () => {
  const pieces = ['max-age', 's-maxage', 'no-cache', 'private', 'max-stale', '=', '"', ',', ' ', '\\', '60', '-1', 'abc', 'x']
  const arbitrary = fc.oneof(fc.string({ unit: 'binary' }), fc.array(fc.constantFrom(...pieces)).map((a) => a.join('')))
  fc.assert(
    fc.property(fc.oneof(arbitrary, fc.array(arbitrary)), (input) => {
      const d = parseCacheControl(input)
      for (const k of ['maxAge', 'sMaxage', 'minFresh', 'staleWhileRevalidate', 'staleIfError'] as const) {
        const v = d[k]
        if (v !== undefined) assert.ok(Number.isInteger(v) && v >= 0 && v <= 2147483648)
      }
    }),
    { numRuns: 300 },
  )
})

test('targetedCacheControl: RFC 9213 §2.2 target list, first valid field wins', () => {
  const cdn = ['cdn-cache-control']
  const both = ['edgebox-cache-control', 'cdn-cache-control']
  const cases: Array<[Headers, readonly string[], CacheDirectives | undefined]> = [
    [{ 'cdn-cache-control': 'max-age=60', 'cache-control': 'no-store' }, cdn, { maxAge: 60, targeted: 'cdn-cache-control' }],
    [{ 'cache-control': 'max-age=60' }, cdn, undefined],
    [{ 'cdn-cache-control': 'max-age=60' }, [], undefined],
    [{ 'cdn-cache-control': 'max-age=60', 'edgebox-cache-control': 'no-store' }, both, { noStore: true, targeted: 'edgebox-cache-control' }],
    [{ 'cdn-cache-control': 'max-age=60', 'edgebox-cache-control': 'max-age=a' }, both, { maxAge: 60, targeted: 'cdn-cache-control' }],
    [{ 'cdn-cache-control': 'max-age=60' }, ['CDN-Cache-Control'], { maxAge: 60, targeted: 'cdn-cache-control' }],
    [
      { 'cdn-cache-control': 'max-age=60, s-maxage=120, stale-while-revalidate=30, stale-if-error=600, public, must-revalidate' },
      cdn,
      { maxAge: 60, sMaxage: 120, staleWhileRevalidate: 30, staleIfError: 600, public: true, mustRevalidate: true, targeted: 'cdn-cache-control' },
    ],
    [{ 'cdn-cache-control': ['max-age=60', 'must-revalidate'] }, cdn, { maxAge: 60, mustRevalidate: true, targeted: 'cdn-cache-control' }],
    [{ 'cdn-cache-control': 'none' }, cdn, { targeted: 'cdn-cache-control' }], // RFC 9213 §3.1
    [{ 'cdn-cache-control': 'no-store=?0, max-age=5' }, cdn, { maxAge: 5, targeted: 'cdn-cache-control' }],
    [{ 'cdn-cache-control': 'private="Set-Cookie, X-A"' }, cdn, { private: ['set-cookie', 'x-a'], targeted: 'cdn-cache-control' }],
    [{ 'cdn-cache-control': 'no-cache' }, cdn, { noCache: true, targeted: 'cdn-cache-control' }],
    [{ 'cdn-cache-control': 'max-age=60;foo=bar, x-ext=(a b);q=1, max-stale=3' }, cdn, { maxAge: 60, targeted: 'cdn-cache-control' }],
    [{ 'cdn-cache-control': 'max-age=60, max-age=30' }, cdn, { maxAge: 30, targeted: 'cdn-cache-control' }], // SF: last wins
    [{ 'cdn-cache-control': 'max-age=999999999999999' }, cdn, { maxAge: 2147483648, targeted: 'cdn-cache-control' }],
    // ignored entirely: parse errors (§2.1) and values violating the inferred types
    [{ 'cdn-cache-control': 'max-age=a' }, cdn, undefined],
    [{ 'cdn-cache-control': 'max-age=1.5' }, cdn, undefined],
    [{ 'cdn-cache-control': 'max-age="60"' }, cdn, undefined],
    [{ 'cdn-cache-control': 'max-age=-5' }, cdn, undefined],
    [{ 'cdn-cache-control': 'max-age=9999999999999999' }, cdn, undefined], // 16 digits
    [{ 'cdn-cache-control': 'Max-Age=60' }, cdn, undefined],
    [{ 'cdn-cache-control': 'max-age=60,' }, cdn, undefined],
    [{ 'cdn-cache-control': 'max-age=60 no-store' }, cdn, undefined],
    [{ 'cdn-cache-control': 'no-store=1' }, cdn, undefined],
    [{ 'cdn-cache-control': 'private=set-cookie' }, cdn, undefined],
    [{ 'cdn-cache-control': 'max-age=60, é' }, cdn, undefined],
    [{ 'cdn-cache-control': '' }, cdn, undefined],
    [{ 'cdn-cache-control': '   ' }, cdn, undefined],
    [{ 'cdn-cache-control': 'max-age=60', 'x-other': 'x' }, ['x-missing', 'cdn-cache-control'], { maxAge: 60, targeted: 'cdn-cache-control' }],
  ]
  for (const [headers, names, expected] of cases) {
    assert.deepEqual(targetedCacheControl(headers, names), expected, JSON.stringify(headers))
  }
})
