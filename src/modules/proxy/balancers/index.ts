import { consistentHash } from './hash.ts'
import { leastConn } from './least-conn.ts'
import { roundRobin } from './round-robin.ts'
import type { BalancerFactory } from './types.ts'
import { smoothWeighted } from './weighted.ts'

export type { Balancer, BalancerFactory, Upstream } from './types.ts'

/** The proxy's `balance` option names one of these. */
export const balancers = {
  'round-robin': roundRobin,
  weighted: smoothWeighted,
  'least-conn': leastConn,
  hash: consistentHash,
} as const satisfies Record<string, BalancerFactory>

export type BalanceName = keyof typeof balancers
