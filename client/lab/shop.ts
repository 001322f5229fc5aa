/**
 * A tiny shop's checkout, for the monitoring lab page (lab/www/lab/monitoring.html):
 * client/build.ts minifies it to lab/www/lab/shop.min.js with a source map beside it,
 * as a site's bundler would. Its bug is on purpose: a coupon the price parser does not
 * expect throws a TypeError from deep inside the minified bundle, and Edgebox maps the
 * stack it collects back to this file, its lines and its function names.
 */

export interface CartLine {
  readonly sku: string
  readonly price: string
  readonly quantity: number
}

/** Parses a price such as "12.50 EUR" into cents. */
function parsePrice(text: string): number {
  const [amount] = text.split(' ')
  const cents = Math.round(Number(amount) * 100)
  if (!Number.isFinite(cents)) throw new TypeError(`cannot read the price ${JSON.stringify(text)}`)
  return cents
}

/** A coupon takes its share off every line. */
function applyCoupon(lines: readonly CartLine[], coupon: string): CartLine[] {
  return lines.map((line) => ({ ...line, price: `${(parsePrice(line.price) * (1 - couponShare(coupon))) / 100} EUR` }))
}

function couponShare(coupon: string): number {
  return coupon === 'LAB10' ? 0.1 : 0
}

/** The cart's total in cents, after the coupon. */
export function checkout(lines: readonly CartLine[], coupon: string): number {
  return applyCoupon(lines, coupon).reduce((sum, line) => sum + parsePrice(line.price) * line.quantity, 0)
}
