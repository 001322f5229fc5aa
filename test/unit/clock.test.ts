import assert from 'node:assert/strict'
import { test } from 'node:test'
import { systemClock } from '../../src/core/clock.ts'
import { MANUAL_EPOCH, ManualClock, waitFor } from '../helpers/clock.ts'

/** The clock every time-dependent component reads (src/core/clock.ts) and its manual stand-in for tests. */

test('systemClock: now() is Date.now; its timers are Node timers that can be cleared and unref-ed', async () => {
  const before = Date.now()
  const now = systemClock.now()
  assert.ok(now >= before && now <= Date.now())
  const order: string[] = []
  const cleared = systemClock.setTimeout(() => order.push('cleared'), 0)
  systemClock.clearTimeout(cleared)
  systemClock.clearTimeout(undefined)
  const t = systemClock.setTimeout(() => order.push('timeout'), 1)
  assert.equal(t.unref(), t, 'unref returns the timer, as Node does')
  t.ref()
  let ticks = 0
  const i = systemClock.setInterval(() => {
    if (++ticks === 3) systemClock.clearInterval(i)
  }, 1)
  await waitFor('the timeout and three interval ticks', () => order.length === 1 && ticks === 3)
  assert.deepEqual(order, ['timeout'])
  systemClock.clearInterval(undefined)
})

test('ManualClock: time moves only with advance, from a whole-second start', () => {
  const c = new ManualClock()
  assert.equal(c.now(), MANUAL_EPOCH)
  assert.equal(MANUAL_EPOCH % 1000, 0)
  assert.equal(new ManualClock(5).now(), 5)
  c.advance(0)
  assert.equal(c.now(), MANUAL_EPOCH)
  c.advance(1500)
  assert.equal(c.now(), MANUAL_EPOCH + 1500)
  assert.throws(() => c.advance(-1), /advance takes a duration >= 0 in ms, not -1/)
  assert.throws(() => c.advance(Number.NaN), RangeError)
})

test('ManualClock: advance runs due timers in order, synchronously, each at its own due time', () => {
  const c = new ManualClock(0)
  const ran: Array<[string, number]> = []
  const mark = (name: string) => () => ran.push([name, c.now()])
  c.setTimeout(mark('c@30'), 30)
  c.setTimeout(mark('a@10'), 10)
  c.setTimeout(mark('b@10'), 10) // same due time: in the order set
  c.setTimeout(mark('d@31'), 31)
  c.setTimeout(mark('negative'), -5) // as Node: a negative delay means now
  assert.deepEqual(c.dueIn(), [0, 10, 10, 30, 31])
  c.advance(30)
  assert.deepEqual(ran, [['negative', 0], ['a@10', 10], ['b@10', 10], ['c@30', 30]])
  assert.equal(c.now(), 30)
  assert.equal(c.pending(), 1)
  assert.deepEqual(c.dueIn(), [1])
  c.advance(1)
  assert.deepEqual(ran.at(-1), ['d@31', 31])
  assert.equal(c.pending(), 0)
})

test('ManualClock: a timer set while advancing runs within the same advance if it falls due in the span', () => {
  const c = new ManualClock(0)
  const ran: Array<[string, number]> = []
  c.setTimeout(() => {
    ran.push(['first', c.now()])
    c.setTimeout(() => ran.push(['chained', c.now()]), 15) // due at 25: within
    c.setTimeout(() => ran.push(['late', c.now()]), 50) // due at 60: after
  }, 10)
  c.advance(40)
  assert.deepEqual(ran, [['first', 10], ['chained', 25]])
  c.advance(20)
  assert.deepEqual(ran.at(-1), ['late', 60])
})

test('ManualClock: intervals repeat every period until cleared, also from inside their own callback', () => {
  const c = new ManualClock(0)
  const at: number[] = []
  const i = c.setInterval(() => {
    at.push(c.now())
    if (at.length === 4) c.clearInterval(i)
  }, 100)
  c.advance(250)
  assert.deepEqual(at, [100, 200])
  assert.deepEqual(c.dueIn(), [50], 'an interval stays pending, due at its next period')
  c.advance(1000)
  assert.deepEqual(at, [100, 200, 300, 400])
  assert.equal(c.pending(), 0)
  // a zero period still moves forward (1 ms), so advance ends
  let n = 0
  const z = c.setInterval(() => n++, 0)
  c.advance(5)
  assert.equal(n, 5)
  c.clearInterval(z)
})

test('ManualClock: cleared timers never run; clearing is safe twice, with undefined, and across kinds', () => {
  const c = new ManualClock(0)
  let ran = 0
  const t = c.setTimeout(() => ran++, 10)
  const u = c.setTimeout(() => ran++, 10)
  assert.equal(t.unref(), t)
  assert.equal(t.ref(), t)
  c.clearTimeout(t)
  c.clearTimeout(t)
  c.clearTimeout(undefined)
  c.clearInterval(u) // as in Node, either clear function clears either kind
  c.advance(100)
  assert.equal(ran, 0)
  // a timer that clears a later one before it is due
  const later = c.setTimeout(() => ran++, 20)
  c.setTimeout(() => c.clearTimeout(later), 10)
  c.advance(100)
  assert.equal(ran, 0)
})

test('ManualClock: an error thrown by a timer comes out of advance, and the clock stays usable', () => {
  const c = new ManualClock(0)
  c.setTimeout(() => {
    throw new Error('boom')
  }, 10)
  let after = 0
  c.setTimeout(() => after++, 20)
  assert.throws(() => c.advance(30), /boom/)
  assert.equal(c.now(), 10, 'stopped at the failing timer')
  c.advance(20)
  assert.equal(after, 1)
  assert.equal(c.now(), 30)
  c.setTimeout(() => c.advance(1), 1)
  assert.throws(() => c.advance(1), /advance called from inside a timer/)
})

test('waitFor: resolves once the condition holds, fails naming it after the bound', async () => {
  let n = 0
  await waitFor('three polls', () => ++n >= 3)
  assert.equal(n, 3)
  await assert.rejects(waitFor('never', () => false, 30), /timed out after 30 ms waiting for: never/)
})
