import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Buffer } from 'node:buffer'
import fc from 'fast-check'
import { contentRange, multipartByteranges, parseRange, unsatisfiedRange, type RangeResult } from '../../src/http/range.ts'

const NONE: RangeResult = { kind: 'none' }
const UNSAT: RangeResult = { kind: 'unsatisfiable' }
const r = (...pairs: Array<[number, number]>): RangeResult => ({
  kind: 'ranges',
  ranges: pairs.map(([start, end]) => ({ start, end })),
})

test('parseRange', () => {
  const cases: Array<[string | undefined, number, RangeResult]> = [
    // whole representation (200)
    [undefined, 1024, NONE],
    ['', 1024, NONE],
    ['bytes=abc', 1024, NONE],
    ['bytes=', 1024, NONE],
    ['bytes=,', 1024, NONE],
    ['bytes=-', 1024, NONE],
    ['bytes=5-3', 1024, NONE], // last-pos < first-pos is invalid
    ['bytes=0-1,abc', 1024, NONE], // one bad spec spoils the set
    ['bytes=0-1,5-3', 1024, NONE],
    ['bytes=1-2-3', 1024, NONE],
    ['bytes=+1-2', 1024, NONE],
    ['bytes=0x10-20', 1024, NONE],
    ['bytes=1.5-2', 1024, NONE],
    ['bytes=0 - 1', 1024, NONE],
    ['bytes 0-1', 1024, NONE],
    ['0-1', 1024, NONE],
    ['items=0-1', 1024, NONE], // unknown unit
    ['bytes0=0-1', 1024, NONE],

    // single ranges
    ['bytes=0-99', 1024, r([0, 99])],
    ['Bytes=0-1', 1024, r([0, 1])],
    ['BYTES=0-1', 1024, r([0, 1])],
    ['bytes=0-0', 1024, r([0, 0])],
    ['bytes=1023-1023', 1024, r([1023, 1023])],
    ['bytes=100-', 1024, r([100, 1023])],
    ['bytes=0-', 1024, r([0, 1023])],
    ['bytes=-100', 1024, r([924, 1023])],
    ['bytes=-1', 1024, r([1023, 1023])],
    ['bytes=-1024', 1024, r([0, 1023])],
    ['bytes=-5000', 1024, r([0, 1023])], // suffix longer than the file: all of it
    ['bytes=0-5000', 1024, r([0, 1023])], // last-pos clamped
    ['bytes=500-99999999999999999999999', 1024, r([500, 1023])],
    ['bytes=007-010', 1024, r([7, 10])],
    [' bytes=0-1 ', 1024, r([0, 1])],

    // unsatisfiable (416)
    ['bytes=2000-', 1024, UNSAT],
    ['bytes=1024-', 1024, UNSAT],
    ['bytes=1024-2000', 1024, UNSAT],
    ['bytes=-0', 1024, UNSAT],
    ['bytes=99999999999999999999999-', 1024, UNSAT],
    ['bytes=2000-3000,-0', 1024, UNSAT],
    ['bytes=0-0', 0, UNSAT],
    ['bytes=0-', 0, UNSAT],
    ['bytes=-1', 0, UNSAT],

    // several ranges
    ['bytes=0-9,20-29', 1024, r([0, 9], [20, 29])],
    ['bytes=0-9, 20-29', 1024, r([0, 9], [20, 29])],
    ['bytes=0-9 ,\t20-29', 1024, r([0, 9], [20, 29])],
    ['bytes=0-9,,20-29,', 1024, r([0, 9], [20, 29])], // empty list elements
    ['bytes=0-9,2000-3000,20-29', 1024, r([0, 9], [20, 29])], // unsatisfiable spec dropped
    ['bytes=500-599,0-99', 1024, r([500, 599], [0, 99])], // two out of order: kept as asked
    ['bytes=0-9,10-19', 1024, r([0, 9], [10, 19])], // two adjacent: kept
    ['bytes=-100,0-99', 1024, r([924, 1023], [0, 99])],
    ['bytes=0-9,20-29,40-49', 1024, r([0, 9], [20, 29], [40, 49])],

    // coalesced
    ['bytes=0-0,-1', 1, r([0, 0])],
    ['bytes=0-10,5-20', 1024, r([0, 20])], // overlap
    ['bytes=5-20,0-10', 1024, r([0, 20])],
    ['bytes=0-9,0-9', 1024, r([0, 9])],
    ['bytes=0-,-1', 1024, r([0, 1023])],
    ['bytes=0-9,100-109,5-6', 1024, r([0, 9], [100, 109])], // contained
    ['bytes=0-9,10-19,30-39', 1024, r([0, 19], [30, 39])], // more than two, adjacent
    ['bytes=40-49,20-29,0-9', 1024, r([0, 9], [20, 29], [40, 49])], // more than two, out of order
    ['bytes=0-99,200-299,100-199', 1024, r([0, 299])],
  ]
  for (const [header, size, expected] of cases) {
    assert.deepEqual(parseRange(header, size), expected, `${header} (size ${size})`)
  }
})

test('parseRange maxRanges', () => {
  const specs = (n: number) => 'bytes=' + Array.from({ length: n }, (_, i) => `${i * 10}-${i * 10 + 1}`).join(',')
  assert.equal(parseRange(specs(64), 10_000).kind, 'ranges')
  assert.deepEqual(parseRange(specs(65), 10_000), NONE)
  assert.deepEqual(parseRange(specs(3), 10_000, { maxRanges: 2 }), NONE)
  assert.deepEqual(parseRange(specs(2), 10_000, { maxRanges: 2 }), r([0, 1], [10, 11]))
  // Counted before unsatisfiable specs are dropped.
  assert.deepEqual(parseRange('bytes=0-1,5000-,6000-', 1024, { maxRanges: 2 }), NONE)
})

test('contentRange and unsatisfiedRange (§14.4)', () => {
  assert.equal(contentRange(0, 99, 1000), 'bytes 0-99/1000')
  assert.equal(contentRange(924, 1023, 1024), 'bytes 924-1023/1024')
  assert.equal(unsatisfiedRange(1000), 'bytes */1000')
  assert.equal(unsatisfiedRange(0), 'bytes */0')
})

test('multipartByteranges framing (§14.6)', () => {
  const { parts, tail, length } = multipartByteranges(
    [
      { start: 0, end: 9 },
      { start: 20, end: 29 },
    ],
    100,
    'text/plain; charset=utf-8',
    'SEP',
  )
  assert.equal(parts.length, 2)
  assert.equal(
    parts[0]!.head.toString('latin1'),
    '--SEP\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 0-9/100\r\n\r\n',
  )
  assert.equal(
    parts[1]!.head.toString('latin1'),
    '\r\n--SEP\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 20-29/100\r\n\r\n',
  )
  assert.deepEqual([parts[0]!.start, parts[0]!.end, parts[1]!.start, parts[1]!.end], [0, 9, 20, 29])
  assert.equal(tail.toString('latin1'), '\r\n--SEP--\r\n')

  // The assembled body, with a file of 100 letters.
  const file = Buffer.from('abcdefghij'.repeat(10))
  const body = Buffer.concat([
    ...parts.flatMap((p) => [p.head, file.subarray(p.start, p.end + 1)]),
    tail,
  ]).toString('latin1')
  assert.equal(
    body,
    '--SEP\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 0-9/100\r\n\r\nabcdefghij' +
      '\r\n--SEP\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 20-29/100\r\n\r\nabcdefghij' +
      '\r\n--SEP--\r\n',
  )
  assert.equal(length, Buffer.byteLength(body, 'latin1'))
})

test('multipartByteranges omits an empty Content-Type and rejects unsafe input', () => {
  const { parts } = multipartByteranges([{ start: 0, end: 0 }], 1, '', 'b')
  assert.equal(parts[0]!.head.toString('latin1'), '--b\r\nContent-Range: bytes 0-0/1\r\n\r\n')
  assert.throws(() => multipartByteranges([{ start: 0, end: 0 }], 1, 'text/plain', ''), TypeError)
  assert.throws(() => multipartByteranges([{ start: 0, end: 0 }], 1, 'text/plain', 'a\r\nb'), TypeError)
  assert.throws(() => multipartByteranges([{ start: 0, end: 0 }], 1, 'text/plain', 'x'.repeat(71)), TypeError)
  assert.throws(() => multipartByteranges([{ start: 0, end: 0 }], 1, 'text/plain', 'ends with space '), TypeError)
  assert.throws(() => multipartByteranges([{ start: 0, end: 0 }], 1, 'text/plain\r\nX: y', 'b'), TypeError)
})

const specArb = fc.oneof(
  fc.tuple(fc.nat(3000), fc.nat(3000)).map(([a, b]) => `${a}-${b}`),
  fc.nat(3000).map((a) => `${a}-`),
  fc.nat(3000).map((n) => `-${n}`),
  fc.constantFrom('', 'x', '-', '1-2-3'),
)

test('property: parseRange returns in-bounds ranges', () => {
  fc.assert(
    fc.property(fc.array(specArb, { minLength: 1, maxLength: 8 }), fc.nat(2000), (specs, size) => {
      const result = parseRange(`bytes=${specs.join(',')}`, size)
      if (result.kind !== 'ranges') return
      assert.ok(result.ranges.length > 0)
      for (const { start, end } of result.ranges) {
        assert.ok(Number.isSafeInteger(start) && Number.isSafeInteger(end))
        assert.ok(0 <= start && start <= end && end < size, `${start}-${end} of ${size}`)
      }
    }),
    { numRuns: 2000 },
  )
})

test('property: a single a-b with a <= b < size is exactly [a, b]', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 1e12 }).chain((size) =>
        fc.tuple(fc.constant(size), fc.integer({ min: 0, max: size - 1 }), fc.integer({ min: 0, max: size - 1 })),
      ),
      ([size, x, y]) => {
        const [a, b] = x <= y ? [x, y] : [y, x]
        assert.deepEqual(parseRange(`bytes=${a}-${b}`, size), r([a, b]))
      },
    ),
    { numRuns: 1000 },
  )
})

test('property: coalesced or not, parseRange covers exactly the requested bytes', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(99), fc.nat(99)), { minLength: 1, maxLength: 6 }), (pairs) => {
      const size = 100
      const specs = pairs.map(([x, y]) => (x <= y ? `${x}-${y}` : `${y}-${x}`))
      const result = parseRange(`bytes=${specs.join(',')}`, size)
      assert.equal(result.kind, 'ranges')
      if (result.kind !== 'ranges') return
      const wanted = new Set<number>()
      for (const [x, y] of pairs) for (let i = Math.min(x, y); i <= Math.max(x, y); i++) wanted.add(i)
      const got = new Set<number>()
      for (const { start, end } of result.ranges) for (let i = start; i <= end; i++) got.add(i)
      assert.deepEqual(got, wanted)
    }),
    { numRuns: 500 },
  )
})

test('property: multipartByteranges length is heads + range bytes + tail', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 1e9 }).chain((size) =>
        fc.tuple(
          fc.constant(size),
          fc.array(
            fc.tuple(fc.integer({ min: 0, max: size - 1 }), fc.integer({ min: 0, max: size - 1 })),
            { minLength: 1, maxLength: 10 },
          ),
        ),
      ),
      fc.stringMatching(/^[0-9A-Za-z'()+_,\-./:=?]{1,70}$/),
      fc.constantFrom('text/html; charset=utf-8', 'application/octet-stream', 'image/png'),
      ([size, pairs], boundary, type) => {
        const ranges = pairs.map(([x, y]) => ({ start: Math.min(x, y), end: Math.max(x, y) }))
        const { parts, tail, length } = multipartByteranges(ranges, size, type, boundary)
        const expected = parts.reduce((n, p) => n + p.head.length + (p.end - p.start + 1), tail.length)
        assert.equal(length, expected)
        assert.deepEqual(
          parts.map((p) => ({ start: p.start, end: p.end })),
          ranges,
        )
      },
    ),
    { numRuns: 500 },
  )
})
