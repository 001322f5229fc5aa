import assert from 'node:assert/strict'
import http from 'node:http'
import net from 'node:net'
import { after, before, describe, test } from 'node:test'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { frame, PREFACE } from '../helpers/h2raw.ts'
import { request, startServer, tempDir, type TestServer } from '../helpers/server.ts'

/**
 * HTTP/2 requests that would smuggle a second request when forwarded over
 * HTTP/1.1 (RFC 9113 §8.2.1, §8.1.1, §8.3.1): field values with CR, LF or NUL,
 * connection-specific fields, a content-length the DATA frames disagree
 * with, and a Host that disagrees with :authority. Each is refused before
 * anything reaches the upstream, with request buffering on (the default) and
 * off, and the next good request is served.
 */

/** An HPACK literal without indexing with a new name (RFC 7541 §6.2.2); short strings, no Huffman. */
function literal(name: string, value: Buffer | string): Buffer {
  const v = Buffer.isBuffer(value) ? value : Buffer.from(value)
  return Buffer.concat([Buffer.from([0x00, name.length]), Buffer.from(name), Buffer.from([v.length]), v])
}

/** Sends one request as raw frames and resolves with the status the server answered, or the RST_STREAM code. */
function rawRequest(port: number, fields: Array<[string, Buffer | string]>, body?: Buffer): Promise<{ status?: number; reset?: number; goaway?: number }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1')
    const block = Buffer.concat(fields.map(([n, v]) => literal(n, v)))
    const END_STREAM = 0x1
    const END_HEADERS = 0x4
    sock.write(Buffer.concat([PREFACE, frame(0x4, 0, 0), frame(0x1, END_HEADERS | (body ? 0 : END_STREAM), 1, block), ...(body ? [frame(0x0, END_STREAM, 1, body)] : [])]))
    let buf = Buffer.alloc(0)
    const timer = setTimeout(() => {
      sock.destroy()
      reject(new Error('no answer within 5 s'))
    }, 5000)
    const done = (r: { status?: number; reset?: number; goaway?: number }) => {
      clearTimeout(timer)
      sock.destroy()
      resolve(r)
    }
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d])
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3)
        if (buf.length < 9 + len) break
        const type = buf[3]!
        const flags = buf[4]!
        const payload = buf.subarray(9, 9 + len)
        buf = buf.subarray(9 + len)
        if (type === 0x4 && !(flags & 0x1)) sock.write(frame(0x4, 0x1, 0)) // SETTINGS ack
        // HEADERS on stream 1: the first byte of a response block is :status from the static table (0x88 = 200, 0x8c = 400, ...)
        if (type === 0x1) return done({ status: ({ 0x88: 200, 0x89: 204, 0x8a: 206, 0x8b: 304, 0x8c: 400, 0x8d: 404, 0x8e: 500 } as Record<number, number>)[payload[0]!] ?? -1 })
        if (type === 0x3) return done({ reset: payload.readUInt32BE(0) })
        if (type === 0x7) return done({ goaway: payload.readUInt32BE(4) })
      }
    })
    sock.on('error', reject)
  })
}

describe('HTTP/2 requests that would smuggle over HTTP/1.1', () => {
  let srv: TestServer
  let upstream: http.Server
  const seen: string[] = []
  const files = tempDir()
  const TOKEN = 'a-long-upload-token-for-tests'
  before(async () => {
    upstream = http.createServer((req, res) => {
      let body = ''
      req.setEncoding('latin1')
      req.on('data', (c: string) => (body += c))
      req.on('end', () => {
        seen.push(`${req.method} ${req.url} ${JSON.stringify(req.headers)} ${body}`)
        res.end('ok')
      })
    })
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
    const up = `http://127.0.0.1:${(upstream.address() as net.AddressInfo).port}`
    srv = await startServer({
      sites: [
        {
          routes: [
            { path: '/buffered/', proxy: { upstreams: [up] } },
            { path: '/streamed/', proxy: { upstreams: [up], requestBuffering: false } },
            { path: '/files/', static: { root: files.dir, upload: { enabled: true, credentials: [{ token: TOKEN, paths: ['**'] }] } } },
          ],
        },
      ],
    })
  })
  after(async () => {
    await srv.close()
    upstream.closeAllConnections()
    await new Promise((r) => upstream.close(r))
    files.cleanup()
  })

  const base = (path: string, method = 'GET'): Array<[string, Buffer | string]> => [
    [':method', method],
    [':scheme', 'http'],
    [':authority', `127.0.0.1:${srv.port}`],
    [':path', path],
  ]

  for (const route of ['buffered', 'streamed']) {
    test(`${route}: CR, LF or NUL in a field value never reaches the upstream`, async () => {
      // nghttp2, under Node's HTTP/2 layer, drops such a field before the request is seen (docs/proxy.md)
      for (const [i, value] of ['a\r\nx-injected: 1', 'a\nx-injected: 1', 'a\rb', 'a\0b'].entries()) {
        const r = await rawRequest(srv.port, [...base(`/${route}/crlf${i}`), ['x-test', Buffer.from(value, 'latin1')]])
        assert.ok(r.status === 200 || r.status === 400 || r.reset !== undefined || r.goaway !== undefined, `${JSON.stringify(value)}: ${JSON.stringify(r)}`)
      }
      const forwarded = seen.filter((s) => s.includes('/crlf'))
      assert.ok(forwarded.every((s) => !s.includes('x-test') && !s.includes('x-injected')), forwarded.join('\n'))
    })

    test(`${route}: connection-specific fields (transfer-encoding, connection) are malformed`, async () => {
      for (const field of [['transfer-encoding', 'chunked'], ['connection', 'keep-alive'], ['upgrade', 'h2c']] as Array<[string, string]>) {
        const r = await rawRequest(srv.port, [...base(`/${route}/te`, 'POST'), field], Buffer.from('0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n'))
        assert.ok(r.reset !== undefined || r.goaway !== undefined || r.status === 400, `${field[0]}: ${JSON.stringify(r)}`)
      }
      assert.equal(seen.filter((s) => s.includes('/te') || s.includes('/smuggled')).length, 0)
    })

    test(`${route}: a content-length the DATA disagrees with is refused, never forwarded`, async () => {
      const longer = await rawRequest(srv.port, [...base(`/${route}/cl-long`, 'POST'), ['content-length', '5']], Buffer.from('12345GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n'))
      assert.ok(longer.reset !== undefined || longer.goaway !== undefined || longer.status === 400, JSON.stringify(longer))
      const shorter = await rawRequest(srv.port, [...base(`/${route}/cl-short`, 'POST'), ['content-length', '50']], Buffer.from('12345'))
      assert.ok(shorter.reset !== undefined || shorter.goaway !== undefined || shorter.status === 400, JSON.stringify(shorter))
      // give a forwarded request time to show up at the upstream if one had gone out
      const ok = await request('h2c', `${srv.url}${route}/after`)
      assert.equal(ok.status, 200)
      assert.equal(seen.filter((s) => s.includes('/cl-') || s.includes('/smuggled')).length, 0, seen.join('\n'))
    })
  }

  test('a Host that disagrees with :authority is a 400 (RFC 9113 §8.3.1)', async () => {
    const r = await rawRequest(srv.port, [...base('/buffered/host'), ['host', 'other.test']])
    assert.equal(r.status, 400)
    const same = await rawRequest(srv.port, [...base('/buffered/host2'), ['host', `127.0.0.1:${srv.port}`]])
    assert.equal(same.status, 200)
    assert.equal(seen.filter((s) => s.includes('/host ')).length, 0)
  })

  test('an upload whose DATA falls short of its content-length is never stored, and an existing file stays whole', async () => {
    writeFileSync(path.join(files.dir, 'kept.txt'), 'the old content')
    const put = (name: string) => [...base(`/files/${name}`, 'PUT'), ['authorization', `Bearer ${TOKEN}`], ['content-type', 'text/plain'], ['content-length', '20']] as Array<[string, string]>
    const created = await rawRequest(srv.port, put('new.txt'), Buffer.from('only ten b'))
    assert.ok(created.reset !== undefined || created.goaway !== undefined, JSON.stringify(created))
    const replaced = await rawRequest(srv.port, put('kept.txt'), Buffer.from('only ten b'))
    assert.ok(replaced.reset !== undefined || replaced.goaway !== undefined, JSON.stringify(replaced))
    assert.equal((await request('h2c', `${srv.url}files/kept.txt`)).text, 'the old content')
    assert.equal(existsSync(path.join(files.dir, 'new.txt')), false)
    assert.equal(readFileSync(path.join(files.dir, 'kept.txt'), 'utf8'), 'the old content')
  })
})
