import { available } from './available.ts'
import type { Balancer, Upstream } from './types.ts'

/**
 * Points on the ring per unit of weight. nginx's `hash ... consistent`
 * (ngx_http_upstream_hash_module.c) uses 160 per weight, the ketama figure:
 * enough that each upstream's share of the key space lands within a few
 * percent of its weight share, while the ring stays small enough to build
 * once and search in a dozen steps.
 */
const POINTS_PER_WEIGHT = 160

/**
 * 32-bit FNV-1a finished with murmur3's fmix32. FNV-1a alone is fast but
 * mixes the last characters poorly, so keys that differ only at the end
 * ('user-1', 'user-2') would land next to each other on the ring; fmix32
 * spreads every input bit over the output. No crypto: this runs per request.
 * Characters are folded in as UTF-16 code units, which is stable for any
 * string and skips an encoding step.
 */
export function hash32(s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/**
 * `hash`: consistent hashing on a ring with virtual nodes, as nginx's
 * `hash $key consistent` (ketama). Caddy's hash policies use rendezvous
 * hashing instead, which scores every upstream per request (O(n)); the ring
 * is built once and looked up by binary search (O(log points)), and weight is
 * simply a point count.
 *
 * Each upstream owns `weight * 160` points, placed by hashing its id, so the
 * ring depends only on the ids and weights, never on the order of the list or
 * on which process built it: every instance of the proxy maps a key the same
 * way. A key belongs to the first point at or after its hash (clockwise,
 * wrapping around). When that owner is unavailable the walk continues
 * clockwise to the next point of a different, available upstream, so only
 * the keys of the missing upstream move, and they spread over the others
 * (their points interleave) instead of all landing on one neighbour.
 */
export function consistentHash(upstreams: readonly Upstream[]): Balancer {
  const list = upstreams.slice()
  const n = list.length

  const points: Array<{ hash: number; owner: number }> = []
  for (let owner = 0; owner < n; owner++) {
    const u = list[owner]!
    const count = u.weight * POINTS_PER_WEIGHT
    for (let j = 0; j < count; j++) points.push({ hash: hash32(`${u.id}#${j}`), owner })
  }
  // Colliding points are ordered by id so the ring does not depend on list order.
  points.sort((a, b) => a.hash - b.hash || compareIds(list[a.owner]!.id, list[b.owner]!.id) || a.owner - b.owner)
  const ring = Uint32Array.from(points, (p) => p.hash)
  const owners = Uint32Array.from(points, (p) => p.owner)
  const len = ring.length

  // Upstreams already rejected during the current walk: stamp[i] === epoch.
  // An epoch counter instead of a fresh Set keeps the fallback walk allocation-free.
  const stamp = new Uint32Array(n)
  let epoch = 0

  return {
    pick(key, exclude) {
      if (len === 0) return undefined
      const h = hash32(key)
      // First point with hash >= h; past the end wraps to the start.
      let lo = 0
      let hi = len
      while (lo < hi) {
        const mid = (lo + hi) >>> 1
        if (ring[mid]! < h) lo = mid + 1
        else hi = mid
      }
      let i = lo === len ? 0 : lo
      const first = list[owners[i]!]!
      if (available(first, exclude)) return first

      // Slow path: walk clockwise, looking at each distinct upstream once.
      epoch = (epoch + 1) >>> 0
      if (epoch === 0) {
        stamp.fill(0)
        epoch = 1
      }
      stamp[owners[i]!] = epoch
      let rejected = 1
      for (let step = 1; step < len && rejected < n; step++) {
        i = i + 1 === len ? 0 : i + 1
        const o = owners[i]!
        if (stamp[o] === epoch) continue
        const u = list[o]!
        if (available(u, exclude)) return u
        stamp[o] = epoch
        rejected++
      }
      return undefined
    },
  }
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}
