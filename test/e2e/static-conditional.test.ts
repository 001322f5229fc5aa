import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { utimesSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { PROTOCOLS, request, startServer, tempDir, type TestServer } from '../helpers/server.ts'

let srv: TestServer
const tmp = tempDir()
const CONTENT = 'conditional content\n'.repeat(10)
// A fixed modification time well in the past, so Last-Modified is a strong validator.
const MTIME = new Date('2024-03-01T12:00:00Z')
const HOUR = 3600_000
const httpDate = (ms: number) => new Date(ms).toUTCString()

before(async () => {
  const file = path.join(tmp.dir, 'page.txt')
  writeFileSync(file, CONTENT)
  utimesSync(file, MTIME, MTIME)
  srv = await startServer({ sites: [{ routes: [{ path: '/', static: { root: '.' } }] }] }, tmp.dir)
})

after(async () => {
  await srv?.close()
  tmp.cleanup()
})

for (const protocol of PROTOCOLS) {
  const get = (headers: Record<string, string> = {}, method = 'GET') => request(protocol, new URL('/page.txt', srv.url).href, { method, headers })

  async function alive(): Promise<void> {
    const r = await get()
    assert.equal(r.status, 200)
    assert.equal(r.text, CONTENT)
  }

  describe(`static conditional requests over ${protocol}`, () => {
    let etag = ''
    let lastModified = ''

    before(async () => {
      const r = await get()
      etag = String(r.headers.etag)
      lastModified = String(r.headers['last-modified'])
    })

    test('strong ETag and Last-Modified', async () => {
      const r = await get()
      assert.equal(r.status, 200)
      assert.match(etag, /^"[\x21\x23-\x7e]+"$/, 'a strong entity-tag, not W/')
      assert.equal(lastModified, httpDate(MTIME.getTime()))
      assert.equal(r.headers.etag, etag, 'stable across requests')
    })

    test('If-None-Match matching -> 304 with validators and Cache-Control, no body', async () => {
      for (const method of ['GET', 'HEAD']) {
        const r = await get({ 'if-none-match': etag }, method)
        assert.equal(r.status, 304, method)
        assert.equal(r.body.length, 0)
        assert.equal(r.headers.etag, etag)
        assert.equal(r.headers['last-modified'], lastModified)
        assert.equal(r.headers['cache-control'], 'public, max-age=300')
        assert.equal(r.headers['content-length'], undefined)
      }
    })

    test('If-None-Match: a list containing the tag, a weak form of it, and *', async () => {
      assert.equal((await get({ 'if-none-match': `"other", ${etag}, "x"` })).status, 304)
      assert.equal((await get({ 'if-none-match': `W/${etag}` })).status, 304, 'weak comparison')
      assert.equal((await get({ 'if-none-match': '*' })).status, 304)
      const miss = await get({ 'if-none-match': '"nope", "other"' })
      assert.equal(miss.status, 200)
      assert.equal(miss.text, CONTENT)
    })

    test('If-Modified-Since', async () => {
      assert.equal((await get({ 'if-modified-since': lastModified })).status, 304)
      assert.equal((await get({ 'if-modified-since': httpDate(MTIME.getTime() + HOUR) })).status, 304)
      const older = await get({ 'if-modified-since': httpDate(MTIME.getTime() - HOUR) })
      assert.equal(older.status, 200)
      assert.equal(older.text, CONTENT)
      const invalid = await get({ 'if-modified-since': 'not a date' })
      assert.equal(invalid.status, 200, 'an invalid date is ignored')
    })

    test('If-Modified-Since is ignored when If-None-Match is present and does not match', async () => {
      const r = await get({ 'if-none-match': '"stale"', 'if-modified-since': httpDate(MTIME.getTime() + HOUR) })
      assert.equal(r.status, 200)
      assert.equal(r.text, CONTENT)
    })

    test('If-Match mismatch -> 412; match -> 200', async () => {
      const r = await get({ 'if-match': '"stale"' })
      assert.equal(r.status, 412)
      assert.ok(!r.text.includes('conditional content'))
      await alive()
      assert.equal((await get({ 'if-match': etag })).status, 200)
      assert.equal((await get({ 'if-match': '*' })).status, 200)
      assert.equal((await get({ 'if-match': `W/${etag}` })).status, 412, 'If-Match uses strong comparison')
      await alive()
    })

    test('If-Unmodified-Since older than the file -> 412; newer -> 200', async () => {
      const r = await get({ 'if-unmodified-since': httpDate(MTIME.getTime() - HOUR) })
      assert.equal(r.status, 412)
      await alive()
      assert.equal((await get({ 'if-unmodified-since': lastModified })).status, 200)
      assert.equal((await get({ 'if-unmodified-since': httpDate(MTIME.getTime() + HOUR) })).status, 200)
    })

    test('If-Match is evaluated instead of If-Unmodified-Since', async () => {
      // a matching If-Match wins over a failing If-Unmodified-Since
      const pass = await get({ 'if-match': etag, 'if-unmodified-since': httpDate(MTIME.getTime() - HOUR) })
      assert.equal(pass.status, 200)
      assert.equal(pass.text, CONTENT)
      // a failing If-Match fails even with a passing If-Unmodified-Since
      const fail = await get({ 'if-match': '"stale"', 'if-unmodified-since': httpDate(MTIME.getTime() + HOUR) })
      assert.equal(fail.status, 412)
      await alive()
    })
  })
}
