import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { request, startServer, tempDir, type Reply, type TestServer } from '../helpers/server.ts'

/**
 * RFC 9111 §3.3 (storing incomplete responses) and §3.4 (combining partial
 * content) in the shared cache, against a real origin socket that answers
 * Range requests with 206 and (mostly) a strong ETag, counting its requests.
 */

const SIZE = 100
const hits = new Map<string, number>()
const seen = new Map<string, http.IncomingHttpHeaders>()
/** Representation version per path: a new version has other bytes and another ETag. */
const versions = new Map<string, number>()
let truncateNext = false

const count = (path: string) => hits.get(path) ?? 0
/** SIZE bytes; every byte differs between versions. */
function bodyOf(version: number): Buffer {
  return Buffer.from(Array.from({ length: SIZE }, (_, i) => 65 + ((i + 13 * (version - 1)) % 26)))
}

/** bytes=a-b, a-, -n (clamped); undefined when the header is not understood. */
function specs(range: string): Array<[number, number]> | undefined {
  const m = /^bytes=(.+)$/.exec(range)
  if (!m) return undefined
  const out: Array<[number, number]> = []
  for (const spec of m[1]!.split(',')) {
    const r = /^\s*(\d*)-(\d*)\s*$/.exec(spec)
    if (!r || (r[1] === '' && r[2] === '')) return undefined
    if (r[1] === '') out.push([Math.max(0, SIZE - Number(r[2])), SIZE - 1])
    else out.push([Number(r[1]), Math.min(SIZE - 1, r[2] === '' ? SIZE - 1 : Number(r[2]))])
  }
  return out
}

const origin = http.createServer((req, res) => {
  const path = req.url!.split('?')[0]!
  hits.set(path, count(path) + 1)
  seen.set(path, req.headers)
  req.resume()
  if (path.startsWith('/slow')) setTimeout(() => answer(req, res, path), 100)
  else answer(req, res, path)
})

function answer(req: http.IncomingMessage, res: http.ServerResponse, path: string): void {
  const version = versions.get(path) ?? 1
  const body = bodyOf(version)
  const etag = path.startsWith('/weak') ? `W/"${path.slice(1)}-v${version}"` : path.startsWith('/no-etag') ? undefined : `"${path.slice(1)}-v${version}"`
  const headers: Record<string, string> = {
    'Content-Type': 'application/octet-stream',
    'Cache-Control': path.startsWith('/no-cache') ? 'max-age=60, no-cache' : 'max-age=60',
    'X-Origin-Hit': String(count(path)),
  }
  if (etag) headers.ETag = etag
  if (etag && req.headers['if-none-match'] === etag) {
    res.writeHead(304, headers)
    res.end()
    return
  }
  const ifRange = req.headers['if-range']
  const wanted = req.headers.range !== undefined && (ifRange === undefined || ifRange === etag) ? specs(req.headers.range) : undefined
  if (!wanted) {
    res.writeHead(200, { ...headers, 'Content-Length': String(SIZE) })
    res.end(body)
    return
  }
  if (wanted.length > 1) {
    const parts = wanted.map(([s, e]) => Buffer.concat([Buffer.from(`--B\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes ${s}-${e}/${SIZE}\r\n\r\n`), body.subarray(s, e + 1), Buffer.from('\r\n')]))
    const mp = Buffer.concat([...parts, Buffer.from('--B--\r\n')])
    res.writeHead(206, { ...headers, 'Content-Type': 'multipart/byteranges; boundary=B', 'Content-Length': String(mp.length) })
    res.end(mp)
    return
  }
  const [s, e] = wanted[0]!
  const length = String(e - s + 1)
  if (path.startsWith('/unknown-length')) {
    res.writeHead(206, { ...headers, 'Content-Range': `bytes ${s}-${e}/*`, 'Content-Length': length })
    res.end(body.subarray(s, e + 1))
    return
  }
  res.writeHead(206, { ...headers, 'Content-Range': `bytes ${s}-${e}/${SIZE}`, 'Content-Length': length })
  if (truncateNext) {
    truncateNext = false
    res.write(body.subarray(s, s + 3))
    setTimeout(() => req.socket.destroy(), 20)
    return
  }
  res.end(body.subarray(s, e + 1))
}

let originUrl: string
let srv: TestServer
before(async () => {
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r))
  originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`
  srv = await startServer({ sites: [{ routes: [{ path: '/', proxy: { upstreams: [originUrl], cache: true, retries: { attempts: 0 } } }] }] })
})
after(async () => {
  await srv.close()
  origin.closeAllConnections()
  await new Promise((r) => origin.close(r))
})

const get = (path: string, headers: Record<string, string> = {}, method = 'GET', server = srv) => request('http/1.1', server.url + path.slice(1), { method, headers })
const range = (path: string, r: string, headers: Record<string, string> = {}, server = srv) => get(path, { range: `bytes=${r}`, ...headers }, 'GET', server)

/** A 206 with exactly these bytes of version `v`, Content-Range and Content-Length, and Cache-Status. */
function assert206(r: Reply, start: number, end: number, cacheStatus: RegExp, v = 1): void {
  assert.equal(r.status, 206)
  assert.equal(r.headers['content-range'], `bytes ${start}-${end}/${SIZE}`)
  assert.equal(r.headers['content-length'], String(end - start + 1))
  assert.ok(r.body.equals(bodyOf(v).subarray(start, end + 1)), `bytes ${start}-${end} of v${v}: ${r.text}`)
  assert.match(String(r.headers['cache-status']), cacheStatus)
}

// the origin's Date has whole seconds: the remaining freshness on arrival can round down a second
const STORED = (fwd = 'miss') => new RegExp(`^edgebox; fwd=${fwd}; fwd-status=206; stored; ttl=(59|60)$`)
const HIT = /^edgebox; hit; ttl=(58|59|60)$/

describe('storing and combining 206 responses', () => {
  test('two adjacent ranges are combined; a range spanning both is served from the cache', async () => {
    assert206(await range('/adjacent', '0-9'), 0, 9, STORED())
    assert.equal(seen.get('/adjacent')!.range, 'bytes=0-9', 'forwarded as a range')
    assert206(await range('/adjacent', '10-19'), 10, 19, STORED('partial'))
    assert.equal(count('/adjacent'), 2)

    const spanning = await range('/adjacent', '5-14')
    assert206(spanning, 5, 14, HIT)
    assert.match(String(spanning.headers.age), /^[012]$/)
    assert.equal(spanning.headers['x-origin-hit'], '2', 'the newer response header fields replaced the stored ones (§3.4)')
    assert.equal(spanning.headers.etag, '"adjacent-v1"')
    assert206(await range('/adjacent', '19-19'), 19, 19, HIT)
    assert206(await range('/adjacent', '0-19'), 0, 19, HIT)
    assert.equal(count('/adjacent'), 2, 'no origin request for ranges inside the held bytes')

    // reaching outside the held bytes: only the missing bytes are asked for, and combined in turn (RFC 9111 §3.4)
    assert206(await range('/adjacent', '15-29'), 15, 29, STORED('partial'))
    assert.equal(seen.get('/adjacent')!.range, 'bytes=20-29')
    assert.equal(seen.get('/adjacent')!['if-range'], '"adjacent-v1"')
    assert206(await range('/adjacent', '0-29'), 0, 29, HIT)
    assert.equal(count('/adjacent'), 3)

    // a full GET cannot be answered from a partial entry: a miss whose 200 replaces it
    const full = await get('/adjacent')
    assert.equal(full.status, 200)
    assert.match(String(full.headers['cache-status']), /^edgebox; fwd=partial; fwd-status=200; stored; ttl=(59|60)$/)
    assert.ok(full.body.equals(bodyOf(1)))
    assert.equal(count('/adjacent'), 4)
    const again = await get('/adjacent')
    assert.equal(again.status, 200)
    assert.match(String(again.headers['cache-status']), HIT)
    assert.equal(count('/adjacent'), 4)
  })

  test('ranges covering the whole object become a stored 200, served for a plain GET', async () => {
    assert206(await range('/whole', '0-59'), 0, 59, STORED())
    assert206(await range('/whole', '-50'), 50, 99, STORED('partial')) // overlapping 50-59, suffix range
    assert.equal(count('/whole'), 2)

    const full = await get('/whole')
    assert.equal(full.status, 200)
    assert.equal(full.headers['content-length'], String(SIZE))
    assert.equal(full.headers['content-range'], undefined)
    assert.ok(full.body.equals(bodyOf(1)))
    assert.match(String(full.headers['cache-status']), HIT)
    assert.equal(full.headers.etag, '"whole-v1"')

    const head = await get('/whole', {}, 'HEAD')
    assert.equal(head.status, 200)
    assert.equal(head.headers['content-length'], String(SIZE))
    assert.match(String(head.headers['cache-status']), HIT)

    // the stored 200 serves any range, and the client's conditionals
    assert206(await range('/whole', '90-99'), 90, 99, HIT)
    const twoRanges = await range('/whole', '0-1,50-51')
    assert.equal(twoRanges.status, 206)
    assert.match(String(twoRanges.headers['content-type']), /^multipart\/byteranges; boundary=/)
    assert.equal((await get('/whole', { 'if-none-match': '"whole-v1"' })).status, 304)
    assert.equal(count('/whole'), 2, 'the origin was asked for the two ranges only')
  })

  test('an ETag that changed between two ranges: no combination, the second replaces the first', async () => {
    assert206(await range('/changed', '0-9'), 0, 9, STORED())
    versions.set('/changed', 2)
    assert206(await range('/changed', '10-19'), 10, 19, STORED('partial'), 2)

    // spanning both: not served from bytes of two representations, forwarded
    const spanning = await range('/changed', '5-14')
    assert206(spanning, 5, 14, STORED('partial'), 2)
    assert.equal(count('/changed'), 3)
    // the v1 bytes are gone: 0-9 goes to the origin too, and is v2
    assert206(await range('/changed', '0-9'), 0, 9, STORED('partial'), 2)
    assert.equal(count('/changed'), 4)
    // now 0-19 of v2 are held
    const held = await range('/changed', '0-19')
    assert206(held, 0, 19, HIT, 2)
    assert.equal(held.headers.etag, '"changed-v2"')
    assert.equal(count('/changed'), 4)
  })

  test('concurrent range requests for one URL are each stored and combined', async () => {
    const [a, b] = await Promise.all([range('/slow', '0-9'), range('/slow', '10-19')])
    assert206(a!, 0, 9, STORED())
    assert206(b!, 10, 19, STORED())
    assert.equal(count('/slow'), 2)
    assert206(await range('/slow', '0-19'), 0, 19, HIT)
    assert.equal(count('/slow'), 2)
  })

  test('a weak ETag, or none: nothing is stored or combined', async () => {
    for (const path of ['/weak', '/no-etag']) {
      const detail = /^edgebox; fwd=miss; fwd-status=206; detail="206 without a strong ETag"$/
      assert206(await range(path, '0-9'), 0, 9, detail)
      assert206(await range(path, '10-19'), 10, 19, detail)
      assert206(await range(path, '5-14'), 5, 14, detail)
      assert206(await range(path, '0-9'), 0, 9, detail)
      assert.equal(count(path), 4, path)
    }
  })

  test('a truncated 206 is not stored', async () => {
    truncateNext = true
    await assert.rejects(range('/truncated', '0-49'))
    assert.equal(count('/truncated'), 1)
    // nothing was stored: a miss (not fwd=partial), and this complete answer is stored
    assert206(await range('/truncated', '0-9'), 0, 9, STORED())
    assert.equal(count('/truncated'), 2)
    assert206(await range('/truncated', '0-9'), 0, 9, HIT)
    const outside = await range('/truncated', '10-12')
    assert206(outside, 10, 12, STORED('partial'))
    assert.equal(count('/truncated'), 3)
  })

  test('multipart/byteranges and unknown-length 206s are relayed, not stored', async () => {
    const mp = await range('/multipart', '0-4,10-14')
    assert.equal(mp.status, 206)
    assert.equal(mp.headers['content-type'], 'multipart/byteranges; boundary=B')
    assert.equal(mp.headers['content-range'], undefined)
    assert.match(mp.text, /^--B\r\nContent-Type: application\/octet-stream\r\nContent-Range: bytes 0-4\/100\r\n\r\nABCDE\r\n--B\r\n/)
    assert.match(String(mp.headers['cache-status']), /^edgebox; fwd=miss; fwd-status=206; detail="multipart\/byteranges is not stored"$/)
    assert206(await range('/multipart', '0-4'), 0, 4, STORED())
    assert.equal(count('/multipart'), 2)

    const unknown = await range('/unknown-length', '0-9')
    assert.equal(unknown.status, 206)
    assert.equal(unknown.headers['content-range'], 'bytes 0-9/*')
    assert.ok(unknown.body.equals(bodyOf(1).subarray(0, 10)))
    assert.match(String(unknown.headers['cache-status']), /^edgebox; fwd=miss; fwd-status=206; detail="206 without a single byte range of known complete length"$/)
    await range('/unknown-length', '0-9')
    assert.equal(count('/unknown-length'), 2)
  })
})

describe('what a partial entry answers', () => {
  test('If-Range with the strong ETag is served; conditionals, HEAD, several ranges and other If-Range values are forwarded', async () => {
    const p = '/conditional'
    await range(p, '0-9')
    await range(p, '10-19')
    assert.equal(count(p), 2)
    assert206(await range(p, '2-5', { 'if-range': '"conditional-v1"' }), 2, 5, HIT)
    assert.equal(count(p), 2)

    const inm = await range(p, '2-5', { 'if-none-match': '"conditional-v1"' })
    assert.equal(inm.status, 304)
    assert.match(String(inm.headers['cache-status']), /^edgebox; fwd=partial; fwd-status=304; detail=".+"$/)
    assert.equal(count(p), 3)

    const head = await get(p, { range: 'bytes=2-5' }, 'HEAD')
    assert.equal(head.headers['cache-status'], 'edgebox; fwd=partial')
    assert.equal(count(p), 4)

    const two = await range(p, '0-1,4-5')
    assert.equal(two.status, 206)
    assert.match(String(two.headers['cache-status']), /^edgebox; fwd=partial; fwd-status=206; detail="multipart\/byteranges is not stored"$/)
    assert.equal(count(p), 5)

    const weakIfRange = await range(p, '2-5', { 'if-range': 'W/"conditional-v1"' })
    assert.equal(weakIfRange.status, 200, 'the origin ignores Range with an If-Range that does not match')
    assert.match(String(weakIfRange.headers['cache-status']), /^edgebox; fwd=partial; fwd-status=200; stored; ttl=(59|60)$/)
    assert.equal(count(p), 6)
    // the 200 replaced the partial entry
    const full = await get(p)
    assert.equal(full.status, 200)
    assert.ok(full.body.equals(bodyOf(1)))
    assert.match(String(full.headers['cache-status']), HIT)
    assert.equal(count(p), 6)
  })

  test('a partial entry that must be revalidated (no-cache) is not served from', async () => {
    await range('/no-cache', '0-9')
    assert206(await range('/no-cache', '2-5'), 2, 5, STORED('partial'))
    assert.equal(count('/no-cache'), 2)
  })

  test('a disk store keeps partial entries across a restart', async () => {
    const t = tempDir()
    const config = { sites: [{ routes: [{ path: '/', proxy: { upstreams: [originUrl], cache: { disk: t.dir } } }] }] }
    try {
      let s = await startServer(config)
      assert206(await range('/disk', '0-9', {}, s), 0, 9, STORED())
      assert206(await range('/disk', '20-29', {}, s), 20, 29, STORED('partial'))
      await s.close()
      s = await startServer(config)
      try {
        assert206(await range('/disk', '2-7', {}, s), 2, 7, HIT)
        assert206(await range('/disk', '20-29', {}, s), 20, 29, HIT)
        assert.equal(count('/disk'), 2, 'asked twice, before the restart')
        assert206(await range('/disk', '10-19', {}, s), 10, 19, STORED('partial'))
        assert206(await range('/disk', '0-29', {}, s), 0, 29, HIT)
        assert206(await range('/disk', '30-99', {}, s), 30, 99, STORED('partial'))
        const full = await get('/disk', {}, 'GET', s)
        assert.equal(full.status, 200)
        assert.equal(full.headers['content-length'], String(SIZE))
        assert.ok(full.body.equals(bodyOf(1)))
        assert.match(String(full.headers['cache-status']), HIT)
        assert.equal(count('/disk'), 4)
      } finally {
        await s.close()
      }
      // the completed entry, now a 200, survives a restart too
      s = await startServer(config)
      try {
        const full = await get('/disk', {}, 'GET', s)
        assert.equal(full.status, 200)
        assert.ok(full.body.equals(bodyOf(1)))
        assert.match(String(full.headers['cache-status']), /^edgebox; hit/)
        assert.equal(count('/disk'), 4)
      } finally {
        await s.close()
      }
    } finally {
      t.cleanup()
    }
  })
})

/**
 * RFC 9111 §3.4 with RFC 9110 §13.1.5: a range partly held by a fresh
 * partial entry. The origin (1000 bytes) records the Range and If-Range of
 * every request it gets, and honours If-Range unless the path says otherwise.
 */
describe('a range partly held: only the missing bytes go upstream', () => {
  const LEN = 1000
  const log = new Map<string, Array<{ range?: string; ifRange?: string }>>()
  const version = new Map<string, number>()
  const asked = (path: string) => (log.get(path) ?? []).map((r) => `${r.range ?? '-'} ${r.ifRange ?? '-'}`)
  /** LEN bytes; every byte differs between versions. */
  const bytesOf = (v: number) => Buffer.from(Array.from({ length: LEN }, (_, i) => 48 + ((i + 7 * (v - 1)) % 75)))

  const up = http.createServer((req, res) => {
    const path = req.url!.split('?')[0]!
    const list = log.get(path) ?? []
    list.push({ range: req.headers.range, ifRange: req.headers['if-range'] as string | undefined })
    log.set(path, list)
    req.resume()
    const v = version.get(path) ?? 1
    const body = bytesOf(v)
    const etag = `"${path.slice(1)}-v${v}"`
    const headers: Record<string, string> = { 'Content-Type': 'application/octet-stream', 'Cache-Control': path.startsWith('/gap-no-cache') ? 'max-age=60, no-cache' : 'max-age=60', ETag: etag }
    const ifRange = req.headers['if-range']
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '')
    if (ifRange !== undefined && path.startsWith('/gap-503')) {
      res.writeHead(503, { 'Content-Length': '4' })
      return res.end('busy')
    }
    if (ifRange !== undefined && path.startsWith('/gap-416')) {
      res.writeHead(416, { 'Content-Range': `bytes */${LEN}`, 'Content-Length': '0' })
      return res.end()
    }
    // Range ignored when If-Range does not match (RFC 9110 §13.1.5), except by /gap-liar, which ignores If-Range
    if (!m || (ifRange !== undefined && ifRange !== etag && !path.startsWith('/gap-liar'))) {
      res.writeHead(200, { ...headers, 'Content-Length': String(LEN) })
      return res.end(body)
    }
    let [s, e] = [Number(m[1]), Math.min(LEN - 1, Number(m[2]))]
    // a server that answers a range of its own choosing (a 64-byte aligned one) when asked with If-Range
    if (ifRange !== undefined && path.startsWith('/gap-wrong')) [s, e] = [s - (s % 64), e]
    res.writeHead(206, { ...headers, 'Content-Range': `bytes ${s}-${e}/${LEN}`, 'Content-Length': String(e - s + 1) })
    if (ifRange !== undefined && path.startsWith('/gap-truncated') && e === 799) {
      res.write(body.subarray(s, s + 10))
      setTimeout(() => req.socket.destroy(), 20)
      return
    }
    res.end(body.subarray(s, e + 1))
  })

  let gs: TestServer
  before(async () => {
    await new Promise<void>((r) => up.listen(0, '127.0.0.1', r))
    const url = `http://127.0.0.1:${(up.address() as AddressInfo).port}`
    gs = await startServer({ sites: [{ routes: [{ path: '/', proxy: { upstreams: [url], cache: true, retries: { attempts: 0 } } }] }] })
  })
  after(async () => {
    await gs.close()
    up.closeAllConnections()
    await new Promise((r) => up.close(r))
  })

  const ask = (path: string, r: string, headers: Record<string, string> = {}) => request('http/1.1', gs.url + path.slice(1), { headers: { range: `bytes=${r}`, ...headers } })
  /** A 206 with exactly bytes start-end of version v. */
  function partOf(r: Reply, start: number, end: number, cacheStatus: RegExp, v = 1): void {
    assert.equal(r.status, 206, r.text.slice(0, 80))
    assert.equal(r.headers['content-range'], `bytes ${start}-${end}/${LEN}`)
    assert.equal(r.headers['content-length'], String(end - start + 1))
    assert.ok(r.body.equals(bytesOf(v).subarray(start, end + 1)), `bytes ${start}-${end} of v${v}`)
    assert.match(String(r.headers['cache-status']), cacheStatus)
  }
  const FILLED = /^edgebox; fwd=partial; fwd-status=206; stored; ttl=(59|60)$/

  test('held 0-499, asked 200-799: the upstream is asked bytes=500-799 with If-Range, and the 206 is combined', async () => {
    partOf(await ask('/gap', '0-499'), 0, 499, STORED())
    const r = await ask('/gap', '200-799')
    partOf(r, 200, 799, FILLED)
    assert.equal(r.headers.etag, '"gap-v1"')
    assert.deepEqual(asked('/gap'), ['bytes=0-499 -', 'bytes=500-799 "gap-v1"'])
    // now 0-799 are held
    partOf(await ask('/gap', '0-799'), 0, 799, HIT)
    partOf(await ask('/gap', '450-550'), 450, 550, HIT)
    assert.equal(log.get('/gap')!.length, 2)
  })

  test('bytes missing in several gaps: one request for the span from the first to the last missing byte', async () => {
    partOf(await ask('/gap-two', '0-99'), 0, 99, STORED())
    partOf(await ask('/gap-two', '300-399'), 300, 399, STORED('partial'))
    assert.deepEqual(asked('/gap-two'), ['bytes=0-99 -', 'bytes=300-399 -'], 'nothing of these ranges was held: forwarded as asked')
    partOf(await ask('/gap-two', '0-499'), 0, 499, FILLED)
    assert.equal(asked('/gap-two')[2], 'bytes=100-499 "gap-two-v1"')
    partOf(await ask('/gap-two', '0-499'), 0, 499, HIT)

    // a gap in the middle only
    partOf(await ask('/gap-mid', '0-99'), 0, 99, STORED())
    partOf(await ask('/gap-mid', '300-399'), 300, 399, STORED('partial'))
    partOf(await ask('/gap-mid', '50-349'), 50, 349, FILLED)
    assert.equal(asked('/gap-mid')[2], 'bytes=100-299 "gap-mid-v1"')
    partOf(await ask('/gap-mid', '0-399'), 0, 399, HIT)
    assert.equal(log.get('/gap-mid')!.length, 3)
  })

  test('the representation changed: the upstream answers 200, which replaces the partial entry and serves the range', async () => {
    partOf(await ask('/gap-changed', '0-499'), 0, 499, STORED())
    version.set('/gap-changed', 2)
    const r = await ask('/gap-changed', '200-799')
    partOf(r, 200, 799, /^edgebox; fwd=partial; fwd-status=200; stored; ttl=(59|60)$/, 2)
    assert.equal(r.headers.etag, '"gap-changed-v2"')
    assert.equal(asked('/gap-changed')[1], 'bytes=500-799 "gap-changed-v1"')
    // the stored 200 answers everything now, with v2 bytes only
    partOf(await ask('/gap-changed', '0-499'), 0, 499, HIT, 2)
    const full = await request('http/1.1', gs.url + 'gap-changed')
    assert.equal(full.status, 200)
    assert.ok(full.body.equals(bytesOf(2)))
    assert.equal(log.get('/gap-changed')!.length, 2)

    // a client whose If-Range names the old representation gets the whole new one (RFC 9110 §13.1.5)
    partOf(await ask('/gap-changed-ir', '0-499'), 0, 499, STORED())
    version.set('/gap-changed-ir', 2)
    const whole = await ask('/gap-changed-ir', '200-799', { 'if-range': '"gap-changed-ir-v1"' })
    assert.equal(whole.status, 200)
    assert.equal(whole.headers['content-range'], undefined)
    assert.ok(whole.body.equals(bytesOf(2)))
    assert.match(String(whole.headers['cache-status']), /^edgebox; fwd=partial; fwd-status=200; stored; ttl=(59|60)$/)
    assert.equal(asked('/gap-changed-ir')[1], 'bytes=500-799 "gap-changed-ir-v1"')
  })

  test('a 206 that is not the range asked, or of another representation, is not combined: the range is forwarded as it came', async () => {
    partOf(await ask('/gap-wrong', '0-499'), 0, 499, STORED())
    const r = await ask('/gap-wrong', '200-799')
    partOf(r, 200, 799, FILLED)
    assert.deepEqual(asked('/gap-wrong'), ['bytes=0-499 -', 'bytes=500-799 "gap-wrong-v1"', 'bytes=200-799 -'])

    // a server that ignores If-Range: a 206 of version 2 is never joined to version 1 bytes
    partOf(await ask('/gap-liar', '0-499'), 0, 499, STORED())
    version.set('/gap-liar', 2)
    partOf(await ask('/gap-liar', '200-799'), 200, 799, FILLED, 2)
    assert.deepEqual(asked('/gap-liar'), ['bytes=0-499 -', 'bytes=500-799 "gap-liar-v1"', 'bytes=200-799 -'])
    // the v2 range replaced the v1 entry: 0-99 is not held any more
    partOf(await ask('/gap-liar', '0-99'), 0, 99, STORED('partial'), 2)
    partOf(await ask('/gap-liar', '200-799'), 200, 799, HIT, 2)
    assert.equal(log.get('/gap-liar')!.length, 4)
  })

  test('a 416 forwards the range as it came; a 5xx is relayed; a truncated 206 is a 502 and nothing is combined', async () => {
    partOf(await ask('/gap-416', '0-499'), 0, 499, STORED())
    partOf(await ask('/gap-416', '200-799'), 200, 799, FILLED)
    assert.deepEqual(asked('/gap-416'), ['bytes=0-499 -', 'bytes=500-799 "gap-416-v1"', 'bytes=200-799 -'])

    partOf(await ask('/gap-503', '0-499'), 0, 499, STORED())
    const busy = await ask('/gap-503', '200-799')
    assert.equal(busy.status, 503)
    assert.equal(busy.text, 'busy')
    assert.equal(busy.headers['cache-status'], 'edgebox; fwd=partial; fwd-status=503')
    partOf(await ask('/gap-503', '0-499'), 0, 499, HIT)

    partOf(await ask('/gap-truncated', '0-499'), 0, 499, STORED())
    const cut = await ask('/gap-truncated', '200-799')
    assert.equal(cut.status, 502)
    assert.equal(asked('/gap-truncated')[1], 'bytes=500-799 "gap-truncated-v1"')
    partOf(await ask('/gap-truncated', '0-499'), 0, 499, HIT)
    partOf(await ask('/gap-truncated', '400-599'), 400, 599, FILLED)
    assert.equal(asked('/gap-truncated')[2], 'bytes=500-599 "gap-truncated-v1"')
  })

  test('a stale partial entry, or a request with other conditionals, forwards the range as it came', async () => {
    partOf(await ask('/gap-no-cache', '0-499'), 0, 499, STORED())
    partOf(await ask('/gap-no-cache', '200-799'), 200, 799, STORED('partial'))
    assert.equal(asked('/gap-no-cache')[1], 'bytes=200-799 -')

    partOf(await ask('/gap-cond', '0-499'), 0, 499, STORED())
    const inm = await ask('/gap-cond', '200-799', { 'if-none-match': '"other"' })
    partOf(inm, 200, 799, STORED('partial'))
    assert.equal(asked('/gap-cond')[1], 'bytes=200-799 -')
  })
})
