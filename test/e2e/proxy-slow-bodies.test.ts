import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { readdirSync, statSync } from 'node:fs'
import http from 'node:http'
import http2 from 'node:http2'
import net from 'node:net'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { bodyTempDir, tempBodyBytes } from '../../src/core/body-buffer.ts'
import { closedPort, listening, PROTOCOLS, request, startServer, type Reply } from '../helpers/server.ts'

/**
 * Slow request bodies against the reverse proxy: uploads that trickle a byte
 * now and then must not hold the upstream's connection pool, so other
 * requests to that upstream are still served; a request that waits too long
 * for a pooled connection gets 503 instead of hanging.
 */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

interface Received {
  method: string
  url: string
  length: number
  sha256: string
  contentLength: string | undefined
}

/** An upstream that hashes every body it receives and answers once the body is complete. */
async function upstream(): Promise<{ url: string; open: () => number; seen: Received[]; onRequest: { hook: (() => void) | null }; close(): Promise<void> }> {
  let open = 0
  const seen: Received[] = []
  const onRequest = { hook: null as (() => void) | null }
  const server = http.createServer((req, res) => {
    open++
    res.once('close', () => open--)
    onRequest.hook?.()
    const hash = createHash('sha256')
    let length = 0
    req.on('data', (c: Buffer) => {
      hash.update(c)
      length += c.length
    })
    req.on('end', () => {
      const r = { method: req.method!, url: req.url!, length, sha256: hash.digest('hex'), contentLength: req.headers['content-length'] }
      seen.push(r)
      res.writeHead(200, { 'Content-Type': 'application/json' })
      res.end(JSON.stringify(r))
    })
  })
  const { url, close } = await listening(server)
  return { url, open: () => open, seen, onRequest, close }
}

/**
 * An upload that declares a large Content-Length, then sends one byte every
 * 100 ms (never enough to finish). Resolves once Edgebox asked for the body
 * (100 Continue): the request has reached the proxy handler.
 */
async function trickle(port: number, path: string): Promise<{ stop(): void }> {
  const sock = net.connect(port, '127.0.0.1')
  sock.on('error', () => {})
  let timer: NodeJS.Timeout | undefined
  await new Promise<void>((resolve, reject) => {
    let seen = ''
    const giveUp = setTimeout(() => reject(new Error(`no 100 Continue for ${path}: ${JSON.stringify(seen)}`)), 5000)
    sock.setEncoding('latin1')
    sock.on('data', (d: string) => {
      seen += d
      if (seen.startsWith('HTTP/1.1 100 ')) {
        clearTimeout(giveUp)
        resolve()
      }
    })
    sock.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n`)
  })
  timer = setInterval(() => sock.write('x'), 100)
  return {
    stop() {
      clearInterval(timer)
      sock.destroy()
    },
  }
}

/** A request that gives up (rejects) after `ms` instead of hanging the suite. */
function within(ms: number, what: string, p: Promise<Reply>): Promise<Reply> {
  let timer: NodeJS.Timeout | undefined
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)
  })
  return Promise.race([p, limit]).finally(() => clearTimeout(timer))
}

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

describe('trickling uploads with request buffering (the default)', () => {
  let up: Awaited<ReturnType<typeof upstream>>
  let srv: Awaited<ReturnType<typeof startServer>>
  before(async () => {
    up = await upstream()
    srv = await startServer({ sites: [{ routes: [{ path: '/', proxy: { upstreams: [up.url], maxConnections: 2 } }] }] })
  })
  after(async () => {
    await srv.close()
    await up.close()
  })

  test('more trickling uploads than pooled connections: a GET to the same upstream is still answered', async () => {
    const uploads = []
    try {
      for (let i = 0; i < 4; i++) uploads.push(await trickle(srv.port, `/upload-${i}`))
      for (const protocol of PROTOCOLS) {
        const r = await within(5000, `GET over ${protocol} while 4 uploads trickle`, request(protocol, srv.url + 'item'))
        assert.equal(r.status, 200)
        assert.equal(JSON.parse(r.text).url, '/item')
      }
      // the incomplete bodies never reached the upstream
      assert.deepEqual(
        up.seen.filter((s) => s.method === 'POST'),
        [],
      )
      assert.equal(up.open(), 0)
    } finally {
      for (const u of uploads) u.stop()
    }
    const ok = await request('http/1.1', srv.url + 'after', { method: 'POST', body: 'complete' })
    assert.equal(ok.status, 200)
    assert.equal(JSON.parse(ok.text).length, 8)
  })
})

describe('streamed uploads (requestBuffering: false) and the queue timeout', () => {
  let up: Awaited<ReturnType<typeof upstream>>
  let srv: Awaited<ReturnType<typeof startServer>>
  before(async () => {
    up = await upstream()
    srv = await startServer({
      sites: [{ routes: [{ path: '/', proxy: { upstreams: [up.url], maxConnections: 2, requestBuffering: false, timeouts: { queue: '300ms' } } }] }],
    })
  })
  after(async () => {
    await srv.close()
    await up.close()
  })

  for (const protocol of PROTOCOLS) {
    test(`${protocol}: a request waiting past timeouts.queue for a full pool gets 503 with Retry-After`, async () => {
      const uploads = []
      try {
        // two streamed uploads hold both pooled connections
        for (let i = 0; i < 2; i++) uploads.push(await trickle(srv.port, `/stream-${i}`))
        await until('the upstream to hold both uploads', () => up.open() === 2)
        const r = await within(5000, 'GET behind a full pool', request(protocol, srv.url + 'waiting'))
        assert.equal(r.status, 503)
        assert.equal(r.headers['retry-after'], '1')
        assert.match(r.text, new RegExp(`upstream ${up.url.replace(/[.]/g, '\\.')} had no free connection within 300 ms \\(all 2 in use\\)`))
        assert.equal(
          up.seen.filter((s) => s.url === '/waiting').length,
          0,
          'the timed-out request never reached the upstream',
        )
      } finally {
        for (const u of uploads) u.stop()
      }
      await until('the uploads to leave the upstream', () => up.open() === 0)
      const ok = await within(5000, 'GET after the uploads left', request(protocol, srv.url + 'next'))
      assert.equal(ok.status, 200)
    })
  }
})

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex')

/** This process's temporary body files (other processes may share the folder), with their sizes. */
function tempFiles(): Array<{ name: string; size: number }> {
  let names: string[]
  try {
    names = readdirSync(bodyTempDir())
  } catch {
    return []
  }
  return names
    .filter((n) => n.startsWith(`${process.pid}-`))
    .flatMap((name) => {
      try {
        return [{ name, size: statSync(path.join(bodyTempDir(), name)).size }]
      } catch {
        return [] // removed meanwhile
      }
    })
}

/** A raw HTTP/1.1 client whose body is written piece by piece, and whose answer is read as text. */
function rawClient(port: number): { write(b: string | Buffer): void; text(): string; until(what: string, cond: (text: string) => boolean, ms?: number): Promise<string>; destroy(): void } {
  const sock = net.connect(port, '127.0.0.1')
  let text = ''
  sock.setEncoding('latin1')
  sock.on('data', (d: string) => (text += d))
  sock.on('error', () => {})
  return {
    write: (b) => void (sock.destroyed ? undefined : sock.write(b)),
    text: () => text,
    async until(what, cond, ms = 5000) {
      await until(what, () => cond(text), ms)
      return text
    },
    destroy: () => sock.destroy(),
  }
}

const answered = (t: string) => /\r\n\r\n/.test(t.replace(/^HTTP\/1\.1 100 Continue\r\n\r\n/, '')) && /^HTTP\/1\.1 (?!100)\d{3}/m.test(t)

describe('buffered bodies: memory, temporary files, the shared cap, and cleanup', () => {
  let up: Awaited<ReturnType<typeof upstream>>
  let srv: Awaited<ReturnType<typeof startServer>>
  let dead: string
  before(async () => {
    up = await upstream()
    dead = `http://127.0.0.1:${await closedPort()}`
    srv = await startServer({
      limits: { bodyBuffer: '16k', bodyTempMax: '100k', maxBodySize: '80k' },
      sites: [
        {
          routes: [
            { path: '/dead/', proxy: { upstreams: [dead], health: { passive: { consecutiveFailures: 1000 } } } },
            { path: '/', proxy: { upstreams: [up.url] } },
          ],
        },
      ],
    })
  })
  after(async () => {
    await srv.close()
    await up.close()
  })

  for (const protocol of PROTOCOLS) {
    test(`${protocol}: a body larger than bodyBuffer goes to a temporary file, reaches the upstream byte for byte, and the file is removed`, async () => {
      const body = randomBytes(70_000)
      let atArrival: Array<{ name: string; size: number }> = []
      up.onRequest.hook = () => (atArrival = tempFiles())
      try {
        const r = await request(protocol, srv.url + 'spill', { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } })
        assert.equal(r.status, 200)
        const got = JSON.parse(r.text) as Received
        assert.equal(got.length, body.length)
        assert.equal(got.sha256, sha256(body))
        assert.equal(got.contentLength, String(body.length))
      } finally {
        up.onRequest.hook = null
      }
      // complete in the file before the upstream was asked
      assert.deepEqual(
        atArrival.map((f) => f.size),
        [70_000],
      )
      await until('the temporary file to go', () => tempFiles().length === 0)
      assert.equal(tempBodyBytes(), 0)
    })

    test(`${protocol}: a body within bodyBuffer stays in memory`, async () => {
      const body = randomBytes(10_000)
      let atArrival: Array<{ name: string; size: number }> | null = null
      up.onRequest.hook = () => (atArrival = tempFiles())
      try {
        const r = await request(protocol, srv.url + 'small', { method: 'PUT', body })
        assert.equal(r.status, 200)
        assert.equal((JSON.parse(r.text) as Received).sha256, sha256(body))
      } finally {
        up.onRequest.hook = null
      }
      assert.deepEqual(atArrival, [])
    })
  }

  test('all temporary bodies together are capped: a body that would go beyond gets 503 with Retry-After, declared or chunked, and nothing stays on disk', async () => {
    const first = rawClient(srv.port)
    const posts = () => up.seen.filter((s) => s.method === 'POST' && s.url.startsWith('/capped')).length
    try {
      // 70000 declared and claimed, 40000 of them on disk, the rest still to come
      first.write('POST /capped-1 HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n')
      first.write(Buffer.alloc(40_000, 1))
      await until('the first body on disk', () => tempFiles().some((f) => f.size === 40_000))

      // declared: refused before its body is asked for (no 100 Continue), and never forwarded
      const declared = rawClient(srv.port)
      declared.write('POST /capped-2 HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\nExpect: 100-continue\r\n\r\n')
      const text = await declared.until('the declared body to be refused', answered)
      declared.destroy()
      assert.match(text, /^HTTP\/1\.1 503 /)
      assert.doesNotMatch(text, /100 Continue/)
      assert.match(text, /\r\nretry-after: 5\r\n/i)
      assert.match(text, /does not fit in the temporary space for request bodies: 70000 of 102400 bytes \(limits\.bodyTempMax\) are in use/)

      // chunked: refused once its file would go beyond the cap; its partial file is removed
      const chunked = rawClient(srv.port)
      chunked.write('POST /capped-3 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n')
      for (let i = 0; i < 12 && !answered(chunked.text()); i++) {
        chunked.write(`2000\r\n${'c'.repeat(0x2000)}\r\n`)
        await sleep(10)
      }
      const refused = await chunked.until('the chunked body to be refused', answered)
      chunked.destroy()
      assert.match(refused, /^HTTP\/1\.1 503 /)
      assert.match(refused, /\r\nretry-after: 5\r\n/i)
      await until('only the first body on disk', () => tempFiles().length === 1)
      assert.equal(posts(), 0)
    } finally {
      first.destroy()
    }
    // the client that left takes its file and its share of the space with it
    await until('the abandoned body to be removed', () => tempFiles().length === 0 && tempBodyBytes() === 0)
    const body = randomBytes(60_000)
    const r = await request('http/1.1', srv.url + 'capped-4', { method: 'POST', body })
    assert.equal(r.status, 200)
    assert.equal((JSON.parse(r.text) as Received).sha256, sha256(body))
    assert.equal(posts(), 1)
  })

  test('a chunked body that grows past maxBodySize gets 413 and its temporary file is removed', async () => {
    const c = rawClient(srv.port)
    c.write('POST /too-big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n')
    for (let i = 0; i < 20 && !answered(c.text()); i++) {
      c.write(`2000\r\n${'b'.repeat(0x2000)}\r\n`)
      await sleep(10)
    }
    const text = await c.until('413', answered)
    c.destroy()
    assert.match(text, /^HTTP\/1\.1 413 /)
    await until('no temporary file', () => tempFiles().length === 0 && tempBodyBytes() === 0)
    assert.equal(up.seen.filter((s) => s.url === '/too-big').length, 0)
    assert.equal((await request('http/1.1', srv.url + 'fine', { method: 'POST', body: 'ok' })).status, 200)
  })

  test('an upstream that fails after a spilled body was read: 502, and the file is removed', async () => {
    const r = await request('http/1.1', srv.url + 'dead/x', { method: 'POST', body: randomBytes(50_000) })
    assert.equal(r.status, 502)
    assert.match(r.text, /refused the connection/)
    await until('no temporary file', () => tempFiles().length === 0 && tempBodyBytes() === 0)
  })
})

describe('limits.bodyMinRate after limits.bodyRateGrace', () => {
  let up: Awaited<ReturnType<typeof upstream>>
  let srv: Awaited<ReturnType<typeof startServer>>
  before(async () => {
    up = await upstream()
    srv = await startServer({
      // shutdownTimeout: an HTTP/2 stream answered before its body ended holds the
      // session at close until this deadline (so does any early 408 or 413 over h2c)
      limits: { bodyMinRate: 100_000, bodyRateGrace: '200ms', shutdownTimeout: '1s' },
      sites: [{ routes: [{ path: '/', proxy: { upstreams: [up.url] } }] }],
    })
  })
  after(async () => {
    await srv.close()
    await up.close()
  })

  test('http/1.1: a body that keeps trickling (the idle timeout never fires) is cut with 408', async () => {
    const c = rawClient(srv.port)
    c.write('POST /trickle HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n')
    const timer = setInterval(() => c.write('0123456789'), 20)
    try {
      const text = await c.until('408', answered)
      assert.match(text, /^HTTP\/1\.1 408 /)
      assert.match(text, /the request body arrived at \d+ bytes\/s on average over [\d.]+ s, below the minimum of 100000 bytes\/s/)
    } finally {
      clearInterval(timer)
      c.destroy()
    }
    assert.equal(up.seen.length, 0)
    const body = randomBytes(50_000)
    const r = await request('http/1.1', srv.url + 'quick', { method: 'POST', body })
    assert.equal(r.status, 200)
    assert.equal((JSON.parse(r.text) as Received).sha256, sha256(body))
  })

  test('h2c: a trickling stream is cut with 408 too', async () => {
    const session = http2.connect(srv.url)
    session.on('error', () => {})
    const stream = session.request({ ':method': 'POST', ':path': '/trickle-h2', 'content-length': '100000' })
    stream.on('error', () => {})
    const timer = setInterval(() => stream.writable && stream.write('0123456789'), 20)
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no answer within 5 s')), 5000)
        stream.on('response', (h) => {
          clearTimeout(t)
          resolve(Number(h[':status']))
        })
      })
      assert.equal(status, 408)
    } finally {
      clearInterval(timer)
      session.destroy()
    }
    assert.equal((await request('h2c', srv.url + 'quick-h2', { method: 'POST', body: 'fine' })).status, 200)
  })
})
