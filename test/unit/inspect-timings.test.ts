import assert from 'node:assert/strict'
import { test } from 'node:test'
import { phaseDurations } from '../../src/inspect/timings.ts'

/**
 * The request phases come from monotonic marks taken in event handlers,
 * whose order is not guaranteed (a server that answers before the request
 * is flushed gets its first byte before 'finish'). The durations are never
 * negative and always add up to done - start.
 */

test('marks in order give their differences', () => {
  assert.deepEqual(phaseDurations({ start: 10, sent: 12, first: 20, done: 25 }), { send: 2, ttfb: 8, transfer: 5 })
})

test('a first byte before the request was seen flushed: the send ends at the first byte, no negative wait', () => {
  assert.deepEqual(phaseDurations({ start: 10, sent: 30, first: 20, done: 25 }), { send: 10, ttfb: 0, transfer: 5 })
})

test('marks out of order in every way stay >= 0 and add up to the whole', () => {
  for (let i = 0; i < 500; i++) {
    const [start, sent, first, done] = [0, 0, 0, 0].map(() => Math.random() * 100) as [number, number, number, number]
    const d = phaseDurations({ start, sent, first, done })
    for (const [k, v] of Object.entries(d)) assert.ok(v >= 0, `${k} = ${v} for ${[start, sent, first, done]}`)
    assert.ok(Math.abs(d.send + d.ttfb + d.transfer - Math.max(0, done - start)) < 1e-9)
  }
})

test('a missing mark (the request never seen flushed, no first byte) counts as no time', () => {
  assert.deepEqual(phaseDurations({ start: 10, sent: undefined, first: undefined, done: 15 }), { send: 0, ttfb: 0, transfer: 5 })
})
