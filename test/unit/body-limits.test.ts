import assert from 'node:assert/strict'
import { test } from 'node:test'
import { checkBody } from '../../src/core/body.ts'
import { validateConfig } from '../../src/config/load.ts'

/** The clock on a request body (src/core/body.ts) and the defaults of the body limits. */

const LIMITS = { bodyIdleTimeout: 30_000, bodyMinRate: 500, bodyRateGrace: 20_000 }

test('within the grace period only idleness cuts: a body that sent nothing yet is not cut before 20 s', () => {
  assert.deepEqual(checkBody(19_999, { start: 0, bytes: 0, lastByte: 19_000 }, LIMITS), { wait: 1 })
  assert.deepEqual(checkBody(5_000, { start: 0, bytes: 0, lastByte: 0 }, LIMITS), { wait: 15_000 })
})

test('after the grace period, an average below the minimum rate since the start is cut', () => {
  // 9 999 bytes in 20 s: under 500 bytes/s although a byte came a moment ago (the idle timeout never fires)
  assert.deepEqual(checkBody(20_000, { start: 0, bytes: 9_999, lastByte: 19_990 }, LIMITS), { cut: 'rate' })
  // 10 000 bytes in 20 s keep up exactly; the next check is when those bytes no longer would
  assert.deepEqual(checkBody(19_000, { start: 0, bytes: 10_000, lastByte: 18_000 }, LIMITS), { wait: 1_000 })
  // 1 MB in 30 s is fast enough until 2 000 s would have passed; idleness comes first
  assert.deepEqual(checkBody(30_000, { start: 0, bytes: 1_000_000, lastByte: 29_000 }, LIMITS), { wait: 29_000 })
  assert.deepEqual(checkBody(40_000, { start: 10_000, bytes: 5_000, lastByte: 39_000 }, LIMITS), { cut: 'rate' })
})

test('no byte for bodyIdleTimeout is cut as idle, whatever the rate', () => {
  assert.deepEqual(checkBody(31_000, { start: 0, bytes: 10_000_000, lastByte: 1_000 }, LIMITS), { cut: 'idle' })
})

test('bodyMinRate 0: no minimum, only the idle timeout', () => {
  const off = { ...LIMITS, bodyMinRate: 0 }
  assert.deepEqual(checkBody(1_000_000, { start: 0, bytes: 1, lastByte: 999_000 }, off), { wait: 29_000 })
})

test('the body limits and the proxy options have the documented defaults; timeouts.queue follows timeouts.connect', () => {
  const cfg = validateConfig({
    sites: [
      {
        routes: [
          { path: '/a/', proxy: { upstreams: ['http://127.0.0.1:1'], timeouts: { connect: '2s' } } },
          { path: '/b/', proxy: { upstreams: ['http://127.0.0.1:1'], timeouts: { queue: '300ms' }, requestBuffering: false } },
        ],
      },
    ],
  })
  assert.equal(cfg.limits.bodyMinRate, 500)
  assert.equal(cfg.limits.bodyRateGrace, 20_000)
  assert.equal(cfg.limits.bodyBuffer, 64 * 1024)
  assert.equal(cfg.limits.bodyTempMax, 1024 ** 3)
  const [a, b] = cfg.sites[0]!.routes.map((r) => r.proxy!)
  assert.equal(a!.requestBuffering, true)
  assert.deepEqual(a!.timeouts, { connect: 2_000, response: 60_000, idle: 60_000, queue: 2_000 })
  assert.equal(b!.requestBuffering, false)
  assert.equal(b!.timeouts.queue, 300)
  assert.equal(b!.timeouts.connect, 5_000)
})

test('bad values name their path', () => {
  assert.throws(() => validateConfig({ limits: { bodyMinRate: -1, bodyBuffer: 'lots' }, sites: [{ routes: [{ path: '/', redirect: { to: '/x' } }] }] }), (err: Error & { issues?: string[] }) => {
    const text = (err.issues ?? []).join('\n')
    assert.match(text, /limits\.bodyMinRate/)
    assert.match(text, /limits\.bodyBuffer: "lots" is not a size/)
    return true
  })
})
