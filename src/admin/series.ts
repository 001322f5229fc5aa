import type { Sample } from './metrics.ts'

/**
 * The in-memory time series the dashboard charts (docs/admin.md, "History
 * without another server"): an hour of one-second samples and a day of
 * one-minute samples, in rings of fixed size (a Float64Array per field), so
 * memory stays the same however long Edgebox runs.
 *
 * Answers are added to the current second's accumulator (plain increments,
 * no allocation); once a second `tick()` closes it into a sample. Latency
 * percentiles come from a small histogram of fixed buckets, interpolated
 * within the bucket the rank falls in, as Prometheus's `histogram_quantile`
 * does; a minute's percentiles come from its seconds' histograms merged.
 */

/** Upper bounds (ms) of the series' latency buckets; one more bucket holds everything slower (+Inf). */
export const LATENCY_BOUNDS_MS: readonly number[] = [0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000, 30000]
/** The buckets of one histogram: one per bound, and +Inf. */
export const LATENCY_BUCKETS = LATENCY_BOUNDS_MS.length + 1

/** An hour at one second, a day at one minute. */
export const SECOND_SAMPLES = 3600
export const MINUTE_SAMPLES = 1440

/** The bucket of a duration: the first whose upper bound is at least `ms` (the last: +Inf). */
export function latencyBucket(ms: number): number {
  const bounds = LATENCY_BOUNDS_MS
  let b = 0
  while (b < bounds.length && ms > bounds[b]!) b++
  return b
}

/**
 * The q-quantile (0..1) of a histogram of LATENCY_BUCKETS counts, in ms:
 * the bucket holding the rank `q × total`, and a linear interpolation within
 * it (Prometheus's histogram_quantile). A rank in the +Inf bucket gives the
 * highest finite bound. NaN for an empty histogram.
 */
export function quantile(hist: Float64Array, q: number): number {
  let total = 0
  for (let b = 0; b < LATENCY_BUCKETS; b++) total += hist[b]!
  if (total === 0) return NaN
  const rank = q * total
  let seen = 0
  for (let b = 0; b < LATENCY_BUCKETS; b++) {
    const count = hist[b]!
    if (count > 0 && seen + count >= rank) {
      if (b === LATENCY_BUCKETS - 1) return LATENCY_BOUNDS_MS[b - 1]!
      const lower = b === 0 ? 0 : LATENCY_BOUNDS_MS[b - 1]!
      const upper = LATENCY_BOUNDS_MS[b]!
      return lower + ((upper - lower) * (rank - seen)) / count
    }
    seen += count
  }
  return LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.length - 1]!
}

/** What one interval accumulates: answers by status class, bytes, cache outcomes, latency buckets. */
export class Accumulator {
  /** Answers by status class, 1xx..5xx. */
  readonly classes = new Float64Array(5)
  bytes = 0
  cacheHits = 0
  cacheMisses = 0
  readonly hist = new Float64Array(LATENCY_BUCKETS)

  /** One answer: its status class index (0 for 1xx .. 4 for 5xx), its duration and its body bytes. */
  add(statusClass: number, ms: number, bytes: number): void {
    this.classes[statusClass]!++
    this.bytes += bytes
    this.hist[latencyBucket(ms)]!++
  }

  /** Adds another interval's figures (a second's into its minute). */
  merge(o: Accumulator): void {
    for (let i = 0; i < 5; i++) this.classes[i]! += o.classes[i]!
    for (let i = 0; i < LATENCY_BUCKETS; i++) this.hist[i]! += o.hist[i]!
    this.bytes += o.bytes
    this.cacheHits += o.cacheHits
    this.cacheMisses += o.cacheMisses
  }

  reset(): void {
    this.classes.fill(0)
    this.hist.fill(0)
    this.bytes = this.cacheHits = this.cacheMisses = 0
  }

  get requests(): number {
    const c = this.classes
    return c[0]! + c[1]! + c[2]! + c[3]! + c[4]!
  }
}

/** The fields of a sample, each a Float64Array in a ring. `s1xx` is kept for the overview's status mix. */
const FIELDS = ['at', 'requests', 's1xx', 's2xx', 's3xx', 's4xx', 's5xx', 'p50', 'p95', 'p99', 'bytes', 'cacheHits', 'cacheMisses', 'connections'] as const
type Field = (typeof FIELDS)[number]

/** A ring of samples: `capacity` of them, the oldest overwritten by the newest. */
export class SampleRing {
  readonly capacity: number
  private readonly columns: Record<Field, Float64Array>
  /** Where the next sample goes. */
  private next = 0
  size = 0

  constructor(capacity: number) {
    this.capacity = capacity
    this.columns = Object.fromEntries(FIELDS.map((f) => [f, new Float64Array(capacity)])) as Record<Field, Float64Array>
  }

  /** Closes an interval ending at `at` into a sample. */
  push(at: number, acc: Accumulator, connections: number): void {
    const i = this.next
    const c = this.columns
    c.at[i] = at
    c.requests[i] = acc.requests
    c.s1xx[i] = acc.classes[0]!
    c.s2xx[i] = acc.classes[1]!
    c.s3xx[i] = acc.classes[2]!
    c.s4xx[i] = acc.classes[3]!
    c.s5xx[i] = acc.classes[4]!
    c.p50[i] = quantile(acc.hist, 0.5)
    c.p95[i] = quantile(acc.hist, 0.95)
    c.p99[i] = quantile(acc.hist, 0.99)
    c.bytes[i] = acc.bytes
    c.cacheHits[i] = acc.cacheHits
    c.cacheMisses[i] = acc.cacheMisses
    c.connections[i] = connections
    this.next = (i + 1) % this.capacity
    if (this.size < this.capacity) this.size++
  }

  /** The ring index of the k-th sample, oldest first (0 ≤ k < size). */
  index(k: number): number {
    return (this.next - this.size + k + this.capacity) % this.capacity
  }

  /** One field of the k-th sample, oldest first. */
  get(field: Field, k: number): number {
    return this.columns[field][this.index(k)]!
  }

  /** The k-th sample, oldest first, as an object. */
  sample(k: number): Sample {
    const i = this.index(k)
    const c = this.columns
    return {
      at: c.at[i]!,
      requests: c.requests[i]!,
      s2xx: c.s2xx[i]!,
      s3xx: c.s3xx[i]!,
      s4xx: c.s4xx[i]!,
      s5xx: c.s5xx[i]!,
      p50: c.p50[i]!,
      p95: c.p95[i]!,
      p99: c.p99[i]!,
      bytes: c.bytes[i]!,
      cacheHits: c.cacheHits[i]!,
      cacheMisses: c.cacheMisses[i]!,
      connections: c.connections[i]!,
    }
  }

  /** Every sample, oldest first. */
  all(): Sample[] {
    const out: Sample[] = new Array(this.size)
    for (let k = 0; k < this.size; k++) out[k] = this.sample(k)
    return out
  }
}

/** The figures of the last seconds, for the overview. */
export interface RecentFigures {
  /** The seconds they cover (from the end of the sample before the first to the end of the last); 0 without a sample. */
  readonly seconds: number
  /** Answers by status class, 1xx..5xx. */
  readonly classes: readonly number[]
  readonly requests: number
  readonly bytes: number
  readonly cacheHits: number
  readonly cacheMisses: number
  readonly p50: number
  readonly p95: number
  readonly p99: number
}

/** How many of the last seconds' histograms are kept for the overview's percentiles. */
const RECENT = 60

export interface TimeSeriesOptions {
  readonly now: () => number
  readonly seconds?: number
  readonly minutes?: number
}

/**
 * The rings and the accumulators that feed them. `current` takes the answers
 * of the second in progress; `tick(connections)` closes it, stamped `now()`,
 * and, when the wall-clock minute has changed, closes the minute before.
 */
export class TimeSeries {
  /** The second in progress: the metrics add each answer to it. */
  readonly current = new Accumulator()
  readonly seconds: SampleRing
  readonly minutes: SampleRing
  private readonly now: () => number
  /** When the series began: the start of the first second. */
  private readonly started: number
  /** The minute in progress: its seconds merged, its index (ms / 60000 of its seconds' ends, -1: none yet), its last connection count. */
  private readonly minute = new Accumulator()
  private minuteIndex = -1
  private minuteConnections = 0
  /** The histograms of the last RECENT seconds (a ring parallel to the newest samples). */
  private readonly recent = new Float64Array(RECENT * LATENCY_BUCKETS)
  private recentNext = 0

  constructor(opts: TimeSeriesOptions) {
    this.now = opts.now
    this.started = opts.now()
    this.seconds = new SampleRing(opts.seconds ?? SECOND_SAMPLES)
    this.minutes = new SampleRing(opts.minutes ?? MINUTE_SAMPLES)
  }

  /** Closes the second in progress into a sample (and the minute, when it is over); the next second starts empty. */
  tick(connections: number): Sample {
    const at = this.now()
    const acc = this.current
    // the minute an interval belongs to: the one holding its last millisecond
    const minute = Math.floor((at - 1) / 60_000)
    if (this.minuteIndex !== -1 && minute !== this.minuteIndex) this.closeMinute()
    this.minuteIndex = minute
    this.minute.merge(acc)
    this.minuteConnections = connections
    this.recent.set(acc.hist, this.recentNext * LATENCY_BUCKETS)
    this.recentNext = (this.recentNext + 1) % RECENT
    this.seconds.push(at, acc, connections)
    acc.reset()
    return this.seconds.sample(this.seconds.size - 1)
  }

  private closeMinute(): void {
    this.minutes.push((this.minuteIndex + 1) * 60_000, this.minute, this.minuteConnections)
    this.minute.reset()
  }

  /** An hour at one second or a day at one minute, oldest first; `step` in seconds. */
  window(window: '1h' | '1d'): { readonly step: number; readonly samples: readonly Sample[] } {
    return window === '1d' ? { step: 60, samples: this.minutes.all() } : { step: 1, samples: this.seconds.all() }
  }

  /** The sums and percentiles of the last `n` closed seconds (at most 60). */
  last(n: number): RecentFigures {
    const ring = this.seconds
    const count = Math.min(n, RECENT, ring.size)
    const classes = [0, 0, 0, 0, 0]
    let bytes = 0
    let hits = 0
    let misses = 0
    const hist = new Float64Array(LATENCY_BUCKETS)
    for (let k = ring.size - count; k < ring.size; k++) {
      classes[0]! += ring.get('s1xx', k)
      classes[1]! += ring.get('s2xx', k)
      classes[2]! += ring.get('s3xx', k)
      classes[3]! += ring.get('s4xx', k)
      classes[4]! += ring.get('s5xx', k)
      bytes += ring.get('bytes', k)
      hits += ring.get('cacheHits', k)
      misses += ring.get('cacheMisses', k)
    }
    for (let j = 1; j <= count; j++) {
      const off = ((this.recentNext - j + RECENT) % RECENT) * LATENCY_BUCKETS
      for (let b = 0; b < LATENCY_BUCKETS; b++) hist[b]! += this.recent[off + b]!
    }
    let seconds = 0
    if (count > 0) {
      const first = ring.size - count
      const before = first > 0 ? ring.get('at', first - 1) : this.started
      seconds = (ring.get('at', ring.size - 1) - before) / 1000
    }
    return {
      seconds,
      classes,
      requests: classes[0]! + classes[1]! + classes[2]! + classes[3]! + classes[4]!,
      bytes,
      cacheHits: hits,
      cacheMisses: misses,
      p50: quantile(hist, 0.5),
      p95: quantile(hist, 0.95),
      p99: quantile(hist, 0.99),
    }
  }
}
