import { createHash } from 'node:crypto'
import { z } from 'zod'
import type { Context } from '../../core/context.ts'
import { httpError } from '../../core/errors.ts'
import type { FilterModule, ResponseFilter } from '../../core/types.ts'
import { duration } from '../../config/units.ts'
import { TCHAR } from '../../http/token.ts'
import { systemClock, type Clock } from '../../core/clock.ts'
import { MemoryRateLimitStore, type RateLimitStore, type SharedRateLimitStore, type Take } from '../../core/rate-limit-store.ts'

/**
 * Rate limits per route (docs/security.md): a token bucket per client
 * address (the one resolver, trusting forwarding fields only from
 * `trustedProxies`), per credential, or per a request header. A request
 * that finds the bucket empty gets 429 with `Retry-After`; every answer
 * under a limit says where the client stands (`RateLimit-Limit`,
 * `RateLimit-Remaining`, `RateLimit-Reset`, `RateLimit-Policy`, after the
 * IETF httpapi rate-limit fields draft). Buckets live in a store; the
 * embedded one is in memory, and a shared one (Redis) can implement the same
 * interface for several nodes.
 */

export const rateLimitSchema = z.strictObject({
  /** Requests allowed per window, on average. */
  requests: z.number().int().min(1),
  /** The window: `1s`, `1m`, `1h`. */
  per: duration(),
  /** Requests allowed at once after a quiet spell (the bucket's size); default: `requests`. */
  burst: z.number().int().min(1).optional(),
  /** What a bucket belongs to: `client` (address), `credential` (Authorization, hashed), or `header:<name>`. */
  key: z.union([z.enum(['client', 'credential']), z.string().regex(new RegExp(`^header:${TCHAR}+$`), 'is client, credential or header:<name>')]).default('client'),
})

export type RateLimitConfig = z.output<typeof rateLimitSchema>

// the buckets are core's (shared with the identity provider's login limits); re-exported so their users import them from here as before
export { MemoryRateLimitStore, type RateLimitStore }

export interface RateLimiter {
  /** Takes a token for this request, or throws 429 (a shared store answers later: a promise that settles the same way). */
  check(ctx: Context): void | Promise<void>
}

export function createRateLimiter(cfg: RateLimitConfig, store: SharedRateLimitStore, routeId: string, clock: Clock = systemClock): RateLimiter {
  const capacity = cfg.burst ?? cfg.requests
  const refillPerMs = cfg.requests / cfg.per
  const windowS = Math.max(1, Math.round(cfg.per / 1000))
  const policy = `${cfg.requests};w=${windowS}${cfg.burst !== undefined ? `;burst=${cfg.burst}` : ''}`
  const header = cfg.key.startsWith('header:') ? cfg.key.slice(7).toLowerCase() : null
  const keyOf = (ctx: Context): string => {
    if (cfg.key === 'client') return `c:${ctx.clientAddress}`
    if (cfg.key === 'credential') {
      const auth = ctx.header('authorization')
      // No credential: counted by address, so leaving it out does not escape the limit.
      return auth ? `a:${createHash('sha256').update(auth).digest('base64url')}` : `c:${ctx.clientAddress}`
    }
    return `h:${ctx.header(header!) ?? ''}`
  }
  return {
    check(ctx) {
      const r = store.take(`${routeId}|${keyOf(ctx)}`, clock.now(), capacity, refillPerMs)
      return r instanceof Promise ? r.then((taken) => apply(ctx, taken)) : apply(ctx, r)
    },
  }

  function apply(ctx: Context, r: Take): void {
    const fields = {
      'RateLimit-Limit': String(capacity),
      'RateLimit-Remaining': String(r.remaining),
      'RateLimit-Reset': String(Math.ceil((r.allowed ? r.fullInMs : r.retryAfterMs) / 1000)),
      'RateLimit-Policy': policy,
    }
    if (!r.allowed) {
      ctx.rateLimited = true
      throw httpError('EB_ERR_TOO_MANY_REQUESTS', `rate limit of ${cfg.requests} requests per ${windowS} s reached; try again in ${Math.ceil(r.retryAfterMs / 1000)} s`, { ...fields, 'Retry-After': String(Math.max(1, Math.ceil(r.retryAfterMs / 1000))) })
    }
    ctx.rateLimitHeaders = fields
  }
}

/** Adds where the client stands to every answer under a limit (a response filter). */
export const rateLimitFilter: ResponseFilter = function rateLimit(ctx, headers) {
  if (ctx.rateLimitHeaders) Object.assign(headers, ctx.rateLimitHeaders)
}

/** A route's rate limit (`rateLimit`); every route of one configuration counts in one store. */
export const rateLimitModule: FilterModule = {
  name: 'rateLimit',
  start({ clock, rateLimits }) {
    // the embedded store counts in this process; with workers or a shared Redis, every process counts in one bucket (docs/scale.md)
    const store: SharedRateLimitStore = rateLimits ?? new MemoryRateLimitStore()
    return {
      route(route, _site, deps) {
        if (!route?.rateLimit) return null
        const limiter = createRateLimiter(route.rateLimit, store, deps.configPath, clock)
        return { step: (ctx) => limiter.check(ctx), filter: rateLimitFilter }
      },
    }
  },
}
