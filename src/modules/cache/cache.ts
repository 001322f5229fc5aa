import { z } from 'zod'
import type { Context, Headers as ResponseHeaders } from '../../core/context.ts'
import { httpError } from '../../core/errors.ts'
import { safeEqual } from '../../core/secrets.ts'
import { duration, size } from '../../config/units.ts'
import { parseCacheControl, targetedCacheControl, type CacheDirectives, type Headers } from '../../http/cache-control.ts'
import { evaluatePreconditions, ifRangeMatches } from '../../http/conditional.ts'
import { parseHttpDate } from '../../http/date.ts'
import { currentAge, staleIfErrorAllowed, storability, updateStoredHeaders, usability, varyKey, withoutHopByHop } from '../../http/freshness.ts'
import { contentRange, holdsAll, mergeRange, multipartByteranges, parseContentRange, parseRange, sliceHeld, unsatisfiedRange, type HeldRanges } from '../../http/range.ts'
import { compileGlob } from '../../http/glob.ts'
import type { CacheStore, StoredEntry } from './store.ts'
import type { BodySource } from '../../core/types.ts'
import { collect, DISCARD, tee } from '../proxy/exchange.ts'
import { systemClock, type Clock } from '../../core/clock.ts'

/**
 * A shared HTTP cache (RFC 9111) in front of an origin: lookup by key and
 * Vary, freshness and Age, serving hits (with client conditionals and
 * ranges answered from the stored response), revalidation with conditional
 * requests, stale-while-revalidate and stale-if-error (RFC 5861), request
 * coalescing, invalidation by unsafe methods (§4.4), partial responses
 * stored and combined (§3.3, §3.4), and Cache-Status (RFC 9211) on every
 * response. docs/cache.md describes it.
 *
 * The origin is a function that sends the request upstream with some extra
 * header fields and resolves once the response head has arrived; the proxy
 * provides it (with its balancing, retries and timeouts).
 */

export const cacheOptions = z.strictObject({
  /** This cache's name in Cache-Status (RFC 9211): name the tiers of a hierarchy (`edge`, `parent`). */
  name: z.string().regex(/^[A-Za-z][A-Za-z0-9_.:-]*$/, 'is a token such as edge or parent').default('edgebox'),
  /** Budget of the store (bodies and headers), LRU beyond it. */
  maxBytes: size().default(256 * 1024 * 1024),
  /** Keep stored responses in this directory (they survive restarts) instead of in memory only. */
  disk: z.string().min(1).optional(),
  /** Larger responses are passed through, not stored. */
  maxObjectSize: size().default(8 * 1024 * 1024),
  /** Ignore the client's Cache-Control / Pragma (reload, hard reload), as CDNs do: clients cannot force origin fetches. */
  ignoreRequestDirectives: z.boolean().default(false),
  /** Targeted cache-control fields (RFC 9213), first present wins over Cache-Control for this cache. */
  targetedFields: z.array(z.string().min(1).toLowerCase()).default(['edgebox-cache-control', 'cdn-cache-control']),
  /** Query parameters left out of the cache key: names or globs such as `utm_*`. */
  ignoreQuery: z.array(z.string().min(1)).default([]),
  /** Upper bound of heuristic freshness (RFC 9111 §4.2.2). */
  maxHeuristic: duration().default(24 * 60 * 60 * 1000),
  /**
   * A Range request on a miss: `forward` sends it upstream as a range (a
   * 206 answer with a strong ETag is stored as a partial entry and combined
   * with later ones, RFC 9111 §3.3-3.4); `whole` fetches the whole object
   * without Range, stores it, and serves the range from it, as CDNs do.
   */
  rangeMiss: z.enum(['forward', 'whole']).default('forward'),
  /** The PURGE method on this route, with `Authorization: Bearer <token>`. Absent: PURGE is not allowed. */
  purge: z.strictObject({ token: z.string().min(16, 'tokens must be at least 16 characters') }).optional(),
})
export const cacheSchema = z.union([z.boolean(), cacheOptions])
export type CacheOptions = z.output<typeof cacheOptions>

export interface OriginResponse {
  status: number
  headers: Headers
  body: BodySource
  requestTime: number
  responseTime: number
}
/** Sends the request upstream with extra fields; `background`: a refresh no client waits for. */
export type Origin = (extraHeaders: Record<string, string | null>, background?: boolean) => Promise<OriginResponse>

interface Flight {
  /** Resolves with whether the response will be stored, once its head arrived. */
  readonly head: Promise<boolean>
  /** Resolves with the stored entry (or null) once the body is complete. */
  readonly done: Promise<StoredEntry | null>
}

const UNSAFE = new Set(['POST', 'PUT', 'DELETE', 'PATCH'])
/** Bodies up to this size are also kept as a latin1 string (see StoredEntry.wire). */
const WIRE_MAX = 64 * 1024

export class HttpCache {
  readonly store: CacheStore
  private readonly cfg: CacheOptions
  private readonly inflight = new Map<string, Flight>()
  private readonly ignoredQuery: ((name: string) => boolean)[]
  /** Where ages and freshness are measured (Age, ttl, stale windows). */
  private readonly clock: Clock

  constructor(cfg: CacheOptions, store: CacheStore, clock: Clock = systemClock) {
    this.cfg = cfg
    this.store = store
    this.clock = clock
    this.ignoredQuery = cfg.ignoreQuery.map(compileGlob)
  }

  /** RFC 9111 §2: the primary key is the target URI (method GET and HEAD share it). */
  key(ctx: Context): string {
    let query = ctx.query
    if (query && this.ignoredQuery.length) {
      const params = new URLSearchParams(query)
      for (const name of [...params.keys()]) if (this.ignoredQuery.some((t) => t(name))) params.delete(name)
      const s = params.toString()
      query = s ? `?${s}` : ''
    }
    return `http://${ctx.host}${ctx.encodedPath}${query}`
  }

  /** The directives this cache obeys: a targeted field if present (RFC 9213), else Cache-Control. */
  private directives(headers: Headers): CacheDirectives {
    return targetedCacheControl(headers, this.cfg.targetedFields) ?? parseCacheControl(headers['cache-control'])
  }

  /** Request directives (RFC 9111 §5.2.1); `Pragma: no-cache` counts only without Cache-Control (§5.4). */
  private requestDirectives(ctx: Context): CacheDirectives {
    if (this.cfg.ignoreRequestDirectives) return {}
    const h = ctx.req.headers
    if (h['cache-control'] === undefined) return /(^|,)\s*no-cache\s*(,|$)/i.test(String(h.pragma ?? '')) ? { noCache: true } : {}
    return parseCacheControl(h['cache-control'])
  }

  /** The stored response for this request: a complete one if there is one, else a partial one. */
  private match(key: string, ctx: Context): StoredEntry | undefined {
    let partial: StoredEntry | undefined
    for (const e of this.store.variants(key)) {
      if (varyKey(e.vary, ctx.req.headers) !== e.variant) continue
      if (e.partial === undefined) return e
      partial ??= e
    }
    return partial
  }

  /** Answers a GET or HEAD through the cache. */
  async handle(ctx: Context, origin: Origin): Promise<void> {
    const key = this.key(ctx)
    const req = this.requestDirectives(ctx)
    if (req.noStore) return this.pass(ctx, origin, 'fwd=bypass; detail="request no-store"', 'BYPASS')
    const stored = this.match(key, ctx)
    // A partial entry (RFC 9111 §3.3) answers a range wholly within it while fresh; anything else is forwarded.
    if (stored?.partial !== undefined && this.servePartial(ctx, stored, req)) return
    const fwd = stored?.partial !== undefined ? 'fwd=partial' : 'fwd=miss'
    if (stored && stored.partial === undefined) {
      const now = this.clock.now()
      const dirs = this.directives(stored.headers)
      const u = usability(stored, dirs, req, now, { ignoreRequestDirectives: this.cfg.ignoreRequestDirectives, maxHeuristic: this.cfg.maxHeuristic })
      if (u.use === 'fresh') return this.serve(ctx, stored, `hit; ttl=${u.ttl}`, 'HIT')
      if (u.use === 'stale-while-revalidate') {
        this.refresh(ctx, key, stored, origin)
        return this.serve(ctx, stored, `hit; ttl=${u.ttl}; detail=stale-while-revalidate`, 'STALE')
      }
      return this.revalidate(ctx, key, stored, dirs, req, origin, u.ttl)
    }
    if (req.onlyIfCached) throw httpError('EB_ERR_GATEWAY_TIMEOUT', 'only-if-cached: nothing is stored for this request') // RFC 9111 §5.2.1.7
    if (ctx.method === 'HEAD') return this.pass(ctx, origin, fwd, 'MISS')
    if (this.cfg.rangeMiss === 'whole' && ctx.req.headers.range !== undefined) return this.wholeForRange(ctx, key, origin, fwd)
    return this.miss(ctx, key, origin, fwd)
  }

  /** `rangeMiss: 'whole'`: fetch the object without Range, store it, serve the range from it (RFC 9111 §3.3 not needed). */
  private async wholeForRange(ctx: Context, key: string, origin: Origin, fwd: string): Promise<void> {
    const res = await origin({ range: null, 'if-range': null })
    const plan = this.plan(ctx, res)
    if (!plan.store || res.status !== 200) return this.relay(ctx, res, `${fwd}; fwd-status=${res.status}${plan.store ? '' : `; detail="${plan.reason}"`}`, 'MISS')
    const got = await collect(res.body, this.cfg.maxObjectSize)
    if (!got.body) {
      // Too large to keep: send the whole object (a 200 may ignore Range), what arrived first included.
      return this.relay(ctx, { ...res, body: got.rest }, `${fwd}; fwd-status=200; detail="larger than maxObjectSize"`, 'MISS')
    }
    const declared = res.headers['content-length']
    if (declared !== undefined && Number(declared) !== got.body.length) throw httpError('EB_ERR_BAD_GATEWAY', 'the upstream sent fewer bytes than it announced')
    const entry = this.entry(key, ctx, res, plan.strip, got.body)
    this.store.put(entry)
    this.serve(ctx, entry, `${fwd}; fwd-status=200; stored; ttl=${plan.ttl}`, 'MISS')
  }

  /** Whether this cache takes PURGE requests (a token is configured). */
  get purgeable(): boolean {
    return this.cfg.purge !== undefined
  }

  /**
   * PURGE (authenticated): `PURGE /path?q` removes that URL (every variant),
   * `PURGE /prefix/*` every URL below the prefix, and a request with
   * `Edgebox-Purge-Tag: a b` every response tagged a or b (Surrogate-Key /
   * Cache-Tag). Answers 200 with how many entries went.
   */
  purge(ctx: Context): void {
    const token = this.cfg.purge?.token
    const given = /^Bearer\s+(\S+)\s*$/i.exec(ctx.header('authorization') ?? '')?.[1]
    if (!token || !given || !safeEqual(given, token)) {
      throw httpError('EB_ERR_UNAUTHORIZED', given ? 'the purge token is not valid' : 'PURGE needs Authorization: Bearer <token>', { 'WWW-Authenticate': 'Bearer realm="edgebox purge"' })
    }
    const tags = ctx.header('edgebox-purge-tag')
    let purged = 0
    let what: string
    if (tags) {
      for (const tag of tags.split(/[\s,]+/).filter(Boolean)) purged += this.store.deleteTag(tag)
      what = `tag ${tags}`
    } else if (ctx.encodedPath.endsWith('/*')) {
      const prefix = `http://${ctx.host}${ctx.encodedPath.slice(0, -1)}`
      purged = this.store.deletePrefix(prefix)
      what = `prefix ${ctx.encodedPath.slice(0, -1)}`
    } else {
      purged = this.store.delete(this.key(ctx))
      what = `url ${ctx.encodedPath}${ctx.query}`
    }
    ctx.send(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }, JSON.stringify({ purged, what }) + '\n')
  }

  /** Unsafe methods invalidate the target and its Location / Content-Location on the same host (RFC 9111 §4.4). */
  invalidate(ctx: Context, status: number, headers: Headers): void {
    if (!UNSAFE.has(ctx.method) || status >= 400) return
    const key = this.key(ctx)
    this.store.delete(key)
    for (const field of ['location', 'content-location']) {
      const v = headers[field]
      if (typeof v !== 'string') continue
      try {
        const u = new URL(v, key)
        if (u.host === new URL(key).host) this.store.delete(`http://${ctx.host}${u.pathname}${u.search}`)
      } catch {
        // not a URL: nothing to invalidate
      }
    }
  }

  /** Forwards without storing. */
  private async pass(ctx: Context, origin: Origin, status: string, label: string): Promise<void> {
    const res = await origin({})
    this.relay(ctx, res, status, label)
  }

  private async miss(ctx: Context, key: string, origin: Origin, fwd: string): Promise<void> {
    const flight = this.inflight.get(key)
    if (flight) {
      // Coalescing: wait for the response head of the request already on its way. If it
      // will be stored, wait for it and serve it; if not, go upstream without waiting more.
      if (await flight.head) {
        const entry = await flight.done
        if (entry && varyKey(entry.vary, ctx.req.headers) === entry.variant) return this.serve(ctx, entry, `${fwd}; collapsed`, 'HIT')
      }
      // A range request's own answer (a 206) may still be stored as partial content.
      if (ctx.req.headers.range !== undefined) return this.respondAndStore(ctx, key, await origin({}), fwd, 'MISS', () => {}, () => {})
      return this.pass(ctx, origin, fwd, 'MISS')
    }
    let setHead!: (v: boolean) => void
    let setDone!: (v: StoredEntry | null) => void
    const mine: Flight = { head: new Promise((r) => (setHead = r)), done: new Promise((r) => (setDone = r)) }
    this.inflight.set(key, mine)
    void mine.done.then(() => this.inflight.delete(key))
    let res: OriginResponse
    try {
      res = await origin({})
    } catch (err) {
      setHead(false)
      setDone(null)
      throw err
    }
    this.respondAndStore(ctx, key, res, fwd, 'MISS', setHead, setDone)
  }

  /** Relays an origin response to the client and, if RFC 9111 allows, stores it once complete. */
  private respondAndStore(ctx: Context, key: string, res: OriginResponse, status: string, label: string, setHead: (v: boolean) => void, setDone: (v: StoredEntry | null) => void): void {
    if (res.status === 206) {
      // Requests waiting for this one go upstream themselves: a partial answer is not what they asked for.
      setHead(false)
      setDone(null)
      return this.relayPartial(ctx, key, res, status, label)
    }
    const plan = this.plan(ctx, res)
    setHead(plan.store)
    if (!plan.store) {
      setDone(null)
      this.relay(ctx, res, `${status}; fwd-status=${res.status}; detail="${plan.reason}"`, label)
      return
    }
    const chunks: Buffer[] = []
    let total = 0
    const body = tee(res.body, {
      data: (c) => {
        total += c.length
        if (total <= this.cfg.maxObjectSize) chunks.push(c)
        else chunks.length = 0
      },
      end: (complete) => {
        const declared = res.headers['content-length']
        // Never store a truncated body: the body must end normally with every announced byte.
        if (!complete || total > this.cfg.maxObjectSize || (declared !== undefined && Number(declared) !== total)) return setDone(null)
        const entry = this.entry(key, ctx, res, plan.strip, Buffer.concat(chunks, total))
        this.store.put(entry)
        setDone(entry)
      },
    })
    this.relay(ctx, { ...res, body }, `${status}; fwd-status=${res.status}; stored; ttl=${plan.ttl}`, label)
  }

  private plan(ctx: Context, res: OriginResponse): { store: boolean; reason: string; strip: string[]; ttl: number } {
    const dirs = this.directives(res.headers)
    const s = storability({ method: ctx.method, headers: ctx.req.headers }, { status: res.status, headers: res.headers }, dirs)
    if (!s.storable) return { store: false, reason: s.reason ?? 'not storable', strip: [], ttl: 0 }
    const declared = Number(res.headers['content-length'] ?? 0)
    if (declared > this.cfg.maxObjectSize) return { store: false, reason: 'larger than maxObjectSize', strip: [], ttl: 0 }
    const probe = { status: res.status, headers: res.headers, requestTime: res.requestTime, responseTime: res.responseTime }
    const ttl = usability(probe, dirs, {}, res.responseTime, { ignoreRequestDirectives: true, maxHeuristic: this.cfg.maxHeuristic }).ttl
    return { store: true, reason: '', strip: s.stripFields, ttl }
  }

  private entry(key: string, ctx: Context, res: OriginResponse, strip: string[], body: Buffer): StoredEntry {
    const headers = withoutHopByHop(res.headers)
    for (const f of strip) delete headers[f]
    const vary = varyOf(res.headers)
    return { key, variant: varyKey(vary, ctx.req.headers) ?? '', vary, status: res.status, headers, body, requestTime: res.requestTime, responseTime: res.responseTime, tags: tagsOf(res.headers) }
  }

  /**
   * RFC 9111 §3.3: whether a 206 can be stored as partial content, and which
   * range it holds: an answer to a Range request, with one `Content-Range:
   * bytes a-b/N` (known complete length N, at most maxObjectSize), a body of
   * exactly b-a+1 bytes announced, a strong ETag (§3.4 combines only under a
   * strong validator), otherwise storable (§3), and no complete response
   * stored for the same variant (a 206 never replaces one).
   */
  private partialPlan(ctx: Context, key: string, res: OriginResponse): { store: false; reason: string } | { store: true; start: number; end: number; size: number; etag: string; strip: string[]; ttl: number } {
    const refuse = (reason: string) => ({ store: false as const, reason })
    if (ctx.req.headers.range === undefined) return refuse('206 to a request without Range')
    const type = res.headers['content-type']
    if (/^\s*multipart\/byteranges/i.test(Array.isArray(type) ? type.join(',') : (type ?? ''))) return refuse('multipart/byteranges is not stored')
    const cr = res.headers['content-range']
    const range = typeof cr === 'string' ? parseContentRange(cr) : undefined
    if (!range) return refuse('206 without a single byte range of known complete length')
    const etag = strongEtag(res.headers.etag)
    if (etag === undefined) return refuse('206 without a strong ETag')
    if (range.size > this.cfg.maxObjectSize) return refuse('larger than maxObjectSize')
    const declared = res.headers['content-length']
    if (declared !== undefined && Number(declared) !== range.end - range.start + 1) return refuse('Content-Length does not match Content-Range')
    const dirs = this.directives(res.headers)
    const s = storability({ method: ctx.method, headers: ctx.req.headers }, { status: res.status, headers: res.headers }, dirs, { partialContent: true })
    if (!s.storable) return refuse(s.reason ?? 'not storable')
    const current = this.sameVariant(key, ctx, res.headers)
    if (current !== undefined && current.partial === undefined) return refuse('a complete response is stored')
    const probe = { status: res.status, headers: res.headers, requestTime: res.requestTime, responseTime: res.responseTime }
    const ttl = usability(probe, dirs, {}, res.responseTime, { ignoreRequestDirectives: true, maxHeuristic: this.cfg.maxHeuristic }).ttl
    return { store: true, ...range, etag, strip: s.stripFields, ttl }
  }

  /** The stored entry a response to this request would replace: same key, Vary and variant. */
  private sameVariant(key: string, ctx: Context, headers: Headers): StoredEntry | undefined {
    const vary = varyOf(headers)
    const variant = varyKey(vary, ctx.req.headers) ?? ''
    return this.store.variants(key).find((e) => e.variant === variant && e.vary === vary)
  }

  /** Relays a 206 and, if §3.3 allows, stores its range once it arrived whole, combined with what is held (§3.4). */
  private relayPartial(ctx: Context, key: string, res: OriginResponse, status: string, label: string): void {
    const plan = this.partialPlan(ctx, key, res)
    if (!plan.store) return this.relay(ctx, res, `${status}; fwd-status=206; detail="${plan.reason}"`, label)
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
        if (complete && total === want) this.combine(ctx, key, res, plan, Buffer.concat(chunks, total))
      },
    })
    this.relay(ctx, { ...res, body }, `${status}; fwd-status=206; stored; ttl=${plan.ttl}`, label)
  }

  /**
   * RFC 9111 §3.4, RFC 9110 §15.3.7.3: a new range of a representation joins
   * a stored partial entry with the same strong ETag and complete length (its
   * header fields updated with the new ones, §3.2); otherwise it replaces it.
   * Once every byte is held, the entry becomes a complete 200 response.
   */
  private combine(ctx: Context, key: string, res: OriginResponse, plan: { start: number; end: number; size: number; etag: string; strip: string[] }, bytes: Buffer): void {
    const existing = this.sameVariant(key, ctx, res.headers)
    if (existing !== undefined && existing.partial === undefined) return // a complete response arrived meanwhile
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
      this.store.put({ ...base, status: 200, headers })
    } else {
      this.store.put({ ...base, status: 206, headers, partial: { size: plan.size, ranges: held.ranges } })
    }
  }

  /**
   * RFC 9111 §3.3: a fresh partial entry answers a GET for one range wholly
   * within the bytes it holds, with 206. Anything else (another method, no or
   * several ranges, bytes not held, a conditional request, an If-Range that
   * does not match the strong ETag, a stale entry) returns false: forwarded.
   */
  private servePartial(ctx: Context, e: StoredEntry, req: CacheDirectives): boolean {
    const p = e.partial!
    const h = ctx.req.headers
    if (ctx.method !== 'GET' || h.range === undefined) return false
    if (h['if-match'] !== undefined || h['if-none-match'] !== undefined || h['if-modified-since'] !== undefined || h['if-unmodified-since'] !== undefined) return false
    const ifRange = ctx.header('if-range')
    if (ifRange !== undefined && !ifRangeMatches(ifRange, { etag: strongEtag(e.headers.etag) })) return false
    const r = parseRange(h.range, p.size)
    if (r.kind !== 'ranges' || r.ranges.length !== 1) return false
    const { start, end } = r.ranges[0]!
    const bytes = sliceHeld({ ranges: p.ranges, body: e.body }, start, end)
    if (bytes === undefined) return false
    const u = usability(e, this.directives(e.headers), req, this.clock.now(), { ignoreRequestDirectives: this.cfg.ignoreRequestDirectives, maxHeuristic: this.cfg.maxHeuristic })
    if (u.use !== 'fresh') return false
    ctx.cache = 'HIT'
    const headers = this.servedHeaders(e, `hit; ttl=${u.ttl}`)
    headers['content-range'] = contentRange(start, end, p.size)
    ctx.send(206, headers, bytes)
    return true
  }

  /** RFC 9111 §4.3: a conditional request with the stored validators; 304 refreshes the stored headers. */
  private async revalidate(ctx: Context, key: string, stored: StoredEntry, dirs: CacheDirectives, req: CacheDirectives, origin: Origin, ttl: number): Promise<void> {
    let res: OriginResponse
    try {
      res = await origin(validators(stored))
    } catch (err) {
      if (staleIfErrorAllowed(stored, dirs, this.cfg.ignoreRequestDirectives ? {} : req, this.clock.now())) {
        return this.serve(ctx, stored, `hit; ttl=${ttl}; detail=stale-if-error`, 'STALE')
      }
      throw err
    }
    if (res.status === 304) {
      res.body.attach(DISCARD)
      this.refreshed(stored, res)
      const u = usability(stored, this.directives(stored.headers), {}, this.clock.now(), { ignoreRequestDirectives: true, maxHeuristic: this.cfg.maxHeuristic })
      return this.serve(ctx, stored, `fwd=stale; fwd-status=304; ttl=${u.ttl}`, 'REVALIDATED')
    }
    if (res.status >= 500 && staleIfErrorAllowed(stored, dirs, this.cfg.ignoreRequestDirectives ? {} : req, this.clock.now())) {
      res.body.attach(DISCARD)
      return this.serve(ctx, stored, `hit; ttl=${ttl}; fwd=stale; fwd-status=${res.status}; detail=stale-if-error`, 'STALE')
    }
    if (ctx.method === 'HEAD' && res.status === 200) {
      // RFC 9111 §4.3.5: a 200 to HEAD freshens the stored GET response when the validators it
      // carries (and its Content-Length) match the stored ones; otherwise the stored response
      // describes another representation and is dropped.
      if (headMatches(stored, res.headers)) {
        res.body.attach(DISCARD)
        this.refreshed(stored, res)
        const u = usability(stored, this.directives(stored.headers), {}, this.clock.now(), { ignoreRequestDirectives: true, maxHeuristic: this.cfg.maxHeuristic })
        return this.serve(ctx, stored, `fwd=stale; fwd-status=200; ttl=${u.ttl}; detail="freshened by HEAD"`, 'REVALIDATED')
      }
      this.store.delete(key)
      return this.relay(ctx, res, 'fwd=stale; fwd-status=200; detail="HEAD shows another representation; stored response dropped"', 'EXPIRED')
    }
    this.respondAndStore(ctx, key, res, 'fwd=stale', 'EXPIRED', () => {}, () => {})
  }

  /** stale-while-revalidate: one background conditional request per key; its result replaces or refreshes the entry. */
  private refresh(ctx: Context, key: string, stored: StoredEntry, origin: Origin): void {
    if (this.inflight.has(key)) return
    let setDone!: (v: StoredEntry | null) => void
    const flight: Flight = { head: Promise.resolve(false), done: new Promise((r) => (setDone = r)) }
    this.inflight.set(key, flight)
    void flight.done.then(() => this.inflight.delete(key))
    origin(validators(stored), true).then(
      (res) => {
        if (res.status === 304) {
          res.body.attach(DISCARD)
          this.refreshed(stored, res)
          return setDone(stored)
        }
        const plan = this.plan(ctx, res)
        if (!plan.store) {
          res.body.attach(DISCARD)
          return setDone(null)
        }
        collect(res.body, this.cfg.maxObjectSize).then(
          (got) => {
            const declared = res.headers['content-length']
            if (!got.body || (declared !== undefined && Number(declared) !== got.body.length)) {
              got.rest?.destroy()
              return setDone(null)
            }
            const entry = this.entry(key, ctx, res, plan.strip, got.body)
            this.store.put(entry)
            setDone(entry)
          },
          () => setDone(null),
        )
      },
      () => setDone(null),
    )
  }

  /** RFC 9111 §4.3.4: a 304 updates the stored headers and restarts the stored response's age. */
  private refreshed(stored: StoredEntry, res: OriginResponse): void {
    stored.headers = updateStoredHeaders(stored.headers, res.headers)
    stored.requestTime = res.requestTime
    stored.responseTime = res.responseTime
    this.store.put(stored)
  }

  /** Serves a stored response: client conditionals and ranges answered from it, with Age and Cache-Status. */
  private serve(ctx: Context, e: StoredEntry, status: string, label: string): void {
    ctx.cache = label
    const h = ctx.req.headers
    const headers = this.servedHeaders(e, status)
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

  /** The stored header fields (without Content-Length), with Age and Cache-Status. */
  private servedHeaders(e: StoredEntry, status: string): ResponseHeaders {
    const headers: ResponseHeaders = {}
    const stored = e.headers
    for (const k in stored) {
      const v = stored[k]
      if (v !== undefined && k !== 'content-length') headers[k] = v
    }
    headers.age = String(currentAge(e, this.clock.now()))
    headers['cache-status'] = cacheStatus(e.headers['cache-status'], this.cfg.name, status)
    return headers
  }

  /** Streams an origin response to the client with Cache-Status. */
  private relay(ctx: Context, res: OriginResponse, status: string, label: string): void {
    ctx.cache = label
    const headers = withoutHopByHop(res.headers) as ResponseHeaders
    headers['cache-status'] = cacheStatus(res.headers['cache-status'], this.cfg.name, status)
    ctx.relay(res.status, headers, res.body)
  }
}

/** The Vary field as one string (several lines joined), as entries keep it. */
function varyOf(headers: Headers): string | undefined {
  const v = headers.vary
  return typeof v === 'string' ? v : Array.isArray(v) ? v.join(', ') : undefined
}

/** Surrogate-Key / Cache-Tag values, for purging by tag. */
function tagsOf(headers: Headers): string[] {
  const tagField = headers['surrogate-key'] ?? headers['cache-tag']
  return (Array.isArray(tagField) ? tagField.join(' ') : (tagField ?? '')).split(/[\s,]+/).filter(Boolean)
}

/** A strong entity tag (RFC 9110 §8.8.3) from an ETag field, or undefined (weak, invalid, several, or none). */
function strongEtag(v: string | string[] | undefined): string | undefined {
  if (typeof v !== 'string') return undefined
  const t = v.trim()
  return /^"[\x21\x23-\x7e\x80-\xff]*"$/.test(t) ? t : undefined
}

/**
 * RFC 9111 §4.3.5: whether a 200 answer to HEAD describes the stored GET
 * response: every validator it carries (ETag, Last-Modified) equals the
 * stored one, and so does its Content-Length if it has one. An answer with
 * none of these proves nothing and does not match.
 */
function headMatches(stored: StoredEntry, head: Headers): boolean {
  let compared = 0
  for (const field of ['etag', 'last-modified'] as const) {
    const v = head[field]
    if (v === undefined) continue
    compared++
    if (String(v) !== String(stored.headers[field] ?? '')) return false
  }
  const length = head['content-length']
  if (length !== undefined) {
    compared++
    if (Number(length) !== stored.body.length) return false
  }
  return compared > 0
}

function validators(e: StoredEntry): Record<string, string> {
  const v: Record<string, string> = {}
  if (typeof e.headers.etag === 'string') v['if-none-match'] = e.headers.etag
  if (typeof e.headers['last-modified'] === 'string') v['if-modified-since'] = e.headers['last-modified']
  return v
}

/** RFC 9211: this cache's entry goes after those of caches nearer the origin. */
function cacheStatus(upstream: string | string[] | undefined, name: string, mine: string): string {
  const own = `${name}; ${mine}`
  const prev = Array.isArray(upstream) ? upstream.join(', ') : upstream
  return prev ? `${prev}, ${own}` : own
}
