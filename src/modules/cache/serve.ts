import { PreparedResponse, type Context, type Headers as ResponseHeaders } from '../../core/context.ts'
import { httpError } from '../../core/errors.ts'
import { evaluatePreconditions, ifRangeMatches } from '../../http/conditional.ts'
import { parseHttpDate } from '../../http/date.ts'
import { currentAge, freshnessLifetime, withoutHopByHop } from '../../http/freshness.ts'
import { contentRange, multipartByteranges, parseRange, unsatisfiedRange } from '../../http/range.ts'
import type { CacheState, Origin, OriginResponse } from './cache.ts'
import type { StoredEntry } from './store.ts'
import type { CacheDirectives, Headers } from '../../http/cache-control.ts'
import { directives } from './lookup.ts'

/**
 * Answering the client: from a stored response (Age, the client's own
 * conditionals and ranges answered from it), or with the origin's response
 * relayed. Every answer carries this cache's Cache-Status entry (RFC 9211)
 * and sets the access log's cache outcome (`label`).
 */

/** Bodies up to this size are also kept as a latin1 string (see StoredEntry.wire). */
const WIRE_MAX = 64 * 1024

/**
 * What every answer from one stored head shares, prepared once: the served
 * fields in order (stored fields without Content-Length, then Age and
 * Cache-Status, whose values alone change per request), the validators, and
 * this cache's Cache-Status prefix (RFC 9211). Made again when a 304 refresh
 * (RFC 9111 §4.3.4) replaces the stored headers or times.
 */
export interface ServedHead {
  readonly headers: Headers
  readonly status: number
  readonly requestTime: number
  readonly responseTime: number
  readonly template: ResponseHeaders
  readonly etag: string | undefined
  readonly lastModified: number | undefined
  /** The directives this cache obeys (lookup.ts directives) and the freshness lifetime in ms (RFC 9111 §4.2.1). */
  readonly dirs: CacheDirectives
  readonly lifetime: number
  /** Cache-Status up to this cache's parameters: `upstream-entries, name; `. */
  readonly statusPrefix: string
  /** The last Age value sent, as text (Age changes once a second). */
  age: number
  ageText: string
  /** The last `hit; ttl=N` Cache-Status sent. */
  ttl: number
  hitStatus: string
  /** A fresh hit's answer, prepared on its first use, and its last [Age, Cache-Status] values (serveHit). */
  hit: PreparedResponse | undefined
  hitValues: readonly string[] | undefined
}

/** The fields of a prepared hit whose values change per response (RFC 9111 §4.2.3, RFC 9211). */
const HIT_VARYING: readonly string[] = Object.freeze(['age', 'cache-status'])

/** The prepared head of a stored response (see ServedHead), made on first use and kept with the entry. */
export function servedHead(s: CacheState, e: StoredEntry): ServedHead {
  const h = e.served
  if (h !== undefined && h.headers === e.headers && h.status === e.status && h.responseTime === e.responseTime && h.requestTime === e.requestTime) return h
  const stored = e.headers
  const template: ResponseHeaders = {}
  for (const k in stored) {
    const v = stored[k]
    if (v !== undefined && k !== 'content-length') template[k] = v
  }
  template.age = '0'
  template['cache-status'] = ''
  const upstream = stored['cache-status']
  const prev = Array.isArray(upstream) ? upstream.join(', ') : upstream
  const dirs = directives(s, stored)
  const made: ServedHead = {
    headers: stored,
    status: e.status,
    requestTime: e.requestTime,
    responseTime: e.responseTime,
    template,
    etag: typeof stored.etag === 'string' ? stored.etag : undefined,
    lastModified: parseHttpDate(typeof stored['last-modified'] === 'string' ? stored['last-modified'] : undefined),
    dirs,
    lifetime: freshnessLifetime(e, dirs, { maxHeuristic: s.cfg.maxHeuristic, responseTime: e.responseTime }),
    statusPrefix: prev ? `${prev}, ${s.cfg.name}; ` : `${s.cfg.name}; `,
    age: -1,
    ageText: '',
    ttl: Number.NaN,
    hitStatus: '',
    hit: undefined,
    hitValues: undefined,
  }
  e.served = made
  return made
}

/** RFC 9111 §4.2.3: Age of the stored response now, as text. */
function ageText(s: CacheState, e: StoredEntry, head: ServedHead, age = currentAge(e, s.clock.now())): string {
  if (age !== head.age) {
    head.age = age
    head.ageText = String(age)
  }
  return head.ageText
}

/**
 * A fresh hit (RFC 9111 §4.2) without conditionals or Range: the prepared
 * head with this second's Age and Cache-Status `hit; ttl=N`, and the stored
 * body. Anything else goes the general way (serve).
 */
export function serveHit(s: CacheState, ctx: Context, e: StoredEntry, ttl: number, age: number): void {
  const h = ctx.req.headers
  if (e.status === 200 && (h['if-none-match'] !== undefined || h['if-modified-since'] !== undefined || h['if-match'] !== undefined || h['if-unmodified-since'] !== undefined || h.range !== undefined)) {
    return serve(s, ctx, e, `hit; ttl=${ttl}`, 'HIT')
  }
  ctx.cache = 'HIT'
  s.counts.hits++
  e.hits = (e.hits ?? 0) + 1
  const head = servedHead(s, e)
  if (head.ttl !== ttl) {
    head.ttl = ttl
    head.hitStatus = `${head.statusPrefix}hit; ttl=${ttl}`
  }
  const text = ageText(s, e, head, age)
  // the stored head and body prepared once; Age and Cache-Status change at most once a second
  let values = head.hitValues
  if (values === undefined || values[0] !== text || values[1] !== head.hitStatus) values = head.hitValues = [text, head.hitStatus]
  const hit = (head.hit ??= new PreparedResponse(e.status, head.template, e.body, e.body.length > WIRE_MAX ? undefined : (e.wire ??= e.body.toString('latin1')), HIT_VARYING))
  ctx.sendPrepared(hit, values)
}

/** Serves a stored response: client conditionals (RFC 9110 §13) and ranges (§14) answered from it, with Age and Cache-Status. */
export function serve(s: CacheState, ctx: Context, e: StoredEntry, status: string, label: string): void {
  counted(s, ctx, label, e)
  const h = ctx.req.headers
  const head = servedHead(s, e)
  const headers = { ...head.template }
  headers.age = ageText(s, e, head)
  headers['cache-status'] = head.statusPrefix + status
  const etag = head.etag
  const lastModified = head.lastModified
  if (e.status === 200 && (h['if-none-match'] !== undefined || h['if-modified-since'] !== undefined || h['if-match'] !== undefined || h['if-unmodified-since'] !== undefined)) {
    const result = evaluatePreconditions(ctx.method, { ifMatch: h['if-match'], ifNoneMatch: h['if-none-match'], ifModifiedSince: h['if-modified-since'], ifUnmodifiedSince: h['if-unmodified-since'] }, { etag, lastModified, exists: true })
    if (result === 'not-modified') {
      const keep: ResponseHeaders = {}
      for (const k of NOT_MODIFIED_FIELDS) if (headers[k] !== undefined) keep[k] = headers[k]!
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

/**
 * Sets the access log's cache outcome and counts it for the operator's view
 * (CacheCounts): a hit or a stale answer served from `e` also counts on the
 * entry, for the most-hit keys.
 */
export function counted(s: CacheState, ctx: Context, label: string, e: StoredEntry | undefined): void {
  ctx.cache = label
  const c = s.counts
  if (label === 'HIT' || label === 'STALE') {
    if (label === 'HIT') c.hits++
    else c.stale++
    if (e !== undefined) e.hits = (e.hits ?? 0) + 1
  } else if (label === 'MISS' || label === 'EXPIRED') c.misses++
}

/** RFC 9110 §15.4.5: the fields a 304 from a stored response carries. */
const NOT_MODIFIED_FIELDS = ['etag', 'last-modified', 'cache-control', 'expires', 'vary', 'content-location', 'date', 'age', 'cache-status'] as const

/** The stored header fields (without Content-Length), with Age (RFC 9111 §4.2.3) and Cache-Status. */
export function servedHeaders(s: CacheState, e: StoredEntry, status: string): ResponseHeaders {
  const head = servedHead(s, e)
  const headers = { ...head.template }
  headers.age = ageText(s, e, head)
  headers['cache-status'] = head.statusPrefix + status
  return headers
}

/** Streams an origin response to the client with Cache-Status. */
export function relay(s: CacheState, ctx: Context, res: OriginResponse, status: string, label: string): void {
  counted(s, ctx, label, undefined)
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
