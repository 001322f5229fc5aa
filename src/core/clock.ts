/**
 * Time as the components that depend on it see it: the HTTP cache (Age,
 * freshness), rate limits (token refill), upstream health (probe intervals,
 * ejections) and the realtime hub (history age, long-poll holds,
 * heartbeats). They read the time and set timers only through a `Clock`
 * handed to them once at start, so tests can move time by hand instead of
 * waiting for it (test/helpers/clock.ts). In production it is `systemClock`.
 */

/** A pending timer. Like Node's, it can stop holding the process open. */
export interface Timer {
  unref(): unknown
  ref(): unknown
}

export interface Clock {
  /** The current time, in milliseconds since the epoch. */
  now(): number
  setTimeout(fn: () => void, ms: number): Timer
  clearTimeout(timer: Timer | undefined): void
  setInterval(fn: () => void, ms: number): Timer
  clearInterval(timer: Timer | undefined): void
}

/** The real clock: Date.now and Node's timers. */
export const systemClock: Clock = Object.freeze({
  now: Date.now,
  setTimeout: function systemSetTimeout(fn: () => void, ms: number): Timer {
    return setTimeout(fn, ms)
  },
  clearTimeout: function systemClearTimeout(timer: Timer | undefined): void {
    clearTimeout(timer as NodeJS.Timeout | undefined)
  },
  setInterval: function systemSetInterval(fn: () => void, ms: number): Timer {
    return setInterval(fn, ms)
  },
  clearInterval: function systemClearInterval(timer: Timer | undefined): void {
    clearInterval(timer as NodeJS.Timeout | undefined)
  },
})
