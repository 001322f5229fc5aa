import assert from 'node:assert/strict'
import { test } from 'node:test'
import { cacheKey, invalidatedKeys, varyOf } from '../../src/http/cache-key.ts'
import { compileGlob } from '../../src/http/glob.ts'

/** The shared cache's keys (RFC 9111 §2, §4.1, §4.4), as plain functions. */

test('cacheKey (RFC 9111 §2): the target URI as encoded, minus the ignored query parameters', () => {
  assert.equal(cacheKey('example.test', '/a%20b/c', '?y=2&x=1'), 'http://example.test/a%20b/c?y=2&x=1')
  assert.equal(cacheKey('example.test:8080', '/', ''), 'http://example.test:8080/')
  const ignored = ['utm_*', 'fbclid'].map(compileGlob)
  assert.equal(cacheKey('example.test', '/a', '?utm_source=x&id=7&fbclid=z&utm_medium=y&q=1', ignored), 'http://example.test/a?id=7&q=1')
  assert.equal(cacheKey('example.test', '/a', '?utm_source=x&fbclid=z', ignored), 'http://example.test/a', 'a query left empty loses its ?')
  assert.equal(cacheKey('example.test', '/a', '', ignored), 'http://example.test/a')
})

test('varyOf (RFC 9111 §4.1): one list from one or several Vary lines, undefined without Vary', () => {
  assert.equal(varyOf({ vary: 'Accept-Encoding' }), 'accept-encoding')
  assert.equal(varyOf({ vary: ['Accept-Language', 'Accept-Encoding'] }), 'accept-encoding, accept-language')
  assert.equal(varyOf({}), undefined)
})

test('invalidatedKeys (RFC 9111 §4.4): Location and Content-Location on the target host only', () => {
  const key = 'http://example.test/news/post?id=1'
  assert.deepEqual(invalidatedKeys(key, 'example.test', { location: '/news/7', 'content-location': 'http://example.test/news/?page=1' }), [
    'http://example.test/news/7',
    'http://example.test/news/?page=1',
  ])
  assert.deepEqual(invalidatedKeys(key, 'example.test', { location: 'comments/3#top' }), ['http://example.test/news/comments/3'], 'relative to the target, without the fragment')
  assert.deepEqual(invalidatedKeys(key, 'example.test', { location: 'http://other.test/news/7', 'content-location': '//other.test/x' }), [], 'another host is never invalidated')
  assert.deepEqual(invalidatedKeys(key, 'example.test', { location: 'http://example.test:8080/x' }), [], 'another port is another host')
  assert.deepEqual(invalidatedKeys(key, 'example.test', { location: 'http://[bad/x', 'content-location': ['/a', '/b'] }), [], 'no URI reference, or several lines: nothing')
  assert.deepEqual(invalidatedKeys(key, 'example.test', {}), [])
})
