import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Hub } from '../../src/realtime/hub.ts'
import { MemoryEngine } from '../../src/realtime/memory-engine.ts'

/**
 * The hub's shutdown list (src/realtime/hub.ts, `hold` and `drain`): drain
 * ends every exchange still held, once; one that ended on its own is not
 * ended again; one that starts after the drain is ended as it starts.
 */

function hub(): Hub {
  return new Hub([{ pattern: 'c:*', publish: 'clients', subscribe: 'anyone', history: { size: 10, age: 60_000 }, presence: false }], new MemoryEngine(), { maxMessageSize: 1024 })
}

test('drain ends each held exchange once, and none that was released', () => {
  const h = hub()
  const ended: string[] = []
  h.hold(() => ended.push('a'))
  const releaseB = h.hold(() => ended.push('b'))
  h.hold(() => ended.push('c'))
  releaseB()
  h.drain()
  assert.deepEqual(ended, ['a', 'c'])
  h.drain()
  assert.deepEqual(ended, ['a', 'c'], 'a second drain ends nothing again')
})

test('an exchange that starts after the drain is ended at once', () => {
  const h = hub()
  h.drain()
  const ended: string[] = []
  const release = h.hold(() => ended.push('late'))
  assert.deepEqual(ended, ['late'])
  release()
  assert.deepEqual(ended, ['late'])
})
