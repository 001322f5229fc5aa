import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { MAX_RETURN_PATH, safeReturnPath } from '../../src/auth/return-to.ts'

const accepted: Array<[string, string]> = [
  // an encoded space is an ordinary character of a path or query
  ['/a%20b', '/a%20b'],
  ['/search?q=hello%20world', '/search?q=hello%20world'],
  ['/', '/'],
  ['/a', '/a'],
  ['/dashboard/settings', '/dashboard/settings'],
  ['/search?q=1&r=two', '/search?q=1&r=two'],
  // the query may hold anything: the path is what decides where the browser goes
  ['/ok?next=//x', '/ok?next=//x'],
  ['/ok?next=https://evil.example', '/ok?next=https://evil.example'],
  ['/ok?next=%2F%2Fx', '/ok?next=%2F%2Fx'],
  ['/a#frag', '/a'],
  ['/a?b=c#frag', '/a?b=c'],
  ['/#top', '/'],
  ['/a/./b/../c', '/a/./b/../c'],
  ['/..', '/..'],
  ['/caf%C3%A9', '/caf%C3%A9'],
  // beyond ASCII: percent-encoded, as a Location holds ASCII only (and as a browser sends it)
  ['/café', '/caf%C3%A9'],
  ['/%E4%B8%AD', '/%E4%B8%AD'],
  ['/中?q=中', '/%E4%B8%AD?q=%E4%B8%AD'],
  ['/a%2Eb/%7Euser', '/a%2Eb/%7Euser'],
]

const rejected: string[] = [
  '',
  '//evil.example',
  '///evil.example',
  '/\\evil.example',
  '\\/evil.example',
  '\\\\evil.example',
  '/a\\b',
  'https://evil.example',
  'https:evil.example',
  'HTTPS://evil.example',
  'javascript:alert(1)',
  'data:text/html,hi',
  'evil.example',
  'a/b',
  '?next=/',
  '#frag',
  // browsers drop tabs and newlines anywhere, and controls and spaces at the ends
  '/\t/evil.example',
  '/\n/evil.example',
  '/\r/evil.example',
  ' //evil.example',
  '/ /evil.example',
  '/a b',
  '/a\u0000b',
  '/a\u007f',
  '/a\u0085',
  '/a\u00a0b',
  '/a\u2028b',
  '/a\ufeff',
  // percent-encoded variants, once, twice and three times
  '/%2F%2Fevil.example',
  '/%2f%2fevil.example',
  '/%2F/evil.example',
  '/%5Cevil.example',
  '/%5C%5Cevil.example',
  '/%5c/evil.example',
  '/a%5Cb',
  '%2F%2Fevil.example',
  '%2Fok',
  '/%252F%252Fevil.example',
  '/%25252F%25252Fevil.example',
  '/%2525252F',
  '/%09/evil.example',
  '/%0A/evil.example',
  '/%00',
  // malformed escapes, and invalid UTF-8
  '/%',
  '/%zz',
  '/100%',
  '/%C0%AF',
  '/%FF',
  // dot segments that resolve to a network-path-looking path
  '/.//evil.example',
  '/..//evil.example',
  '/.%2F/evil.example',
  // too long
  `/${'a'.repeat(MAX_RETURN_PATH)}`,
]

test('same-site paths are returned as given, without the fragment', () => {
  for (const [input, expected] of accepted) assert.equal(safeReturnPath(input), expected, JSON.stringify(input))
})

test('anything that could leave the site, or that a browser would read differently, gives /', () => {
  for (const input of rejected) assert.equal(safeReturnPath(input), '/', JSON.stringify(input))
})

test('null and undefined give /', () => {
  assert.equal(safeReturnPath(null), '/')
  assert.equal(safeReturnPath(undefined), '/')
})

test('the length limit is inclusive', () => {
  const longest = `/${'a'.repeat(MAX_RETURN_PATH - 1)}`
  assert.equal(safeReturnPath(longest), longest)
  assert.equal(safeReturnPath(`${longest}a`), '/')
})

const piece = fc.constantFrom('/', '//', '\\', '.', '..', 'a', 'evil.example', ':', 'https:', '?', '#', '@', '%', '%2F', '%2f', '%5C', '%25', '%252F', '%09', '\t', '\n', ' ', '%20', 'é', '%C3%A9')
const candidate = fc.array(piece, { maxLength: 8 }).map((p) => p.join(''))

test('property: a result is always a path on this origin that a browser resolves to a path not beginning with //', () => {
  fc.assert(
    fc.property(candidate, (input) => {
      const out = safeReturnPath(input)
      const ascii = input.replace(/[^\x21-\x7e]+/gu, (c) => encodeURIComponent(c))
      assert.ok(out === '/' || ascii.startsWith(out), `${JSON.stringify(input)} -> ${JSON.stringify(out)}`)
      assert.match(out, /^[\x21-\x7e]+$/)
      assert.ok(!out.includes('#') && !out.includes('\\') && !/\s/.test(out))
      assert.match(out, /^\/(?![/\\])/)
      const url = new URL(out, 'https://edgebox.invalid')
      assert.equal(url.origin, 'https://edgebox.invalid')
      assert.ok(!url.pathname.startsWith('//'))
      assert.equal(safeReturnPath(out), out)
    }),
    { numRuns: 3000 },
  )
})
