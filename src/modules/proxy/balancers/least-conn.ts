import { available } from './available.ts'
import type { Balancer, Upstream } from './types.ts'

/**
 * `least-conn`: the upstream with the fewest requests in flight relative to
 * its weight, as nginx's least_conn (ngx_http_upstream_least_conn_module.c)
 * does: `active / weight` smallest, compared by cross-multiplication so no
 * division or rounding enters the comparison.
 *
 * Ties (the common case at low load, when everything is at 0) rotate: the
 * scan starts just after the last upstream chosen, and only a strictly
 * smaller load displaces the first candidate found. Always taking the first
 * of equals would pile every quiet-period request onto upstream 0. nginx
 * breaks ties with weighted round-robin; Caddy picks one at random. Rotation
 * is deterministic and needs no random numbers on the hot path.
 */
export function leastConn(upstreams: readonly Upstream[]): Balancer {
  const list = upstreams.slice()
  const n = list.length
  let next = 0
  return {
    pick(_key, exclude) {
      let best: Upstream | undefined
      let bestIdx = -1
      for (let i = 0; i < n; i++) {
        const idx = (next + i) % n
        const u = list[idx]!
        if (!available(u, exclude)) continue
        // u.active / u.weight < best.active / best.weight, weights being >= 1
        if (best === undefined || u.active * best.weight < best.active * u.weight) {
          best = u
          bestIdx = idx
        }
      }
      if (best !== undefined) next = bestIdx + 1 === n ? 0 : bestIdx + 1
      return best
    },
  }
}
