import assert from 'node:assert/strict'
import { test } from 'node:test'
import { corsPlan, judgePreflight, judgeResponse, type PreflightInput } from '../../src/inspect/cors.ts'

const ORIGIN = 'https://app.example'

test('corsPlan: which requests a browser preflights, and why', () => {
  const cases: Array<[method: string, headers: Record<string, string>, preflight: boolean, why: RegExp, requestHeaders: string[]]> = [
    ['GET', {}, false, /simple request: GET is one of GET, HEAD, POST and it sets no header/, []],
    ['POST', { 'Content-Type': 'text/plain;charset=UTF-8', Accept: 'text/html' }, false, /every header \(content-type, accept\) is CORS-safelisted/, []],
    ['PUT', {}, true, /^PUT is not one of GET, HEAD, POST$/, []],
    ['GET', { 'X-Token': 'abc' }, true, /^the header x-token is not CORS-safelisted$/, ['x-token']],
    ['POST', { 'content-type': 'application/json' }, true, /^Content-Type application\/json is not one of the three a form can send/, ['content-type']],
    ['GET', { range: 'bytes=0-1,5-6' }, true, /not a single simple byte range/, ['range']],
    ['GET', { accept: 'x'.repeat(200) }, true, /longer than 128 bytes/, ['accept']],
    ['GET', { 'content-language': 'en/US' }, true, /has characters other than letters/, ['content-language']],
    ['DELETE', { Authorization: 'Bearer t', 'X-B': '1', 'x-a': '2' }, true, /DELETE is not one of/, ['authorization', 'x-a', 'x-b']],
  ]
  for (const [method, headers, preflight, why, requestHeaders] of cases) {
    const plan = corsPlan(method, headers)
    assert.equal(plan.preflight, preflight, `${method} ${JSON.stringify(headers)}`)
    assert.ok(plan.why.some((w) => why.test(w)), `${method} ${JSON.stringify(headers)}: ${plan.why.join(' | ')}`)
    assert.deepEqual(plan.requestHeaders, requestHeaders)
  }
})

test('corsPlan: the browser upper-cases standard methods and drops headers scripts cannot set', () => {
  const lower = corsPlan('get', {})
  assert.equal(lower.method, 'GET')
  assert.equal(lower.preflight, false)
  assert.ok(lower.why.some((w) => /sends get as GET/.test(w)))
  assert.equal(corsPlan('patch', {}).method, 'patch', 'PATCH is not normalized')
  assert.equal(corsPlan('patch', {}).preflight, true)
  const cookie = corsPlan('GET', { Cookie: 'a=1' })
  assert.equal(cookie.preflight, false)
  assert.ok(cookie.why.some((w) => /cannot set cookie/.test(w)))
  const big = corsPlan('GET', { accept: 'a'.repeat(128), 'accept-language': 'b'.repeat(128), 'content-language': 'c'.repeat(128), 'content-type': 'text/plain'.padEnd(128, ' '), range: 'bytes=0-1' })
  assert.equal(big.preflight, false, 'five safelisted headers of 128 bytes stay under 1,024 bytes together')
})

const preflightBase: PreflightInput = {
  origin: ORIGIN,
  method: 'PUT',
  headers: ['content-type', 'x-token'],
  credentials: false,
  status: 204,
  responseHeaders: {
    'access-control-allow-origin': ORIGIN,
    'access-control-allow-methods': 'GET, PUT',
    'access-control-allow-headers': 'Content-Type, X-Token',
    'access-control-max-age': '600',
  },
}

function pre(over: Partial<PreflightInput> & { set?: Record<string, string | string[] | undefined> }) {
  const { set, ...rest } = over
  return judgePreflight({ ...preflightBase, ...rest, responseHeaders: { ...preflightBase.responseHeaders, ...set } })
}

test('judgePreflight: each rule of the Fetch standard', () => {
  const cases: Array<[name: string, verdict: ReturnType<typeof judgePreflight>, allowed: boolean, reason: RegExp]> = [
    ['all allowed, mixed-case header names', pre({}), true, /Access-Control-Allow-Headers lists x-token/],
    ['non-2xx status', pre({ status: 404 }), false, /got 404, not a 2xx status.*does not handle OPTIONS/],
    ['401 on a preflight', pre({ status: 401 }), false, /preflights carry no cookies or Authorization/],
    ['no ACAO', pre({ set: { 'access-control-allow-origin': undefined } }), false, /no Access-Control-Allow-Origin header/],
    ['another origin', pre({ set: { 'access-control-allow-origin': 'https://other.example' } }), false, /is https:\/\/other\.example, not https:\/\/app\.example$/],
    ['trailing slash', pre({ set: { 'access-control-allow-origin': `${ORIGIN}/` } }), false, /byte for byte/],
    ['several origins', pre({ set: { 'access-control-allow-origin': `${ORIGIN}, https://b.example` } }), false, /exactly one/],
    ['* without credentials', pre({ set: { 'access-control-allow-origin': '*' } }), true, /Access-Control-Allow-Origin is \*: any origin/],
    ['* with credentials refused', pre({ credentials: true, set: { 'access-control-allow-origin': '*', 'access-control-allow-credentials': 'true' } }), false, /is \*, which browsers refuse for a request with credentials/],
    ['credentials without ACAC', pre({ credentials: true }), false, /must say Access-Control-Allow-Credentials: true/],
    ['ACAC True', pre({ credentials: true, set: { 'access-control-allow-credentials': 'True' } }), false, /only exactly "true"/],
    ['credentials allowed', pre({ credentials: true, set: { 'access-control-allow-credentials': 'true' } }), true, /Access-Control-Allow-Credentials is true/],
    ['method not listed', pre({ method: 'DELETE' }), false, /lists GET, PUT, not DELETE/],
    ['no ACAM for PUT', pre({ set: { 'access-control-allow-methods': undefined } }), false, /no Access-Control-Allow-Methods header/],
    ['method case', pre({ method: 'PATCH', set: { 'access-control-allow-methods': 'patch' } }), false, /case-sensitive/],
    ['safelisted method needs no listing', pre({ method: 'POST', set: { 'access-control-allow-methods': undefined } }), true, /POST is one of GET, HEAD, POST/],
    ['method * without credentials', pre({ method: 'DELETE', set: { 'access-control-allow-methods': '*' } }), true, /is \*, which allows DELETE/],
    [
      'method * with credentials',
      pre({ method: 'DELETE', credentials: true, set: { 'access-control-allow-methods': '*', 'access-control-allow-credentials': 'true' } }),
      false,
      /with credentials, \* in Access-Control-Allow-Methods is not a wildcard/,
    ],
    ['header not listed', pre({ headers: ['x-other'] }), false, /does not list x-other/],
    ['header names are case-insensitive', pre({ headers: ['X-TOKEN'], set: { 'access-control-allow-headers': 'x-ToKeN' } }), true, /lists x-token/],
    ['header *', pre({ set: { 'access-control-allow-headers': '*' } }), true, /is \*, which covers x-token/],
    ['Authorization is not covered by *', pre({ headers: ['authorization'], set: { 'access-control-allow-headers': '*' } }), false, /Authorization is never covered by \*/],
    ['Authorization listed with *', pre({ headers: ['authorization'], set: { 'access-control-allow-headers': '*, Authorization' } }), true, /lists authorization/],
    [
      'header * with credentials',
      pre({ credentials: true, set: { 'access-control-allow-headers': '*', 'access-control-allow-credentials': 'true' } }),
      false,
      /each header must be listed by name/,
    ],
    ['bad ACAH syntax', pre({ set: { 'access-control-allow-headers': 'x-token, x y' } }), false, /not a comma-separated list of header names/],
    ['headers as name → value: only unsafe ones need listing', pre({ headers: { 'Content-Type': 'text/plain', 'x-token': '1' }, set: { 'access-control-allow-headers': 'x-token' } }), true, /lists x-token/],
  ]
  for (const [name, verdict, allowed, reason] of cases) {
    assert.equal(verdict.allowed, allowed, `${name}: ${verdict.reasons.join(' | ')}`)
    assert.ok(verdict.reasons.some((r) => reason.test(r)), `${name}: ${verdict.reasons.join(' | ')}`)
    assert.match(verdict.reasons.at(-1)!, allowed ? /goes on to send/ : /stops here/)
  }
})

test('judgePreflight lists every failure, not only the first', () => {
  const v = pre({ status: 500, method: 'DELETE', headers: ['x-other'], set: { 'access-control-allow-origin': undefined } })
  assert.equal(v.allowed, false)
  for (const re of [/got 500/, /no Access-Control-Allow-Origin/, /not DELETE/, /does not list x-other/]) assert.ok(v.reasons.some((r) => re.test(r)), String(re))
})

test('judgePreflight: Access-Control-Max-Age, with the browsers caps', () => {
  assert.equal(pre({}).maxAgeSeconds, 600)
  assert.ok(pre({}).reasons.includes('Access-Control-Max-Age: browsers may reuse this preflight for 600 s'))
  const long = pre({ set: { 'access-control-max-age': '86400' } })
  assert.equal(long.maxAgeSeconds, 86400)
  assert.ok(long.reasons.some((r) => /Chromium at 7200 s/.test(r)))
  const none = pre({ set: { 'access-control-max-age': undefined } })
  assert.equal(none.maxAgeSeconds, null)
  assert.ok(none.reasons.some((r) => /5 s/.test(r)))
  assert.equal(pre({ set: { 'access-control-max-age': '1h' } }).maxAgeSeconds, null)
  assert.equal(pre({ set: { 'access-control-max-age': '0' } }).maxAgeSeconds, 0)
})

test('judgeResponse: the CORS check on the actual response', () => {
  const ok = judgeResponse({ origin: ORIGIN, credentials: false, responseHeaders: { 'access-control-allow-origin': '*', 'content-type': 'application/json', 'x-request-id': '1' } })
  assert.equal(ok.allowed, true)
  assert.deepEqual(ok.exposed, ['content-type'])
  assert.ok(ok.reasons.some((r) => /no Access-Control-Expose-Headers: scripts can read only the CORS-safelisted/.test(r)))
  assert.ok(ok.reasons.some((r) => /hidden from scripts: access-control-allow-origin, x-request-id/.test(r)))
  assert.ok(!ok.reasons.some((r) => /Vary/.test(r)), '* needs no Vary: Origin')

  const star = judgeResponse({ origin: ORIGIN, credentials: true, responseHeaders: { 'access-control-allow-origin': '*', 'access-control-allow-credentials': 'true' } })
  assert.equal(star.allowed, false)
  assert.deepEqual(star.exposed, [])
  assert.ok(star.reasons.some((r) => /refuse for a request with credentials/.test(r)))

  const none = judgeResponse({ origin: ORIGIN, credentials: false, responseHeaders: { 'content-type': 'text/html' } })
  assert.equal(none.allowed, false)
  assert.ok(none.reasons.some((r) => /no Access-Control-Allow-Origin/.test(r)))

  const noAcac = judgeResponse({ origin: ORIGIN, credentials: true, responseHeaders: { 'access-control-allow-origin': ORIGIN, vary: 'Origin' } })
  assert.equal(noAcac.allowed, false)
})

test('judgeResponse: Vary: Origin missing when one origin is echoed is a caching hazard', () => {
  const missing = judgeResponse({ origin: ORIGIN, credentials: false, responseHeaders: { 'Access-Control-Allow-Origin': ORIGIN } })
  assert.equal(missing.allowed, true, 'a warning, not a refusal')
  assert.ok(missing.reasons.some((r) => /Vary: Origin is missing/.test(r)))
  for (const vary of ['Accept-Encoding, Origin', ['accept-encoding', 'origin'], '*']) {
    const v = judgeResponse({ origin: ORIGIN, credentials: false, responseHeaders: { 'access-control-allow-origin': ORIGIN, vary } })
    assert.ok(!v.reasons.some((r) => /Vary: Origin is missing/.test(r)), JSON.stringify(vary))
  }
})

test('judgeResponse: Access-Control-Expose-Headers, and * only without credentials', () => {
  const headers = {
    'access-control-allow-origin': ORIGIN,
    'access-control-allow-credentials': 'true',
    vary: 'Origin',
    'content-length': '3',
    'x-total': '9',
    etag: '"a"',
    'set-cookie': ['a=1'],
  }
  const listed = judgeResponse({ origin: ORIGIN, credentials: true, responseHeaders: { ...headers, 'access-control-expose-headers': 'X-Total, ETag' } })
  assert.equal(listed.allowed, true)
  assert.deepEqual(listed.exposed, ['content-length', 'etag', 'x-total'])
  assert.ok(listed.reasons.some((r) => /lets scripts read x-total, etag/.test(r)))

  const starCred = judgeResponse({ origin: ORIGIN, credentials: true, responseHeaders: { ...headers, 'access-control-expose-headers': '*' } })
  assert.deepEqual(starCred.exposed, ['content-length'])
  assert.ok(starCred.reasons.some((r) => /\* in Access-Control-Expose-Headers is not a wildcard/.test(r)))

  const star = judgeResponse({ origin: ORIGIN, credentials: false, responseHeaders: { ...headers, 'access-control-allow-credentials': undefined, 'access-control-expose-headers': '*' } })
  assert.deepEqual(star.exposed, ['access-control-allow-origin', 'access-control-expose-headers', 'content-length', 'etag', 'vary', 'x-total'], 'never Set-Cookie')
})
