import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Context } from '../../src/core/context.ts'
import type { BodySource } from '../../src/core/types.ts'
import type { Headers } from '../../src/http/cache-control.ts'
import { formatHttpDate } from '../../src/http/date.ts'
import { cacheOptions, HttpCache, type Origin } from '../../src/modules/cache/cache.ts'
import { MemoryStore } from '../../src/modules/cache/store.ts'
import { ManualClock } from '../helpers/clock.ts'

/**
 * HttpCache's key and freshness decisions (RFC 9111) on a manual clock: the
 * primary key and ignoreQuery (§2), Age served from what was stored and the
 * time spent stored (§4.2.3), heuristic freshness (§4.2.2) and Vary
 * secondary keys (§4.1). No sockets: a request is the part of a Context the
 * cache reads, and the origin a function answering at the clock's time.
 */

const S = 1000
const DAY = 86_400 * S

interface Answer {
  status: number
  headers: Record<string, unknown>
  body: string
}

/** A request as the cache sees it, and the answer it gets. Header names in lower case. */
function request(path: string, headers: Record<string, string> = {}, method = 'GET'): { ctx: Context; answer: Promise<Answer> } {
  const q = path.indexOf('?')
  let resolve!: (a: Answer) => void
  let reject!: (err: Error) => void
  const answer = new Promise<Answer>((res, rej) => {
    resolve = res
    reject = rej
  })
  const ctx = {
    method,
    host: 'example.test',
    encodedPath: q === -1 ? path : path.slice(0, q),
    query: q === -1 ? '' : path.slice(q),
    req: { headers },
    cache: '',
    header: (name: string) => headers[name],
    send(status: number, h: Record<string, unknown>, body?: Buffer | string) {
      resolve({ status, headers: h, body: body === undefined ? '' : typeof body === 'string' ? Buffer.from(body, 'latin1').toString() : body.toString() })
    },
    // a prepared response (a fresh hit): its fields with the per-response values in place, as sendPrepared sends them
    sendPrepared(p: { status: number; headers: Record<string, unknown>; varying: readonly string[]; body?: Buffer }, values: readonly string[]) {
      const h: Record<string, unknown> = { ...p.headers }
      p.varying.forEach((name, i) => (h[name] = values[i]))
      resolve({ status: p.status, headers: h, body: p.body === undefined ? '' : p.body.toString() })
    },
    relay(status: number, h: Record<string, unknown>, source: BodySource) {
      const chunks: Buffer[] = []
      source.attach({
        data: (c) => chunks.push(c) > 0,
        end: () => resolve({ status, headers: h, body: Buffer.concat(chunks).toString() }),
        error: reject,
      })
    },
  }
  return { ctx: ctx as unknown as Context, answer }
}

function body(text: string): BodySource {
  return {
    attach(sink) {
      if (text) sink.data(Buffer.from(text))
      sink.end()
    },
    resume() {},
    destroy() {},
  }
}

interface FakeOrigin extends Origin {
  /** The extra fields (validators) of each request sent, in order. */
  readonly calls: Array<Record<string, string | null>>
}

/**
 * An origin answering at the clock's time, with `Date` set to it unless the
 * answer has its own; `delay` ms pass between sending the request and
 * receiving the response (response_delay, RFC 9111 §4.2.3).
 */
function origin(clock: ManualClock, answer: (extra: Record<string, string | null>) => { status?: number; headers?: Headers; body?: string; delay?: number }): FakeOrigin {
  const calls: Array<Record<string, string | null>> = []
  const fn = async (extra: Record<string, string | null>) => {
    calls.push(extra)
    const a = answer(extra)
    const requestTime = clock.now()
    clock.advance(a.delay ?? 0)
    const headers: Headers = { date: formatHttpDate(requestTime), ...a.headers }
    return { status: a.status ?? 200, headers, body: body(a.body ?? 'hello'), requestTime, responseTime: clock.now() }
  }
  return Object.assign(fn, { calls })
}

function cacheOn(clock: ManualClock, opts: Record<string, unknown> = {}): HttpCache {
  return new HttpCache(cacheOptions.parse(opts), new MemoryStore(1 << 20), clock)
}

async function get(cache: HttpCache, o: Origin, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> {
  const { ctx, answer } = request(path, headers, method)
  await cache.handle(ctx, o)
  return answer
}

test('key: the target URI (RFC 9111 §2), as the client encoded it; GET and HEAD share it', () => {
  const cache = cacheOn(new ManualClock())
  assert.equal(cache.key(request('/a%20b/c?x=1&y=2').ctx), 'http://example.test/a%20b/c?x=1&y=2')
  assert.equal(cache.key(request('/a?y=2&x=1').ctx), 'http://example.test/a?y=2&x=1', 'without ignoreQuery the query is kept as sent')
  assert.equal(cache.key(request('/a').ctx), 'http://example.test/a')
  assert.equal(cache.key(request('/a?x=1', {}, 'HEAD').ctx), cache.key(request('/a?x=1').ctx))
})

test('key: ignoreQuery leaves out the parameters it names (globs too), keeps the others in order', () => {
  const cache = cacheOn(new ManualClock(), { ignoreQuery: ['utm_*', 'fbclid'] })
  const key = (path: string) => cache.key(request(path).ctx)
  assert.equal(key('/p?utm_source=news&id=7&fbclid=abc&utm_medium=mail&page=2'), 'http://example.test/p?id=7&page=2')
  assert.equal(key('/p?utm_source=news'), 'http://example.test/p', 'nothing left: no ?')
  assert.equal(key('/p?fbclid=1&fbclid=2'), 'http://example.test/p', 'every occurrence')
  assert.equal(key('/p?fbclid_x=1&my_utm=2'), 'http://example.test/p?fbclid_x=1&my_utm=2', 'names match whole, not in part')
  assert.equal(key('/p'), 'http://example.test/p')
})

test('ignoreQuery: requests differing only in ignored parameters share one stored response', async () => {
  const clock = new ManualClock()
  const cache = cacheOn(clock, { ignoreQuery: ['utm_*'] })
  const o = origin(clock, () => ({ headers: { 'cache-control': 'max-age=60' } }))
  assert.equal((await get(cache, o, '/p?utm_source=a&id=1')).headers['cache-status'], 'edgebox; fwd=miss; fwd-status=200; stored; ttl=60')
  assert.equal((await get(cache, o, '/p?id=1&utm_medium=b')).headers['cache-status'], 'edgebox; hit; ttl=60')
  assert.equal((await get(cache, o, '/p?id=2')).headers['cache-status'], 'edgebox; fwd=miss; fwd-status=200; stored; ttl=60', 'a parameter kept is part of the key')
  assert.equal(o.calls.length, 2)
})

test('Age (RFC 9111 §4.2.3): the resident time counts, in whole seconds rounded down', async () => {
  const clock = new ManualClock()
  const cache = cacheOn(clock)
  const o = origin(clock, () => ({ headers: { 'cache-control': 'max-age=60' } }))
  const first = await get(cache, o, '/a')
  assert.equal(first.headers.age, undefined, 'an answer from the origin has no Age of this cache')
  assert.equal((await get(cache, o, '/a')).headers.age, '0')
  clock.advance(999)
  assert.equal((await get(cache, o, '/a')).headers.age, '0')
  clock.advance(1)
  const one = await get(cache, o, '/a')
  assert.equal(one.headers.age, '1')
  assert.equal(one.headers['cache-status'], 'edgebox; hit; ttl=59')
  clock.advance(58_999)
  assert.equal((await get(cache, o, '/a')).headers['cache-status'], 'edgebox; hit; ttl=1', 'fresh at 59.999 s')
  clock.advance(1)
  const stale = await get(cache, o, '/a')
  assert.equal(stale.headers['cache-status'], 'edgebox; fwd=stale; fwd-status=200; stored; ttl=60', 'stale at 60 s: fetched again (no validators)')
  assert.equal(o.calls.length, 2)
})

test('Age (RFC 9111 §4.2.3): the upstream Age plus the response delay, or the apparent age when larger', async () => {
  const clock = new ManualClock()
  const cache = cacheOn(clock)
  // Age: 10 from a cache upstream, 2 s between request and response: corrected_age_value = 12 > apparent_age = 2
  const delayed = origin(clock, () => ({ headers: { 'cache-control': 'max-age=60', age: '10' }, delay: 2 * S }))
  assert.equal((await get(cache, delayed, '/delayed')).headers['cache-status'], 'edgebox; fwd=miss; fwd-status=200; stored; ttl=48')
  let r = await get(cache, delayed, '/delayed')
  assert.deepEqual([r.headers.age, r.headers['cache-status']], ['12', 'edgebox; hit; ttl=48'])
  clock.advance(3 * S)
  r = await get(cache, delayed, '/delayed')
  assert.deepEqual([r.headers.age, r.headers['cache-status']], ['15', 'edgebox; hit; ttl=45'])

  // Date 20 s before the response was received, Age: 5: apparent_age = 20 wins
  const old = origin(clock, () => ({ headers: { 'cache-control': 'max-age=60', age: '5', date: formatHttpDate(clock.now() - 20 * S) } }))
  await get(cache, old, '/old')
  r = await get(cache, old, '/old')
  assert.deepEqual([r.headers.age, r.headers['cache-status']], ['20', 'edgebox; hit; ttl=40'])

  // Age older than the lifetime: stored (it may be revalidated), but never a hit
  const spent = origin(clock, () => ({ headers: { 'cache-control': 'max-age=60', age: '60' } }))
  await get(cache, spent, '/spent')
  assert.match(String((await get(cache, spent, '/spent')).headers['cache-status']), /^edgebox; fwd=stale; /)
  assert.equal(spent.calls.length, 2)
})

test('a 304 restarts the stored response\'s age (RFC 9111 §4.3.4)', async () => {
  const clock = new ManualClock()
  const cache = cacheOn(clock)
  const o = origin(clock, (extra) => (extra['if-none-match'] === '"v1"' ? { status: 304, headers: { etag: '"v1"', 'cache-control': 'max-age=10' }, body: '' } : { headers: { etag: '"v1"', 'cache-control': 'max-age=10' } }))
  await get(cache, o, '/r')
  clock.advance(10 * S)
  const revalidated = await get(cache, o, '/r')
  assert.deepEqual([revalidated.status, revalidated.body, revalidated.headers.age], [200, 'hello', '0'])
  assert.equal(revalidated.headers['cache-status'], 'edgebox; fwd=stale; fwd-status=304; ttl=10')
  assert.deepEqual(o.calls.at(-1), { 'if-none-match': '"v1"' })
  clock.advance(4 * S)
  assert.deepEqual((await get(cache, o, '/r')).headers.age, '4')
})

test('heuristic freshness (RFC 9111 §4.2.2): 10% of the time since Last-Modified, capped by maxHeuristic', async () => {
  const clock = new ManualClock()
  const cache = cacheOn(clock)
  const lastModified = formatHttpDate(clock.now() - 5 * DAY)
  const o = origin(clock, (extra) => (extra['if-modified-since'] ? { status: 304, headers: { 'last-modified': lastModified }, body: '' } : { headers: { 'last-modified': lastModified } }))
  assert.equal((await get(cache, o, '/h')).headers['cache-status'], 'edgebox; fwd=miss; fwd-status=200; stored; ttl=43200', 'half a day: 10% of 5 days')
  clock.advance(43_199 * S)
  assert.equal((await get(cache, o, '/h')).headers['cache-status'], 'edgebox; hit; ttl=1')
  clock.advance(1 * S)
  const after = await get(cache, o, '/h')
  assert.match(String(after.headers['cache-status']), /^edgebox; fwd=stale; fwd-status=304; /)
  assert.deepEqual(o.calls.at(-1), { 'if-modified-since': lastModified })

  // capped at maxHeuristic (default one day; here one hour)
  const capped = cacheOn(clock, { maxHeuristic: '1h' })
  const ancient = origin(clock, () => ({ headers: { 'last-modified': formatHttpDate(clock.now() - 365 * DAY) } }))
  assert.equal((await get(capped, ancient, '/c')).headers['cache-status'], 'edgebox; fwd=miss; fwd-status=200; stored; ttl=3600')
  assert.equal((await get(cacheOn(clock), ancient, '/c')).headers['cache-status'], 'edgebox; fwd=miss; fwd-status=200; stored; ttl=86400')

  // only for heuristically cacheable statuses (or public), and only with Last-Modified
  const moved = origin(clock, () => ({ status: 302, headers: { 'last-modified': lastModified, location: '/x' }, body: '' }))
  assert.match(String((await get(cache, moved, '/302')).headers['cache-status']), /^edgebox; fwd=miss; fwd-status=302; detail="no explicit freshness and status 302 is not heuristically cacheable"$/)
  const noDate = origin(clock, () => ({}))
  assert.equal((await get(cache, noDate, '/plain')).headers['cache-status'], 'edgebox; fwd=miss; fwd-status=200; stored; ttl=0')
  assert.match(String((await get(cache, noDate, '/plain')).headers['cache-status']), /^edgebox; fwd=stale; /, 'no Last-Modified: no heuristic lifetime')
})

test('Vary (RFC 9111 §4.1): one stored response per value of the nominated request fields', async () => {
  const clock = new ManualClock()
  const cache = cacheOn(clock)
  const o = origin(clock, () => ({ headers: { 'cache-control': 'max-age=60', vary: 'Accept-Language, Accept-Encoding' }, body: `v${o.calls.length}` }))
  const lang = (l: string | undefined, enc = 'gzip') => get(cache, o, '/v', l === undefined ? { 'accept-encoding': enc } : { 'accept-language': l, 'accept-encoding': enc })
  assert.equal((await lang('en')).body, 'v1')
  assert.equal((await lang('fr')).body, 'v2')
  const en = await lang('en')
  assert.deepEqual([en.body, en.headers['cache-status']], ['v1', 'edgebox; hit; ttl=60'])
  assert.equal((await lang('fr')).body, 'v2')
  assert.equal((await lang('en', 'br')).body, 'v3', 'every nominated field counts')
  assert.equal((await lang(undefined)).body, 'v4', 'a field absent differs from every value')
  assert.equal((await lang('')).body, 'v5', 'and from an empty one')
  assert.equal((await lang(undefined)).body, 'v4')
  // values compare after normalization: whitespace and the case of language tags carry no meaning
  assert.equal((await lang('en', ' gzip ')).body, 'v1')
  assert.equal((await lang('EN')).body, 'v1')
  assert.equal((await lang('en-GB')).body, 'v6')
  assert.equal(o.calls.length, 6)
  assert.equal(cache.store.variants('http://example.test/v').length, 6)
})

test('Vary: * is never stored, and a list of several Vary lines is one list', async () => {
  const clock = new ManualClock()
  const cache = cacheOn(clock)
  const star = origin(clock, () => ({ headers: { 'cache-control': 'max-age=60', vary: '*' } }))
  assert.equal((await get(cache, star, '/star')).headers['cache-status'], 'edgebox; fwd=miss; fwd-status=200; detail="vary: *"')
  assert.equal((await get(cache, star, '/star')).headers['cache-status'], 'edgebox; fwd=miss; fwd-status=200; detail="vary: *"')
  const lines = origin(clock, () => ({ headers: { 'cache-control': 'max-age=60', vary: ['Accept-Language', 'Accept-Encoding'] }, body: `l${lines.calls.length}` }))
  assert.equal((await get(cache, lines, '/lines', { 'accept-language': 'en', 'accept-encoding': 'gzip' })).body, 'l1')
  assert.equal((await get(cache, lines, '/lines', { 'accept-language': 'en', 'accept-encoding': 'br' })).body, 'l2')
  assert.equal((await get(cache, lines, '/lines', { 'accept-language': 'en', 'accept-encoding': 'gzip' })).body, 'l1')
})

test('a fresh hit is answered at once, with no promise; a hit\'s refusal (412, RFC 9110 §13.1.1) still comes as a rejected promise', async () => {
  const clock = new ManualClock()
  const cache = cacheOn(clock)
  const o = origin(clock, () => ({ headers: { 'cache-control': 'max-age=60', etag: '"v1"' }, body: 'stored' }))
  assert.equal((await get(cache, o, '/hit')).body, 'stored')
  clock.advance(5 * S)
  const hit = request('/hit')
  assert.equal(cache.handle(hit.ctx, o), undefined)
  const a = await hit.answer
  assert.equal(a.status, 200)
  assert.equal(a.body, 'stored')
  assert.equal(a.headers.age, '5')
  assert.equal(hit.ctx.cache, 'HIT')
  const refused = request('/hit', { 'if-match': '"v2"' })
  const done = cache.handle(refused.ctx, o)
  assert.ok(done instanceof Promise)
  await assert.rejects(done, (err: Error & { status?: number }) => err.status === 412)
  // a request with its own directives goes the general way
  const reload = request('/hit', { 'cache-control': 'max-age=0' })
  assert.ok(cache.handle(reload.ctx, o) instanceof Promise)
  assert.equal(o.calls.length, 2)
})
