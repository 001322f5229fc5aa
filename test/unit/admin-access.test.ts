import assert from 'node:assert/strict'
import { test } from 'node:test'
import { adminAccess, type AdminRequest } from '../../src/admin/access.ts'
import { validateConfig } from '../../src/config/load.ts'

/**
 * Who gets into the admin listener: this machine's own user without
 * credentials (loopback peer, no proxy fields, a local Host with the admin
 * port, a same-origin Origin on unsafe methods), anyone else only with the
 * token.
 */

const PORT = 8082
const TOKEN = 't'.repeat(40)
const req = (over: Partial<AdminRequest> & { headers?: AdminRequest['headers'] } = {}): AdminRequest => ({
  method: 'GET',
  peer: '127.0.0.1',
  ...over,
  headers: { host: `127.0.0.1:${PORT}`, ...over.headers },
})

test('this machine without credentials: loopback peers (IPv4, IPv6, mapped) with localhost, 127.0.0.1 or [::1] and the port', () => {
  for (const peer of ['127.0.0.1', '127.8.9.10', '::1', '::ffff:127.0.0.1']) {
    for (const host of [`127.0.0.1:${PORT}`, `localhost:${PORT}`, `LOCALHOST:${PORT}`, `[::1]:${PORT}`]) {
      assert.deepEqual(adminAccess(req({ peer, headers: { host } }), { port: PORT }), { ok: true }, `${peer} ${host}`)
    }
  }
})

test('another machine without the token: 401 with a Bearer challenge', () => {
  const v = adminAccess(req({ peer: '192.0.2.7' }), { port: PORT })
  assert.equal(v.ok, false)
  if (v.ok) return
  assert.equal(v.status, 401)
  assert.equal(v.headers['www-authenticate'], 'Bearer realm="edgebox admin"')
  assert.match(v.message, /only with its token/)
})

test('through a proxy, another name (DNS rebinding), another port, no Host: 403 naming why', () => {
  const cases: Array<[string, AdminRequest, RegExp]> = [
    ['X-Forwarded-For', req({ headers: { 'x-forwarded-for': '203.0.113.9' } }), /through a proxy/],
    ['X-Forwarded-Host', req({ headers: { 'x-forwarded-host': 'a.example' } }), /through a proxy/],
    ['Forwarded', req({ headers: { forwarded: 'for=203.0.113.9' } }), /through a proxy/],
    ['Via', req({ headers: { via: '1.1 proxy' } }), /through a proxy/],
    ['a rebound name', req({ headers: { host: `attacker.example:${PORT}` } }), /Host must be localhost/],
    ['another port', req({ headers: { host: '127.0.0.1:8080' } }), /Host must be localhost/],
    ['no port', req({ headers: { host: 'localhost' } }), /Host must be localhost/],
    ['no Host', req({ headers: { host: undefined } }), /Host must be localhost/],
    ['a name under localhost', req({ headers: { host: `evil.localhost:${PORT}` } }), /Host must be localhost/],
  ]
  for (const [what, r, why] of cases) {
    const v = adminAccess(r, { port: PORT })
    assert.equal(v.ok, false, what)
    if (v.ok) continue
    assert.equal(v.status, 403, what)
    assert.match(v.message, why, what)
  }
})

test('unsafe methods need Origin of the admin listener itself', () => {
  const post = (origin?: string) => adminAccess(req({ method: 'POST', headers: origin === undefined ? {} : { origin } }), { port: PORT })
  assert.deepEqual(post(`http://127.0.0.1:${PORT}`), { ok: true })
  for (const origin of [undefined, 'null', `http://localhost:${PORT}`, 'https://attacker.example', `https://127.0.0.1:${PORT}`]) {
    const v = post(origin)
    assert.equal(v.ok, false, String(origin))
    if (!v.ok) assert.equal(v.status, 403)
  }
  assert.deepEqual(adminAccess(req({ method: 'HEAD' }), { port: PORT }), { ok: true })
})

test('the token opens it from anywhere; a wrong token is 401 invalid_token; without credentials a token listener says how to get in', () => {
  const withToken = (authorization: string, peer = '192.0.2.7', host = 'admin.example:443') => adminAccess(req({ peer, headers: { host, authorization } }), { port: PORT, token: TOKEN })
  assert.deepEqual(withToken(`Bearer ${TOKEN}`), { ok: true })
  assert.deepEqual(withToken(`bearer ${TOKEN}`), { ok: true })
  const wrong = withToken(`Bearer ${TOKEN.slice(1)}x`)
  assert.equal(wrong.ok, false)
  if (!wrong.ok) {
    assert.equal(wrong.status, 401)
    assert.equal(wrong.headers['www-authenticate'], 'Bearer realm="edgebox admin", error="invalid_token"')
  }
  // loopback, but a rebound name: with a token configured, 401 (the token would let it in)
  const rebound = adminAccess(req({ headers: { host: `attacker.example:${PORT}` } }), { port: PORT, token: TOKEN })
  assert.equal(rebound.ok, false)
  if (!rebound.ok) {
    assert.equal(rebound.status, 401)
    assert.match(rebound.message, /Authorization: Bearer/)
  }
})

test('the option: loopback by default; another address needs a token; a short token is refused', () => {
  const site = { routes: [{ path: '/', static: { root: '.' } }] }
  assert.deepEqual(validateConfig({ sites: [site], admin: {} }).admin, { host: '127.0.0.1', port: 8082 })
  assert.throws(() => validateConfig({ sites: [site], admin: { host: '0.0.0.0' } }), /admin\.host.*needs admin\.token/)
  assert.throws(() => validateConfig({ sites: [site], admin: { host: '0.0.0.0', token: 'short' } }), /admin\.token.*at least 32/)
  assert.equal(validateConfig({ sites: [site], admin: { host: '0.0.0.0', token: TOKEN } }).admin?.host, '0.0.0.0')
  assert.throws(() => validateConfig({ sites: [site], admin: { host: 'localhost' } }), /admin\.host.*IP address/)
})

test('with the sign-on gate: every request without the token goes on to it, from this machine or another, through a proxy or by any name', () => {
  const gate = { port: PORT, signOn: true }
  for (const r of [
    req(),
    req({ peer: '192.0.2.7', headers: { host: 'admin.example.com:8082' } }),
    req({ headers: { 'x-forwarded-for': '203.0.113.9' } }),
    req({ headers: { host: `attacker.example:${PORT}` } }),
    req({ method: 'HEAD' }),
  ]) {
    assert.deepEqual(adminAccess(r, gate), { ok: true, signOn: true }, JSON.stringify(r))
  }
  // the token still gets in without the gate; another bearer token is the gate's to check (a provider's access token)
  assert.deepEqual(adminAccess(req({ peer: '192.0.2.7', headers: { authorization: `Bearer ${TOKEN}` } }), { ...gate, token: TOKEN }), { ok: true })
  assert.deepEqual(adminAccess(req({ peer: '192.0.2.7', headers: { authorization: 'Bearer eyJ.provider.token' } }), { ...gate, token: TOKEN }), { ok: true, signOn: true })
})

test('with the sign-on gate: an unsafe method with a session needs Origin of the admin listener (CSRF); with a bearer token, or a provider back-channel logout, it needs none', () => {
  const gate = { port: PORT, signOn: true }
  const host = 'admin.example.com:8443'
  const post = (headers: AdminRequest['headers'], url = '/api/v1/reload') => adminAccess(req({ method: 'POST', url, peer: '192.0.2.7', headers: { host, ...headers } }), gate)
  assert.deepEqual(post({ origin: `http://${host}` }), { ok: true, signOn: true })
  for (const origin of [undefined, 'null', 'https://attacker.example', `http://admin.example.com:8082`, `https://${host}`]) {
    const v = post(origin === undefined ? {} : { origin })
    assert.equal(v.ok, false, String(origin))
    if (v.ok) continue
    assert.equal(v.status, 403)
    assert.match(v.message, /^a POST with a session needs Origin: http:\/\/admin\.example\.com:8443 /)
  }
  assert.deepEqual(post({ authorization: 'Bearer eyJ.provider.token' }), { ok: true, signOn: true })
  assert.deepEqual(post({}, '/_edgebox/auth/backchannel-logout'), { ok: true, signOn: true })
  // the sign-out form is a session's POST like any other
  assert.equal(post({}, '/_edgebox/auth/logout').ok, false)
  assert.equal(adminAccess(req({ method: 'DELETE', headers: {} }), gate).ok, false)
})

test('the option: auth opens another address too; it takes no anonymous passage', () => {
  const site = { routes: [{ path: '/', static: { root: '.' } }] }
  const auth = { providers: { local: { issuer: 'https://id.example.com', clientId: 'admin' } } }
  assert.equal(validateConfig({ sites: [site], auth, admin: { host: '0.0.0.0', auth: { rules: [{ allow: { group: 'ops' } }] } } }).admin?.host, '0.0.0.0')
  assert.throws(() => validateConfig({ sites: [site], admin: { host: '0.0.0.0', auth: true } }), /admin\.auth: a sign-on gate needs the top-level auth\.providers/)
  assert.throws(() => validateConfig({ sites: [site], auth, admin: { auth: { required: false } } }), /admin\.auth\.required: the admin listener lets nobody in anonymously/)
  assert.throws(() => validateConfig({ sites: [site], auth, admin: { auth: { skip: [{ path: '/metrics' }] } } }), /admin\.auth\.skip: the admin listener has no paths open without a login/)
})
