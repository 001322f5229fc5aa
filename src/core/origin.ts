/**
 * The origin policy: which web origins may use a site from a browser
 * (docs/configuration.md, `sites[].origins`). One policy per site, read by
 * every check that asks "may this page talk to us": the WebSocket origin
 * check and cross-origin SSE and polling in the realtime hub today, CORS and
 * CSRF checks later. A request's own origin (same scheme, host and port) is
 * always allowed.
 */

export interface OriginPolicy {
  /** Whether a request from `origin` (the Origin field) to `host` (its Host) may be served. */
  allows(origin: string, host: string, scheme: string): boolean
  /** Whether the answer depends on Origin (then responses vary on it). */
  readonly listsOthers: boolean
  /** Whether `origin` is one the entries name (exact, subdomain wildcard or `*`), leaving same-origin aside. */
  listed(origin: string): boolean
}

const ORIGIN = /^(https?):\/\/([^/?#]+)$/i

/**
 * Entries: `https://app.example.com` (exact), `https://*.example.com` (any
 * subdomain, not the bare domain), or `*` (any origin).
 */
export function originPolicy(entries: readonly string[]): OriginPolicy {
  const any = entries.includes('*')
  const exact = new Set<string>()
  const wildcards: Array<{ scheme: string; suffix: string }> = []
  for (const e of entries) {
    if (e === '*') continue
    const m = ORIGIN.exec(e)
    if (!m) throw new Error(`${JSON.stringify(e)} is not an origin like https://app.example.com, https://*.example.com or *`)
    const scheme = m[1]!.toLowerCase()
    const host = m[2]!.toLowerCase()
    if (host.startsWith('*.')) wildcards.push({ scheme, suffix: host.slice(1) })
    else exact.add(`${scheme}://${host}`)
  }
  const listed = (origin: string): boolean => {
    const o = origin.toLowerCase()
    if (any) return o !== 'null'
    if (exact.has(o)) return true
    const m = ORIGIN.exec(o)
    if (!m) return false
    return wildcards.some((w) => m[1] === w.scheme && m[2]!.endsWith(w.suffix) && m[2]!.length > w.suffix.length)
  }
  return {
    listsOthers: entries.length > 0,
    listed,
    allows: (origin, host, scheme) => origin.toLowerCase() === `${scheme}://${host.toLowerCase()}` || listed(origin),
  }
}
