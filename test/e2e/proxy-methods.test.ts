import assert from 'node:assert/strict'
import http from 'node:http'
import net from 'node:net'
import { after, before, describe, test } from 'node:test'
import { listening, PROTOCOLS, raw, request, startServer, statuses, type TestServer } from '../helpers/server.ts'

/**
 * Methods beyond the common ones through a proxy route: WebDAV and other
 * extension methods (PROPFIND, REPORT, SEARCH, QUERY, ...) are forwarded
 * rather than answered 501, and through a cached route a successful one
 * invalidates the stored target (RFC 9111 §4.4: methods whose safety is
 * unknown count as unsafe). Routes whose handler has a fixed list keep 501.
 */

interface Seen {
  method: string
  url: string
  body: string
}

const seen: Seen[] = []
let version = 0

const origin = http.createServer((req, res) => {
  const chunks: Buffer[] = []
  req.on('data', (c: Buffer) => chunks.push(c))
  req.on('end', () => {
    seen.push({ method: req.method!, url: req.url!, body: Buffer.concat(chunks).toString() })
    if (req.method === 'GET' || req.method === 'HEAD') {
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Cache-Control': 'max-age=600' })
      return res.end(`version ${version}`)
    }
    version++
    res.writeHead(207, { 'Content-Type': 'application/xml' })
    res.end(`<multistatus method="${req.method}"/>`)
  })
})

/** What a raw upstream received: Node's own HTTP server knows only llhttp's methods, so this one takes any token. */
let rawReceived = ''
const rawOrigin = net.createServer((sock) => {
  sock.on('error', () => {})
  let text = ''
  sock.on('data', (c: Buffer) => {
    text += c.toString('latin1')
    if (!text.endsWith('\r\n\r\nb')) return
    rawReceived = text
    sock.end('HTTP/1.1 207 Multi-Status\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok')
  })
})

let up: Awaited<ReturnType<typeof listening>>
let rawUp: number
let srv: TestServer
before(async () => {
  up = await listening(origin)
  await new Promise<void>((r) => rawOrigin.listen(0, '127.0.0.1', r))
  rawUp = (rawOrigin.address() as net.AddressInfo).port
  srv = await startServer({
    sites: [
      {
        routes: [
          { path: '/files/', static: { root: 'docs' } },
          { path: '/cached/', proxy: { upstreams: [up.url], cache: true } },
          { path: '/raw/', proxy: { upstreams: [`http://127.0.0.1:${rawUp}`] } },
          { path: '/', proxy: { upstreams: [up.url] } },
        ],
      },
    ],
  })
})
after(async () => {
  await srv.close()
  await up.close()
  await new Promise((r) => rawOrigin.close(r))
})

const PROPFIND = '<?xml version="1.0"?><propfind xmlns="DAV:"><allprop/></propfind>'

describe('extension methods through a proxy route', () => {
  for (const protocol of PROTOCOLS) {
    test(`${protocol}: PROPFIND reaches the upstream with its body, and its 207 comes back`, async () => {
      const before = seen.length
      const r = await request(protocol, `${srv.url}dav/x`, { method: 'PROPFIND', headers: { 'content-type': 'application/xml', depth: '1' }, body: PROPFIND })
      assert.equal(r.status, 207)
      assert.equal(r.text, '<multistatus method="PROPFIND"/>')
      assert.deepEqual(seen.slice(before), [{ method: 'PROPFIND', url: '/dav/x', body: PROPFIND }])
    })

    for (const method of ['MKCOL', 'LOCK', 'SEARCH', 'QUERY']) {
      test(`${protocol}: ${method} is forwarded`, async () => {
        const before = seen.length
        const r = await request(protocol, `${srv.url}dav/${method}`, { method, body: 'q' })
        assert.equal(r.status, 207)
        assert.equal(r.text, `<multistatus method="${method}"/>`)
        assert.deepEqual(seen.slice(before), [{ method, url: `/dav/${method}`, body: 'q' }])
      })
    }

    test(`${protocol}: a successful REPORT invalidates the cached GET of its target (RFC 9111 §4.4)`, async () => {
      const url = `${srv.url}cached/report-${protocol}`
      const first = await request(protocol, url)
      assert.equal(first.status, 200)
      assert.match(String(first.headers['cache-status']), /fwd=miss; fwd-status=200; stored/)
      const hit = await request(protocol, url)
      assert.equal(hit.text, first.text)
      assert.match(String(hit.headers['cache-status']), /^edgebox; hit/)
      const report = await request(protocol, url, { method: 'REPORT', body: '<report/>' })
      assert.equal(report.status, 207)
      const after = await request(protocol, url)
      assert.equal(after.status, 200)
      assert.match(String(after.headers['cache-status']), /fwd=miss/)
      assert.notEqual(after.text, first.text)
    })

    test(`${protocol}: PROPFIND on a static route is still 501, and the next request is served`, async () => {
      const r = await request(protocol, `${srv.url}files/proxy.md`, { method: 'PROPFIND' })
      assert.equal(r.status, 501)
      const ok = await request(protocol, `${srv.url}files/proxy.md`)
      assert.equal(ok.status, 200)
    })
  }

  test('h2c: any method token is forwarded over HTTP/2', async () => {
    const r = await request('h2c', `${srv.url}raw/any`, { method: 'FROBNICATE', body: 'b' })
    assert.equal(r.status, 207)
    assert.equal(r.text, 'ok')
    assert.ok(rawReceived.startsWith('FROBNICATE /raw/any HTTP/1.1\r\n'), rawReceived)
    assert.match(rawReceived, /\r\ncontent-length: 1\r\n/i)
  })

  test('h2c: an unknown method on a static route is 501', async () => {
    const r = await request('h2c', `${srv.url}files/proxy.md`, { method: 'FROBNICATE' })
    assert.equal(r.status, 501)
  })

  test('http/1.1: a method the HTTP/1.1 parser does not know is still 501 on a proxy route, and the next request is served', async () => {
    const text = await raw(srv.port, 'FROBNICATE /dav/any HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
    assert.deepEqual(statuses(text), [501])
    const ok = await request('http/1.1', `${srv.url}dav/after`, { method: 'PROPFIND' })
    assert.equal(ok.status, 207)
  })

  test('PURGE on a proxy route without purge is still 405', async () => {
    const r = await request('http/1.1', `${srv.url}dav/x`, { method: 'PURGE' })
    assert.equal(r.status, 405)
    assert.equal(r.headers.allow, 'GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS')
  })
})
