import { available } from './available.ts'
import type { Balancer, Upstream } from './types.ts'

/**
 * `round-robin`: each pick takes the next available upstream after the one
 * picked last (Caddy's RoundRobinSelection).
 *
 * The cursor moves to just past the upstream actually chosen, not by one per
 * pick: with a, b, c and b down, a counter that advanced by one and then
 * skipped forward would land on c twice as often as on a (b's turn falls
 * through to c). Resuming after the chosen one gives a, c, a, c.
 */
export function roundRobin(upstreams: readonly Upstream[]): Balancer {
  const list = upstreams.slice()
  const n = list.length
  let next = 0
  return {
    pick(_key, exclude) {
      for (let i = 0; i < n; i++) {
        const idx = (next + i) % n
        const u = list[idx]!
        if (available(u, exclude)) {
          next = idx + 1 === n ? 0 : idx + 1
          return u
        }
      }
      return undefined
    },
  }
}
