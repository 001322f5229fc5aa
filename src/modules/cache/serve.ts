import type { Context, Headers as ResponseHeaders } from '../../core/context.ts'
import { httpError } from '../../core/errors.ts'
import { evaluatePreconditions, ifRangeMatches } from '../../http/conditional.ts'
import { parseHttpDate } from '../../http/date.ts'
import { currentAge, withoutHopByHop } from '../../http/freshness.ts'
import { contentRange, multipartByteranges, parseRange, unsatisfiedRange } from '../../http/range.ts'
import type { CacheState, Origin, OriginResponse } from './cache.ts'
import type { StoredEntry } from './store.ts'

/**
 * Answering the client: from a stored response (Age, the client's own
 * conditionals and ranges answered from it), or with the origin's response
 * relayed. Every answer carries this cache's Cache-Status entry (RFC 9211)
 * and sets the access log's cache outcome (`label`).
 */

/** Bodies up to this size are also kept as a latin1 string (see StoredEntry.wire). */
const WIRE_MAX = 64 * 1024

/** Serves a stored response: client conditionals (RFC 9110 §13) and ranges (§14) answered from it, with Age and Cache-Status. */
export function serve(s: CacheState, ctx: Context, e: StoredEntry, status: string, label: string): void {
  ctx.cache = label
  const h = ctx.req.headers
  const headers = servedHeaders(s, e, status)
  const etag = typeof e.headers.etag === 'string' ? e.headers.etag : undefined
  const lastModified = parseHttpDate(typeof e.headers['last-modified'] === 'string' ? e.headers['last-modified'] : undefined)
  if (e.status === 200 && (h['if-none-match'] !== undefined || h['if-modified-since'] !== undefined || h['if-match'] !== undefined || h['if-unmodified-since'] !== undefined)) {
    const result = evaluatePreconditions(ctx.method, { ifMatch: h['if-match'], ifNoneMatch: h['if-none-match'], ifModifiedSince: h['if-modified-since'], ifUnmodifiedSince: h['if-unmodified-since'] }, { etag, lastModified, exists: true })
    if (result === 'not-modified') {
      const keep: ResponseHeaders = {}
      for (const k of ['etag', 'last-modified', 'cache-control', 'expires', 'vary', 'content-location', 'date', 'age', 'cache-status']) if (headers[k] !== undefined) keep[k] = headers[k]!
      return ctx.send(304, keep)
    }
    if (result === 'failed') throw httpError('EB_ERR_PRECONDITION_FAILED', 'the stored response does not match the preconditions')
  }
  const range = ctx.method === 'GET' && e.status === 200 ? h.range : undefined
  if (range !== undefined && ifRangeMatches(ctx.header('if-range'), { etag, lastModified })) {
    const r = parseRange(range, e.body.length)
    if (r.kind === 'unsatisfiable') throw httpError('EB_ERR_RANGE_NOT_SATISFIABLE', undefined, { 'Content-Range': unsatisfiedRange(e.body.length) })
    if (r.kind === 'ranges' && r.ranges.length === 1) {
      const { start, end } = r.ranges[0]!
      headers['content-range'] = contentRange(start, end, e.body.length)
      return ctx.send(206, headers, e.body.subarray(start, end + 1))
    }
    if (r.kind === 'ranges') {
      const type = typeof e.headers['content-type'] === 'string' ? e.headers['content-type'] : 'application/octet-stream'
      const boundary = `edgebox-${e.body.length}-${r.ranges.length}`
      const mp = multipartByteranges(r.ranges, e.body.length, type, boundary)
      headers['content-type'] = `multipart/byteranges; boundary=${boundary}`
      return ctx.send(206, headers, Buffer.concat([...mp.parts.flatMap((p) => [p.head, e.body.subarray(p.start, p.end + 1)]), mp.tail]))
    }
  }
  if (e.body.length > WIRE_MAX) return ctx.send(e.status, headers, e.body)
  ctx.send(e.status, headers, (e.wire ??= e.body.toString('latin1')), 'latin1')
}

/** The stored header fields (without Content-Length), with Age (RFC 9111 §4.2.3) and Cache-Status. */
export function servedHeaders(s: CacheState, e: StoredEntry, status: string): ResponseHeaders {
  const headers: ResponseHeaders = {}
  const stored = e.headers
  for (const k in stored) {
    const v = stored[k]
    if (v !== undefined && k !== 'content-length') headers[k] = v
  }
  headers.age = String(currentAge(e, s.clock.now()))
  headers['cache-status'] = cacheStatus(e.headers['cache-status'], s.cfg.name, status)
  return headers
}

/** Streams an origin response to the client with Cache-Status. */
export function relay(s: CacheState, ctx: Context, res: OriginResponse, status: string, label: string): void {
  ctx.cache = label
  const headers = withoutHopByHop(res.headers) as ResponseHeaders
  headers['cache-status'] = cacheStatus(res.headers['cache-status'], s.cfg.name, status)
  ctx.relay(res.status, headers, res.body)
}

/** Forwards without storing. */
export async function pass(s: CacheState, ctx: Context, origin: Origin, status: string, label: string): Promise<void> {
  const res = await origin({})
  relay(s, ctx, res, status, label)
}

/** RFC 9211: this cache's entry goes after those of caches nearer the origin. */
function cacheStatus(upstream: string | string[] | undefined, name: string, mine: string): string {
  const own = `${name}; ${mine}`
  const prev = Array.isArray(upstream) ? upstream.join(', ') : upstream
  return prev ? `${prev}, ${own}` : own
}
