/**
 * Response rate limiting for DNS over UDP, per client network (as BIND's
 * and Knot's RRL): a server answering spoofed queries would send its answers
 * to a victim (a reflection attack), so each network gets `perSecond`
 * answers a second (with a one-second burst). Past that, most queries are
 * dropped, and every `slip`-th one gets an empty truncated answer (TC)
 * instead: a real client behind that network then asks again over TCP, which
 * cannot be spoofed and is not limited. `slip: 0` drops them all; `slip: 1`
 * truncates them all.
 *
 * Networks are the client's address cut to `ipv4Prefix` / `ipv6Prefix`
 * bits. At most `maxNetworks` are tracked (least recently seen first out),
 * so a flood of sources cannot grow it without bound.
 */

import { LRUCache } from 'lru-cache'
import type { Clock } from '../core/clock.ts'
import { addressBytes } from './regions.ts'

export interface RateLimitSettings {
  perSecond: number
  slip: number
  ipv4Prefix: number
  ipv6Prefix: number
  exempt: (address: string) => boolean
  maxNetworks: number
}

export type Verdict = 'answer' | 'slip' | 'drop'

interface Bucket {
  tokens: number
  at: number
  limited: number
}

export class ResponseRateLimit {
  private readonly cfg: RateLimitSettings
  private readonly clock: Clock
  private readonly buckets: LRUCache<string, Bucket>
  /** Called once when a network starts being limited (for the log). */
  onLimit?: (network: string) => void

  constructor(cfg: RateLimitSettings, clock: Clock) {
    this.cfg = cfg
    this.clock = clock
    this.buckets = new LRUCache({ max: cfg.maxNetworks })
  }

  /** The client network a UDP answer to `address` counts against. */
  network(address: string): string {
    const b = addressBytes(address)
    if (!b) return address
    const bits = b.length === 4 ? this.cfg.ipv4Prefix : this.cfg.ipv6Prefix
    const out = Buffer.alloc(b.length)
    const whole = bits >> 3
    b.copy(out, 0, 0, whole)
    if (bits & 7) out[whole] = b[whole]! & ((0xff << (8 - (bits & 7))) & 0xff)
    return b.length === 4 ? `${out.join('.')}/${bits}` : `${out.toString('hex').replace(/(.{4})(?!$)/g, '$1:')}/${bits}`
  }

  check(address: string): Verdict {
    if (this.cfg.exempt(address)) return 'answer'
    const net = this.network(address)
    const now = this.clock.now()
    let b = this.buckets.get(net)
    if (!b) {
      b = { tokens: this.cfg.perSecond, at: now, limited: 0 }
      this.buckets.set(net, b)
    } else {
      b.tokens = Math.min(this.cfg.perSecond, b.tokens + ((now - b.at) / 1000) * this.cfg.perSecond)
      b.at = now
    }
    if (b.tokens >= 1) {
      b.tokens -= 1
      if (b.limited) b.limited = 0
      return 'answer'
    }
    if (b.limited++ === 0) this.onLimit?.(net)
    if (this.cfg.slip > 0 && b.limited % this.cfg.slip === 0) return 'slip'
    return 'drop'
  }
}
