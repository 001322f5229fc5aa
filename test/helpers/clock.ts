import type { Clock, Timer } from '../../src/core/clock.ts'

/**
 * A clock that moves only when told to (`advance`), for tests about time
 * passing: freshness and Age, token refill, probe intervals, ejections,
 * long-poll holds, heartbeats. Timers run synchronously inside `advance`,
 * in the order they fall due (ties: the order they were set), each one
 * seeing `now()` at its own due time; a timer set while advancing that falls
 * due within the span runs too.
 */

interface ManualTimer extends Timer {
  due: number
  seq: number
  /** Repeat period for intervals, 0 for one-shot timers. */
  readonly every: number
  readonly fn: () => void
}

/** 2030-01-01T00:00:00Z: whole seconds, so HTTP dates (1 s resolution) match now() exactly. */
export const MANUAL_EPOCH = Date.UTC(2030, 0, 1)

export class ManualClock implements Clock {
  #now: number
  #seq = 0
  #advancing = false
  readonly #timers = new Set<ManualTimer>()

  constructor(start = MANUAL_EPOCH) {
    this.#now = start
  }

  now(): number {
    return this.#now
  }

  setTimeout(fn: () => void, ms: number): Timer {
    return this.#add(fn, ms, 0)
  }

  setInterval(fn: () => void, ms: number): Timer {
    // A zero period would never let `advance` finish; Node also waits at least 1 ms.
    return this.#add(fn, ms, Math.max(1, ms || 0))
  }

  clearTimeout(timer: Timer | undefined): void {
    if (timer) this.#timers.delete(timer as ManualTimer)
  }

  clearInterval(timer: Timer | undefined): void {
    if (timer) this.#timers.delete(timer as ManualTimer)
  }

  /** Timers set and not yet run or cleared (intervals count until cleared). */
  pending(): number {
    return this.#timers.size
  }

  /** How long until each pending timer falls due (ms), soonest first: tells a test which timer a component has set. */
  dueIn(): number[] {
    return [...this.#timers].map((t) => t.due - this.#now).sort((a, b) => a - b)
  }

  /** Moves time forward by `ms`, running every timer that falls due on the way. */
  advance(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`advance takes a duration >= 0 in ms, not ${ms}`)
    if (this.#advancing) throw new Error('advance called from inside a timer')
    const target = this.#now + ms
    this.#advancing = true
    try {
      for (let t = this.#due(target); t; t = this.#due(target)) {
        this.#now = t.due
        if (t.every) {
          // rescheduled like a new timer: after others already due at the same time
          t.due += t.every
          t.seq = this.#seq++
        }
        else this.#timers.delete(t)
        t.fn()
      }
    } finally {
      this.#advancing = false
    }
    this.#now = target
  }

  #add(fn: () => void, ms: number, every: number): ManualTimer {
    const t: ManualTimer = {
      due: this.#now + (every || Math.max(0, ms || 0)),
      seq: this.#seq++,
      every,
      fn,
      unref: () => t,
      ref: () => t,
    }
    this.#timers.add(t)
    return t
  }

  /** The timer to run next within `limit`: the earliest due, then the earliest set. */
  #due(limit: number): ManualTimer | undefined {
    let first: ManualTimer | undefined
    for (const t of this.#timers) {
      if (t.due > limit) continue
      if (!first || t.due < first.due || (t.due === first.due && t.seq < first.seq)) first = t
    }
    return first
  }
}

/**
 * Polls `check` (every 10 ms) until it holds, for effects of real I/O that
 * follow a clock move (a probe answered, a response stored); fails naming
 * `what` after `ms`.
 */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  for (;;) {
    if (await check()) return
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for: ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}
