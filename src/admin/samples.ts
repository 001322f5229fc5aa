/**
 * The shapes of the admin API's time series and recent errors, with no
 * imports: the server (metrics.ts, series.ts, api.ts) and the dashboard
 * (dashboard/src/api.ts, checked as browser code) share them.
 */

/** One sample of the time series: the figures of one second (or one minute). */
export interface Sample {
  /** The end of the interval (ms since the epoch). */
  readonly at: number
  readonly requests: number
  readonly s2xx: number
  readonly s3xx: number
  readonly s4xx: number
  readonly s5xx: number
  /** Latency percentiles over the interval's answers (ms; NaN with no answer). */
  readonly p50: number
  readonly p95: number
  readonly p99: number
  readonly bytes: number
  readonly cacheHits: number
  readonly cacheMisses: number
  readonly connections: number
}

/** One answer with a 5xx status, as the ring of recent errors keeps it. */
export interface RecentError {
  readonly at: number
  readonly site: string
  readonly route: string
  readonly method: string
  readonly host: string
  readonly path: string
  readonly status: number
  readonly ms: number
  readonly error: string
  readonly upstream: string
}
