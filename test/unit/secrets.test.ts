import { test } from 'node:test'
import assert from 'node:assert/strict'
import { safeEqual } from '../../src/core/secrets.ts'

test('safeEqual: equal secrets, as strings or bytes', () => {
  assert.equal(safeEqual('s3cret', 's3cret'), true)
  assert.equal(safeEqual(Buffer.from('s3cret'), 's3cret'), true)
  assert.equal(safeEqual('clé', Buffer.from('clé')), true) // strings compare as UTF-8
  assert.equal(safeEqual('', ''), true)
})

test('safeEqual: any difference, including length, is false (and never throws)', () => {
  assert.equal(safeEqual('s3cret', 's3creT'), false)
  assert.equal(safeEqual('s3cret', 's3cre'), false)
  assert.equal(safeEqual('s3cret', 's3cret '), false)
  assert.equal(safeEqual('', 'x'), false)
  assert.equal(safeEqual('e', 'é'), false) // same length in characters, not in bytes
  assert.equal(safeEqual(Buffer.from([1, 2]), Buffer.from([1, 3])), false)
})
