import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { contentDisposition } from '../../src/http/disposition.ts'

test('contentDisposition (RFC 6266, RFC 8187)', () => {
  const cases: Array<[string, 'attachment' | 'inline' | undefined, string]> = [
    ['report.pdf', undefined, `attachment; filename="report.pdf"; filename*=UTF-8''report.pdf`],
    ['report.pdf', 'attachment', `attachment; filename="report.pdf"; filename*=UTF-8''report.pdf`],
    ['report.pdf', 'inline', `inline; filename="report.pdf"; filename*=UTF-8''report.pdf`],
    ['my report.pdf', undefined, `attachment; filename="my report.pdf"; filename*=UTF-8''my%20report.pdf`],
    ['naïve.txt', undefined, `attachment; filename="na_ve.txt"; filename*=UTF-8''na%C3%AFve.txt`],
    ['€ rates.csv', undefined, `attachment; filename="_ rates.csv"; filename*=UTF-8''%E2%82%AC%20rates.csv`],
    ['日本.txt', undefined, `attachment; filename="__.txt"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt`],
    ['😀.png', undefined, `attachment; filename="_.png"; filename*=UTF-8''%F0%9F%98%80.png`],
    ['say "hi".txt', undefined, `attachment; filename="say _hi_.txt"; filename*=UTF-8''say%20%22hi%22.txt`],
    ['a\\b.txt', undefined, `attachment; filename="a_b.txt"; filename*=UTF-8''a%5Cb.txt`],
    ['a\r\nX-Evil: 1', undefined, `attachment; filename="a__X-Evil: 1"; filename*=UTF-8''a%0D%0AX-Evil%3A%201`],
    ['tab\there', undefined, `attachment; filename="tab_here"; filename*=UTF-8''tab%09here`],
    ['%41.txt', undefined, `attachment; filename="_41.txt"; filename*=UTF-8''%2541.txt`], // %XX would be decoded by some clients
    ['100%.txt', undefined, `attachment; filename="100%.txt"; filename*=UTF-8''100%25.txt`],
    // attr-chars are kept; the rest of ASCII punctuation is encoded
    ["!#$&+-.^_`|~", undefined, "attachment; filename=\"!#$&+-.^_`|~\"; filename*=UTF-8''!#$&+-.^_`|~"],
    ["a'b(c)*d;e,f=g", undefined, `attachment; filename="a'b(c)*d;e,f=g"; filename*=UTF-8''a%27b%28c%29%2Ad%3Be%2Cf%3Dg`],
    ['', undefined, 'attachment'],
    ['', 'inline', 'inline'],
  ]
  for (const [name, type, expected] of cases) {
    assert.equal(type === undefined ? contentDisposition(name) : contentDisposition(name, type), expected, name)
  }
})

test('property: the header is safe ASCII and filename* decodes to the name', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }), (name) => {
      const value = contentDisposition(name)
      assert.match(value, /^[\x20-\x7e]*$/)
      const m = /^attachment; filename="([^"\\]*)"; filename\*=UTF-8''([A-Za-z0-9!#$&+\-.^_`|~%]*)$/.exec(value)
      assert.ok(m, value)
      assert.equal(decodeURIComponent(m[2]!), name)
    }),
    { numRuns: 1000 },
  )
})
