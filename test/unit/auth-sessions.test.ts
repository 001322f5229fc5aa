import assert from 'node:assert/strict'
import { test } from 'node:test'
import { pino } from 'pino'
import { MemorySessionStore } from '../../src/auth/session-store.ts'
import { Sessions } from '../../src/auth/sessions.ts'
import { ManualClock } from '../helpers/clock.ts'

/** Sessions over a store: what the cache in front of it promises. */

const times = { idleMs: 30 * 60_000, absoluteMs: 12 * 3_600_000 }
const data = { provider: 'p', sub: 'alice', sid: null, claims: { email: 'a@example.com' }, idToken: 'id', accessToken: 'at', refreshToken: 'rt', tokenExpiresAt: null }

test('requests that arrive together for a session not in memory share one store read and one live session (one refresh at a time)', async () => {
  const store = new MemorySessionStore()
  const clock = new ManualClock(Date.now())
  const writer = new Sessions(store, times, 10, clock, pino({ level: 'silent' }))
  const { id } = await writer.create(data)
  // another process (or this one after a restart): the session is in the store, not in this cache
  const reader = new Sessions(store, times, 10, clock, pino({ level: 'silent' }))
  let reads = 0
  const get = store.get.bind(store)
  store.get = async (key) => {
    reads++
    return get(key)
  }
  const [a, b, c] = await Promise.all([reader.find(id), reader.find(id), reader.find(id)])
  assert.equal(reads, 1)
  assert.ok(a)
  assert.equal(a, b)
  assert.equal(b, c)
  // and from memory afterwards, without waiting
  assert.equal(reader.find(id), a)
  await writer.close()
})

test('a malformed or unknown id is no session; an ended one is gone from memory and store', async () => {
  const store = new MemorySessionStore()
  const clock = new ManualClock(Date.now())
  const sessions = new Sessions(store, times, 10, clock, pino({ level: 'silent' }))
  assert.equal(sessions.find('short'), null)
  assert.equal(await sessions.find('A'.repeat(43)), null)
  const { id, session } = await sessions.create(data)
  await sessions.end(session)
  assert.equal(await sessions.find(id), null)
  assert.equal(await store.get(session.key), undefined)
  await sessions.close()
})
