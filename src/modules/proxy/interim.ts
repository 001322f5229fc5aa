import type { ServerResponse } from 'node:http'
import type { Context } from '../../core/context.ts'
import type { H2Res } from '../../core/types.ts'
import type { Headers } from '../../http/cache-control.ts'
import { withoutHopByHop } from '../../http/freshness.ts'

/**
 * Passes an upstream's 1xx interim response on to the client (RFC 9110
 * §15.2), before the final response. Interim responses are never stored or
 * counted as the answer: the cache and the access log see the final one.
 *
 * - 100 Continue is dropped: Edgebox answers `Expect: 100-continue` itself
 *   (it is not forwarded), so the upstream's 100 answers Edgebox's request,
 *   not the client's.
 * - 101 never comes here: upgrades are tunnels (tunnel.ts).
 * - HTTP/1.0 clients get none: §15.2 forbids sending them 1xx.
 * - HTTP/1.1: 103 goes through `writeEarlyHints` (Node writes it only when
 *   there is a valid Link field: a 103 without one is dropped), 102 through
 *   `writeProcessing`; any other 1xx (104, ...) is dropped, because Node's
 *   ServerResponse has no API to write an arbitrary interim response (only
 *   writeContinue, writeProcessing and writeEarlyHints).
 * - HTTP/2: 103 through `writeEarlyHints`; any other 1xx as an informational
 *   HEADERS frame (`stream.additionalHeaders`, RFC 9113 §8.1).
 */
export function relayInterim(ctx: Context, status: number, headers: Headers): void {
  if (status === 100 || status === 101 || status < 100 || status > 199) return
  if (ctx.protocol === 'http/1.0') return
  const res = ctx.res
  if (res.headersSent || res.destroyed) return // the final head went out: too late for interim ones
  const fields = withoutHopByHop(headers)
  delete fields['content-length'] // §15.2: a 1xx has no content
  try {
    if (status === 103) return void (res as ServerResponse).writeEarlyHints(fields as Record<string, string | string[]>)
    if (ctx.protocol.startsWith('h2')) {
      ;(res as H2Res).stream.additionalHeaders({ ...fields, ':status': status })
      return
    }
    if (status === 102) (res as ServerResponse).writeProcessing()
  } catch {
    // a Link Node will not write, or a stream already closing: an interim response is optional
  }
}
