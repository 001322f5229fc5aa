import assert from 'node:assert/strict'
import { test } from 'node:test'
import { LoginLimiter } from '../../src/auth/idp/limits.ts'
import { MemoryRateLimitStore } from '../../src/core/rate-limit-store.ts'
import { ManualClock } from '../helpers/clock.ts'

/** The built-in provider's login limits, against the ways around them a flood would try. */

const limits = { perAccount: { attempts: 10, per: 15 * 60_000 }, perAddress: { attempts: 30, per: 15 * 60_000 } }

test('a locked account stays locked while a flood of other names from other addresses goes by', () => {
  const clock = new ManualClock(Date.now())
  const limiter = new LoginLimiter(limits, clock)
  for (let i = 0; i < 10; i++) assert.equal(limiter.take('alice', `192.0.2.${i}`), null)
  assert.notEqual(limiter.take('alice', '192.0.2.200'), null)
  // 60,000 guesses at other names, each from an address of its own
  for (let i = 0; i < 60_000; i++) limiter.take(`user${i}`, `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`)
  assert.notEqual(limiter.take('Alice', '198.51.100.7'), null, 'the same account, whatever the case and the address')
  // after the window, the real user signs in from anywhere
  clock.advance(15 * 60_000)
  assert.equal(limiter.take('alice', '203.0.113.9'), null)
})

test('an IPv6 client counts by its /64: new addresses of one network share its bucket', () => {
  const clock = new ManualClock(Date.now())
  const limiter = new LoginLimiter(limits, clock)
  for (let i = 0; i < 30; i++) assert.equal(limiter.take(`name${i}`, `2001:db8:0:1::${(i + 1).toString(16)}`), null)
  assert.notEqual(limiter.take('name-31', '2001:db8:0:1:ffff::1'), null)
  assert.equal(limiter.take('name-32', '2001:db8:0:2::1'), null, 'another /64 has its own')
})

test('with a shared store (workers, nodes on Redis), the attempts are counted once for every process', async () => {
  const clock = new ManualClock(Date.now())
  const shared = new MemoryRateLimitStore()
  const nodes = [new LoginLimiter(limits, clock, shared), new LoginLimiter(limits, clock, shared)]
  for (let i = 0; i < 10; i++) assert.equal(await nodes[i % 2]!.take('alice', `192.0.2.${i}`), null)
  assert.notEqual(await nodes[0]!.take('alice', '192.0.2.100'), null, 'the eleventh attempt, on either node')
  assert.notEqual(await nodes[1]!.take('alice', '192.0.2.101'), null)
  assert.equal(await nodes[1]!.take('bob', '192.0.2.102'), null, 'another account has its own bucket')
})
