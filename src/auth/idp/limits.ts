import type { Clock } from '../../core/clock.ts'
import { MemoryRateLimitStore, type RateLimitStore, type SharedRateLimitStore } from '../../core/rate-limit-store.ts'
import { clientNetwork } from '../../http/address.ts'
import { normalizeUsername } from '../users.ts'
import type { IdpConfig } from './schema.ts'

/**
 * Login attempts (a password, a code) limited by Edgebox's token buckets
 * (the rate limiter's store): one per account, whatever the address, and one
 * per client address. Checked before any password hash is computed, so a
 * flood of guesses costs a map lookup each, not a hash: computing hashes is
 * the denial of service to avoid (docs/sso.md). A refused attempt takes no
 * token, so it does not push the end of a lockout further away.
 *
 * The per-account bucket holds every address back: an attacker can keep an
 * account locked for as long as they keep guessing at its rate. After they
 * stop, the bucket refills at `attempts` per `per` and the user signs in
 * from anywhere.
 *
 * With workers or nodes sharing Redis (docs/scale.md), the buckets are the
 * shared ones (`shared`): an attacker gets the attempts once for the whole
 * deployment, not once per process.
 */
export class LoginLimiter {
  /** Accounts' buckets apart from addresses': a flood of new addresses cannot push a locked account's bucket out. */
  readonly #accounts: RateLimitStore
  readonly #addresses: RateLimitStore
  readonly #clock: Clock
  readonly #account: { capacity: number; refillPerMs: number }
  readonly #address: { capacity: number; refillPerMs: number }

  readonly #shared: SharedRateLimitStore | undefined

  constructor(limits: IdpConfig['loginLimits'], clock: Clock, shared?: SharedRateLimitStore) {
    this.#accounts = new MemoryRateLimitStore()
    this.#addresses = new MemoryRateLimitStore()
    this.#shared = shared
    this.#clock = clock
    this.#account = { capacity: limits.perAccount.attempts, refillPerMs: limits.perAccount.attempts / limits.perAccount.per }
    this.#address = { capacity: limits.perAddress.attempts, refillPerMs: limits.perAddress.attempts / limits.perAddress.per }
  }

  /**
   * Takes one attempt for `username` (as typed: normalised here; unknown
   * names have buckets too, so the answer never tells which exist) from
   * `address`. Null: go on; else how long until an attempt is allowed (ms).
   */
  take(username: string, address: string): number | null | Promise<number | null> {
    if (this.#shared) return this.#takeShared(this.#shared, username, address)
    const now = this.#clock.now()
    // an IPv6 client counts by its /64 (one subscriber gets a whole /64)
    const a = this.#addresses.take(clientNetwork(address), now, this.#address.capacity, this.#address.refillPerMs)
    if (!a.allowed) return Math.max(1000, a.retryAfterMs)
    // bounded key: a name longer than any valid username counts as its first 256 characters
    const u = this.#accounts.take(normalizeUsername(username.slice(0, 256)), now, this.#account.capacity, this.#account.refillPerMs)
    if (!u.allowed) return Math.max(1000, u.retryAfterMs)
    return null
  }

  /** The same two takes from the shared buckets (keys apart from the routes' rate limits by their prefix). */
  async #takeShared(store: SharedRateLimitStore, username: string, address: string): Promise<number | null> {
    const now = this.#clock.now()
    const a = await store.take(`idp-address|${clientNetwork(address)}`, now, this.#address.capacity, this.#address.refillPerMs)
    if (!a.allowed) return Math.max(1000, a.retryAfterMs)
    const u = await store.take(`idp-account|${normalizeUsername(username.slice(0, 256))}`, now, this.#account.capacity, this.#account.refillPerMs)
    if (!u.allowed) return Math.max(1000, u.retryAfterMs)
    return null
  }
}
