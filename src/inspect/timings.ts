/**
 * A request's phases from the marks `probe.ts` takes with the monotonic
 * clock (`performance.now()`, which no clock adjustment moves). The marks
 * are taken in event handlers whose order is not guaranteed: a server that
 * answers before the request is seen flushed ('finish') gives a first byte
 * before the send mark. So the marks are put in order first (each one no
 * earlier than the one before it, a missing one taken as the one before),
 * and every phase is then a difference of ordered marks: never negative,
 * and the phases add up to the whole exchange.
 */

export interface Marks {
  /** The request handed to the connection. */
  start: number
  /** The request seen flushed to the socket. */
  sent: number | undefined
  /** The first byte of the response. */
  first: number | undefined
  /** The last byte of the response. */
  done: number
}

export interface PhaseDurations {
  send: number
  ttfb: number
  transfer: number
}

export function phaseDurations(m: Marks): PhaseDurations {
  const done = Math.max(m.done, m.start)
  const sentMark = Math.max(m.sent ?? m.start, m.start)
  const first = Math.min(Math.max(m.first ?? sentMark, m.start), done)
  // a first byte before the send mark means the request was out by then
  const sent = Math.min(sentMark, first)
  return { send: sent - m.start, ttfb: first - sent, transfer: done - first }
}

/** Milliseconds to three decimals, never below zero (not even -0). */
export function roundMs(ms: number): number {
  return ms > 0 ? Math.round(ms * 1000) / 1000 : 0
}
