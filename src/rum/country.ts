import type { Context } from '../core/context.ts'

/**
 * The country a beacon came from, for the `country` breakdowns
 * (docs/monitoring.md, "Countries"): Edgebox has no address database of its
 * own, so it takes the country the CDN or load balancer in front of it
 * looked up, from the one request field the operator names
 * (`rum.countryHeader`: Cloudflare's `CF-IPCountry`, CloudFront's
 * `CloudFront-Viewer-Country`, a GeoIP module's `X-Country-Code`), and only
 * when the request came through one of `trustedProxies`: anyone else could
 * claim any country. The value must be an ISO 3166-1 alpha-2 code; anything
 * else (Cloudflare's `XX` for unknown and `T1` for Tor among them) is null.
 */
export function countryOf(ctx: Context, header: string | undefined): string | null {
  if (header === undefined || !ctx.client.trusted) return null
  const value = ctx.header(header)?.trim().toUpperCase()
  return value !== undefined && /^[A-Z]{2}$/.test(value) && value !== 'XX' ? value : null
}
