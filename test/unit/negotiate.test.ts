import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { chooseEncoding, parseAcceptEncoding } from '../../src/http/negotiate.ts'

test('parseAcceptEncoding', () => {
  const cases: Array<[string | undefined, Array<[string, number]>]> = [
    [undefined, []],
    ['', []],
    ['gzip', [['gzip', 1]]],
    ['GZip, BR', [['gzip', 1], ['br', 1]]],
    ['gzip;q=0.5, br;q=1.0, zstd;q=0', [['gzip', 0.5], ['br', 1], ['zstd', 0]]],
    ['gzip ; Q=0.25', [['gzip', 0.25]]],
    ['gzip;q=0.001, br;q=1.000, deflate;q=0.', [['gzip', 0.001], ['br', 1], ['deflate', 0]]],
    ['*;q=0.1, identity', [['*', 0.1], ['identity', 1]]],
    // invalid qvalues count as 0
    ['gzip;q=abc', [['gzip', 0]]],
    ['gzip;q=1.5', [['gzip', 0]]],
    ['gzip;q=0.0001', [['gzip', 0]]],
    ['gzip;q=-1', [['gzip', 0]]],
    ['gzip;q=', [['gzip', 0]]],
    ['gzip;q=.5', [['gzip', 0]]],
    // other parameters are ignored; the first q wins
    ['gzip;level=9;q=0.5', [['gzip', 0.5]]],
    ['gzip;foo', [['gzip', 1]]],
    ['gzip;q=0.2;q=0.9', [['gzip', 0.2]]],
    // the first entry for a coding wins; non-tokens and empty elements are skipped
    ['gzip;q=0, gzip', [['gzip', 0]]],
    [', ,gzip,, "br", b r, br', [['gzip', 1], ['br', 1]]],
    ['x-gzip', [['x-gzip', 1]]],
  ]
  for (const [input, expected] of cases) {
    assert.deepEqual([...parseAcceptEncoding(input)], expected, String(input))
  }
})

test('chooseEncoding (§12.5.3)', () => {
  const BR_GZIP = ['br', 'gzip'] as const
  const cases: Array<[string | undefined, readonly string[], string]> = [
    [undefined, BR_GZIP, 'identity'], // no header
    ['', BR_GZIP, 'identity'], // empty: no coding wanted
    ['gzip', BR_GZIP, 'gzip'],
    ['br', BR_GZIP, 'br'],
    ['gzip, br', BR_GZIP, 'br'], // tie: server preference
    ['br, gzip', ['gzip', 'br'], 'gzip'],
    ['gzip;q=1, br;q=0.5', BR_GZIP, 'gzip'], // higher q wins
    ['gzip;q=0.5, br;q=0.8', BR_GZIP, 'br'],
    ['GZIP', BR_GZIP, 'gzip'],
    ['gzip', ['GZIP'], 'GZIP'], // returns the entry from `available`
    ['deflate', BR_GZIP, 'identity'],
    ['zstd, deflate', BR_GZIP, 'identity'],
    ['gzip', [], 'identity'],
    // `*`
    ['*', BR_GZIP, 'br'],
    ['*;q=0.5, gzip', BR_GZIP, 'gzip'],
    ['*, br;q=0', BR_GZIP, 'gzip'],
    ['*;q=0', BR_GZIP, 'identity'],
    ['*;q=0, gzip;q=0.2', BR_GZIP, 'gzip'],
    // q=0 excludes
    ['gzip;q=0', BR_GZIP, 'identity'],
    ['br;q=0, gzip', BR_GZIP, 'gzip'],
    ['br;q=0, gzip;q=0', BR_GZIP, 'identity'],
    ['gzip;q=abc, br', BR_GZIP, 'br'], // invalid q counts as 0
    // identity
    ['identity', BR_GZIP, 'identity'],
    ['gzip;q=0.5, identity', BR_GZIP, 'identity'], // explicit identity with a higher q
    ['gzip, identity', BR_GZIP, 'gzip'], // identity loses ties
    ['gzip;q=0.1', BR_GZIP, 'gzip'], // unlisted identity ranks below acceptable codings
    ['*;q=0.9, gzip;q=0.5', BR_GZIP, 'br'], // br and identity both get 0.9; br wins the tie
    ['*;q=0.9, gzip;q=0.5, br;q=0.5', BR_GZIP, 'identity'], // identity gets `*`'s 0.9
    ['identity;q=0', BR_GZIP, 'identity'], // nothing acceptable: still identity
    ['identity;q=0, *;q=0', BR_GZIP, 'identity'],
    ['identity;q=0, gzip', BR_GZIP, 'gzip'],
    ['identity', ['identity', 'gzip'], 'identity'],
    // aliases
    ['x-gzip', BR_GZIP, 'gzip'],
    ['X-GZIP;q=0.5, br;q=0.4', BR_GZIP, 'gzip'],
    ['gzip;q=0, x-gzip', BR_GZIP, 'identity'], // the registered name takes precedence
    ['x-compress', ['compress'], 'compress'],
  ]
  for (const [header, available, expected] of cases) {
    assert.equal(chooseEncoding(header, available), expected, `${header} / ${available.join(',')}`)
  }
})

test('property: chooseEncoding returns identity or an available coding with q > 0', () => {
  const coding = fc.constantFrom('gzip', 'br', 'zstd', 'deflate', 'identity', '*', 'x-gzip')
  const weight = fc.option(fc.constantFrom('0', '0.5', '1', '0.001', '1.000', 'x'), { nil: undefined })
  const element = fc.tuple(coding, weight).map(([c, w]) => (w === undefined ? c : `${c};q=${w}`))
  fc.assert(
    fc.property(fc.array(element, { maxLength: 6 }), fc.subarray(['br', 'gzip', 'zstd']), (elements, available) => {
      const header = elements.join(', ')
      const chosen = chooseEncoding(header, available)
      if (chosen === 'identity') return
      assert.ok(available.includes(chosen))
      const map = parseAcceptEncoding(header)
      const q = map.get(chosen) ?? (chosen === 'gzip' ? map.get('x-gzip') : undefined) ?? map.get('*') ?? 0
      assert.ok(q > 0, `${header} -> ${chosen}`)
    }),
    { numRuns: 1000 },
  )
})

test('property: a frozen list of codings (whose answers are kept) is answered as the same list unfrozen, value after value', () => {
  const coding = fc.constantFrom('gzip', 'br', 'zstd', 'identity', '*', 'x-gzip', 'GZIP')
  const weight = fc.option(fc.constantFrom('0', '0.5', '1', '0.2'), { nil: undefined })
  const element = fc.tuple(coding, weight).map(([c, w]) => (w === undefined ? c : `${c};q=${w}`))
  const header = fc.array(element, { maxLength: 4 }).map((e) => e.join(', '))
  const frozen = Object.freeze(['br', 'gzip'])
  const other = Object.freeze(['gzip'])
  fc.assert(
    // more distinct values than are kept, and values seen before again
    fc.property(fc.array(header, { minLength: 1, maxLength: 200 }), (headers) => {
      for (const h of [...headers, ...headers.reverse()]) {
        assert.equal(chooseEncoding(h, frozen), chooseEncoding(h, ['br', 'gzip']), h)
        assert.equal(chooseEncoding(h, other), chooseEncoding(h, ['gzip']), h)
      }
    }),
    { numRuns: 200 },
  )
  assert.equal(chooseEncoding('br;q=0, gzip', frozen), 'gzip')
  assert.equal(chooseEncoding('br;q=0, gzip', other), 'gzip')
  assert.equal(chooseEncoding('br', frozen), 'br')
  assert.equal(chooseEncoding('br', other), 'identity')
})
