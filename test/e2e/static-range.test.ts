import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { utimesSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import fc from 'fast-check'
import { PROTOCOLS, request, startServer, tempDir, type Reply, type TestServer } from '../helpers/server.ts'

let srv: TestServer
const tmp = tempDir()
const MTIME = new Date('2024-03-01T12:00:00Z')
const SMALL = randomBytes(10_000) // kept in memory
const LARGE = randomBytes(300 * 1024) // above memoryCache.maxFileSize: streamed from disk
const TEXT = Buffer.from('compressible text line\n'.repeat(400))

function put(name: string, bytes: Buffer): void {
  const file = path.join(tmp.dir, name)
  writeFileSync(file, bytes)
  utimesSync(file, MTIME, MTIME)
}

before(async () => {
  put('small.bin', SMALL)
  put('large.bin', LARGE)
  put('text.txt', TEXT)
  srv = await startServer({ sites: [{ routes: [{ path: '/', static: { root: '.' } }] }] }, tmp.dir)
})

after(async () => {
  await srv?.close()
  tmp.cleanup()
})

/** Parses a multipart/byteranges body into its parts (RFC 9110 §14.6). */
function parseMultipart(r: Reply): Array<{ headers: Record<string, string>; body: Buffer }> {
  const m = /^multipart\/byteranges; boundary=(.+)$/.exec(String(r.headers['content-type']))
  assert.ok(m, `content-type ${String(r.headers['content-type'])}`)
  const delimiter = Buffer.from(`--${m[1]}`)
  const parts: Array<{ headers: Record<string, string>; body: Buffer }> = []
  const body = r.body
  let pos = body.indexOf(delimiter)
  assert.ok(pos >= 0)
  for (;;) {
    pos += delimiter.length
    if (body.subarray(pos, pos + 2).toString() === '--') break // close delimiter
    assert.equal(body.subarray(pos, pos + 2).toString(), '\r\n')
    const headEnd = body.indexOf('\r\n\r\n', pos)
    const headers = Object.fromEntries(
      body
        .subarray(pos + 2, headEnd)
        .toString('latin1')
        .split('\r\n')
        .map((l) => {
          const i = l.indexOf(':')
          return [l.slice(0, i).toLowerCase(), l.slice(i + 1).trim()]
        }),
    )
    const cr = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(headers['content-range'] ?? '')
    assert.ok(cr, `part Content-Range ${headers['content-range']}`)
    const len = Number(cr[2]) - Number(cr[1]) + 1
    const dataStart = headEnd + 4
    parts.push({ headers, body: body.subarray(dataStart, dataStart + len) })
    pos = dataStart + len
    assert.equal(body.subarray(pos, pos + 2).toString(), '\r\n', 'CRLF before the next delimiter')
    pos += 2
    assert.ok(body.subarray(pos, pos + delimiter.length).equals(delimiter))
  }
  return parts
}

for (const protocol of PROTOCOLS) {
  const get = (p: string, headers: Record<string, string> = {}, method = 'GET') => request(protocol, new URL(p, srv.url).href, { method, headers })

  for (const [name, data] of [
    ['small.bin', SMALL],
    ['large.bin', LARGE],
  ] as const) {
    const url = `/${name}`
    const len = data.length

    describe(`static ranges over ${protocol}: ${name} (${len} bytes)`, () => {
      let etag = ''
      let lastModified = ''
      before(async () => {
        const r = await get(url)
        etag = String(r.headers.etag)
        lastModified = String(r.headers['last-modified'])
      })

      async function alive(): Promise<void> {
        const r = await get(url)
        assert.equal(r.status, 200)
        assert.ok(r.body.equals(data))
      }

      test('Accept-Ranges: bytes on the full response', async () => {
        const r = await get(url)
        assert.equal(r.status, 200)
        assert.equal(r.headers['accept-ranges'], 'bytes')
        assert.equal(r.headers['content-length'], String(len))
        assert.ok(r.body.equals(data))
      })

      test('single range -> 206 with exact Content-Range and bytes', async () => {
        const r = await get(url, { range: 'bytes=10-109' })
        assert.equal(r.status, 206)
        assert.equal(r.headers['content-range'], `bytes 10-109/${len}`)
        assert.equal(r.headers['content-length'], '100')
        assert.equal(r.headers['content-type'], 'application/octet-stream')
        assert.equal(r.headers.etag, etag)
        assert.ok(r.body.equals(data.subarray(10, 110)))
        const clamped = await get(url, { range: `bytes=${len - 5}-${len + 1000}` })
        assert.equal(clamped.status, 206)
        assert.equal(clamped.headers['content-range'], `bytes ${len - 5}-${len - 1}/${len}`)
        assert.ok(clamped.body.equals(data.subarray(len - 5)))
      })

      test('suffix range -100 and open range 100-', async () => {
        const suffix = await get(url, { range: 'bytes=-100' })
        assert.equal(suffix.status, 206)
        assert.equal(suffix.headers['content-range'], `bytes ${len - 100}-${len - 1}/${len}`)
        assert.ok(suffix.body.equals(data.subarray(len - 100)))
        const open = await get(url, { range: 'bytes=100-' })
        assert.equal(open.status, 206)
        assert.equal(open.headers['content-range'], `bytes 100-${len - 1}/${len}`)
        assert.equal(open.headers['content-length'], String(len - 100))
        assert.ok(open.body.equals(data.subarray(100)))
      })

      test('multiple ranges -> 206 multipart/byteranges', async () => {
        const r = await get(url, { range: 'bytes=0-9, 200-299, -50' })
        assert.equal(r.status, 206)
        assert.equal(r.headers['content-range'], undefined)
        assert.equal(r.headers['content-length'], String(r.body.length))
        const parts = parseMultipart(r)
        const expected: Array<[number, number]> = [
          [0, 9],
          [200, 299],
          [len - 50, len - 1],
        ]
        assert.equal(parts.length, expected.length)
        for (const [i, [s, e]] of expected.entries()) {
          assert.equal(parts[i]!.headers['content-range'], `bytes ${s}-${e}/${len}`)
          assert.equal(parts[i]!.headers['content-type'], 'application/octet-stream')
          assert.ok(parts[i]!.body.equals(data.subarray(s, e + 1)), `part ${i}`)
        }
      })

      test('unsatisfiable range -> 416 with Content-Range: bytes */LEN', async () => {
        const r = await get(url, { range: `bytes=${len}-${len + 10}` })
        assert.equal(r.status, 416)
        assert.equal(r.headers['content-range'], `bytes */${len}`)
        await alive()
      })

      test('malformed range -> 200 with the full file', async () => {
        for (const range of ['bytes=abc', 'bytes=5-3', 'bites=0-1', 'bytes=0-1,x']) {
          const r = await get(url, { range })
          assert.equal(r.status, 200, range)
          assert.equal(r.headers['content-range'], undefined)
          assert.ok(r.body.equals(data), range)
        }
        await alive()
      })

      test('If-Range', async () => {
        const current = await get(url, { range: 'bytes=0-99', 'if-range': etag })
        assert.equal(current.status, 206)
        assert.ok(current.body.equals(data.subarray(0, 100)))
        const old = await get(url, { range: 'bytes=0-99', 'if-range': '"old-version"' })
        assert.equal(old.status, 200)
        assert.ok(old.body.equals(data))
        const weak = await get(url, { range: 'bytes=0-99', 'if-range': `W/${etag}` })
        assert.equal(weak.status, 200, 'a weak tag never matches If-Range')
        assert.ok(weak.body.equals(data))
        const date = await get(url, { range: 'bytes=0-99', 'if-range': lastModified })
        assert.equal(date.status, 206)
        assert.ok(date.body.equals(data.subarray(0, 100)))
        const otherDate = await get(url, { range: 'bytes=0-99', 'if-range': new Date(MTIME.getTime() + 1000).toUTCString() })
        assert.equal(otherDate.status, 200)
      })

      test('HEAD with Range: headers only', async () => {
        const r = await get(url, { range: 'bytes=0-9' }, 'HEAD')
        assert.equal(r.body.length, 0)
        assert.ok(r.status === 200 || r.status === 206)
      })
    })
  }

  describe(`static ranges over ${protocol}: compression and properties`, () => {
    test('a range request is never compressed', async () => {
      const full = await get('/text.txt', { 'accept-encoding': 'gzip' })
      assert.equal(full.headers['content-encoding'], 'gzip', 'the file is compressible')
      for (const ae of ['gzip', 'br', 'gzip, br']) {
        const r = await get('/text.txt', { range: 'bytes=5-54', 'accept-encoding': ae })
        assert.equal(r.status, 206)
        assert.equal(r.headers['content-encoding'], undefined)
        assert.equal(r.headers['content-range'], `bytes 5-54/${TEXT.length}`)
        assert.ok(r.body.equals(TEXT.subarray(5, 55)))
      }
    })

    test('property: the 206 body is the file slice [a, b]', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(['small.bin', SMALL] as const, ['large.bin', LARGE] as const),
          fc.nat(),
          fc.nat(),
          async ([name, data], x, y) => {
            const a = x % data.length
            const b = a + (y % (data.length - a))
            const r = await get(`/${name}`, { range: `bytes=${a}-${b}` })
            assert.equal(r.status, 206)
            assert.equal(r.headers['content-range'], `bytes ${a}-${b}/${data.length}`)
            assert.ok(r.body.equals(data.subarray(a, b + 1)))
          },
        ),
        { numRuns: 20 },
      )
    })
  })
}
