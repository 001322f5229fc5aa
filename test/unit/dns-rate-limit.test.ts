import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ResponseRateLimit } from '../../src/dns/rate-limit.ts'
import { ManualClock } from '../helpers/clock.ts'
import { addressSet } from '../../src/http/address.ts'

const make = (over: Partial<ConstructorParameters<typeof ResponseRateLimit>[0]> = {}) => {
  const clock = new ManualClock()
  const limited: string[] = []
  const rrl = new ResponseRateLimit({ perSecond: 5, slip: 2, ipv4Prefix: 24, ipv6Prefix: 56, exempt: addressSet(['127.0.0.0/8']), maxNetworks: 1000, ...over }, clock)
  rrl.onLimit = (n) => limited.push(n)
  return { clock, rrl, limited }
}

test('a network gets perSecond answers, then every slip-th query a truncated answer and the rest nothing; the rate comes back with time', () => {
  const { clock, rrl, limited } = make()
  const verdicts = Array.from({ length: 10 }, (_, i) => rrl.check(`192.0.2.${i % 3}`))
  assert.deepEqual(verdicts, ['answer', 'answer', 'answer', 'answer', 'answer', 'drop', 'slip', 'drop', 'slip', 'drop'])
  assert.deepEqual(limited, ['192.0.2.0/24'], 'logged once, with the network')
  // another /24 has its own budget
  assert.equal(rrl.check('198.51.100.1'), 'answer')
  clock.advance(400) // 2 tokens back
  assert.deepEqual([rrl.check('192.0.2.9'), rrl.check('192.0.2.9'), rrl.check('192.0.2.9')], ['answer', 'answer', 'drop'])
  clock.advance(1000)
  assert.equal(rrl.check('192.0.2.9'), 'answer')
})

test('slip 0 drops every limited query, slip 1 truncates every one; exempt clients are never limited; IPv6 by /56', () => {
  const drop = make({ slip: 0, perSecond: 1 })
  assert.deepEqual([1, 2, 3].map(() => drop.rrl.check('192.0.2.1')), ['answer', 'drop', 'drop'])
  const tc = make({ slip: 1, perSecond: 1 })
  assert.deepEqual([1, 2, 3].map(() => tc.rrl.check('192.0.2.1')), ['answer', 'slip', 'slip'])
  assert.deepEqual([1, 2, 3].map(() => tc.rrl.check('127.0.0.1')), ['answer', 'answer', 'answer'])
  assert.equal(tc.rrl.network('2001:db8:aaaa:bbff:1::1'), '2001:0db8:aaaa:bb00:0000:0000:0000:0000/56')
  assert.equal(tc.rrl.check('2001:db8:aaaa:bb01::1'), 'answer')
  assert.equal(tc.rrl.check('2001:db8:aaaa:bb02::1'), 'slip', 'the same /56')
})

test('memory is bounded: at most maxNetworks networks are tracked', () => {
  const { rrl } = make({ maxNetworks: 10 })
  for (let i = 0; i < 1000; i++) rrl.check(`10.${i >> 8}.${i & 255}.1`)
  assert.equal((rrl as unknown as { buckets: { size: number } }).buckets.size, 10)
})
