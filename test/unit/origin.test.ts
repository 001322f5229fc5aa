import assert from 'node:assert/strict'
import { test } from 'node:test'
import { originPolicy } from '../../src/core/origin.ts'

test('a page of the same origin is always allowed; others only when listed', () => {
  const none = originPolicy([])
  assert.equal(none.allows('http://example.test:8080', 'example.test:8080', 'http'), true)
  assert.equal(none.allows('https://example.test:8080', 'example.test:8080', 'http'), false, 'another scheme is another origin')
  assert.equal(none.allows('http://other.test', 'example.test', 'http'), false)
  assert.equal(none.listsOthers, false)
})

test('exact origins, subdomain wildcards and *', () => {
  const p = originPolicy(['https://app.example.com', 'https://*.example.org'])
  assert.equal(p.allows('https://app.example.com', 'api.example.com', 'https'), true)
  assert.equal(p.allows('HTTPS://APP.EXAMPLE.COM', 'api.example.com', 'https'), true, 'origins compare case-insensitively')
  assert.equal(p.allows('https://app.example.com:8443', 'api.example.com', 'https'), false, 'the port is part of the origin')
  assert.equal(p.allows('https://a.b.example.org', 'x', 'https'), true)
  assert.equal(p.allows('https://example.org', 'x', 'https'), false, 'the wildcard needs a subdomain')
  assert.equal(p.allows('http://a.example.org', 'x', 'https'), false, 'and the scheme')
  assert.equal(p.allows('https://evilexample.org', 'x', 'https'), false)
  const any = originPolicy(['*'])
  assert.equal(any.allows('https://anything.test', 'x', 'http'), true)
  assert.equal(any.allows('null', 'x', 'http'), false, 'an opaque origin is never allowed by *')
})

test('a malformed entry is refused at start', () => {
  assert.throws(() => originPolicy(['app.example.com']), /not an origin/)
  assert.throws(() => originPolicy(['https://app.example.com/path']), /not an origin/)
})
