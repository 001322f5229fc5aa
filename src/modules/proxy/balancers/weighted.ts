import { available } from './available.ts'
import type { Balancer, Upstream } from './types.ts'

/**
 * `weighted`: nginx's smooth weighted round-robin
 * (ngx_http_upstream_round_robin.c, ngx_http_upstream_get_peer).
 *
 * Every pick adds each candidate's weight to its `current`, chooses the
 * largest `current` and subtracts the candidates' total weight from the
 * winner. Over any window of sum(weights) picks each upstream is chosen
 * exactly `weight` times, and heavy upstreams are interleaved rather than
 * sent in bursts: weights 5, 1, 1 give a a b a c a a, not a a a a a b c.
 *
 * Unavailable upstreams sit out the pick entirely (nginx skips down and
 * already-tried peers the same way), so their `current` freezes and the
 * others keep their smooth interleaving among themselves. nginx's
 * `effective_weight`, lowered on failures, is not modelled: ejection is the
 * health checker's job here, and it shows up as `healthy = false`.
 */
export function smoothWeighted(upstreams: readonly Upstream[]): Balancer {
  const list = upstreams.slice()
  const n = list.length
  const current = new Float64Array(n)
  return {
    pick(_key, exclude) {
      let total = 0
      let best = -1
      for (let i = 0; i < n; i++) {
        const u = list[i]!
        if (!available(u, exclude)) continue
        current[i]! += u.weight
        total += u.weight
        // Strictly greater, as in nginx: ties go to the earlier upstream, which
        // is what makes 5, 1, 1 come out as a a b a c a a.
        if (best === -1 || current[i]! > current[best]!) best = i
      }
      if (best === -1) return undefined
      current[best]! -= total
      return list[best]
    },
  }
}
