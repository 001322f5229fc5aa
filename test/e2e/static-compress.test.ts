import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { utimesSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import zlib from 'node:zlib'
import { PROTOCOLS, request, startServer, tempDir, type Reply, type TestServer } from '../helpers/server.ts'

let srv: TestServer
const tmp = tempDir()
const TEXT = Buffer.from(Array.from({ length: 200 }, (_, i) => `line ${i}: the quick brown fox jumps over the lazy dog\n`).join(''))
const SMALL = Buffer.from('tiny text below the minimum size\n')
const PNG = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(4096, 'a')])
const JS = Buffer.from('export function hello() { return "hello world" }\n'.repeat(60))
const JS_BR = zlib.brotliCompressSync(Buffer.from('/* precompressed sibling */\n' + JS.toString()))
// > 64 KiB (memoryCache.maxFileSize): compressed while streaming
const LARGE = Buffer.from(Array.from({ length: 6000 }, (_, i) => `row ${i} ${randomBytes(4).toString('hex')} lorem ipsum dolor sit amet\n`).join(''))

before(async () => {
  const t = new Date('2024-03-01T12:00:00Z')
  for (const [name, bytes] of [
    ['text.txt', TEXT],
    ['small.txt', SMALL],
    ['image.png', PNG],
    ['app.js', JS],
    ['large.txt', LARGE],
  ] as const) {
    writeFileSync(path.join(tmp.dir, name), bytes)
    utimesSync(path.join(tmp.dir, name), t, t)
  }
  writeFileSync(path.join(tmp.dir, 'app.js.br'), JS_BR) // newer than app.js
  srv = await startServer({ sites: [{ routes: [{ path: '/', static: { root: '.' } }] }] }, tmp.dir)
})

after(async () => {
  await srv?.close()
  tmp.cleanup()
})

function decode(r: Reply): Buffer {
  const enc = r.headers['content-encoding']
  if (enc === 'br') return zlib.brotliDecompressSync(r.body)
  if (enc === 'gzip') return zlib.gunzipSync(r.body)
  assert.equal(enc, undefined)
  return r.body
}

for (const protocol of PROTOCOLS) {
  const get = (p: string, headers: Record<string, string> = {}, method = 'GET') => request(protocol, new URL(p, srv.url).href, { method, headers })

  describe(`static compression over ${protocol}`, () => {
    let identityTag = ''
    before(async () => {
      const r = await get('/text.txt')
      assert.equal(r.headers['content-encoding'], undefined)
      assert.equal(r.headers.vary, 'Accept-Encoding')
      identityTag = String(r.headers.etag)
    })

    for (const enc of ['br', 'gzip'] as const) {
      test(`Accept-Encoding: ${enc} -> ${enc}, Vary, its own ETag, decompresses to the original`, async () => {
        const r = await get('/text.txt', { 'accept-encoding': enc })
        assert.equal(r.status, 200)
        assert.equal(r.headers['content-encoding'], enc)
        assert.equal(r.headers.vary, 'Accept-Encoding')
        assert.equal(r.headers['content-type'], 'text/plain; charset=utf-8')
        assert.match(String(r.headers.etag), /^"[^"]+"$/)
        assert.notEqual(r.headers.etag, identityTag)
        assert.ok(r.body.length < TEXT.length)
        assert.equal(r.headers['content-length'], String(r.body.length))
        assert.ok(decode(r).equals(TEXT))
        // the same representation again (from memory): same tag, same bytes
        const again = await get('/text.txt', { 'accept-encoding': enc })
        assert.equal(again.headers.etag, r.headers.etag)
        assert.ok(decode(again).equals(TEXT))
      })
    }

    test('q-values are honoured', async () => {
      assert.equal((await get('/text.txt', { 'accept-encoding': 'gzip;q=1, br;q=0.5' })).headers['content-encoding'], 'gzip')
      assert.equal((await get('/text.txt', { 'accept-encoding': 'gzip;q=0.5, br;q=1' })).headers['content-encoding'], 'br')
      assert.equal((await get('/text.txt', { 'accept-encoding': 'br;q=0, gzip' })).headers['content-encoding'], 'gzip')
      const none = await get('/text.txt', { 'accept-encoding': 'br;q=0, gzip;q=0' })
      assert.equal(none.headers['content-encoding'], undefined)
      assert.ok(none.body.equals(TEXT))
    })

    test('no compression below minSize or for images', async () => {
      const small = await get('/small.txt', { 'accept-encoding': 'br, gzip' })
      assert.equal(small.status, 200)
      assert.equal(small.headers['content-encoding'], undefined)
      assert.ok(small.body.equals(SMALL))
      const png = await get('/image.png', { 'accept-encoding': 'br, gzip' })
      assert.equal(png.status, 200)
      assert.equal(png.headers['content-type'], 'image/png')
      assert.equal(png.headers['content-encoding'], undefined)
      assert.equal(png.headers.vary, undefined)
      assert.ok(png.body.equals(PNG))
    })

    test('a precompressed sibling (app.js.br) is served as is', async () => {
      const r = await get('/app.js', { 'accept-encoding': 'br' })
      assert.equal(r.status, 200)
      assert.equal(r.headers['content-encoding'], 'br')
      assert.equal(r.headers['content-type'], 'text/javascript; charset=utf-8')
      assert.equal(r.headers.vary, 'Accept-Encoding')
      assert.equal(r.headers['content-length'], String(JS_BR.length))
      assert.ok(r.body.equals(JS_BR), 'the sibling bytes exactly')
      const head = await get('/app.js', { 'accept-encoding': 'br' }, 'HEAD')
      assert.equal(head.status, 200)
      assert.equal(head.body.length, 0)
      assert.equal(head.headers['content-length'], String(JS_BR.length))
      assert.equal(head.headers.etag, r.headers.etag)
      const identity = await get('/app.js')
      assert.equal(identity.headers['content-encoding'], undefined)
      assert.ok(identity.body.equals(JS))
    })

    test('If-None-Match with the br ETag and Accept-Encoding: br -> 304', async () => {
      const br = await get('/text.txt', { 'accept-encoding': 'br' })
      const tag = String(br.headers.etag)
      const r = await get('/text.txt', { 'accept-encoding': 'br', 'if-none-match': tag })
      assert.equal(r.status, 304)
      assert.equal(r.body.length, 0)
      assert.equal(r.headers.etag, tag)
      assert.equal(r.headers.vary, 'Accept-Encoding')
      // a client without br asks for another representation: the br tag does not match
      const plain = await get('/text.txt', { 'if-none-match': tag })
      assert.equal(plain.status, 200)
      assert.ok(plain.body.equals(TEXT))
    })

    for (const enc of ['br', 'gzip'] as const) {
      test(`a large (> 64 KiB) file is compressed while streaming (${enc})`, async () => {
        const r = await get('/large.txt', { 'accept-encoding': enc })
        assert.equal(r.status, 200)
        assert.equal(r.headers['content-encoding'], enc)
        assert.equal(r.headers.vary, 'Accept-Encoding')
        assert.ok(r.body.length < LARGE.length)
        assert.ok(decode(r).equals(LARGE))
        const identity = await get('/large.txt')
        assert.equal(identity.headers['content-encoding'], undefined)
        assert.notEqual(identity.headers.etag, r.headers.etag)
        assert.ok(identity.body.equals(LARGE))
      })
    }
  })
}
