import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import dc from 'node:diagnostics_channel'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import http2 from 'node:http2'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { startServer, tempDir, type TestServer } from '../helpers/server.ts'
import { accessLines } from '../helpers/access-log.ts'

/**
 * HTTP/2 requests reach the pipeline on Node's stream API, with Edgebox's
 * own request and response objects (src/server/h2-exchange.ts), not through
 * Node's compatibility layer: what the pipeline and the handlers do with
 * them over h2c.
 */


interface H2Reply {
  status: number
  headers: http2.IncomingHttpHeaders
  body: Buffer
  /** The stream's close code as the client saw it. */
  rstCode: number | undefined
  /** 1xx statuses received before the final one. */
  interim: number[]
}

/** One h2c request on its own connection; `body` is written in 16 KiB pieces, `onContinue` sends it only after 100 Continue. */
function h2(url: string, headers: http2.OutgoingHttpHeaders, body?: Buffer, opts: { onContinue?: boolean } = {}): Promise<H2Reply> {
  const session = http2.connect(url)
  session.on('error', () => {})
  return new Promise<H2Reply>((resolve, reject) => {
    const stream = session.request(headers, { endStream: body === undefined })
    const interim: number[] = []
    let status = 0
    let head: http2.IncomingHttpHeaders = {}
    const chunks: Buffer[] = []
    const send = () => {
      if (body === undefined) return
      // the server may close the stream before taking it all (a refusal): writes then fail, which is fine
      stream.end(body)
    }
    stream.on('error', () => {})
    stream.on('headers', (h) => interim.push(Number(h[':status'])))
    // a 100 is both a 'headers' and a 'continue' event
    stream.on('continue', () => {
      if (opts.onContinue) send()
    })
    stream.on('response', (h) => {
      status = Number(h[':status'])
      head = h
    })
    stream.on('data', (c: Buffer) => chunks.push(c))
    stream.on('close', () => resolve({ status, headers: head, body: Buffer.concat(chunks), rstCode: stream.rstCode, interim }))
    session.on('close', () => resolve({ status, headers: head, body: Buffer.concat(chunks), rstCode: stream.rstCode, interim }))
    if (!opts.onContinue) send()
    setTimeout(() => reject(new Error('no answer within 20 s')), 20_000).unref()
  }).finally(() => session.close())
}

describe('HTTP/2 exchanges on the stream API', () => {
  const files = tempDir()
  const logFile = path.join(files.dir, 'access.log')
  let srv: TestServer
  let upstream: http.Server
  /** What the upstream received: method, path, length and SHA-256 of the body, per request. */
  const received: Array<{ method: string; path: string; length: number; sha: string; contentLength: string | undefined }> = []

  before(async () => {
    writeFileSync(path.join(files.dir, 'a.txt'), 'AAAA')
    upstream = http.createServer((req, res) => {
      const hash = createHash('sha256')
      let length = 0
      req.on('data', (c: Buffer) => {
        hash.update(c)
        length += c.length
      })
      req.on('end', () => {
        const sha = hash.digest('hex')
        received.push({ method: req.method ?? '', path: req.url ?? '', length, sha, contentLength: req.headers['content-length'] })
        res.writeHead(200, { 'content-type': 'text/plain' })
        res.end(`${length} ${sha}`)
      })
    })
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
    const origin = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`
    srv = await startServer(
      {
        listen: [{ host: '127.0.0.1', port: 0, protocols: ['http/1.1', 'h2c'] }],
        log: { access: true, format: 'json', file: logFile },
        limits: { bodyIdleTimeout: 2000 },
        sites: [
          {
            routes: [
              { path: '/buffered/', proxy: { upstreams: [origin] } },
              { path: '/streamed/', proxy: { upstreams: [origin], requestBuffering: false } },
              { path: '/', static: { root: files.dir, upload: { enabled: true, maxBodySize: 1024 * 1024, credentials: [{ token: 'a-very-long-secret-token' }] } } },
            ],
          },
        ],
      },
      files.dir,
    )
  })
  after(async () => {
    await srv?.close()
    await new Promise<void>((resolve) => upstream.close(() => resolve()))
    files.cleanup()
  })

  test('a GET gets its answer without Node compatibility objects: no listener of theirs on the stream', async () => {
    // Node's Http2ServerRequest and Http2ServerResponse each listen on the stream they wrap
    // ('trailers', 'end', 'aborted', 'timeout', 'wantTrailers', 'drain'); the stream API adds none of these.
    const seen: Array<Record<string, number>> = []
    const onFinish = (msg: unknown) => {
      const stream = (msg as { stream: http2.ServerHttp2Stream }).stream
      seen.push(Object.fromEntries(['trailers', 'end', 'aborted', 'timeout', 'wantTrailers', 'drain'].map((e) => [e, stream.listenerCount(e)])))
    }
    dc.subscribe('http2.server.stream.finish', onFinish)
    try {
      const r = await h2(srv.url, { ':path': '/a.txt' })
      assert.equal(r.status, 200)
      assert.equal(r.body.toString(), 'AAAA')
    } finally {
      dc.unsubscribe('http2.server.stream.finish', onFinish)
    }
    assert.equal(seen.length, 1)
    assert.deepEqual(seen[0], { trailers: 0, end: 0, aborted: 0, timeout: 0, wantTrailers: 0, drain: 0 })
  })

  for (const route of ['buffered', 'streamed'] as const) {
    test(`a request body over h2c reaches the upstream byte for byte (${route}, 1 MiB, and one without content-length)`, async () => {
      const body = randomBytes(1024 * 1024)
      const sha = createHash('sha256').update(body).digest('hex')
      const r = await h2(srv.url, { ':method': 'POST', ':path': `/${route}/big`, 'content-type': 'application/octet-stream', 'content-length': String(body.length) }, body)
      assert.equal(r.status, 200)
      assert.equal(r.body.toString(), `${body.length} ${sha}`)
      const got = received.find((x) => x.path === `/${route}/big`)!
      assert.deepEqual([got.method, got.length, got.sha], ['POST', body.length, sha])
      // HTTP/2 needs no content-length: the end of the stream ends the body (RFC 9113 §8.1)
      const small = Buffer.from('no length announced')
      const r2 = await h2(srv.url, { ':method': 'PUT', ':path': `/${route}/nolength` }, small)
      assert.equal(r2.status, 200)
      assert.equal(r2.body.toString(), `${small.length} ${createHash('sha256').update(small).digest('hex')}`)
      // the access log has the answer as sent: complete, not a 499
      const lines = await accessLines(logFile, (ls) => ls.some((l) => l.path === `/${route}/nolength`))
      const logged = [`/${route}/big`, `/${route}/nolength`].map((p) => lines.find((l) => l.path === p)!)
      assert.deepEqual(
        logged.map((l) => [l.method, l.status, l.bytes]),
        [
          ['POST', 200, r.body.length],
          ['PUT', 200, r2.body.length],
        ],
      )
    })
  }

  test('Expect: 100-continue in any case gets 100 before the body; another expectation gets 417 from the pipeline, logged', async () => {
    const body = Buffer.from('hello')
    const ok = await h2(srv.url, { ':method': 'POST', ':path': '/buffered/continue', 'content-length': '5', expect: '100-Continue' }, body, { onContinue: true })
    assert.equal(ok.status, 200)
    assert.deepEqual(ok.interim, [100])
    assert.equal(ok.body.toString(), `5 ${createHash('sha256').update(body).digest('hex')}`)
    const refused = await h2(srv.url, { ':path': '/a.txt', expect: 'teapot' })
    assert.equal(refused.status, 417)
    assert.equal(refused.body.toString(), '417 Expectation Failed: Expect: teapot is not supported\n')
    // refused before the target is read, as over HTTP/1.1: the line names no path
    const lines = await accessLines(logFile, (ls) => ls.some((l) => l.status === 417))
    const line = lines.find((l) => l.status === 417)!
    assert.deepEqual([line.method, line.proto], ['GET', 'h2c'])
    const continued = lines.find((l) => l.path === '/buffered/continue')!
    assert.deepEqual([continued.status, continued.bytes], [200, ok.body.length])
  })

  test('an upload over h2c answered 201 is logged as 201, not as a client that left', async () => {
    // the answer's last DATA frame carries END_STREAM: the client may close the stream before
    // Node reports the response finished; both halves ended normally (NO_ERROR), so it was complete
    const paths = Array.from({ length: 8 }, (_, i) => `/up-${i}.txt`)
    const replies = await Promise.all(paths.map((p) => h2(srv.url, { ':method': 'PUT', ':path': p, authorization: 'Bearer a-very-long-secret-token', 'content-type': 'text/plain' }, Buffer.from(`body of ${p}`))))
    assert.deepEqual(
      replies.map((r) => r.status),
      paths.map(() => 201),
    )
    for (const p of paths) assert.equal(readFileSync(path.join(files.dir, p.slice(1)), 'utf8'), `body of ${p}`)
    const lines = await accessLines(logFile, (ls) => paths.every((p) => ls.some((l) => l.path === p)))
    assert.deepEqual(
      paths.map((p) => {
        const l = lines.find((x) => x.path === p)!
        return [l.method, l.status, l.bytes]
      }),
      replies.map((r) => ['PUT', 201, r.body.length]),
    )
  })

  test('a body the server does not read (a refusal): the answer, then the stream ends with NO_ERROR, the client not left waiting', async () => {
    // larger than the stream's flow-control window: the client cannot finish sending it unread
    const body = randomBytes(512 * 1024)
    const r = await h2(srv.url, { ':method': 'POST', ':path': '/a.txt', 'content-length': String(body.length) }, body)
    assert.equal(r.status, 405)
    assert.equal(r.rstCode, http2.constants.NGHTTP2_NO_ERROR)
    assert.match(r.body.toString(), /^405 Method Not Allowed/)
  })

  test('a stream reset in the middle of its body: a 499 in the access log, nothing stored', async () => {
    const session = http2.connect(srv.url)
    session.on('error', () => {})
    try {
      await new Promise<void>((resolve) => {
        const stream = session.request({ ':method': 'PUT', ':path': '/cut.bin', authorization: 'Bearer a-very-long-secret-token', 'content-length': '100000' }, { endStream: false })
        stream.on('error', () => {})
        stream.write(Buffer.alloc(30_000, 'x'), () => {
          // give the server the time to start reading, then cancel the stream
          setTimeout(() => {
            stream.close(http2.constants.NGHTTP2_CANCEL)
            resolve()
          }, 100)
        })
      })
      const lines = await accessLines(logFile, (ls) => ls.some((l) => l.path === '/cut.bin'))
      const line = lines.find((l) => l.path === '/cut.bin')!
      assert.deepEqual([line.method, line.status, line.bytes, line.proto, line.client], ['PUT', 499, 0, 'h2c', '127.0.0.1'])
      assert.equal(existsSync(path.join(files.dir, 'cut.bin')), false)
    } finally {
      session.close()
    }
  })
})
