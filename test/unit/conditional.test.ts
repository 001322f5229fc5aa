import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import {
  evaluatePreconditions,
  ifRangeMatches,
  parseEntityTags,
  strongMatch,
  weakMatch,
  type ConditionalHeaders,
  type Precondition,
  type Validators,
} from '../../src/http/conditional.ts'
import { formatHttpDate } from '../../src/http/date.ts'

const LM = Date.UTC(2024, 0, 15, 12, 0, 0)
const AT_LM = formatHttpDate(LM)
const BEFORE = formatHttpDate(LM - 1000)
const AFTER = formatHttpDate(LM + 1000)
const FILE: Validators = { etag: '"v1"', lastModified: LM, exists: true }
const WEAK_FILE: Validators = { etag: 'W/"v1"', lastModified: LM, exists: true }
const NO_LM: Validators = { etag: '"v1"', exists: true }
const MISSING: Validators = { exists: false }

test('parseEntityTags', () => {
  const cases: Array<[string, { any: boolean; tags: string[] } | null]> = [
    ['*', { any: true, tags: [] }],
    [' * ', { any: true, tags: [] }],
    ['"abc"', { any: false, tags: ['"abc"'] }],
    ['W/"abc"', { any: false, tags: ['W/"abc"'] }],
    ['""', { any: false, tags: ['""'] }],
    ['"a", W/"b" ,"c"', { any: false, tags: ['"a"', 'W/"b"', '"c"'] }],
    ['"a",\t"b"', { any: false, tags: ['"a"', '"b"'] }],
    ['"a,b", "c"', { any: false, tags: ['"a,b"', '"c"'] }], // a comma inside the quotes
    [', "a",, "b",', { any: false, tags: ['"a"', '"b"'] }], // empty list elements (§5.6.1.2)
    ['', { any: false, tags: [] }],
    ['abc', null], // unquoted
    ['"abc', null], // unterminated
    ['w/"abc"', null], // weak prefix is case-sensitive
    ['W/ "abc"', null],
    ['"a" "b"', null], // missing comma
    ['"a"b', null],
    ['*, "a"', null], // `*` only on its own
    ['"a", *', null],
    ['"a b"', null], // SP is not an etagc
    ['"a\x7fb"', null],
  ]
  for (const [input, expected] of cases) assert.deepEqual(parseEntityTags(input), expected, input)
})

test('strongMatch and weakMatch (§8.8.3.2 table)', () => {
  const cases: Array<[string, string, boolean, boolean]> = [
    // a, b, strong, weak
    ['W/"1"', 'W/"1"', false, true],
    ['W/"1"', 'W/"2"', false, false],
    ['W/"1"', '"1"', false, true],
    ['"1"', '"1"', true, true],
    ['"1"', '"2"', false, false],
    ['"1"', 'W/"2"', false, false],
  ]
  for (const [a, b, strong, weak] of cases) {
    assert.equal(strongMatch(a, b), strong, `strong ${a} ${b}`)
    assert.equal(strongMatch(b, a), strong, `strong ${b} ${a}`)
    assert.equal(weakMatch(a, b), weak, `weak ${a} ${b}`)
    assert.equal(weakMatch(b, a), weak, `weak ${b} ${a}`)
  }
})

test('evaluatePreconditions follows §13.2.2', () => {
  const cases: Array<[string, string, ConditionalHeaders, Validators, Precondition]> = [
    ['no preconditions', 'GET', {}, FILE, 'ok'],
    ['no preconditions, missing', 'GET', {}, MISSING, 'ok'],

    // Step 1: If-Match, strong comparison
    ['If-Match matches', 'PUT', { ifMatch: '"v1"' }, FILE, 'ok'],
    ['If-Match one of a list', 'PUT', { ifMatch: '"x", "v1"' }, FILE, 'ok'],
    ['If-Match differs', 'PUT', { ifMatch: '"v2"' }, FILE, 'failed'],
    ['If-Match weak tag never matches', 'PUT', { ifMatch: 'W/"v1"' }, FILE, 'failed'],
    ['If-Match against a weak current tag', 'GET', { ifMatch: 'W/"v1"' }, WEAK_FILE, 'failed'],
    ['If-Match * exists', 'PUT', { ifMatch: '*' }, FILE, 'ok'],
    ['If-Match * missing', 'PUT', { ifMatch: '*' }, MISSING, 'failed'],
    ['If-Match tag missing', 'PUT', { ifMatch: '"v1"' }, MISSING, 'failed'],
    ['If-Match malformed', 'GET', { ifMatch: 'v1' }, FILE, 'failed'],
    ['If-Match with no current etag', 'GET', { ifMatch: '"v1"' }, { lastModified: LM, exists: true }, 'failed'],
    ['If-Match on GET also fails with 412', 'GET', { ifMatch: '"v2"' }, FILE, 'failed'],

    // Step 2: If-Unmodified-Since, only without If-Match
    ['If-Unmodified-Since equal', 'PUT', { ifUnmodifiedSince: AT_LM }, FILE, 'ok'],
    ['If-Unmodified-Since later', 'PUT', { ifUnmodifiedSince: AFTER }, FILE, 'ok'],
    ['If-Unmodified-Since earlier', 'PUT', { ifUnmodifiedSince: BEFORE }, FILE, 'failed'],
    ['If-Unmodified-Since, no Last-Modified', 'PUT', { ifUnmodifiedSince: AFTER }, NO_LM, 'failed'],
    ['If-Unmodified-Since, missing', 'PUT', { ifUnmodifiedSince: AFTER }, MISSING, 'failed'],
    ['If-Unmodified-Since invalid date ignored', 'PUT', { ifUnmodifiedSince: 'yesterday' }, FILE, 'ok'],
    ['If-Match beats If-Unmodified-Since', 'PUT', { ifMatch: '"v1"', ifUnmodifiedSince: BEFORE }, FILE, 'ok'],
    ['failing If-Match with passing If-Unmodified-Since', 'PUT', { ifMatch: '"v2"', ifUnmodifiedSince: AFTER }, FILE, 'failed'],

    // Step 3: If-None-Match, weak comparison
    ['If-None-Match matches on GET', 'GET', { ifNoneMatch: '"v1"' }, FILE, 'not-modified'],
    ['If-None-Match matches on HEAD', 'HEAD', { ifNoneMatch: '"v1"' }, FILE, 'not-modified'],
    ['If-None-Match weak matches strong', 'GET', { ifNoneMatch: 'W/"v1"' }, FILE, 'not-modified'],
    ['If-None-Match strong matches weak', 'GET', { ifNoneMatch: '"v1"' }, WEAK_FILE, 'not-modified'],
    ['If-None-Match in a list', 'GET', { ifNoneMatch: '"a", "v1"' }, FILE, 'not-modified'],
    ['If-None-Match differs', 'GET', { ifNoneMatch: '"v2"' }, FILE, 'ok'],
    ['If-None-Match matches on PUT', 'PUT', { ifNoneMatch: '"v1"' }, FILE, 'failed'],
    ['If-None-Match matches on POST', 'POST', { ifNoneMatch: '"v1"' }, FILE, 'failed'],
    ['method names are case-sensitive', 'get', { ifNoneMatch: '"v1"' }, FILE, 'failed'],
    ['If-None-Match * exists, GET', 'GET', { ifNoneMatch: '*' }, FILE, 'not-modified'],
    ['If-None-Match * exists, PUT', 'PUT', { ifNoneMatch: '*' }, FILE, 'failed'],
    ['If-None-Match * missing', 'PUT', { ifNoneMatch: '*' }, MISSING, 'ok'],
    ['If-None-Match * missing, GET', 'GET', { ifNoneMatch: '*' }, MISSING, 'ok'],
    ['If-None-Match malformed does not match', 'GET', { ifNoneMatch: 'v1' }, FILE, 'ok'],
    ['If-None-Match, no current etag', 'GET', { ifNoneMatch: '"v1"' }, { lastModified: LM, exists: true }, 'ok'],

    // Step 4: If-Modified-Since, GET/HEAD only, only without If-None-Match
    ['If-Modified-Since equal', 'GET', { ifModifiedSince: AT_LM }, FILE, 'not-modified'],
    ['If-Modified-Since later', 'HEAD', { ifModifiedSince: AFTER }, FILE, 'not-modified'],
    ['If-Modified-Since earlier', 'GET', { ifModifiedSince: BEFORE }, FILE, 'ok'],
    ['If-Modified-Since invalid date ignored', 'GET', { ifModifiedSince: 'soon' }, FILE, 'ok'],
    ['If-Modified-Since, no Last-Modified', 'GET', { ifModifiedSince: AFTER }, NO_LM, 'ok'],
    ['If-Modified-Since, missing', 'GET', { ifModifiedSince: AFTER }, MISSING, 'ok'],
    ['If-Modified-Since ignored on PUT', 'PUT', { ifModifiedSince: AFTER }, FILE, 'ok'],
    ['If-None-Match beats If-Modified-Since (no match)', 'GET', { ifNoneMatch: '"v2"', ifModifiedSince: AFTER }, FILE, 'ok'],
    ['If-None-Match beats If-Modified-Since (match)', 'GET', { ifNoneMatch: '"v1"', ifModifiedSince: BEFORE }, FILE, 'not-modified'],
    ['malformed If-None-Match still disables If-Modified-Since', 'GET', { ifNoneMatch: 'x', ifModifiedSince: AFTER }, FILE, 'ok'],

    // Order between steps
    ['If-Match failure beats If-None-Match match', 'GET', { ifMatch: '"v2"', ifNoneMatch: '"v1"' }, FILE, 'failed'],
    ['If-Unmodified-Since failure beats If-None-Match', 'GET', { ifUnmodifiedSince: BEFORE, ifNoneMatch: '"v1"' }, FILE, 'failed'],
    ['If-Match passes, then If-None-Match', 'GET', { ifMatch: '"v1"', ifNoneMatch: '"v1"' }, FILE, 'not-modified'],
    ['If-Unmodified-Since passes, then If-Modified-Since', 'GET', { ifUnmodifiedSince: AFTER, ifModifiedSince: AFTER }, FILE, 'not-modified'],
  ]
  for (const [name, method, req, current, expected] of cases) {
    assert.equal(evaluatePreconditions(method, req, current), expected, name)
  }
})

test('ifRangeMatches (§13.1.5)', () => {
  const cases: Array<[string, string | undefined, { etag?: string; lastModified?: number }, boolean]> = [
    ['absent', undefined, FILE, true],
    ['same strong tag', '"v1"', FILE, true],
    ['other tag', '"v2"', FILE, false],
    ['weak tag never matches', 'W/"v1"', FILE, false],
    ['weak tag, weak current', 'W/"v1"', WEAK_FILE, false],
    ['strong tag, weak current', '"v1"', WEAK_FILE, false],
    ['tag without current etag', '"v1"', { lastModified: LM }, false],
    ['exact date', AT_LM, FILE, true],
    ['later date', AFTER, FILE, false],
    ['earlier date', BEFORE, FILE, false],
    ['date without Last-Modified', AT_LM, { etag: '"v1"' }, false],
    ['rfc850 date', 'Monday, 15-Jan-24 12:00:00 GMT', FILE, true],
    ['garbage', 'yes', FILE, false],
    ['empty', '', FILE, false],
    ['list of tags', '"v1", "v2"', FILE, false],
    ['unterminated tag', '"v1', FILE, false],
  ]
  for (const [name, value, current, expected] of cases) assert.equal(ifRangeMatches(value, current), expected, name)
})

const etagArb = fc
  .tuple(fc.boolean(), fc.stringMatching(/^[a-zA-Z0-9+\/=._-]{0,12}$/))
  .map(([weak, body]) => `${weak ? 'W/' : ''}"${body}"`)

test('property: If-None-Match equal to the current etag on GET is not-modified unless If-Match / If-Unmodified-Since fail', () => {
  const dateArb = fc.option(
    fc.integer({ min: 0, max: 2_000_000_000 }).map((s) => formatHttpDate(s * 1000)),
    { nil: undefined },
  )
  fc.assert(
    fc.property(
      etagArb,
      fc.integer({ min: 0, max: 2_000_000_000 }).map((s) => s * 1000),
      fc.option(fc.oneof(etagArb, fc.constant('*')), { nil: undefined }),
      dateArb,
      dateArb,
      fc.constantFrom('GET', 'HEAD'),
      (etag, lastModified, ifMatch, ifUnmodifiedSince, ifModifiedSince, method) => {
        const current = { etag, lastModified, exists: true }
        const req = { ifNoneMatch: etag, ifMatch, ifUnmodifiedSince, ifModifiedSince }
        const result = evaluatePreconditions(method, req, current)
        const ifMatchFails = ifMatch !== undefined && ifMatch !== '*' && !strongMatch(ifMatch, etag)
        const iusFails =
          ifMatch === undefined && ifUnmodifiedSince !== undefined && lastModified > Date.parse(ifUnmodifiedSince)
        assert.equal(result, ifMatchFails || iusFails ? 'failed' : 'not-modified')
      },
    ),
    { numRuns: 1000 },
  )
})
