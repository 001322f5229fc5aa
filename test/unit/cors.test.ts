import assert from 'node:assert/strict'
import { test } from 'node:test'
import { isSafelistedRequestHeader, needsPreflight, preflight, responseHeaders, variesByOrigin } from '../../src/http/cors.ts'
import { createCorsPolicy, corsSchema } from '../../src/modules/security/cors.ts'

const policy = (cfg: Record<string, unknown>, site: string[] = []) => createCorsPolicy(corsSchema.parse(cfg), site)

test('CORS-safelisted request headers and their value rules (Fetch §2.2.2)', () => {
  assert.equal(isSafelistedRequestHeader('Accept', 'text/html'), true)
  assert.equal(isSafelistedRequestHeader('accept', 'a"b'), false, 'an unsafe byte')
  assert.equal(isSafelistedRequestHeader('Content-Type', 'text/plain; charset=utf-8'), true)
  assert.equal(isSafelistedRequestHeader('content-type', 'multipart/form-data; boundary=x'), true)
  assert.equal(isSafelistedRequestHeader('content-type', 'application/json'), false, 'only three essences')
  assert.equal(isSafelistedRequestHeader('accept-language', 'en-US,en;q=0.9'), true)
  assert.equal(isSafelistedRequestHeader('content-language', 'en/US'), false)
  assert.equal(isSafelistedRequestHeader('range', 'bytes=0-99'), true)
  assert.equal(isSafelistedRequestHeader('range', 'bytes=0-99,200-'), false, 'one simple range only')
  assert.equal(isSafelistedRequestHeader('accept', 'x'.repeat(129)), false, 'at most 128 bytes')
  assert.equal(isSafelistedRequestHeader('x-token', '1'), false)
})

test('which requests a browser preflights', () => {
  assert.equal(needsPreflight('GET', {}), false)
  assert.equal(needsPreflight('POST', { 'content-type': 'text/plain' }), false)
  assert.equal(needsPreflight('POST', { 'content-type': 'application/json' }), true)
  assert.equal(needsPreflight('PUT', {}), true)
  assert.equal(needsPreflight('GET', { 'x-token': '1' }), true)
  assert.equal(needsPreflight('get', {}), true, 'methods are case-sensitive: only GET, HEAD, POST are safelisted')
})

test('a preflight gets exactly the allowed values, or a refusal with a reason', () => {
  const p = policy({ origins: ['https://app.example'], methods: ['GET', 'PUT'], allowHeaders: ['Content-Type', 'x-token'], maxAge: '5m' })
  const ok = preflight(p, 'https://app.example', 'PUT', 'content-type, X-Token')
  assert.deepEqual(ok, {
    ok: true,
    headers: {
      'access-control-allow-origin': 'https://app.example',
      'access-control-allow-methods': 'GET, PUT',
      'access-control-allow-headers': 'content-type, x-token',
      'access-control-max-age': '300',
      vary: 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers',
    },
  })
  assert.deepEqual(preflight(p, 'https://evil.example', 'PUT', undefined), { ok: false, reason: 'origin https://evil.example is not allowed' })
  assert.deepEqual(preflight(p, 'https://app.example', 'DELETE', undefined), { ok: false, reason: 'method DELETE is not allowed' })
  assert.deepEqual(preflight(p, 'https://app.example', 'POST', 'authorization'), { ok: false, reason: 'request header authorization is not allowed' })
  assert.equal(preflight(p, 'https://app.example', 'GET', 'x-token').ok, true, 'safelisted methods need no listing')
})

test('never * together with credentials; Vary: Origin whenever the answer depends on it', () => {
  const any = policy({ origins: ['*'] })
  assert.equal(responseHeaders(any, 'https://x.example')['access-control-allow-origin'], '*')
  assert.equal(variesByOrigin(any), false)
  const anyCred = policy({ origins: ['*'], credentials: true })
  assert.deepEqual(responseHeaders(anyCred, 'https://x.example'), { 'access-control-allow-origin': 'https://x.example', 'access-control-allow-credentials': 'true' })
  assert.equal(variesByOrigin(anyCred), true)
  assert.equal(variesByOrigin(policy({ origins: ['https://a.example'] })), true)
})

test('hostile Origin values are never allowed', () => {
  const p = policy({}, ['http://allowed.example', 'https://*.good.example'])
  assert.equal(p.allows('http://allowed.example'), true)
  assert.equal(p.allows('null'), false)
  assert.equal(p.allows('HTTP://ALLOWED.EXAMPLE'), false, 'browsers serialise origins in lower case')
  assert.equal(p.allows('http://allowed.example.'), false, 'a trailing dot is another host')
  assert.equal(p.allows('http://allowed.example.evil.test'), false)
  assert.equal(p.allows('http://allowed.example/path'), false)
  assert.equal(p.allows('https://a.good.example'), true)
  assert.equal(p.allows('https://good.example'), false)
  assert.equal(p.allows('https://a.good.example.'), false)
  assert.equal(p.allows('https://evilgood.example'), false)
  const fn = policy({ origins: (o: string) => o.endsWith('.trusted.test') })
  assert.equal(fn.allows('https://x.trusted.test'), true)
  assert.equal(fn.allows('https://x.untrusted.test'), false)
  const throwing = policy({ origins: () => { throw new Error('boom') } })
  assert.equal(throwing.allows('https://x.test'), false)
})
