import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { formatHttpDate, parseHttpDate } from '../../src/http/date.ts'

const T1994 = Date.UTC(1994, 10, 6, 8, 49, 37) // Sun, 06 Nov 1994 08:49:37 GMT
const NOW_2025 = Date.UTC(2025, 5, 1)

test('parseHttpDate accepts the three formats of RFC 9110 §5.6.7', () => {
  const cases: Array<[string, number]> = [
    ['Sun, 06 Nov 1994 08:49:37 GMT', T1994],
    ['Sunday, 06-Nov-94 08:49:37 GMT', T1994],
    ['Sun Nov  6 08:49:37 1994', T1994],
    ['Sun Nov 06 08:49:37 1994', T1994],
    ['Thu, 01 Jan 1970 00:00:00 GMT', 0],
    ['Wed, 31 Dec 1969 23:59:59 GMT', -1000],
    ['Fri, 31 Dec 9999 23:59:59 GMT', Date.UTC(9999, 11, 31, 23, 59, 59)],
    ['Thu, 29 Feb 2024 12:00:00 GMT', Date.UTC(2024, 1, 29, 12)],
    ['  Sun, 06 Nov 1994 08:49:37 GMT ', T1994],
    ['Mon, 01 Jan 0001 00:00:00 GMT', -62_135_596_800_000], // year 1, not 1901,
  ]
  for (const [input, expected] of cases) assert.equal(parseHttpDate(input, NOW_2025), expected, input)
})

test('parseHttpDate rejects anything that is not a valid HTTP-date', () => {
  const cases: Array<string | undefined> = [
    undefined,
    '',
    'garbage',
    '784111777',
    '1994-11-06T08:49:37Z',
    'Mon, 06 Nov 1994 08:49:37 GMT', // wrong weekday for the date
    'Sunday, 06 Nov 1994 08:49:37 GMT', // long day name in IMF-fixdate
    'Sun, 06-Nov-94 08:49:37 GMT', // short day name in rfc850
    'sun, 06 Nov 1994 08:49:37 GMT', // case-sensitive
    'Sun, 06 nov 1994 08:49:37 GMT',
    'Sun, 06 Nov 1994 08:49:37 gmt',
    'Sun, 06 Nov 1994 08:49:37 UTC',
    'Sun, 06 Nov 1994 08:49:37 +0000',
    'Sun, 6 Nov 1994 08:49:37 GMT', // day must be 2DIGIT
    'Sun, 06 Nov 94 08:49:37 GMT', // year must be 4DIGIT
    'Sun,  06 Nov 1994 08:49:37 GMT',
    'Sun, 06 Nov 1994 8:49:37 GMT',
    'Sun, 06 Nov 1994 08:49 GMT',
    'Sun, 06 Nov 1994 24:00:00 GMT',
    'Sun, 06 Nov 1994 08:60:00 GMT',
    'Sun, 06 Nov 1994 08:49:60 GMT',
    'Fri, 30 Feb 2024 00:00:00 GMT', // no such day
    'Thu, 00 Jan 1970 00:00:00 GMT',
    'Sun, 06 Foo 1994 08:49:37 GMT',
    'Sun Nov 6 08:49:37 1994', // asctime needs two characters for the day
    'Sun Nov  6 08:49:37 1994 GMT',
    'Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT', // a list
  ]
  for (const input of cases) assert.equal(parseHttpDate(input, NOW_2025), undefined, String(input))
})

test('parseHttpDate: rfc850 two-digit years more than 50 years ahead are in the past century', () => {
  const cases: Array<[string, number, number]> = [
    // [date, now, expected year]
    ['Sunday, 06-Nov-94 08:49:37 GMT', NOW_2025, 1994],
    ['Wednesday, 01-Jan-70 00:00:00 GMT', NOW_2025, 2070], // 45 years ahead: not more than 50
    ['Tuesday, 01-Jan-75 00:00:00 GMT', NOW_2025, 2075], // exactly 50 years ahead: not more
    ['Thursday, 01-Jan-76 00:00:00 GMT', NOW_2025, 1976], // 2076 would be 51 years ahead
    ['Monday, 01-Jan-01 00:00:00 GMT', NOW_2025, 2001],
    ['Saturday, 01-Jan-00 00:00:00 GMT', NOW_2025, 2000],
    ['Saturday, 01-Jan-01 00:00:00 GMT', Date.UTC(2090, 0, 1), 2101], // 2001 would be 89 years ago
    ['Thursday, 01-Jan-70 00:00:00 GMT', Date.UTC(1990, 0, 1), 1970],
  ]
  for (const [input, now, year] of cases) {
    const ms = parseHttpDate(input, now)
    assert.ok(ms !== undefined, input)
    assert.equal(new Date(ms).getUTCFullYear(), year, input)
  }
  // In 2025, `70` is 2070 (a Wednesday), so a Thursday is the wrong day name.
  assert.equal(parseHttpDate('Thursday, 01-Jan-70 00:00:00 GMT', NOW_2025), undefined)
})

test('formatHttpDate produces IMF-fixdate', () => {
  assert.equal(formatHttpDate(T1994), 'Sun, 06 Nov 1994 08:49:37 GMT')
  assert.equal(formatHttpDate(T1994 + 999), 'Sun, 06 Nov 1994 08:49:37 GMT')
  assert.equal(formatHttpDate(0), 'Thu, 01 Jan 1970 00:00:00 GMT')
  assert.equal(formatHttpDate(Date.UTC(2024, 1, 29, 5, 6, 7)), 'Thu, 29 Feb 2024 05:06:07 GMT')
})

test('property: parseHttpDate(formatHttpDate(x)) === floor(x / 1000) * 1000 for 1970..9999', () => {
  const max = Date.UTC(9999, 11, 31, 23, 59, 59, 999)
  fc.assert(
    fc.property(fc.integer({ min: 0, max }), (x) => {
      assert.equal(parseHttpDate(formatHttpDate(x)), Math.floor(x / 1000) * 1000)
    }),
    { numRuns: 2000 },
  )
})
