import type { Logger } from './log.ts'
import { MemoryRateLimitStore, takeResult, type SharedRateLimitStore, type Take } from './rate-limit-store.ts'
import type { RedisBus } from './redis.ts'

/**
 * Token buckets in Redis (docs/scale.md), so a limit counts the requests of
 * every node sharing it: one hash per bucket (`<keyPrefix>rl:<key>`: tokens
 * left and when), read, refilled and taken from in one Lua script, which
 * Redis runs alone, so two nodes never take the same token. A bucket expires
 * once it would be full again (a full bucket is the same as none). Time is
 * the node's clock: the nodes' clocks are expected to agree (NTP); a bucket
 * read by a node whose clock is behind refills nothing, never a negative
 * amount.
 *
 * While Redis is unreachable each node counts in its own memory (logged once
 * per outage), so limits still hold per node and nothing stops serving.
 */

const TAKE = `
local b = redis.call('HMGET', KEYS[1], 't', 'a')
local now, cap, rate = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens = cap
if b[1] then tokens = math.min(cap, tonumber(b[1]) + math.max(0, now - tonumber(b[2])) * rate) end
local allowed = 0
local left = tokens
if tokens >= 1 then
  allowed = 1
  left = tokens - 1
end
redis.call('HSET', KEYS[1], 't', string.format('%.17g', left), 'a', ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil((cap - left) / rate)))
return {allowed, string.format('%.17g', left)}
`

interface TakeScript {
  ebTake(key: string, now: number, capacity: number, refillPerMs: number): Promise<[number, string]>
}

export class RedisRateLimitStore implements SharedRateLimitStore {
  readonly #bus: RedisBus
  readonly #redis: RedisBus['command'] & TakeScript
  readonly #local = new MemoryRateLimitStore()
  readonly #log: Logger
  #localSaid = false

  constructor(bus: RedisBus, log: Logger) {
    this.#bus = bus
    this.#log = log
    const r = bus.command as RedisBus['command'] & Partial<TakeScript>
    if (r.ebTake === undefined) r.defineCommand('ebTake', { numberOfKeys: 1, lua: TAKE })
    this.#redis = r as RedisBus['command'] & TakeScript
  }

  take(key: string, now: number, capacity: number, refillPerMs: number): Take | Promise<Take> {
    if (!this.#bus.up) return this.#here(key, now, capacity, refillPerMs)
    this.#localSaid = false
    return this.#redis.ebTake(`${this.#bus.keyPrefix}rl:${key}`, now, capacity, refillPerMs).then(
      ([allowed, left]) => takeResult(allowed === 1, Number(left), capacity, refillPerMs),
      () => this.#here(key, now, capacity, refillPerMs),
    )
  }

  #here(key: string, now: number, capacity: number, refillPerMs: number): Take {
    if (!this.#localSaid) {
      this.#localSaid = true
      this.#log.warn('rate limits count on this node only until redis is reachable again')
    }
    return this.#local.take(key, now, capacity, refillPerMs)
  }
}
