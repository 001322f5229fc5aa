import type { Context } from './context.ts'
import type { FilterModule, ResponseFilter } from './types.ts'

/**
 * The wire trace: the head of each answer on the sites that ask for it
 * (`sites[].trace`), as events a lab page watches live (the sign-on lab shows
 * every redirect and cookie of a login across three host names). An event
 * has what a reader of the wire would see: the method, host and path, the
 * status, where a redirect goes and the cookies set, with every value
 * shortened (a query parameter's or a cookie's value shows its first six
 * characters), so the trace shows the shape of a login but never a usable
 * code, token or session id.
 */

export interface WireEvent {
  /** ms since the epoch */
  readonly at: number
  readonly method: string
  readonly host: string
  /** The path, and the query with each value shortened. */
  readonly target: string
  readonly status: number
  /** A redirect's Location, its query values shortened. */
  readonly location?: string
  /** Set-Cookie fields: the name, the value shortened, the attributes as sent. */
  readonly cookies: readonly string[]
  /** What the sign-on gate decided (`login test`, `allow`), when it ran. */
  readonly auth?: string
}

/** One trace per Edgebox (it outlives reloads): sites publish to it, lab pages listen. */
export class WireTrace {
  private readonly listeners = new Set<(e: WireEvent) => void>()

  /** Listens until the returned function is called. */
  subscribe(fn: (e: WireEvent) => void): () => void {
    this.listeners.add(fn)
    return () => this.listeners.delete(fn)
  }

  get listening(): boolean {
    return this.listeners.size > 0
  }

  publish(e: WireEvent): void {
    for (const fn of this.listeners) fn(e)
  }
}

/** A value cut to its first six characters and an ellipsis. */
function shorten(value: string): string {
  return value.length <= 8 ? value : `${value.slice(0, 6)}…`
}

/** A target or URL with each query value (or a parameter without one) and the fragment shortened. */
export function shortenQuery(target: string): string {
  const h = target.indexOf('#')
  // a fragment can carry a code or a token (response_mode=fragment): only its start is shown
  const fragment = h === -1 ? '' : `#${shorten(target.slice(h + 1))}`
  const rest = h === -1 ? target : target.slice(0, h)
  const q = rest.indexOf('?')
  if (q === -1) return rest + fragment
  const parts = rest
    .slice(q + 1)
    .split('&')
    .map((p) => {
      const eq = p.indexOf('=')
      return eq === -1 ? shorten(p) : `${p.slice(0, eq)}=${shorten(p.slice(eq + 1))}`
    })
  return `${rest.slice(0, q)}?${parts.join('&')}${fragment}`
}

/** A Set-Cookie line with its value shortened. */
export function shortenCookie(line: string): string {
  const eq = line.indexOf('=')
  if (eq === -1) return line
  const semi = line.indexOf(';', eq)
  const value = semi === -1 ? line.slice(eq + 1) : line.slice(eq + 1, semi)
  return `${line.slice(0, eq + 1)}${shorten(value)}${semi === -1 ? '' : line.slice(semi)}`
}

function field(headers: Record<string, string | number | string[]>, name: string): string | number | string[] | undefined {
  for (const k in headers) if (k.toLowerCase() === name) return headers[k]
  return undefined
}

/** The filter that publishes each answer of a site with `trace` (per response; only while someone listens). */
function traceFilter(trace: WireTrace): ResponseFilter {
  return function wireTrace(ctx: Context, headers) {
    if (!trace.listening) return
    const location = field(headers, 'location')
    const set = field(headers, 'set-cookie')
    const cookies = [...(set === undefined ? [] : ([] as string[]).concat(set as string | string[])), ...(ctx.setCookies ?? [])].map(shortenCookie)
    trace.publish({
      at: Date.now(),
      method: ctx.method,
      host: ctx.authority,
      target: shortenQuery(ctx.target.rawPath + ctx.query),
      status: ctx.status,
      ...(location !== undefined ? { location: shortenQuery(String(location)) } : {}),
      cookies,
      ...(ctx.auth ? { auth: ctx.auth } : {}),
    })
  }
}

/** `sites[].trace`: the site's answers go to the wire trace (the lab's). */
export const wireTraceModule: FilterModule = {
  name: 'trace',
  start: ({ trace }) => ({
    route(_route, site) {
      return site.trace ? { filter: traceFilter(trace) } : null
    },
  }),
}
