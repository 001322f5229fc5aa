import type { Upstream } from './types.ts'

/** The one rule every policy shares: healthy and not already tried for this request. */
export function available(u: Upstream, exclude: ReadonlySet<Upstream> | undefined): boolean {
  return u.healthy && (exclude === undefined || !exclude.has(u))
}
