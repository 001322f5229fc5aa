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

    // reaching outside the held bytes: forwarded, and combined in turn
    assert206(await range('/adjacent', '15-29'), 15, 29, STORED('partial'))
    assert.equal(seen.get('/adjacent')!.range, 'bytes=15-29')
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
