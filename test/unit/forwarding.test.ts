import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { createForwarding, type ClientAddressHeader } from '../../src/core/forwarding.ts'
import { nodeAddress } from '../../src/http/address.ts'
import { parseForwarded } from '../../src/http/forwarded.ts'
import type { Req } from '../../src/core/types.ts'

/** The one client-address and forwarding service (src/core/forwarding.ts) and the field parsers under it. */

const req = (peer: string, headers: Record<string, string> = {}) => ({ socket: { remoteAddress: peer }, headers }) as unknown as Req
const own = { scheme: 'http', authority: 'site.test' } as const
const service = (trustedProxies: string[], clientAddressHeader: ClientAddressHeader = 'x-forwarded-for') => createForwarding({ trustedProxies, clientAddressHeader })
const address = (s: ReturnType<typeof service>, peer: string, headers: Record<string, string> = {}) => s.view(req(peer, headers), own).address

test('without trusted proxies the peer is the client, whatever the headers say', () => {
  const s = service([])
  assert.equal(address(s, '198.51.100.1', { 'x-forwarded-for': '1.2.3.4', forwarded: 'for=1.2.3.4' }), '198.51.100.1')
})

test('through trusted proxies: the rightmost address that is not one of them', () => {
  const s = service(['10.0.0.0/8', '127.0.0.1'])
  assert.equal(address(s, '10.0.0.2', { 'x-forwarded-for': '6.6.6.6, 203.0.113.9, 10.0.0.7' }), '203.0.113.9', 'a spoofed leftmost entry is not believed')
  assert.equal(address(s, '10.0.0.2', {}), '10.0.0.2', 'a trusted proxy that forwarded nothing')
  assert.equal(address(s, '10.0.0.2', { 'x-forwarded-for': 'unknown' }), '10.0.0.2', 'an obfuscated hop')
  assert.equal(address(s, '10.0.0.2', { 'x-forwarded-for': '6.6.6.6, garbage, 10.0.0.9' }), '10.0.0.9', 'knowledge stops at a malformed hop')
  assert.equal(address(s, '::ffff:10.0.0.2', { 'x-forwarded-for': '203.0.113.1' }), '203.0.113.1', 'IPv4-mapped peers')
  assert.equal(address(s, '192.0.2.1', { 'x-forwarded-for': '203.0.113.1' }), '192.0.2.1', 'an untrusted peer')
  assert.equal(address(s, '10.0.0.2', { 'x-forwarded-for': '10.0.0.3, 10.0.0.4' }), '10.0.0.3', 'every hop trusted: the oldest')
})

test('only the configured field is read', () => {
  const xff = service(['127.0.0.1'])
  assert.equal(address(xff, '127.0.0.1', { forwarded: 'for=192.0.2.1' }), '127.0.0.1')
  const fwd = service(['127.0.0.1'], 'forwarded')
  assert.equal(address(fwd, '127.0.0.1', { 'x-forwarded-for': '192.0.2.1' }), '127.0.0.1')
  assert.equal(address(fwd, '127.0.0.1', { forwarded: 'for=192.0.2.60;proto=http, for="[2001:db8::1]:4711"' }), '2001:db8::1')
  assert.equal(address(fwd, '127.0.0.1', { forwarded: 'for="192.0.2.1:4711"' }), '192.0.2.1')
  assert.equal(address(fwd, '127.0.0.1', { forwarded: 'for=_hidden' }), '127.0.0.1', 'an obfuscated node')
})

test('scheme and host as the client used them, from a trusted peer only', () => {
  const xff = service(['127.0.0.1'])
  let v = xff.view(req('127.0.0.1', { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'Example.TEST:8443' }), own)
  assert.equal(v.scheme, 'https')
  assert.equal(v.host, 'example.test:8443')
  v = xff.view(req('127.0.0.1', { 'x-forwarded-proto': 'gopher', 'x-forwarded-host': 'a@b' }), own)
  assert.deepEqual([v.scheme, v.host], ['http', 'site.test'], 'invalid values are ignored')
  v = xff.view(req('192.0.2.9', { 'x-forwarded-proto': 'https' }), own)
  assert.equal(v.scheme, 'http', 'an untrusted peer cannot claim https')
  const fwd = service(['127.0.0.1'], 'forwarded')
  v = fwd.view(req('127.0.0.1', { forwarded: 'for=192.0.2.1;proto=https;host="a.test"' }), own)
  assert.deepEqual([v.address, v.scheme, v.host], ['192.0.2.1', 'https', 'a.test'])
})

test('Forwarded elements: tokens, quoted strings with escapes, case-insensitive names, malformed elements as null', () => {
  assert.deepEqual(parseForwarded('for=192.0.2.43, for="[2001:db8:cafe::17]:4711";Proto=https'), [{ for: '192.0.2.43' }, { for: '[2001:db8:cafe::17]:4711', proto: 'https' }])
  assert.deepEqual(parseForwarded('for="a\\"b";by=x'), [{ for: 'a"b', by: 'x' }])
  assert.deepEqual(parseForwarded('for=1.2.3.4;for=5.6.7.8, for=9.9.9.9'), [null, { for: '9.9.9.9' }], 'a repeated parameter')
  assert.deepEqual(parseForwarded('for="unterminated'), [null])
  assert.deepEqual(parseForwarded('garbage, for=1.1.1.1'), [null, { for: '1.1.1.1' }])
  assert.deepEqual(parseForwarded('for=1.1.1.1 x'), [null])
})

test('nodes: ports and brackets parsed, anything else refused', () => {
  assert.equal(nodeAddress('192.0.2.1'), '192.0.2.1')
  assert.equal(nodeAddress(' 192.0.2.1:4711 '), '192.0.2.1')
  assert.equal(nodeAddress('[2001:DB8::1]:80'), '2001:db8::1')
  assert.equal(nodeAddress('[2001:db8::1]'), '2001:db8::1')
  assert.equal(nodeAddress('2001:db8::1'), '2001:db8::1')
  assert.equal(nodeAddress('::ffff:192.0.2.1'), '192.0.2.1')
  for (const bad of ['unknown', '_obf', 'fe80::1%eth0', '[fe80::1%25eth0]:80', '192.0.2.1:', '192.0.2.1:x', '[2001:db8::1', '[192.0.2.1]', '1.2.3', '', '[::1]x']) assert.equal(nodeAddress(bad), null, bad)
})

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join('.'))
const ipv6 = fc.ipV6()

test('property: whatever a client writes before a trusted proxy, it cannot become anything but what that proxy recorded', () => {
  const s = service(['10.0.0.0/8'])
  const junk = fc.array(fc.oneof(ipv4, ipv6, fc.string({ maxLength: 20 })), { maxLength: 6 })
  fc.assert(
    fc.property(junk, ipv4.filter((a) => !a.startsWith('10.')), (forged, real) => {
      // the client writes `forged`; the trusted proxy 10.0.0.1 appends the address it saw
      const chain = [...forged.map((f) => f.replace(/,/g, '')), real].join(', ')
      assert.equal(address(s, '10.0.0.1', { 'x-forwarded-for': chain }), real)
    }),
  )
})

test('property: IPv6 nodes in Forwarded, quoted with brackets and ports, resolve to the address', () => {
  const s = service(['127.0.0.1'], 'forwarded')
  fc.assert(
    fc.property(ipv6, fc.integer({ min: 1, max: 65535 }), (a, port) => {
      const got = address(s, '127.0.0.1', { forwarded: `for="[${a}]:${port}"` })
      assert.equal(got, nodeAddress(a))
      assert.notEqual(got, '127.0.0.1')
    }),
  )
})

test('upstream fields: the configured chain, extended, in both fields; the client view in X-Forwarded-Proto/Host', () => {
  const s = service(['127.0.0.1'])
  const r = req('127.0.0.1', { 'x-forwarded-for': '203.0.113.9, [2001:db8::2]:5', 'x-forwarded-proto': 'https' })
  const out: Record<string, string | string[] | undefined> = { forwarded: 'for=6.6.6.6' }
  s.addUpstreamFields(out, s.view(r, own), own)
  assert.deepEqual(out, {
    'x-forwarded-for': '203.0.113.9, 2001:db8::2, 127.0.0.1',
    forwarded: 'for=203.0.113.9, for="[2001:db8::2]", for=127.0.0.1;proto=http;host="site.test"',
    'x-forwarded-proto': 'https',
    'x-forwarded-host': 'site.test',
  })
})
