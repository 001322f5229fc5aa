import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import type { Batch } from '../../src/rum/schema.ts'
import { SCRUB_MARKERS, luhn, scrubBatch, scrubText, truncateAddress } from '../../src/rum/scrub.ts'

test('the markers', () => {
  assert.deepEqual({ ...SCRUB_MARKERS }, { value: '[redacted]', email: '[email]', token: '[token]', card: '[card]' })
})

test('e-mail addresses', () => {
  assert.equal(scrubText('no user alice.smith+tag@mail.example.co.uk here'), 'no user [email] here')
  assert.equal(scrubText('/users/bob@example.com/profile'), '/users/[email]/profile')
  assert.equal(scrubText('a@b'), 'a@b')
})

test('query and fragment values, names kept', () => {
  assert.equal(scrubText('/search?q=secret&page=2'), '/search?q=[redacted]&page=[redacted]')
  assert.equal(scrubText('https://example.com/p?a=1&b=&c#x=y'), 'https://example.com/p?a=[redacted]&b=&c#x=[redacted]')
  assert.equal(scrubText('/cb#access_token=abc&state=xyz'), '/cb#access_token=[redacted]&state=[redacted]')
  // a fragment that is an anchor stays
  assert.equal(scrubText('/docs/intro#install'), '/docs/intro#install')
  // URLs inside free text, quoted
  assert.equal(scrubText('failed to fetch "https://api.example/x?key=k1" (500)'), 'failed to fetch "https://api.example/x?key=[redacted]" (500)')
  // a stack frame keeps its line and column
  assert.equal(
    scrubText('    at f (https://example.com/app.js?v=123:1:2345)'),
    '    at f (https://example.com/app.js?v=[redacted]:1:2345)',
  )
  // the marker itself is never rewritten
  assert.equal(scrubText('?a=[redacted]'), '?a=[redacted]')
})

test('URL credentials', () => {
  assert.equal(scrubText('https://user:pw@example.com/x'), 'https://[redacted]@example.com/x')
})

test('bearer, basic, JWTs and long keys', () => {
  assert.equal(scrubText('Authorization: Bearer abcDEF123456._~+/='), 'Authorization: Bearer [token]')
  assert.equal(scrubText('basic dXNlcjpwYXNzd29yZA=='), 'basic [token]')
  assert.equal(scrubText('Bearer token missing'), 'Bearer token missing')
  const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk'
  assert.equal(scrubText(`token ${jwt} expired`), 'token [token] expired')
  assert.equal(scrubText(`a${'x'.repeat(5)}.b`), 'axxxxx.b')
  assert.equal(scrubText('key sk_live_4eC39HqLyjWDarjtT1zdp7dcAAAA'), 'key [token]')
  assert.equal(scrubText('sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'), 'sha [token]')
  // long words without digits are not keys; short hex is not a key
  assert.equal(scrubText('someVeryLongIdentifierWithoutAnyDigitsAtAll'), 'someVeryLongIdentifierWithoutAnyDigitsAtAll')
  assert.equal(scrubText('/assets/index-4f3a2b1c.js'), '/assets/index-4f3a2b1c.js')
  // dotted names are not JWTs
  assert.equal(scrubText('at HTMLButtonElement.onclick (app.min.js:1:2)'), 'at HTMLButtonElement.onclick (app.min.js:1:2)')
})

test('card-like numbers that pass Luhn', () => {
  assert.equal(luhn('4111111111111111'), true)
  assert.equal(luhn('4111111111111112'), false)
  assert.equal(scrubText('card 4111 1111 1111 1111 declined'), 'card [card] declined')
  assert.equal(scrubText('card 4111-1111-1111-1111'), 'card [card]')
  assert.equal(scrubText('amex 378282246310005'), 'amex [card]')
  assert.equal(scrubText('n 4111111111111112'), 'n 4111111111111112')
  // too short or part of a longer run of digits
  assert.equal(scrubText('id 411111111111'), 'id 411111111111')
  assert.equal(scrubText('x 41111111111111110000000'), 'x 41111111111111110000000')
})

test('ordinary messages and stacks are left as they are', () => {
  const stack = 'TypeError: x is not a function\n    at f (https://example.com/app.min.js:1:2345)\n    at https://example.com/vendor.js:3:4'
  assert.equal(scrubText(stack), stack)
  assert.equal(scrubText("Cannot read properties of undefined (reading 'map')"), "Cannot read properties of undefined (reading 'map')")
  assert.equal(scrubText(''), '')
})

test('scrubText is idempotent', () => {
  const parts = fc.constantFrom(
    'alice@example.com', '?a=1&b=2', '#t=x', 'Bearer abcdefgh12345', '4111 1111 1111 1111', ' ', '/p', 'https://u:p@h.example/',
    'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig', '9f86d081884c7d659a2feaa0c55ad015', ':1:2', ')', '"', 'text', '=', '&',
  )
  fc.assert(
    fc.property(fc.array(fc.oneof(parts, fc.string({ maxLength: 8 })), { maxLength: 12 }), (list) => {
      const once = scrubText(list.join(''))
      assert.equal(scrubText(once), once)
    }),
    { numRuns: 2000 },
  )
})

test('scrubBatch scrubs page, messages, stacks, URLs and attribution strings, and leaves the batch given alone', () => {
  const batch: Batch = {
    v: 1,
    pv: 'pv1',
    cached: false,
    page: '/account?email=a@b.example',
    release: 'r1',
    env: 'production',
    device: { mobile: true },
    events: [
      { t: 'vital', at: 1, name: 'LCP', value: 1, rating: 'good', attr: { url: '/img?sig=abc', size: 12 } },
      { t: 'nav', at: 0, type: 'navigate', phases: { redirect: 0, dns: 0, tcp: 0, tls: 0, ttfb: 0, transfer: 0, dom: 0, load: 0 } },
      { t: 'resource', at: 2, url: 'https://cdn.example/x.js?token=t', initiator: 'script', duration: 1, status: 200, size: 1, failed: false },
      { t: 'error', at: 3, kind: 'error', message: 'user carol@example.com not found', stack: 'at f (https://example.com/a.js?u=carol:1:2)', count: 1 },
      { t: 'error', at: 3, kind: 'error', message: 'no stack', count: 2 },
      { t: 'api', at: 4, method: 'GET', url: '/api/u?id=7', status: 200, duration: 5, outcome: 'ok' },
      { t: 'route', at: 5, pv: 'pv2', from: '/a?x=1', to: '/b?y=2' },
    ],
  }
  const before = JSON.stringify(batch)
  const out = scrubBatch(batch)
  assert.equal(JSON.stringify(batch), before)
  assert.equal(out.page, '/account?email=[redacted]')
  assert.deepEqual(out.device, { mobile: true })
  assert.deepEqual(out.events[0], { t: 'vital', at: 1, name: 'LCP', value: 1, rating: 'good', attr: { url: '/img?sig=[redacted]', size: 12 } })
  assert.deepEqual(out.events[1], batch.events[1])
  assert.equal((out.events[2] as { url: string }).url, 'https://cdn.example/x.js?token=[redacted]')
  assert.deepEqual(out.events[3], { t: 'error', at: 3, kind: 'error', message: 'user [email] not found', stack: 'at f (https://example.com/a.js?u=[redacted]:1:2)', count: 1 })
  assert.equal('stack' in out.events[4]!, false)
  assert.equal((out.events[5] as { url: string }).url, '/api/u?id=[redacted]')
  assert.deepEqual(out.events[6], { t: 'route', at: 5, pv: 'pv2', from: '/a?x=[redacted]', to: '/b?y=[redacted]' })
})

test('truncateAddress: IPv4 to /24, IPv6 to /48, IPv4-mapped as IPv4', () => {
  assert.equal(truncateAddress('192.0.2.77'), '192.0.2.0')
  assert.equal(truncateAddress('10.1.2.3'), '10.1.2.0')
  assert.equal(truncateAddress('2001:db8:1:2:3:4:5:6'), '2001:db8:1::')
  assert.equal(truncateAddress('2001:0DB8:0001:ffff::1'), '2001:db8:1::')
  assert.equal(truncateAddress('2001:db8::1'), '2001:db8::')
  assert.equal(truncateAddress('::1'), '::')
  assert.equal(truncateAddress('fe80::1%eth0'), 'fe80::')
  assert.equal(truncateAddress('::ffff:192.0.2.77'), '192.0.2.0')
  assert.equal(truncateAddress('::ffff:c000:024d'), '192.0.2.0')
  assert.equal(truncateAddress('64:ff9b::192.0.2.77'), '64:ff9b::')
  assert.equal(truncateAddress('not an address'), null)
  assert.equal(truncateAddress(''), null)
  // idempotent
  for (const a of ['192.0.2.0', '2001:db8:1::', '::']) assert.equal(truncateAddress(a), a)
})
