import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { encodedBelow, h2Authority, normalizePath, originOf, parseAuthority, parseRequestTarget, TargetError } from '../../src/http/target.ts'

/** The one request-target and authority parser (src/http/target.ts): RFC 9112 §3.2, RFC 9110 §4.2 and §7.2, RFC 3986. */

const refused = (fn: () => unknown, pattern?: RegExp) =>
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof TargetError, String(err))
    if (pattern) assert.match(err.message, pattern)
    return true
  })

test('origin-form: path, encoded path and query', () => {
  const t = parseRequestTarget('GET', '/a/./b/../c%20d/?x=1&y=/..')
  assert.deepEqual(t, { form: 'origin', scheme: null, authority: null, rawPath: '/a/./b/../c%20d/', path: '/a/c d/', encodedPath: '/a/c%20d/', query: '?x=1&y=/..' })
  assert.equal(parseRequestTarget('GET', '/').path, '/')
})

test('absolute-form: scheme, authority and path; userinfo and fragments refused', () => {
  const t = parseRequestTarget('GET', 'HTTP://Example.COM:8080?q')
  assert.equal(t.form, 'absolute')
  assert.equal(t.scheme, 'http')
  assert.deepEqual(t.authority, { host: 'example.com', port: 8080, text: 'example.com:8080' })
  assert.equal(t.path, '/')
  assert.equal(t.query, '?q')
  refused(() => parseRequestTarget('GET', 'http://allowed.example:1@127.0.0.1:9/secret'), /userinfo/)
  refused(() => parseRequestTarget('GET', 'http://user@a.test/'), /userinfo/)
  refused(() => parseRequestTarget('GET', 'http://a.test/x#frag'), /fragment/)
  refused(() => parseRequestTarget('GET', 'ftp://a.test/'))
  refused(() => parseRequestTarget('GET', 'http:///x'), /empty/)
})

test('authority-form only for CONNECT, asterisk-form only for OPTIONS', () => {
  const t = parseRequestTarget('CONNECT', '[::1]:443')
  assert.deepEqual(t.authority, { host: '::1', port: 443, text: '[::1]:443' })
  refused(() => parseRequestTarget('CONNECT', 'example.com'), /host:port/)
  refused(() => parseRequestTarget('CONNECT', 'u@example.com:443'), /userinfo/)
  assert.equal(parseRequestTarget('OPTIONS', '*').form, 'asterisk')
  refused(() => parseRequestTarget('GET', '*'))
})

test('authorities: names, dotted-decimal IPv4, bracketed IPv6, ports', () => {
  assert.deepEqual(parseAuthority('Example.COM.'), { host: 'example.com', port: null, text: 'example.com' })
  assert.deepEqual(parseAuthority('a.test:'), { host: 'a.test', port: null, text: 'a.test' })
  assert.deepEqual(parseAuthority('192.0.2.1:80'), { host: '192.0.2.1', port: 80, text: '192.0.2.1:80' })
  assert.deepEqual(parseAuthority('[2001:DB8::1]:8443'), { host: '2001:db8::1', port: 8443, text: '[2001:db8::1]:8443' })
  assert.equal(parseAuthority('_dmarc.example').host, '_dmarc.example')
  for (const bad of ['', ':80', 'a b', 'a%2eb', 'a/b', 'exa\\mple', 'a.test:0', 'a.test:65536', 'a.test:99999', 'a.test:8x', '[::1', '[::1]x', '[fe80::1%25eth0]', '[v1.x]', '127.1', '0x7f.0.0.1', '2130706433', '017.0.0.1', '256.0.0.1', '1.2.3.4.5', '-a.test', 'a..test', 'a'.repeat(64) + '.test', 'ä.test', 'a\0.test']) {
    refused(() => parseAuthority(bad))
  }
})

test('HTTP/2: a Host field must name the authority of :authority (RFC 9113 §8.3.1)', () => {
  assert.equal(h2Authority('a.test:8443', undefined), 'a.test:8443')
  assert.equal(h2Authority(undefined, 'a.test'), 'a.test')
  assert.equal(h2Authority('A.test', 'a.TEST'), 'A.test')
  refused(() => h2Authority('a.test', 'b.test'), /differs/)
})

test('paths that could leave the tree, or are not faithful, are refused', () => {
  for (const bad of ['/..', '/a/../..', '/%2e%2e', '/%2E%2e/x', '/.%2e', '/a%2fb', '/a%2Fb', '/a\\b', '/a%5cb', '/a%00', '/a\0', '/%c0%ae%c0%ae', '/%e0%80%ae', '/%ff', '/%zz', '/%', '/a%2', '/a b', '/a"b', '/a<b', '/%25%32%65%25%32%65/']) {
    if (bad === '/%25%32%65%25%32%65/') {
      // double encoding decodes once, to a literal `%2e%2e` segment: harmless, kept as a name
      assert.equal(parseRequestTarget('GET', bad).path, '/%2e%2e/')
      continue
    }
    refused(() => parseRequestTarget('GET', bad), undefined)
  }
})

test('encodedBelow drops the same whole segments the route prefix covers', () => {
  assert.equal(encodedBelow('/api/x%20y/z', '/api/'), '/x%20y/z')
  assert.equal(encodedBelow('/api/x', '/api'), '/x')
  assert.equal(encodedBelow('/api', '/api'), '/')
  assert.equal(encodedBelow('/%61pi/x', '/api/'), '/x')
  assert.equal(encodedBelow('/a/b/c', '/a/b/'), '/c')
  assert.equal(encodedBelow('/a/b/', '/'), '/a/b/')
})

// Generators over every trick: percent-encoded dots and slashes, double encoding, backslashes, NUL, overlong UTF-8, mixed case.
const segmentPiece = fc.constantFrom('a', 'B', '.', '..', '%2e', '%2E', '%2e%2e', '.%2e', '%2f', '%2F', '%5c', '\\', '%00', '%c0%ae', '%c0%af', '%e0%80%ae', '%25', '%252e', '%25%32%65', '~', '%7e', 'é', '%C3%A9', '%ff', ';', '=', '@', ':', '')
const rawPath = fc.array(fc.array(segmentPiece, { maxLength: 3 }).map((p) => p.join('')), { maxLength: 6 }).map((segs) => '/' + segs.join('/'))

test('property: an accepted path never climbs out, never holds a slash, backslash or NUL inside a segment, and is stable', () => {
  fc.assert(
    fc.property(rawPath, (raw) => {
      const path = normalizePath(raw)
      if (path === null) return
      // raw non-ASCII is not a URI character (RFC 3986 §2): the target is refused as a whole
      if (/[^\x21-\x7e]/.test(raw)) return refused(() => parseRequestTarget('GET', raw), /characters a path cannot have/)
      assert.ok(path.startsWith('/'))
      const segments = path.split('/').slice(1)
      for (const s of segments) {
        assert.notEqual(s, '..')
        assert.notEqual(s, '.')
        assert.ok(!s.includes('\\') && !s.includes('\0'), s)
      }
      // normalising the encoded form again gives the same decoded path: what goes upstream is what was routed
      const t = parseRequestTarget('GET', raw)
      assert.equal(t.path, path)
      assert.equal(normalizePath(t.encodedPath), path)
      assert.equal(t.encodedPath.split('/').length, path.split('/').length)
    }),
    { numRuns: 2000 },
  )
})

const hostPiece = fc.constantFrom('a', 'Z', '0', '9', '-', '.', '_', '%2e', '@', ':', '[', ']', '::1', '127.0.0.1', '0x7f', ' ', '\\', '/', '#', '?', 'é', '\0')
const authorityText = fc.array(hostPiece, { maxLength: 8 }).map((p) => p.join(''))

test('property: an accepted authority has no userinfo, a valid port, and round-trips through its text', () => {
  fc.assert(
    fc.property(authorityText, fc.option(fc.integer({ min: -1, max: 70000 })), (host, port) => {
      const value = port === null ? host : `${host}:${port}`
      let a
      try {
        a = parseAuthority(value)
      } catch (err) {
        assert.ok(err instanceof TargetError)
        return
      }
      assert.ok(!value.includes('@'))
      assert.ok(a.port === null || (a.port >= 1 && a.port <= 65535))
      assert.match(a.host, /^[a-z0-9._:-]+$/)
      assert.deepEqual(parseAuthority(a.text), a)
    }),
    { numRuns: 2000 },
  )
})

test('property: absolute-form and origin-form give the same path for the same target', () => {
  fc.assert(
    fc.property(rawPath, fc.constantFrom('http', 'HTTPS'), (raw, scheme) => {
      let origin
      try {
        origin = parseRequestTarget('GET', raw)
      } catch {
        refused(() => parseRequestTarget('GET', `${scheme}://a.test${raw}`))
        return
      }
      const absolute = parseRequestTarget('GET', `${scheme}://a.test${raw}`)
      assert.equal(absolute.path, origin.path)
      assert.equal(absolute.encodedPath, origin.encodedPath)
    }),
  )
})

test('originOf: the origin of a Referer, serialised as browsers do', () => {
  assert.equal(originOf('https://Example.TEST/path?q#f'), 'https://example.test')
  assert.equal(originOf('https://example.test:443/x'), 'https://example.test')
  assert.equal(originOf('http://example.test:8080'), 'http://example.test:8080')
  assert.equal(originOf('http://[::1]:80/'), 'http://[::1]')
  for (const bad of ['ftp://a.test/', 'https://evil.test@good.test/', 'https://a.test:99999/', '/relative', 'javascript:alert(1)', 'https://0x7f.1/']) assert.equal(originOf(bad), null, bad)
})
