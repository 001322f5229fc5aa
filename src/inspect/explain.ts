import { parseCacheControl } from '../http/cache-control.ts'

/**
 * Plain-words explanations of a response's caching, range and compression
 * headers (docs/inspect.md), from the headers alone; the probes that prove
 * them (a conditional request, a ranged one) are in inspect.ts.
 */

type Fields = Record<string, string | string[] | undefined>

const one = (h: Fields, name: string): string | undefined => {
  const v = h[name]
  return Array.isArray(v) ? v.join(', ') : v
}

export function duration(seconds: number): string {
  if (seconds < 120) return `${seconds} s`
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`
  if (seconds < 172_800) return `${Math.round(seconds / 3600)} h`
  if (seconds < 2 * 365 * 86_400) return `${Math.round(seconds / 86_400)} days`
  return `${Math.round(seconds / (365 * 86_400))} years`
}

export interface CachingFacts {
  /** How the browser may reuse the response: strong (fresh for a while, no request), negotiated (must ask first, 304), or not at all. */
  kind: 'strong' | 'negotiated' | 'none' | 'heuristic'
  freshSeconds: number | null
  validators: { etag: string | null; weakEtag: boolean; lastModified: string | null }
  sharedCache: string
  vary: string[]
  lines: string[]
}

export function explainCaching(status: number, h: Fields): CachingFacts {
  const cc = parseCacheControl(h['cache-control'])
  const etag = one(h, 'etag') ?? null
  const lastModified = one(h, 'last-modified') ?? null
  const vary = (one(h, 'vary') ?? '')
    .split(',')
    .map((v) => v.trim())
    .filter(Boolean)
  const lines: string[] = []
  let kind: CachingFacts['kind']
  let freshSeconds: number | null = null
  const expires = one(h, 'expires')
  const date = Date.parse(one(h, 'date') ?? '') || Date.now()
  if (cc.noStore) {
    kind = 'none'
    lines.push('Cache-Control: no-store: no cache may keep a copy; every visit downloads it again.')
  } else if (cc.noCache || cc.maxAge === 0) {
    kind = 'negotiated'
    lines.push(`${cc.noCache ? 'no-cache' : 'max-age=0'}: a cache may keep it but must ask the server before each use (negotiated caching: a 304 when unchanged).`)
  } else if (cc.maxAge !== undefined) {
    kind = 'strong'
    freshSeconds = cc.maxAge
    lines.push(`max-age=${cc.maxAge}: fresh for ${duration(cc.maxAge)}; until then the browser uses its copy without asking (strong caching)${cc.immutable ? ', and immutable: not even on reload' : ''}.`)
  } else if (expires !== undefined) {
    const at = Date.parse(expires)
    freshSeconds = Number.isNaN(at) ? 0 : Math.max(0, Math.round((at - date) / 1000))
    kind = freshSeconds > 0 ? 'strong' : 'negotiated'
    lines.push(Number.isNaN(at) ? `Expires: ${expires} is not a date, so it counts as already expired.` : `Expires (the HTTP/1.0 way; Cache-Control: max-age wins where both are present): fresh for ${duration(freshSeconds)}.`)
  } else if (lastModified && [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501].includes(status)) {
    kind = 'heuristic'
    const age = Math.max(0, Math.round((date - Date.parse(lastModified)) / 1000))
    freshSeconds = Math.round(age / 10)
    lines.push(`No freshness given, but Last-Modified is: browsers guess a lifetime (10% of its age, about ${duration(freshSeconds)}; RFC 9111 §4.2.2). Say max-age or no-cache to decide yourself.`)
  } else {
    kind = 'none'
    lines.push('No Cache-Control, Expires or Last-Modified: caches will not reuse it.')
  }
  if (etag) lines.push(`ETag ${etag}${etag.startsWith('W/') ? ' (weak: same meaning, maybe not the same bytes; no ranges with If-Range)' : ' (strong: byte for byte)'}: the browser can ask "changed since?" with If-None-Match.`)
  if (lastModified) lines.push(`Last-Modified ${lastModified}: the browser can ask with If-Modified-Since (to the second).`)
  if (!etag && !lastModified && kind !== 'none') lines.push('No validator (ETag or Last-Modified): once stale, the whole response is downloaded again; no 304 is possible.')
  let sharedCache: string
  if (cc.private) sharedCache = 'private: only the browser may keep it, not a CDN or proxy.'
  else if (cc.noStore) sharedCache = 'no shared cache may store it.'
  else if (cc.sMaxage !== undefined) sharedCache = `s-maxage=${cc.sMaxage}: shared caches (CDNs, proxies) keep it fresh for ${duration(cc.sMaxage)}.`
  else if (cc.public) sharedCache = 'public: shared caches (CDNs, proxies) may store it too, even for authenticated requests.'
  else sharedCache = 'shared caches (CDNs, proxies) may store it under the same rules as the browser.'
  lines.push(`Shared caches: ${sharedCache}`)
  if (vary.includes('*')) lines.push('Vary: *: no cache can reuse it for another request.')
  else if (vary.length) lines.push(`Vary: ${vary.join(', ')}: caches keep one copy per value of ${vary.length === 1 ? 'this request header' : 'these request headers'}.`)
  if (cc.staleWhileRevalidate !== undefined) lines.push(`stale-while-revalidate=${cc.staleWhileRevalidate}: after expiry, a stale copy may be used for ${duration(cc.staleWhileRevalidate)} while it is refreshed in the background.`)
  return { kind, freshSeconds, validators: { etag, weakEtag: etag?.startsWith('W/') ?? false, lastModified }, sharedCache, vary, lines }
}

export function explainCompression(requested: string, h: Fields): { offered: string; used: string | null; lines: string[] } {
  const used = one(h, 'content-encoding') ?? null
  const lines: string[] = []
  if (used) lines.push(`Compressed with ${used} (the client offered ${requested}); the size on the wire is smaller than the file.`)
  else {
    const type = one(h, 'content-type') ?? ''
    const compressible = /^(text\/|application\/(json|javascript|xml|wasm)|image\/svg)/.test(type)
    lines.push(compressible ? `Not compressed although ${type.split(';')[0]} compresses well and the client offered ${requested}.` : `Not compressed (${type.split(';')[0] || 'no type'}: usually already compressed, or small).`)
  }
  if (used && !/accept-encoding/i.test(one(h, 'vary') ?? '')) lines.push('Vary: Accept-Encoding is missing: a shared cache could hand the compressed bytes to a client that cannot read them.')
  return { offered: requested, used, lines }
}
