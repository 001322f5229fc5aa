import type { Context } from '../../core/context.ts'
import { httpError } from '../../core/errors.ts'
import type { CacheDirectives } from '../../http/cache-control.ts'
import { varyOf } from '../../http/cache-key.ts'
import { ifRangeMatches } from '../../http/conditional.ts'
import { storability, updateStoredHeaders, varyKey, withoutHopByHop } from '../../http/freshness.ts'
import { contentRange, holdsAll, mergeRange, missingSpan, parseContentRange, parseRange, sliceHeld, type HeldRanges } from '../../http/range.ts'
import { collect, DISCARD, tee } from '../proxy/exchange.ts'
import type { CacheState, Origin, OriginResponse } from './cache.ts'
import { directives, hasAnnouncedLength, reuse, sameVariant, storagePlan, tagsOf, toEntry, ttlAt } from './lookup.ts'
import { counted, relay, serve, servedHeaders } from './serve.ts'
import type { StoredEntry } from './store.ts'

/**
 * Partial content (RFC 9111 §3.3-3.4): ranges served from a stored partial
 * entry, 206 answers stored as partial entries and combined, the missing
 * bytes of a range a partial entry holds part of fetched and combined, and the
 * `rangeMiss: 'whole'` miss that fetches the whole object for a range.
 * Ranges of a complete stored response are answered by serve.ts, with the
 * client's other conditionals.
 */

/** What a storable 206 holds: its byte range of a representation of `size` bytes, with a strong ETag. */
interface PartialPlan {
  start: number
  end: number
  size: number
  etag: string
  strip: string[]
  ttl: number
}

/**
 * RFC 9111 §3.3: a fresh partial entry answers a GET for one range wholly
 * within the bytes it holds, with 206. Anything else (another method, no or
 * several ranges, bytes not held, a conditional request, an If-Range that
 * does not match the strong ETag, a stale entry) returns false: forwarded.
 */
export function servePartial(s: CacheState, ctx: Context, e: StoredEntry, req: CacheDirectives): boolean {
  const r = partialRange(s, ctx, e, req)
  if (r === undefined) return false
  const bytes = sliceHeld({ ranges: e.partial!.ranges, body: e.body }, r.start, r.end)
  if (bytes === undefined) return false
  counted(s, ctx, 'HIT', e)
  const headers = servedHeaders(s, e, `hit; ttl=${r.ttl}`)
  headers['content-range'] = contentRange(r.start, r.end, e.partial!.size)
  ctx.send(206, headers, bytes)
  return true
}

/**
 * RFC 9111 §3.4: a range that a fresh partial entry holds only part of (a
 * request servePartial would answer if all its bytes were held). Only the
 * missing bytes are asked for: one range from the first missing byte to the
 * last, with `If-Range: <stored strong ETag>` (RFC 9110 §13.1.5), so that a
 * changed representation comes back whole as a 200.
 * - A 206 of exactly that range, same strong ETag and complete length:
 *   combined into the entry, and the client's range served from held and
 *   fetched bytes (502 if its body is cut short: nothing is combined).
 * - A 200: stored as usual (it replaces the entry), the range served from it.
 * - 5xx and other answers are relayed.
 * - A 416, or any other 206 (another range, ETag or length): nothing is kept
 *   or served from it, and false is returned: the caller forwards the
 *   request as it came, as it does when nothing of the range is held.
 */
export async function fillPartial(s: CacheState, ctx: Context, key: string, e: StoredEntry, req: CacheDirectives, origin: Origin): Promise<boolean> {
  const r = partialRange(s, ctx, e, req)
  const p = e.partial!
  const etag = strongEtag(e.headers.etag)
  if (r === undefined || etag === undefined || !p.ranges.some((h) => h.start <= r.end && h.end >= r.start)) return false
  const gap = missingSpan(p.ranges, r.start, r.end)
  if (gap === undefined) return false
  const res = await origin({ range: `bytes=${gap.start}-${gap.end}`, 'if-range': etag })
  const fwd = 'fwd=partial'
  if (res.status === 200) {
    await storeWhole(s, ctx, key, res, fwd)
    return true
  }
  if (res.status !== 206) {
    if (res.status !== 416) {
      relay(s, ctx, res, `${fwd}; fwd-status=${res.status}`, 'MISS')
      return true
    }
    res.body.attach(DISCARD)
    return false
  }
  // Only the bytes asked for, of the representation held (RFC 9111 §3.4): never two representations in one answer.
  const cr = res.headers['content-range']
  const got = typeof cr === 'string' ? parseContentRange(cr) : undefined
  const type = res.headers['content-type']
  const multipart = /^\s*multipart\/byteranges/i.test(Array.isArray(type) ? type.join(',') : (type ?? ''))
  if (multipart || got?.start !== gap.start || got.end !== gap.end || got.size !== p.size || strongEtag(res.headers.etag) !== etag) {
    res.body.destroy()
    return false
  }
  const want = gap.end - gap.start + 1
  const body = await collect(res.body, want).catch(() => ({ body: null, rest: null }))
  if (body.body === null || body.body.length !== want || !hasAnnouncedLength(res.headers, want)) {
    body.rest?.destroy()
    throw httpError('EB_ERR_BAD_GATEWAY', 'the upstream sent other than the bytes of the range it announced')
  }
  const plan = partialPlan(s, ctx, key, res)
  const range = { start: gap.start, end: gap.end, size: p.size, etag }
  if (plan.store) combine(s, ctx, key, res, plan, body.body)
  // Served from the entry as it was when this request came (plus the new bytes), whatever was stored meanwhile.
  const joined = joinedEntry(key, ctx, res, { ...range, strip: plan.store ? plan.strip : [] }, body.body, e)
  const bytes = joined.partial === undefined ? joined.body.subarray(r.start, r.end + 1) : sliceHeld({ ranges: joined.partial.ranges, body: joined.body }, r.start, r.end)!
  counted(s, ctx, 'MISS', undefined)
  const headers = servedHeaders(s, joined, plan.store ? `${fwd}; fwd-status=206; stored; ttl=${plan.ttl}` : `${fwd}; fwd-status=206; detail="${plan.reason}"`)
  headers['content-range'] = contentRange(r.start, r.end, p.size)
  ctx.send(206, headers, bytes)
  return true
}

/**
 * RFC 9111 §3.3: the one range of a GET that a fresh partial entry may
 * answer (no other conditional, no If-Range but its strong ETag), and the
 * entry's ttl; undefined for anything else.
 */
function partialRange(s: CacheState, ctx: Context, e: StoredEntry, req: CacheDirectives): { start: number; end: number; ttl: number } | undefined {
  const p = e.partial!
  const h = ctx.req.headers
  if (ctx.method !== 'GET' || h.range === undefined) return undefined
  if (h['if-match'] !== undefined || h['if-none-match'] !== undefined || h['if-modified-since'] !== undefined || h['if-unmodified-since'] !== undefined) return undefined
  const ifRange = ctx.header('if-range')
  if (ifRange !== undefined && !ifRangeMatches(ifRange, { etag: strongEtag(e.headers.etag) })) return undefined
  const r = parseRange(h.range, p.size)
  if (r.kind !== 'ranges' || r.ranges.length !== 1) return undefined
  const u = reuse(s, e, directives(s, e.headers), req)
  if (u.use !== 'fresh') return undefined
  return { ...r.ranges[0]!, ttl: u.ttl }
}

/** Relays a 206 and, if §3.3 allows, stores its range once it arrived whole, combined with what is held (§3.4). */
export function relayPartial(s: CacheState, ctx: Context, key: string, res: OriginResponse, status: string, label: string): void {
  const plan = partialPlan(s, ctx, key, res)
  if (!plan.store) return relay(s, ctx, res, `${status}; fwd-status=206; detail="${plan.reason}"`, label)
  const want = plan.end - plan.start + 1
  const chunks: Buffer[] = []
  let total = 0
  const body = tee(res.body, {
    data: (c) => {
      total += c.length
      if (total <= want) chunks.push(c)
    },
    end: (complete) => {
      // Never store a truncated (or overlong) range: exactly the bytes Content-Range announced.
      if (complete && total === want) combine(s, ctx, key, res, plan, Buffer.concat(chunks, total))
    },
  })
  relay(s, ctx, { ...res, body }, `${status}; fwd-status=206; stored; ttl=${plan.ttl}`, label)
}

/** `rangeMiss: 'whole'`: fetch the object without Range, store it, serve the range from it (RFC 9111 §3.3 not needed). */
export async function wholeForRange(s: CacheState, ctx: Context, key: string, origin: Origin, fwd: string): Promise<void> {
  return storeWhole(s, ctx, key, await origin({ range: null, 'if-range': null }), fwd)
}

/** A 200 for a range request: stored if RFC 9111 §3 allows, and the client's range (or If-Range's choice) served from it; otherwise relayed. */
async function storeWhole(s: CacheState, ctx: Context, key: string, res: OriginResponse, fwd: string): Promise<void> {
  const plan = storagePlan(s, ctx, res)
  if (!plan.store || res.status !== 200) return relay(s, ctx, res, `${fwd}; fwd-status=${res.status}${plan.store ? '' : `; detail="${plan.reason}"`}`, 'MISS')
  const got = await collect(res.body, s.cfg.maxObjectSize)
  if (!got.body) {
    // Too large to keep: send the whole object (a 200 may ignore Range), what arrived first included.
    return relay(s, ctx, { ...res, body: got.rest }, `${fwd}; fwd-status=200; detail="larger than maxObjectSize"`, 'MISS')
  }
  if (!hasAnnouncedLength(res.headers, got.body.length)) throw httpError('EB_ERR_BAD_GATEWAY', 'the upstream sent fewer bytes than it announced')
  const entry = toEntry(key, ctx, res, plan.strip, got.body)
  s.store.put(entry)
  serve(s, ctx, entry, `${fwd}; fwd-status=200; stored; ttl=${plan.ttl}`, 'MISS')
}

/**
 * RFC 9111 §3.3: whether a 206 can be stored as partial content, and which
 * range it holds: an answer to a Range request, with one `Content-Range:
 * bytes a-b/N` (known complete length N, at most maxObjectSize), a body of
 * exactly b-a+1 bytes announced, a strong ETag (§3.4 combines only under a
 * strong validator), otherwise storable (§3), and no complete response
 * stored for the same variant (a 206 never replaces one).
 */
function partialPlan(s: CacheState, ctx: Context, key: string, res: OriginResponse): { store: false; reason: string } | ({ store: true } & PartialPlan) {
  const refuse = (reason: string) => ({ store: false as const, reason })
  if (ctx.req.headers.range === undefined) return refuse('206 to a request without Range')
  const type = res.headers['content-type']
  if (/^\s*multipart\/byteranges/i.test(Array.isArray(type) ? type.join(',') : (type ?? ''))) return refuse('multipart/byteranges is not stored')
  const cr = res.headers['content-range']
  const range = typeof cr === 'string' ? parseContentRange(cr) : undefined
  if (!range) return refuse('206 without a single byte range of known complete length')
  const etag = strongEtag(res.headers.etag)
  if (etag === undefined) return refuse('206 without a strong ETag')
  if (range.size > s.cfg.maxObjectSize) return refuse('larger than maxObjectSize')
  if (!hasAnnouncedLength(res.headers, range.end - range.start + 1)) return refuse('Content-Length does not match Content-Range')
  const dirs = directives(s, res.headers)
  const st = storability({ method: ctx.method, headers: ctx.req.headers }, { status: res.status, headers: res.headers }, dirs, { partialContent: true })
  if (!st.storable) return refuse(st.reason ?? 'not storable')
  const current = sameVariant(s, key, ctx, res.headers)
  if (current !== undefined && current.partial === undefined) return refuse('a complete response is stored')
  return { store: true, ...range, etag, strip: st.stripFields, ttl: ttlAt(s, res, dirs, res.responseTime) }
}

/**
 * RFC 9111 §3.4, RFC 9110 §15.3.7.3: a new range of a representation joins
 * a stored partial entry with the same strong ETag and complete length (its
 * header fields updated with the new ones, §3.2); otherwise it replaces it.
 * Once every byte is held, the entry becomes a complete 200 response.
 */
function combine(s: CacheState, ctx: Context, key: string, res: OriginResponse, plan: PartialPlan, bytes: Buffer): void {
  const existing = sameVariant(s, key, ctx, res.headers)
  if (existing !== undefined && existing.partial === undefined) return // a complete response arrived meanwhile
  s.store.put(joinedEntry(key, ctx, res, plan, bytes, existing))
}

/** The entry `bytes` (plan's range of `res`) make, joined with `existing` if it holds the same representation (combine). */
function joinedEntry(key: string, ctx: Context, res: OriginResponse, plan: Omit<PartialPlan, 'ttl'>, bytes: Buffer, existing: StoredEntry | undefined): StoredEntry {
  let headers = withoutHopByHop(res.headers)
  delete headers['content-range']
  delete headers['content-length']
  let held: HeldRanges = { ranges: [{ start: plan.start, end: plan.end }], body: bytes }
  if (existing?.partial !== undefined && existing.partial.size === plan.size && strongEtag(existing.headers.etag) === plan.etag) {
    held = mergeRange({ ranges: existing.partial.ranges, body: existing.body }, plan.start, bytes)
    headers = updateStoredHeaders(existing.headers, headers)
  }
  for (const f of plan.strip) delete headers[f]
  const vary = varyOf(res.headers)
  const base = { key, variant: varyKey(vary, ctx.req.headers) ?? '', vary, body: held.body, requestTime: res.requestTime, responseTime: res.responseTime, tags: tagsOf(headers) }
  if (holdsAll(held, plan.size)) {
    headers['content-length'] = String(plan.size)
    return { ...base, status: 200, headers }
  }
  return { ...base, status: 206, headers, partial: { size: plan.size, ranges: held.ranges } }
}

/** A strong entity tag (RFC 9110 §8.8.3) from an ETag field, or undefined (weak, invalid, several, or none). */
function strongEtag(v: string | string[] | undefined): string | undefined {
  if (typeof v !== 'string') return undefined
  const t = v.trim()
  return /^"[\x21\x23-\x7e\x80-\xff]*"$/.test(t) ? t : undefined
}
