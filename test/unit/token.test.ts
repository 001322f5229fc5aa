import { test } from 'node:test'
import assert from 'node:assert/strict'
import { isSafeFieldValue, isToken, TCHAR, TOKEN } from '../../src/http/token.ts'

test('isToken: exactly RFC 9110 §5.6.2 tchar, one or more', () => {
  const tchars = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
  for (let code = 0; code < 256; code++) {
    const c = String.fromCharCode(code)
    assert.equal(isToken(c), tchars.includes(c), `0x${code.toString(16)}`)
  }
  for (const good of ['GET', 'x-request-id', 'Content-Type', "a!#$%&'*+-.^_`|~z"]) assert.equal(isToken(good), true, good)
  for (const bad of ['', 'a b', 'a:b', 'a,b', 'a;b', '"a"', 'a/b', 'a=b', 'a\r\n', 'é', ' a']) assert.equal(isToken(bad), false, bad)
})

test('TOKEN and TCHAR agree with isToken where they are embedded in other patterns', () => {
  assert.equal(TOKEN.test('x-a'), true)
  assert.equal(TOKEN.test('x a'), false)
  const headerKey = new RegExp(`^header:${TCHAR}+$`)
  assert.equal(headerKey.test('header:x-api-key'), true)
  assert.equal(headerKey.test('header:'), false)
  assert.equal(headerKey.test('header:x y'), false)
})

test('isSafeFieldValue: no CR, LF or NUL (RFC 9110 §5.5)', () => {
  for (const good of ['', 'websocket', 'a, b; q=1', 'tab\there', 'caf\xe9']) assert.equal(isSafeFieldValue(good), true, good)
  for (const bad of ['a\rb', 'a\nb', 'a\r\nX-Injected: 1', 'a\0b']) assert.equal(isSafeFieldValue(bad), false, JSON.stringify(bad))
})

test('the configuration schemas check names with the same token rule', async () => {
  const { rateLimitSchema } = await import('../../src/modules/security/rate-limit.ts')
  const { csrfSchema } = await import('../../src/modules/security/csrf.ts')
  const { corsSchema } = await import('../../src/modules/security/cors.ts')
  const rate = (key: string) => rateLimitSchema.safeParse({ requests: 1, per: '1s', key }).success
  assert.equal(rate('header:x-api-key'), true)
  assert.equal(rate('header:x api'), false)
  assert.equal(rate('header:'), false)
  assert.equal(csrfSchema.safeParse({ cookie: 'edgebox_csrf' }).success, true)
  assert.equal(csrfSchema.safeParse({ cookie: 'a=b' }).success, false)
  assert.equal(corsSchema.safeParse({ methods: ['PURGE'], allowHeaders: ['x-a'] }).success, true)
  assert.equal(corsSchema.safeParse({ methods: ['BAD METHOD'] }).success, false)
})
