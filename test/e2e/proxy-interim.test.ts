import assert from 'node:assert/strict'
import http from 'node:http'
import http2 from 'node:http2'
import { after, before, describe, test } from 'node:test'
import { listening, PROTOCOLS, raw, startServer, statuses, type Protocol, type TestServer } from '../helpers/server.ts'

/**
 * 1xx interim responses from the upstream (RFC 9110 §15.2) through a proxy
 * route: 103 Early Hints reaches the client with its Link field before the
 * final response, over HTTP/1.1 and HTTP/2, and never over HTTP/1.0; the
 * cache stores the final response only and serves hits without a 103.
 */

const LINK = '</a.css>; rel=preload; as=style'
let hits = 0

const origin = http.createServer((req, res) => {
  hits++
  res.writeEarlyHints({ link: LINK })
  if (req.url?.startsWith('/processing')) res.writeProcessing()
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Cache-Control': 'max-age=60' })
  res.end(`final ${req.url}`)
})

interface Interim {
  status: number
  link: string | string[] | undefined
}

interface Answer {
  interim: Interim[]
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
}

/** One GET that records every 1xx the client is sent before the final response. */
function get(protocol: Protocol, url: string): Promise<Answer> {
  return protocol === 'h2c' ? getH2(url) : getH1(url)
}

function getH1(url: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const interim: Interim[] = []
    const req = http.request(url, { agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ interim, status: res.statusCode!, headers: res.headers, text: Buffer.concat(chunks).toString() }))
    })
    req.on('information', (info) => interim.push({ status: info.statusCode, link: info.headers.link }))
    req.on('error', reject)
    req.end()
  })
}

function getH2(url: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const u = new URL(url)
    const session = http2.connect(u.origin)
    session.on('error', reject)
    const interim: Interim[] = []
    const stream = session.request({ ':method': 'GET', ':path': u.pathname + u.search })
    let status = 0
    let headers: Record<string, string | string[] | undefined> = {}
    // 1xx HEADERS frames come as 'headers' events, the final one as 'response'
    stream.on('headers', (h) => interim.push({ status: Number(h[':status']), link: h.link }))
    stream.on('response', (h) => {
      status = Number(h[':status'])
      headers = h
    })
    const chunks: Buffer[] = []
    stream.on('data', (c: Buffer) => chunks.push(c))
    stream.on('end', () => {
      session.close()
      resolve({ interim, status, headers, text: Buffer.concat(chunks).toString() })
    })
    stream.on('error', (err) => {
      session.destroy()
      reject(err)
    })
    stream.end()
  })
}

let up: Awaited<ReturnType<typeof listening>>
let plain: TestServer
let cached: TestServer
before(async () => {
  up = await listening(origin)
  plain = await startServer({ sites: [{ routes: [{ path: '/', proxy: { upstreams: [up.url] } }] }] })
  cached = await startServer({ sites: [{ routes: [{ path: '/', proxy: { upstreams: [up.url], cache: true } }] }] })
})
after(async () => {
  await plain.close()
  await cached.close()
  await up.close()
})

describe('1xx interim responses from the upstream', () => {
  for (const protocol of PROTOCOLS) {
    test(`${protocol}: the upstream's 103 reaches the client with its Link, then the 200`, async () => {
      const a = await get(protocol, `${plain.url}early`)
      assert.deepEqual(a.interim, [{ status: 103, link: LINK }])
      assert.equal(a.status, 200)
      assert.equal(a.text, 'final /early')
    })

    test(`${protocol}: 102 Processing is passed on too, each interim in order`, async () => {
      const a = await get(protocol, `${plain.url}processing`)
      assert.deepEqual(a.interim, [
        { status: 103, link: LINK },
        { status: 102, link: undefined },
      ])
      assert.equal(a.status, 200)
      assert.equal(a.text, 'final /processing')
    })

    test(`${protocol}: with cache, the miss passes the 103 on, the stored 200 is served without one`, async () => {
      const path = `cached-${protocol}`
      const before = hits
      const first = await get(protocol, `${cached.url}${path}`)
      assert.deepEqual(first.interim, [{ status: 103, link: LINK }])
      assert.equal(first.status, 200)
      assert.equal(first.text, `final /${path}`)
      assert.match(String(first.headers['cache-status']), /fwd=miss; fwd-status=200; stored/)
      const second = await get(protocol, `${cached.url}${path}`)
      assert.deepEqual(second.interim, [])
      assert.equal(second.status, 200)
      assert.equal(second.text, `final /${path}`)
      assert.match(String(second.headers['cache-status']), /^edgebox; hit/)
      assert.equal(hits, before + 1)
    })
  }

  test('an HTTP/1.0 client is sent no 1xx (RFC 9110 §15.2), only the final response', async () => {
    const text = await raw(plain.port, 'GET /early HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n')
    assert.deepEqual(statuses(text), [200])
    assert.ok(text.endsWith('final /early'))
    const next = await get('http/1.1', `${plain.url}early`)
    assert.equal(next.status, 200)
  })
})
