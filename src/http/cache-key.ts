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

/** RFC 9111 §4.1: the Vary field as one list (several field lines joined), as a stored response keeps it. */
export function varyOf(headers: Headers): string | undefined {
  const v = headers.vary
  return typeof v === 'string' ? v : Array.isArray(v) ? v.join(', ') : undefined
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
