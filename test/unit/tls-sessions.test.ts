import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ticketKeys } from '../../src/tls/sessions.ts'

/** Ticket keys (src/tls/sessions.ts): one 48-byte key per rotation window, the same for every process with the same secret. */

test('the same secret and window give the same 48 bytes; the next window or another secret a different key', () => {
  const secret = Buffer.alloc(32, 7)
  const k = ticketKeys(secret, 100)
  assert.equal(k.length, 48)
  assert.deepEqual(ticketKeys(Buffer.alloc(32, 7), 100), k, 'another process with the same file derives the same key')
  assert.notDeepEqual(ticketKeys(secret, 101), k, 'rotated')
  assert.notDeepEqual(ticketKeys(Buffer.alloc(32, 8), 100), k, 'another secret')
})
