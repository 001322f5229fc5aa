import assert from 'node:assert/strict'
import { test } from 'node:test'
import { clientResolver } from '../../src/core/client-address.ts'
import type { Req } from '../../src/core/types.ts'

const req = (peer: string, headers: Record<string, string> = {}) => ({ socket: { remoteAddress: peer }, headers }) as unknown as Req

test('without trusted proxies the peer is the client, whatever the headers say', () => {
  const r = clientResolver([])
  assert.equal(r(req('198.51.100.1', { 'x-forwarded-for': '1.2.3.4' })), '198.51.100.1')
})

test('through trusted proxies: the rightmost address that is not one of them', () => {
  const r = clientResolver(['10.0.0.0/8', '127.0.0.1'])
  assert.equal(r(req('10.0.0.2', { 'x-forwarded-for': '6.6.6.6, 203.0.113.9, 10.0.0.7' })), '203.0.113.9', 'a spoofed leftmost entry is not believed')
  assert.equal(r(req('127.0.0.1', { forwarded: 'for=192.0.2.60;proto=http, for="[2001:db8::1]:4711"' })), '2001:db8::1')
  assert.equal(r(req('10.0.0.2', {})), '10.0.0.2', 'a trusted proxy that forwarded nothing')
  assert.equal(r(req('10.0.0.2', { 'x-forwarded-for': 'unknown' })), '10.0.0.2', 'an obfuscated hop')
  assert.equal(r(req('::ffff:10.0.0.2', { 'x-forwarded-for': '203.0.113.1' })), '203.0.113.1', 'IPv4-mapped peers')
  assert.equal(r(req('192.0.2.1', { 'x-forwarded-for': '203.0.113.1' })), '192.0.2.1', 'an untrusted peer')
})
