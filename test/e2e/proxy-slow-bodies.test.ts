import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import http from 'node:http'
import net from 'node:net'
import { after, before, describe, test } from 'node:test'
import { PROTOCOLS, request, startServer, type Reply } from '../helpers/server.ts'

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
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    open: () => open,
    seen,
    onRequest,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  }
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


