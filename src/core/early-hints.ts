import { z } from 'zod'
import type { Context } from './context.ts'
import type { FilterModule, ResponseFilter } from './types.ts'

/**
 * 103 Early Hints (RFC 8297) for a route's HTML documents (docs/tls.md).
 * While the handler is still working out the response (reading a file,
 * waiting for an upstream), the browser already gets the route's `Link`
 * values and starts what they name: `preload` a stylesheet or script,
 * `preconnect` to another origin, `dns-prefetch` a name. HTTP/2 server push
 * did the first of these by sending the bytes unasked, and was removed from
 * browsers; a hint lets the browser decide, using its cache.
 *
 * The hints are sent only for a GET of a document (`Sec-Fetch-Dest:
 * document` or `iframe`, or, without Fetch Metadata, `Accept` naming
 * text/html), never to an HTTP/1.0 client (RFC 9110 §15.2: no 1xx to 1.0);
 * the final HTML response carries the same `Link` field, for clients that
 * ignored the 103 (RFC 8297 §2).
 */

/** A Link field value: `<uri>; rel=preload; as=style` (RFC 8288 §3), one per entry. */
export const earlyHintsSchema = z
  .array(
    z
      .string()
      .regex(/^<[^<>\s]+>(\s*;\s*[a-z*-]+(\s*=\s*("[^"\r\n]*"|[^;,"\s]+))?)+$/i, 'is a Link value like </app.css>; rel=preload; as=style')
      .refine((v) => /;\s*rel\s*=\s*"?(preload|preconnect|dns-prefetch|modulepreload|prefetch)"?/i.test(v), 'needs rel=preload, preconnect, dns-prefetch, modulepreload or prefetch'),
  )
  .min(1)

/** Whether this request is for a document a browser will render (the one kind of response hints are for). */
function wantsDocument(ctx: Context): boolean {
  if (ctx.method !== 'GET' || ctx.protocol === 'http/1.0') return false
  const dest = ctx.header('sec-fetch-dest')
  if (dest !== undefined) return dest === 'document' || dest === 'iframe'
  return /\btext\/html\b/i.test(ctx.header('accept') ?? '')
}

/** Sends the route's 103 Early Hints now, before the handler runs, when the request is for a document. */
function sendEarlyHints(ctx: Context, hints: readonly string[]): void {
  if (!wantsDocument(ctx)) return
  const res = ctx.res as { writeEarlyHints?: (hints: Record<string, string | string[]>) => void }
  res.writeEarlyHints?.({ link: [...hints] })
  ctx.earlyHints = true
}

/** The same `Link` values on the final HTML response (RFC 8297 §2: a client may not have used the 103). */
function linkFilter(hints: readonly string[]): ResponseFilter {
  return function earlyHintsLink(ctx, headers) {
    if (ctx.status < 200 || ctx.status >= 300) return
    const type = String(headers['content-type'] ?? headers['Content-Type'] ?? '')
    if (!type.startsWith('text/html')) return
    const key = headers['link'] !== undefined ? 'link' : headers['Link'] !== undefined ? 'Link' : 'link'
    const current = headers[key]
    headers[key] = current === undefined ? [...hints] : [...([] as string[]).concat(current as string | string[]), ...hints]
  }
}

/** A route's 103 Early Hints (`earlyHints`): a step just before the handler, and the `Link` on its HTML answer. */
export const earlyHintsModule: FilterModule = {
  name: 'earlyHints',
  start: () => ({
    route(route) {
      const hints = route?.earlyHints
      if (!hints) return null
      return { step: (ctx) => sendEarlyHints(ctx, hints), filter: linkFilter(hints) }
    },
  }),
}
