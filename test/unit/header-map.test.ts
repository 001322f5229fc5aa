import { test } from 'node:test'
import assert from 'node:assert/strict'
import { headerKey, headerValue } from '../../src/http/header-map.ts'

test('headerKey finds a field whatever the case of its key (RFC 9110 §5.1)', () => {
  const headers = { 'Content-Type': 'text/plain', VARY: 'Origin', 'set-cookie': ['a=1'] }
  assert.equal(headerKey(headers, 'content-type'), 'Content-Type')
  assert.equal(headerKey(headers, 'vary'), 'VARY')
  assert.equal(headerKey(headers, 'set-cookie'), 'set-cookie')
  assert.equal(headerKey(headers, 'content-length'), undefined)
  assert.equal(headerKey({}, 'vary'), undefined)
})

test('headerKey: the first matching key when an object holds two spellings', () => {
  assert.equal(headerKey({ Vary: 'a', vary: 'b' }, 'vary'), 'Vary')
})

test('headerValue: one value, several lines joined with ", " (RFC 9110 §5.3), numbers as text', () => {
  const headers = { Upgrade: 'websocket', 'X-List': ['a', 'b'], 'Content-Length': 5, 'X-None': undefined }
  assert.equal(headerValue(headers, 'upgrade'), 'websocket')
  assert.equal(headerValue(headers, 'x-list'), 'a, b')
  assert.equal(headerValue(headers, 'content-length'), '5')
  assert.equal(headerValue(headers, 'x-none'), undefined)
  assert.equal(headerValue(headers, 'x-missing'), undefined)
})
