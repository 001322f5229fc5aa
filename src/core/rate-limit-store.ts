import { LRUCache } from 'lru-cache'

/**
 * Token buckets (the rate limiter's store, docs/security.md): a bucket per
 * key holds up to `capacity` tokens and refills at `refillPerMs`; a request
 * takes one, or is refused when there is none. Shared by the rate-limit
 * filter module (src/modules/security/rate-limit.ts, which re-exports it)
 * and the identity provider's login limits (src/auth/idp/limits.ts). The
 * embedded store is in memory; a shared one (Redis) can implement the same
 * interface for several nodes.
 */

/** What taking a token gave: whether one was there, what is left, when the next comes and when the bucket is full again. */
export interface Take {
  readonly allowed: boolean
  readonly remaining: number
  readonly retryAfterMs: number
  readonly fullInMs: number
}

/** Where buckets live: take one token for `key` if there is one. */
export interface RateLimitStore {
  take(key: string, now: number, capacity: number, refillPerMs: number): Take
}

/** A store that may have to ask another server (Redis, src/core/redis-rate-limit-store.ts): the answer may come later. */
export interface SharedRateLimitStore {
  take(key: string, now: number, capacity: number, refillPerMs: number): Take | Promise<Take>
}

/** The answer for a bucket that holds `left` tokens after the take (shared by every store). */
export function takeResult(allowed: boolean, left: number, capacity: number, refillPerMs: number): Take {
  return { allowed, remaining: Math.floor(left), retryAfterMs: allowed ? 0 : (1 - left) / refillPerMs, fullInMs: (capacity - left) / refillPerMs }
}

/**
 * Buckets in this process's memory: an LRU bounded in entries, so a flood of
 * new keys cannot grow it without limit. A bucket is kept only until it has
 * refilled (a full bucket is the same as none), so the memory holds the
 * buckets in use, and a flood of new keys has to outpace the refill to push
 * out a drained one.
 */
export class MemoryRateLimitStore implements RateLimitStore {
  private readonly buckets = new LRUCache<string, { tokens: number; at: number }>({ max: 100_000 })

  take(key: string, now: number, capacity: number, refillPerMs: number) {
    const b = this.buckets.get(key) ?? { tokens: capacity, at: now }
    const tokens = Math.min(capacity, b.tokens + Math.max(0, now - b.at) * refillPerMs)
    const allowed = tokens >= 1
    const left = allowed ? tokens - 1 : tokens
    const result = takeResult(allowed, left, capacity, refillPerMs)
    this.buckets.set(key, { tokens: left, at: now }, { ttl: Math.max(1, Math.ceil(result.fullInMs)) })
    return result
  }
}
