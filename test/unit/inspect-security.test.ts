import assert from 'node:assert/strict'
import { test } from 'node:test'
import { securityReport, securityScore, type ResponseHeaders, type SecurityFinding } from '../../src/inspect/security.ts'

const HTTPS = new URL('https://shop.example/cart')
const HTTP = new URL('http://shop.example/cart')

const STRONG: ResponseHeaders = {
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy': "default-src 'self'; script-src 'self' 'nonce-abc123' 'unsafe-inline'; object-src 'none'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'strict-transport-security': 'max-age=31536000; includeSubDomains; preload',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'strict-origin-when-cross-origin',
  'set-cookie': ['__Host-sid=s3cr3t; Path=/; Secure; HttpOnly; SameSite=Lax', 'theme=dark; Path=/; Secure; HttpOnly; SameSite=Strict'],
  server: 'edgebox',
}

function find(findings: SecurityFinding[], check: string): SecurityFinding {
  const f = findings.find((x) => x.check === check)
  assert.ok(f, `no finding ${check} in ${findings.map((x) => x.check).join(', ')}`)
  return f
}

function statusOf(headers: ResponseHeaders, check: string, url = HTTPS) {
  return find(securityReport(url, headers), check)
}

test('a strong header set is all ok (Permissions-Policy is only ever info)', () => {
  const findings = securityReport(HTTPS, STRONG)
  const notOk = findings.filter((f) => f.status !== 'ok' && f.check !== 'Permissions-Policy')
  assert.deepEqual(notOk, [])
  assert.equal(find(findings, 'Permissions-Policy').status, 'info')
  assert.match(find(findings, 'Content-Security-Policy').explain, /ignore it next to a nonce/)
  assert.match(find(findings, 'Frame protection').explain, /'none'.*X-Frame-Options: DENY is then ignored/)
  const hsts = find(findings, 'Strict-Transport-Security')
  assert.match(hsts.explain, /365 days/)
  assert.match(hsts.explain, /includeSubDomains: every subdomain/)
  assert.match(hsts.explain, /preload: it asks to be built into browsers/)
  assert.equal(find(findings, 'Cookie __Host-sid: prefix').status, 'ok')
  assert.ok(findings.every((f) => !f.value?.includes('s3cr3t')), 'cookie values are never shown')
  assert.equal(find(findings, 'Cookie __Host-sid: Secure').value, '__Host-sid=…; Path=/; Secure; HttpOnly; SameSite=Lax')
  assert.equal(findings.some((f) => f.check === 'Server'), false, 'a Server header without a version says nothing')
  assert.deepEqual(securityScore(findings), { ok: findings.length - 1, missing: 0, weak: 0, info: 1 })
})

test('a bare response lists each missing check', () => {
  const findings = securityReport(HTTPS, {})
  const byCheck = Object.fromEntries(findings.map((f) => [f.check, f.status]))
  assert.deepEqual(byCheck, {
    'Content-Security-Policy': 'missing',
    'Frame protection': 'missing',
    'Strict-Transport-Security': 'missing',
    'X-Content-Type-Options': 'missing',
    'Referrer-Policy': 'missing',
    'Permissions-Policy': 'info',
  })
  assert.match(find(findings, 'Frame protection').explain, /clickjacking/)
  assert.match(find(findings, 'Referrer-Policy').explain, /default to strict-origin-when-cross-origin/)
  assert.match(find(findings, 'Strict-Transport-Security').explain, /http:\/\/ first/)
  assert.deepEqual(securityScore(findings), { ok: 0, missing: 5, weak: 0, info: 1 })
})

test('CSP: weak sources, report-only, several policies', () => {
  const weak = (csp: string) => statusOf({ 'content-security-policy': csp }, 'Content-Security-Policy')
  assert.equal(weak("default-src 'self' 'unsafe-inline'").status, 'weak')
  assert.match(weak("default-src 'self' 'unsafe-inline'").explain, /default-src has 'unsafe-inline'/)
  assert.equal(weak("script-src 'self' 'unsafe-eval' 'nonce-x'").status, 'weak', 'a nonce does not cancel unsafe-eval')
  assert.equal(weak("script-src 'self' 'unsafe-inline' 'sha256-abc='").status, 'ok', 'a hash makes browsers ignore unsafe-inline')
  assert.equal(weak("default-src 'self'; script-src 'self' 'unsafe-inline'").status, 'weak', 'script-src wins over default-src')
  assert.equal(weak("default-src 'unsafe-inline'; script-src 'self'").status, 'ok')
  assert.equal(weak("img-src 'self'").status, 'weak')
  assert.match(weak("img-src 'self'").explain, /neither script-src nor default-src/)
  assert.equal(weak('script-src https: *').status, 'weak')
  assert.equal(weak("script-src 'nonce-x' 'strict-dynamic' https:").status, 'ok', "with 'strict-dynamic' host sources are ignored")
  assert.equal(weak("SCRIPT-SRC 'self' 'UNSAFE-INLINE'").status, 'weak', 'directive names and keywords are case-insensitive')
  assert.equal(statusOf({ 'content-security-policy': ["script-src 'unsafe-inline'", "script-src 'self'"] }, 'Content-Security-Policy').status, 'ok', 'a script must pass every policy')

  const ro = statusOf({ 'content-security-policy-report-only': "default-src 'self'" }, 'Content-Security-Policy')
  assert.equal(ro.status, 'weak')
  assert.match(ro.explain, /enforce nothing/)
})

test('frame protection: frame-ancestors, X-Frame-Options, ALLOW-FROM', () => {
  const frame = (h: ResponseHeaders) => statusOf(h, 'Frame protection')
  assert.equal(frame({ 'x-frame-options': 'sameorigin' }).status, 'ok')
  assert.equal(frame({ 'x-frame-options': 'DENY' }).status, 'ok')
  assert.equal(frame({ 'content-security-policy': "frame-ancestors 'self' https://partner.example" }).status, 'ok')
  assert.equal(frame({ 'content-security-policy': 'frame-ancestors *' }).status, 'weak')
  const allowFrom = frame({ 'x-frame-options': 'ALLOW-FROM https://partner.example' })
  assert.equal(allowFrom.status, 'weak')
  assert.match(allowFrom.explain, /obsolete/)
  assert.equal(frame({ 'x-frame-options': 'yes please' }).status, 'weak')
  assert.equal(frame({ 'content-security-policy-report-only': "frame-ancestors 'none'" }).status, 'missing', 'report-only protects nothing')
})

test('HSTS: short max-age, invalid, over http', () => {
  const hsts = (value: string | undefined, url = HTTPS) => statusOf({ 'strict-transport-security': value }, 'Strict-Transport-Security', url)
  assert.equal(hsts('max-age=15552000').status, 'ok', '180 days is enough')
  assert.match(hsts('max-age=15552000').explain, /without includeSubDomains/)
  assert.equal(hsts('max-age=86400').status, 'weak')
  assert.match(hsts('max-age=86400').explain, /under 180 days/)
  assert.equal(hsts('max-age=0').status, 'weak')
  assert.equal(hsts('includeSubDomains').status, 'weak')
  assert.equal(hsts('max-age=1y').status, 'weak')
  assert.match(hsts('max-age=31536000; preload').explain, /also requires .*includeSubDomains/)
  assert.equal(hsts('max-age="31536000"').status, 'ok', 'a quoted value is allowed')
  const onHttp = hsts('max-age=31536000', HTTP)
  assert.equal(onHttp.status, 'info')
  assert.match(onHttp.explain, /only over HTTPS; browsers ignore it here/)
  assert.equal(hsts(undefined, HTTP).status, 'info')
  assert.equal(hsts('max-age=31536000', new URL('https://192.0.2.1/')).status, 'info', 'not for IP addresses')
})

test('nosniff, Referrer-Policy, Permissions-Policy, Server and X-Powered-By', () => {
  assert.equal(statusOf({ 'x-content-type-options': 'NoSniff' }, 'X-Content-Type-Options').status, 'ok')
  assert.equal(statusOf({ 'x-content-type-options': 'sniff' }, 'X-Content-Type-Options').status, 'weak')
  const rp = (v: string) => statusOf({ 'referrer-policy': v }, 'Referrer-Policy')
  assert.equal(rp('no-referrer').status, 'ok')
  assert.equal(rp('unsafe-url').status, 'weak')
  assert.equal(rp('no-referrer-when-downgrade').status, 'weak')
  assert.equal(rp('unsafe-url, strict-origin').status, 'ok', 'the last known value counts')
  assert.equal(rp('strict-origin, bogus').status, 'ok', 'unknown values are skipped')
  assert.equal(rp('bogus').status, 'weak')
  const pp = statusOf({ 'permissions-policy': 'camera=(), geolocation=()' }, 'Permissions-Policy')
  assert.equal(pp.status, 'info')
  assert.equal(pp.value, 'camera=(), geolocation=()')
  const findings = securityReport(HTTPS, { server: 'nginx/1.25.3', 'x-powered-by': 'PHP/8.2.1' })
  assert.equal(find(findings, 'Server').status, 'info')
  assert.match(find(findings, 'Server').explain, /version/)
  assert.equal(find(findings, 'X-Powered-By').status, 'info')
})

test('responses that are not pages: CSP and framing are notes, not failures', () => {
  const findings = securityReport(HTTPS, { 'content-type': 'application/json' })
  assert.equal(find(findings, 'Content-Security-Policy').status, 'info')
  assert.match(find(findings, 'Content-Security-Policy').explain, /application\/json, not a page/)
  assert.equal(find(findings, 'Frame protection').status, 'info')
  assert.equal(find(findings, 'X-Content-Type-Options').status, 'missing')
  assert.equal(statusOf({ 'content-type': 'image/svg+xml' }, 'Content-Security-Policy').status, 'missing', 'SVG runs scripts')
})

test('cookies: Secure, HttpOnly, SameSite and the prefixes', () => {
  const cookie = (line: string | string[], url = HTTPS) => {
    const findings = securityReport(url, { 'set-cookie': line })
    return (name: string, aspect: string) => find(findings, `Cookie ${name}: ${aspect}`)
  }
  const bare = cookie('sid=abc')
  assert.equal(bare('sid', 'Secure').status, 'weak')
  assert.match(bare('sid', 'Secure').explain, /plain http:\/\//)
  assert.equal(bare('sid', 'HttpOnly').status, 'info')
  assert.match(bare('sid', 'HttpOnly').explain, /scripts can read it/)
  assert.equal(bare('sid', 'SameSite').status, 'weak')
  assert.match(bare('sid', 'SameSite').explain, /Chromium then treats it as Lax.*None \(which requires Secure\)/)

  const onHttp = cookie('sid=abc; HttpOnly; SameSite=Lax', HTTP)
  assert.equal(onHttp('sid', 'Secure').status, 'info')
  assert.equal(onHttp('sid', 'SameSite').status, 'ok')
  assert.equal(cookie('sid=abc; Secure', HTTP)('sid', 'Secure').status, 'weak', 'browsers refuse Secure cookies from http://')
  assert.equal(cookie('sid=abc; Secure', new URL('http://localhost:8080/'))('sid', 'Secure').status, 'ok', 'localhost is a secure context')

  const none = cookie('embed=1; SameSite=None')
  assert.equal(none('embed', 'SameSite').status, 'weak')
  assert.match(none('embed', 'SameSite').explain, /requires Secure/)
  assert.equal(cookie('embed=1; SameSite=None; Secure')('embed', 'SameSite').status, 'info')
  assert.equal(cookie('x=1; samesite=STRICT; secure; httponly')('x', 'SameSite').status, 'ok', 'attribute names and values are case-insensitive')
  assert.equal(cookie('x=1; SameSite=Maybe')('x', 'SameSite').status, 'weak')

  const host = cookie(['__Host-a=1; Secure; Path=/; Domain=shop.example', '__Host-b=1; Secure', '__host-c=1; Secure; Path=/'])
  assert.equal(host('__Host-a', 'prefix').status, 'weak')
  assert.match(host('__Host-a', 'prefix').explain, /Domain attribute/)
  assert.match(host('__Host-b', 'prefix').explain, /Path is not \//)
  assert.equal(host('__host-c', 'prefix').status, 'ok')
  assert.equal(cookie('__Secure-a=1')('__Secure-a', 'prefix').status, 'weak')
  assert.equal(cookie('__Secure-a=1; Secure')('__Secure-a', 'prefix').status, 'ok')
  assert.equal(cookie('__Secure-a=1; Secure', HTTP)('__Secure-a', 'prefix').status, 'weak')

  // A single string holding two cookies (a combined header) is split before each name=
  const two = securityReport(HTTPS, { 'set-cookie': 'a=1; Expires=Wed, 21 Oct 2037 07:28:00 GMT; Secure, b=2; HttpOnly' })
  assert.deepEqual([...new Set(two.filter((f) => f.check.startsWith('Cookie ')).map((f) => f.check.split(':')[0]))], ['Cookie a', 'Cookie b'])
})

test('securityScore counts each status', () => {
  assert.deepEqual(securityScore([{ status: 'ok' }, { status: 'ok' }, { status: 'weak' }, { status: 'info' }]), { ok: 2, missing: 0, weak: 1, info: 1 })
  assert.deepEqual(securityScore([]), { ok: 0, missing: 0, weak: 0, info: 0 })
})
