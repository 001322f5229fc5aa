/**
 * Load-balancing policies for the `proxy` handler. Each policy is a factory
 * that closes over a fixed list of upstreams and answers `pick()` on the hot
 * path without allocating. The upstream objects themselves are shared with the
 * proxy, which keeps `active` and `healthy` current; a balancer only reads them.
 */
export interface Upstream {
  readonly id: string // e.g. 'http://127.0.0.1:3000'
  readonly weight: number // >= 1 integer
  /** Requests in flight to this upstream (the proxy increments/decrements). */
  active: number
  /** false while ejected by health checks or outlier detection. */
  healthy: boolean
}

export interface Balancer {
  /**
   * Picks an upstream for a request. `key` is the hashing key (used by 'hash'
   * only). `exclude`: upstreams already tried for this request (retries go to
   * a different one). Returns undefined when no healthy, non-excluded upstream
   * exists. Never returns an unhealthy or excluded upstream.
   */
  pick(key: string, exclude?: ReadonlySet<Upstream>): Upstream | undefined
}

export type BalancerFactory = (upstreams: readonly Upstream[]) => Balancer
