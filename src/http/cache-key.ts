import type { Headers } from './cache-control.ts'

/**
 * Keys of a shared cache in front of one origin (RFC 9111 §2, §4.1, §4.4).
 * Pure functions: the caller passes the request target as it arrived and the
 * response's header fields; keys are `http://host/path?query` strings.
 */

/**
 * RFC 9111 §2: the primary key is the target URI, path and query as the
 * client encoded them (GET and HEAD share it). Query parameters an `ignored`
 * test matches are left out, the others keep their order; a query left empty
 * goes with its `?`.
 */
export function cacheKey(host: string, encodedPath: string, query: string, ignored: readonly ((name: string) => boolean)[] = []): string {
  let kept = query
  if (kept && ignored.length) {
    const params = new URLSearchParams(kept)
    for (const name of [...params.keys()]) if (ignored.some((t) => t(name))) params.delete(name)
    const s = params.toString()
    kept = s ? `?${s}` : ''
  }
  return `http://${host}${encodedPath}${kept}`
}

/**
 * RFC 9111 §4.1: the Vary field as a stored response keeps it: one list from
 * all its field lines (RFC 9110 §5.3), the names lower-cased, deduplicated
 * and sorted (field names are case-insensitive, RFC 9110 §5.1, and Vary is a
 * set, §12.5.5), so that `Vary: Accept, Accept-Encoding` and
 * `Vary: accept-encoding,accept` name one stored variant. `*` alone stands
 * for any list that holds it. Undefined without Vary.
 */
export function varyOf(headers: Headers): string | undefined {
  const v = headers.vary
  if (v === undefined) return undefined
  const names = new Set<string>()
  for (const member of (Array.isArray(v) ? v.join(',') : v).split(',')) {
    const name = member.trim().toLowerCase()
    if (name === '*') return '*'
    if (name !== '') names.add(name)
  }
  return [...names].sort().join(', ')
}

/**
 * RFC 9111 §4.4: besides its target (`key`), a successful unsafe request
 * invalidates the URIs its response names in Location and Content-Location,
 * but only on the target's host, so that one origin cannot empty the cache
 * of another. Returns their keys; a value that is no URI reference names
 * nothing.
 */
export function invalidatedKeys(key: string, host: string, headers: Headers): string[] {
  const keys: string[] = []
  for (const field of ['location', 'content-location']) {
    const v = headers[field]
    if (typeof v !== 'string') continue
    try {
      const u = new URL(v, key)
      if (u.host === new URL(key).host) keys.push(`http://${host}${u.pathname}${u.search}`)
    } catch {
      // not a URI reference: nothing to invalidate
    }
  }
  return keys
}
