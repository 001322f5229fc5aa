import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Accumulator, LATENCY_BOUNDS_MS, LATENCY_BUCKETS, MINUTE_SAMPLES, SECOND_SAMPLES, TimeSeries, latencyBucket, quantile } from '../../src/admin/series.ts'

/**
 * The dashboard's in-memory time series (src/admin/series.ts): fixed rings
 * of one-second and one-minute samples, minutes that sum their seconds and
 * merge their histograms, and percentiles interpolated within a bucket as
 * Prometheus's histogram_quantile does. Time is a manual clock.
 */

function clock(start = 0) {
  const c = { t: start, now: () => c.t }
  return c
}

/** A histogram with `n` answers of `ms` each. */
function hist(...entries: Array<[ms: number, n: number]>): Float64Array {
  const h = new Float64Array(LATENCY_BUCKETS)
  for (const [ms, n] of entries) h[latencyBucket(ms)]! += n
  return h
}

test('a duration goes to the first bucket whose bound holds it; slower than every bound: +Inf', () => {
  assert.equal(latencyBucket(0), 0)
  assert.equal(latencyBucket(0.25), 0)
  assert.equal(latencyBucket(0.26), 1)
  assert.equal(latencyBucket(1), LATENCY_BOUNDS_MS.indexOf(1))
  assert.equal(latencyBucket(1.5), LATENCY_BOUNDS_MS.indexOf(2))
  assert.equal(latencyBucket(1e9), LATENCY_BUCKETS - 1)
})

test('quantiles interpolate within the bucket the rank falls in; an empty histogram has none', () => {
  // 100 answers in (1, 2]: the median is halfway through the bucket, p99 at 99 %
  assert.equal(quantile(hist([1.5, 100]), 0.5), 1.5)
  assert.equal(quantile(hist([1.5, 100]), 0.99), 1.99)
  // 50 in (0, 0.25] and 50 in (75, 100]: p50 is the top of the first bucket, p95 90 % into the second
  assert.equal(quantile(hist([0.1, 50], [80, 50]), 0.5), 0.25)
  assert.equal(quantile(hist([0.1, 50], [80, 50]), 0.95), 97.5)
  // a rank in +Inf: the highest finite bound
  assert.equal(quantile(hist([1e6, 10]), 0.5), LATENCY_BOUNDS_MS.at(-1))
  assert.ok(Number.isNaN(quantile(new Float64Array(LATENCY_BUCKETS), 0.5)))
})

test('a tick closes the second: its counts, bytes, cache outcomes and percentiles; the next second starts empty', () => {
  const c = clock(10_000)
  const s = new TimeSeries({ now: c.now })
  s.current.add(1, 1.5, 100) // 2xx
  s.current.add(1, 1.5, 100)
  s.current.add(3, 1.5, 10) // 4xx
  s.current.add(4, 1.5, 0) // 5xx
  s.current.add(0, 1.5, 0) // 1xx
  s.current.cacheHits = 3
  s.current.cacheMisses = 1
  c.t = 11_000
  const sample = s.tick(7)
  assert.deepEqual(sample, { at: 11_000, requests: 5, s2xx: 2, s3xx: 0, s4xx: 1, s5xx: 1, p50: 1.5, p95: 1.95, p99: 1.99, bytes: 210, cacheHits: 3, cacheMisses: 1, connections: 7 })
  c.t = 12_000
  const empty = s.tick(0)
  assert.equal(empty.requests, 0)
  assert.ok(Number.isNaN(empty.p50))
  assert.deepEqual(s.window('1h').samples.map((x) => x.at), [11_000, 12_000])
  assert.equal(s.window('1h').step, 1)
})

test(`the second ring holds exactly ${SECOND_SAMPLES} samples, oldest first, the oldest dropped when full`, () => {
  const c = clock()
  const s = new TimeSeries({ now: c.now })
  for (let i = 1; i <= SECOND_SAMPLES; i++) {
    c.t = i * 1000
    s.current.add(1, 1, i)
    s.tick(0)
  }
  let w = s.window('1h').samples
  assert.equal(w.length, SECOND_SAMPLES)
  assert.equal(w[0]!.at, 1000)
  assert.equal(w.at(-1)!.at, SECOND_SAMPLES * 1000)
  c.t = (SECOND_SAMPLES + 1) * 1000
  s.current.add(1, 1, 4242)
  s.tick(0)
  w = s.window('1h').samples
  assert.equal(w.length, SECOND_SAMPLES)
  assert.equal(w[0]!.at, 2000)
  assert.equal(w[0]!.bytes, 2)
  assert.equal(w.at(-1)!.at, (SECOND_SAMPLES + 1) * 1000)
  assert.equal(w.at(-1)!.bytes, 4242)
  // in order throughout
  for (let k = 1; k < w.length; k++) assert.equal(w[k]!.at - w[k - 1]!.at, 1000)
})

test('a minute sums its seconds and takes its percentiles from their merged histograms, once the minute is over', () => {
  const c = clock()
  const s = new TimeSeries({ now: c.now })
  // minute 0: 59 seconds of one fast answer, one second of 100 slow ones
  for (let i = 1; i <= 60; i++) {
    c.t = i * 1000
    if (i === 30) for (let k = 0; k < 100; k++) s.current.add(1, 80, 10)
    else s.current.add(i % 2 === 0 ? 1 : 3, 0.1, 1)
    if (i <= 10) s.current.cacheHits++
    if (i === 60) s.current.cacheMisses += 2
    s.tick(i) // connections: the last second's count stands for the minute
  }
  assert.deepEqual(s.window('1d').samples, [], 'the minute in progress is not a sample yet')
  c.t = 61_000
  s.current.add(4, 5, 0)
  s.tick(99)
  const [m] = s.window('1d').samples
  const merged = hist([80, 100], [0.1, 59])
  assert.equal(s.window('1d').step, 60)
  assert.deepEqual(m, {
    at: 60_000,
    requests: 159,
    s2xx: 100 + 29, // seconds 2, 4, ..., 58 (not 30) and 60, with the 100 slow ones
    s3xx: 0,
    s4xx: 30,
    s5xx: 0,
    p50: quantile(merged, 0.5),
    p95: quantile(merged, 0.95),
    p99: quantile(merged, 0.99),
    bytes: 1000 + 59,
    cacheHits: 10,
    cacheMisses: 2,
    connections: 60,
  })
  // the slow answers are 100 of 159: the median is among them, not the mean of the seconds' medians
  assert.ok(m!.p50 > 75 && m!.p50 <= 100, String(m!.p50))
})

test(`the minute ring holds exactly ${MINUTE_SAMPLES} minutes`, () => {
  const c = clock()
  const s = new TimeSeries({ now: c.now })
  for (let minute = 0; minute <= MINUTE_SAMPLES + 1; minute++) {
    c.t = minute * 60_000 + 1000
    s.current.add(1, 1, minute)
    s.tick(0)
  }
  const w = s.window('1d').samples
  assert.equal(w.length, MINUTE_SAMPLES)
  assert.equal(w[0]!.at, 2 * 60_000)
  assert.equal(w[0]!.bytes, 1)
  assert.equal(w.at(-1)!.at, (MINUTE_SAMPLES + 1) * 60_000)
})

test('last(n): the sums and percentiles of the last seconds, and the time they cover', () => {
  const c = clock(0)
  const s = new TimeSeries({ now: c.now })
  assert.equal(s.last(60).seconds, 0)
  assert.ok(Number.isNaN(s.last(60).p50))
  for (let i = 1; i <= 100; i++) {
    c.t = i * 1000
    s.current.add(i <= 40 ? 4 : 1, i <= 40 ? 1000 : 1.5, 10)
    if (i > 40) s.current.cacheHits++
    s.tick(0)
  }
  const r = s.last(60)
  assert.equal(r.seconds, 60)
  assert.equal(r.requests, 60)
  assert.deepEqual(r.classes, [0, 60, 0, 0, 0])
  assert.equal(r.bytes, 600)
  assert.equal(r.cacheHits, 60)
  assert.equal(r.p50, 1.5)
  // the first 40 seconds' slow 5xx are older than the window
  assert.equal(r.p99, 1.99)
  const few = s.last(5)
  assert.equal(few.seconds, 5)
  assert.equal(few.requests, 5)
})

test('an accumulator merges another and resets to zero', () => {
  const a = new Accumulator()
  const b = new Accumulator()
  b.add(2, 3, 5)
  b.cacheHits = 2
  a.merge(b)
  a.merge(b)
  assert.equal(a.requests, 2)
  assert.equal(a.bytes, 10)
  assert.equal(a.cacheHits, 4)
  a.reset()
  assert.equal(a.requests, 0)
  assert.equal(a.hist.reduce((x, y) => x + y, 0), 0)
})
