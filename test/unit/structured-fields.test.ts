import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { parseSfDictionary } from '../../src/http/structured-fields.ts'

test('parseSfDictionary follows RFC 8941 / RFC 9651', () => {
  const dict = parseSfDictionary(' a=1, b=?0, c="x\\"y", d=tok/en:1, e=:aGk=:, f=(1 "2" t);p, g=@1659578233, h=%"caf%c3%a9", i=1.5, j;k=2, *k ')
  assert.deepEqual(
    [...dict!.entries()].map(([k, v]) => [k, v.type, 'value' in v ? v.value : null]),
    [
      ['a', 'integer', 1],
      ['b', 'boolean', false],
      ['c', 'string', 'x"y'],
      ['d', 'token', 'tok/en:1'],
      ['e', 'binary', null],
      ['f', 'innerlist', null],
      ['g', 'date', 1659578233],
      ['h', 'displaystring', 'café'],
      ['i', 'decimal', 1.5],
      ['j', 'boolean', true],
      ['*k', 'boolean', true],
    ],
  )
  for (const bad of ['a=', 'a=1,', ',a=1', 'a=1.', 'a=1.1234', 'a="x', 'a="\\n"', 'a=(1', 'a=?2', 'a=:*:', 'A=1', '1a=1', 'a=1;', 'a=%"%C3%A9"', 'a=%"%ff"', 'a=@1.5']) {
    assert.equal(parseSfDictionary(bad), undefined, bad)
  }
  fc.assert(
    fc.property(fc.string({ unit: 'binary' }), (s) => {
      parseSfDictionary(s) // never throws
    }),
    { numRuns: 200 },
  )
})

test('parseSfDictionary: a Date ends where its digits end (RFC 9651 §4.2.9), not at the end of the field', () => {
  const dates = (s: string) => [...parseSfDictionary(s)!.entries()].map(([k, v]) => [k, v.type, 'value' in v ? v.value : null])
  assert.deepEqual(dates('a=@1659578233, b=1'), [
    ['a', 'date', 1659578233],
    ['b', 'integer', 1],
  ])
  assert.deepEqual(dates('a=@1659578233;p=1,b=?1'), [
    ['a', 'date', 1659578233],
    ['b', 'boolean', true],
  ])
  assert.deepEqual(dates('a=@-1 '), [['a', 'date', -1]])
  for (const bad of ['a=@', 'a=@x', 'a=@1x', 'a=@1234567890123456']) assert.equal(parseSfDictionary(bad), undefined, bad)
})

test('parseSfDictionary refuses any non-ASCII value (RFC 9651 §4.2), even inside a Display String', () => {
  assert.equal(parseSfDictionary('a=%"\u0151"'), undefined)
  assert.equal(parseSfDictionary('a="caf\u00e9"'), undefined)
  assert.equal(parseSfDictionary('a=%"caf%c3%a9"')!.get('a')!.type, 'displaystring')
})
